"""`kfcli callback serve` as a subprocess on a free port, driven over HTTP with callbacks that
are encrypted here independently (pycryptodome directly), plus the WSGI factory in-process."""

from __future__ import annotations

import http.client
import io
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from urllib.parse import quote, urlencode, urlsplit

import pytest
import requests

from tests.core.test_crypto import (
    AES_KEY,
    BILLION_LAUGHS,
    RECEIVE_ID,
    TOKEN,
    ref_encrypt,
    ref_signature,
)

ENV = {"KFCLI_TOKEN": TOKEN, "KFCLI_AES_KEY": AES_KEY, "KFCLI_CORP_ID": RECEIVE_ID}


def event_xml(token: str, open_kfid: str, to: str = RECEIVE_ID) -> bytes:
    return (f"<xml><ToUserName><![CDATA[{to}]]></ToUserName><CreateTime>1700000000</CreateTime>"
            "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[kf_msg_or_event]]></Event>"
            f"<Token><![CDATA[{token}]]></Token><OpenKfId><![CDATA[{open_kfid}]]></OpenKfId>"
            "</xml>").encode()


def wecom_post(message: bytes, *, token: str = TOKEN, aes_key: str = AES_KEY,
               receive_id: str = RECEIVE_ID, nonce: str = "1320562132") -> tuple[str, bytes]:
    """(query, body) as WeCom sends them, built without kfcli's code."""
    encrypt = ref_encrypt(aes_key, message, receive_id.encode(), prefix=os.urandom(16))
    ts = str(int(time.time()))
    query = urlencode({"msg_signature": ref_signature(token, ts, nonce, encrypt),
                       "timestamp": ts, "nonce": nonce})
    body = (f"<xml><ToUserName><![CDATA[{receive_id}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]>"
            "</Encrypt><AgentID><![CDATA[]]></AgentID></xml>").encode()
    return query, body


def _lines(stream, into: queue.Queue) -> None:
    for line in iter(stream.readline, ""):
        into.put(line)


class Receiver:
    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.out: queue.Queue[str] = queue.Queue()
        self.err: queue.Queue[str] = queue.Queue()
        self.err_text = ""
        for stream, q in ((proc.stdout, self.out), (proc.stderr, self.err)):
            threading.Thread(target=_lines, args=(stream, q), daemon=True).start()
        line = self.err_line(timeout=60)
        assert line.startswith("listening on http://127.0.0.1:"), line
        self.url = line.split()[2]
        split = urlsplit(self.url)
        self.host, self.port = split.hostname, split.port

    def err_line(self, timeout: float = 5) -> str:
        line = self.err.get(timeout=timeout)
        self.err_text += line
        return line

    def drain_err(self) -> str:
        while True:
            try:
                self.err_line(timeout=0.05)
            except queue.Empty:
                return self.err_text

    def record(self, timeout: float = 5) -> dict:
        return json.loads(self.out.get(timeout=timeout))

    def request(self, method: str, query: str = "", body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes, dict]:
        """One request; an answer that never comes fails it (the socket's timeout)."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        conn.request(method, "/?" + query if query else "/", body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp.status, data, dict(resp.getheaders())


@pytest.fixture
def serve(home):
    procs: list[subprocess.Popen] = []

    def _serve(*args: str, env: dict[str, str] | None = None) -> Receiver:
        kfcli = shutil.which("kfcli")
        cmd = [kfcli] if kfcli else [sys.executable, "-m", "kfcli"]
        proc = subprocess.Popen([*cmd, "callback", "serve", "--port", "0", *args],
                                env={**os.environ, **(env or ENV)}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        procs.append(proc)
        return Receiver(proc)

    yield _serve
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            # SIGTERM is a normal stop (a minute of room: how long it takes is the machine's)
            assert proc.wait(timeout=60) == 0


@pytest.mark.process
def test_get_url_verification_answers_the_exact_bytes(serve):
    rx = serve()
    echostr = ref_encrypt(AES_KEY, b"5927782489442352469", RECEIVE_ID.encode())
    ts, nonce = "1409659589", "263014780"
    params = {"msg_signature": ref_signature(TOKEN, ts, nonce, echostr), "timestamp": ts,
              "nonce": nonce, "echostr": echostr}
    status, body, headers = rx.request("GET", urlencode(params))
    assert (status, body) == (200, b"5927782489442352469")
    assert headers["Content-Type"].startswith("text/plain")
    # a `+` left unencoded by a proxy arrives as a space: still answered
    raw = "&".join(f"{k}={quote(v, safe='+/=')}" for k, v in params.items())
    assert rx.request("GET", raw)[:2] == (200, b"5927782489442352469")
    params["msg_signature"] = "0" * 40
    assert rx.request("GET", urlencode(params))[:2] == (403, b"")


@pytest.mark.process
def test_post_is_answered_at_once_and_emitted_as_a_json_line(serve):
    rx = serve()
    query, body = wecom_post(event_xml("ENCtok1", "wkABC"))
    status, data, _ = rx.request("POST", query, body)
    assert (status, data) == (200, b"success")
    assert rx.record() == {"type": "callback", "ToUserName": RECEIVE_ID,
                           "CreateTime": "1700000000", "MsgType": "event",
                           "Event": "kf_msg_or_event", "Token": "ENCtok1", "OpenKfId": "wkABC"}


@pytest.mark.process
def test_refusals_never_emit_and_never_crash_the_server(serve):
    rx = serve()
    query, body = wecom_post(event_xml("T", "wk1"))
    bad_sig = query.replace("msg_signature=", "msg_signature=0", 1)
    wrong_corp = wecom_post(event_xml("T", "wk1"), receive_id="ww_someone_else")
    no_encrypt = b"<xml><ToUserName>x</ToUserName></xml>"
    big = b"<xml><Encrypt>" + b"A" * (64 * 1024) + b"</Encrypt></xml>"
    cases = [
        ("POST", bad_sig, body, 403),
        ("POST", query, big, 413),
        ("POST", query, b"<xml><Encrypt>", 400),
        ("POST", query, BILLION_LAUGHS, 400),
        ("POST", query, no_encrypt, 400),
        ("POST", "", body, 400),
        ("POST", wrong_corp[0], wrong_corp[1], 400),
        ("GET", "msg_signature=x", None, 400),
        ("PUT", query, body, 405),
    ]
    for method, q, b, expected in cases:
        status, data, _ = rx.request(method, q, b)
        assert status == expected, (method, q, b[:40] if b else b, status)
        assert data == b""
    assert rx.out.empty()
    # still serving, and the same valid callback goes through
    assert rx.request("POST", query, body)[:2] == (200, b"success")
    assert rx.record()["OpenKfId"] == "wk1"
    err = rx.drain_err()
    assert "(403) from 127.0.0.1: invalid_signature" in err and "(413)" in err and "DOCTYPE" in err
    assert "receive_id_mismatch" in err and "Traceback" not in err
    assert TOKEN not in err and AES_KEY not in err


def test_missing_credentials_exit_2_and_sync_without_secret_exits_3(run):
    r = run("callback", "serve", "--port", "0", env={**ENV, "KFCLI_AES_KEY": "short"})
    assert r.code == 2 and "43 characters" in r.err and "short" not in r.err
    r = run("callback", "serve", "--port", "0", "--sync", env=ENV)
    assert r.code == 3 and "secret" in r.err


@pytest.mark.process
def test_sync_pulls_the_announced_messages(serve, sandbox):
    open_kfid = sandbox.account()
    resp = requests.post(sandbox.base_url + "/sandbox/customer_message",
                         json={"open_kfid": open_kfid, "text": "你好, where is my order?"},
                         timeout=10)
    doc = resp.json()
    assert doc["errcode"] == 0, doc
    if "token" not in doc:
        pytest.skip("the sandbox's customer_message does not return a sync_msg token yet")
    probe = requests.post(sandbox.base_url + "/cgi-bin/kf/sync_msg", json={}, timeout=10)
    if probe.status_code == 404:
        pytest.skip("the sandbox does not serve /cgi-bin/kf/sync_msg yet")
    creds = sandbox.creds
    env = {**sandbox.env, "KFCLI_TOKEN": creds["token"], "KFCLI_AES_KEY": creds["aes_key"],
           "KFCLI_CORP_ID": creds["corp_id"]}
    rx = serve("--sync", env=env)
    query, body = wecom_post(event_xml(doc["token"], open_kfid, creds["corp_id"]),
                             token=creds["token"], aes_key=creds["aes_key"],
                             receive_id=creds["corp_id"])
    assert rx.request("POST", query, body)[:2] == (200, b"success")
    # (the start-up catch-up may pull the recorded account before the callback is handled)
    records = {r["type"]: r for r in (rx.record(timeout=60), rx.record(timeout=60))}
    callback, message = records["callback"], records["message"]
    assert callback["OpenKfId"] == open_kfid and message["msgid"] == doc["msgid"]
    assert message["open_kfid"] == open_kfid and message["msgtype"] == "text"
    assert message["text"]["content"] == "你好, where is my order?"
    # a second callback for the same account pulls only what is new (cursor in the store)
    doc2 = sandbox.post("/sandbox/customer_message", {"open_kfid": open_kfid, "text": "2nd"})
    query, body = wecom_post(event_xml(doc2["token"], open_kfid, creds["corp_id"]),
                             token=creds["token"], aes_key=creds["aes_key"],
                             receive_id=creds["corp_id"])
    assert rx.request("POST", query, body)[:2] == (200, b"success")
    assert rx.record(timeout=60)["type"] == "callback"
    second = rx.record(timeout=60)
    assert second["msgid"] == doc2["msgid"] and second["text"]["content"] == "2nd"
    time.sleep(0.3)
    assert rx.out.empty()


@pytest.mark.process
def test_an_expired_callback_token_falls_back_to_a_pull_without_it(serve, sandbox):
    open_kfid = sandbox.account()
    doc = sandbox.post("/sandbox/customer_message", {"open_kfid": open_kfid, "text": "late"})
    creds = sandbox.creds
    env = {**sandbox.env, "KFCLI_TOKEN": creds["token"], "KFCLI_AES_KEY": creds["aes_key"],
           "KFCLI_CORP_ID": creds["corp_id"]}
    rx = serve("--sync", env=env)
    # A Token the simulator never issued (or issued over 10 minutes ago): 95007.
    query, body = wecom_post(event_xml("Expired0Token", open_kfid, creds["corp_id"]),
                             token=creds["token"], aes_key=creds["aes_key"],
                             receive_id=creds["corp_id"])
    assert rx.request("POST", query, body)[:2] == (200, b"success")
    # The start-up catch-up may pull the account the callback recorded before the callback
    # itself is handled: the message may come first.
    records = {r["type"]: r for r in (rx.record(timeout=60), rx.record(timeout=30))}
    message = records["message"]
    assert set(records) == {"callback", "message"} and message["msgid"] == doc["msgid"]
    while "token was refused" not in rx.err_text:  # written before the message was
        rx.err_line(timeout=10)


# ---------------------------------------------------------------------------- in-process


def test_a_slow_consumer_never_delays_answers():
    from kfcli.callback import Dispatcher, make_app
    from kfcli.callback.server import make_server

    handled: list[str] = []
    release = threading.Event()

    def slow(fields: dict) -> None:  # busy until every answer is in
        release.wait(60)
        handled.append(fields["Token"])

    dispatcher = Dispatcher(slow)
    server = make_server("127.0.0.1", 0, make_app(TOKEN, AES_KEY, RECEIVE_ID,
                                                  on_event=dispatcher))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        for i in range(5):  # an answer that waited for the consumer would never come
            query, body = wecom_post(event_xml(f"T{i}", "wk1"))
            conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=30)
            conn.request("POST", "/?" + query, body=body)
            resp = conn.getresponse()
            assert (resp.status, resp.read()) == (200, b"success")
            conn.close()
        assert handled == []
        release.set()
        dispatcher.close()
        assert handled == [f"T{i}" for i in range(5)]
    finally:
        server.shutdown()
        server.server_close()


def test_wsgi_factory_from_env_for_gunicorn(home, monkeypatch):
    from wsgiref.util import setup_testing_defaults

    from kfcli.callback import app_from_env

    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    records: list[dict] = []
    app = app_from_env(emit=records.append)
    query, body = wecom_post(event_xml("tok", "wk9"))
    environ: dict = {}
    setup_testing_defaults(environ)
    environ.update({"REQUEST_METHOD": "POST", "QUERY_STRING": query,
                    "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body)})
    seen: list[str] = []
    chunks = app(environ, lambda status, headers: seen.append(status))
    assert seen == ["200 OK"] and b"".join(chunks) == b"success"
    app.receiver.close()
    assert records == [{"type": "callback", "ToUserName": RECEIVE_ID,
                        "CreateTime": "1700000000", "MsgType": "event",
                        "Event": "kf_msg_or_event", "Token": "tok", "OpenKfId": "wk9"}]
    # chunked (no Content-Length) bodies are read when the server marks the input terminated
    environ.update({"CONTENT_LENGTH": "", "wsgi.input": io.BytesIO(body),
                    "wsgi.input_terminated": True})
    seen.clear()
    assert b"".join(app(environ, lambda s, h: seen.append(s))) == b"success"
    monkeypatch.delenv("KFCLI_TOKEN")
    from kfcli.core.errors import ConfigError

    with pytest.raises(ConfigError, match="KFCLI_TOKEN"):
        app_from_env()
