"""The receiver on the message store, with real processes: a crash and an outage lose and
repeat nothing, gunicorn with several workers emits each message once, history on an
account's first pull is decided on WeCom's clock."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.cli.conftest import AVATAR, receiver_url

KFCLI = [sys.executable, "-m", "kfcli"]


@pytest.fixture
def corp(spawn, run, tmp_path):
    """A simulator in its own process, an account, and the env that points kfcli at both."""
    sandbox = spawn("sandbox", "serve", "--port", "0", "--db", str(tmp_path / "kf.db"))
    creds = json.loads(sandbox.out_line())
    env = {"KFCLI_BASE_URL": creds["base_url"], "KFCLI_CORP_ID": creds["corp_id"],
           "KFCLI_SECRET": creds["secret"], "KFCLI_TOKEN": creds["token"],
           "KFCLI_AES_KEY": creds["aes_key"],
           "KFCLI_STORE": f"sqlite:///{tmp_path / 'store' / 'store.db'}"}
    r = run("account", "add", "--name", "Support", "--avatar", str(AVATAR), env=env)
    assert r.code == 0, r.err
    return creds, env, r.out.strip()


def say(creds: dict, open_kfid: str, text: str, customer: str | None = None) -> dict:
    body = {"open_kfid": open_kfid, "text": text}
    if customer:
        body["external_userid"] = customer
    doc = requests.post(creds["base_url"] + "/sandbox/customer_message", json=body,
                        timeout=30).json()
    assert doc["errcode"] == 0, doc
    return doc


def point_callbacks(creds: dict, url: str) -> None:
    doc = requests.post(creds["base_url"] + "/sandbox/callback",
                        json={"url": url, "token": creds["token"], "aes_key": creds["aes_key"]},
                        timeout=10).json()
    assert doc["errcode"] == 0, doc


def texts(records: list[dict]) -> list[str]:
    return [r["text"]["content"] for r in records if r.get("type") == "message"]


def has_texts(*wanted: str):
    return lambda records: set(wanted) <= set(texts(records))


@pytest.mark.process
def test_a_receiver_killed_during_an_outage_catches_up_once(spawn, run, corp):
    creds, env, open_kfid = corp
    rx = spawn("callback", "serve", "--port", "0", "--sync", env=env)
    point_callbacks(creds, receiver_url(rx))
    say(creds, open_kfid, "one")
    assert texts(rx.records_until(has_texts("one"), timeout=60)) == ["one"]
    # Kill it once "one" is recorded as written (a kill in the instant between writing a line
    # and recording that is the documented window in which the next receiver repeats it).
    deadline = time.monotonic() + 30
    while _pending_outbox(run, env) and time.monotonic() < deadline:
        time.sleep(0.05)

    rx.popen.send_signal(signal.SIGKILL)
    rx.popen.wait()
    for text in ("two", "three", "four"):  # their callbacks find nobody listening
        say(creds, open_kfid, text)

    again = spawn("callback", "serve", "--port", "0", "--sync", env=env)
    url = receiver_url(again)
    # The catch-up on start pulls the account the store knows: the outage's messages, once.
    caught = again.records_until(has_texts("two", "three", "four"), timeout=60)
    point_callbacks(creds, url)
    say(creds, open_kfid, "five")
    later = again.records_until(has_texts("five"), timeout=60)
    again.stop()
    rest = _drain(again)
    assert sorted(texts(caught + later + rest)) == sorted(["two", "three", "four", "five"])

    r = run("msg", "history", open_kfid, env=env)
    assert r.code == 0, r.err
    stored = [json.loads(line)["text"]["content"] for line in r.out.splitlines()]
    assert stored == ["one", "two", "three", "four", "five"]


def _pending_outbox(run, env) -> int:
    r = run("store", "status", "-o", "json", env=env)
    assert r.code == 0, r.err
    return sum(a["pending_outbox"] for a in r.json()["accounts"])


def _drain(proc) -> list[dict]:
    """Every line the process wrote after the ones already read (waits for it to exit and
    for its output to be read to the end)."""
    proc.popen.wait(timeout=30)
    records = []
    while True:
        try:
            records.append(json.loads(proc.out.get(timeout=0.1)))
        except queue.Empty:
            if proc.popen.stdout.closed:  # the pump closes it at end of output
                return records


@pytest.mark.process
def test_first_pull_emits_what_the_callback_announced_not_history(spawn, run, corp):
    creds, env, open_kfid = corp
    requests.post(creds["base_url"] + "/sandbox/seed_messages",
                  json={"open_kfid": open_kfid, "count": 3}, timeout=10)
    # Three minutes later (WeCom's clock), a customer writes and the callback announces it.
    requests.post(creds["base_url"] + "/sandbox/clock", json={"advance": 180}, timeout=10)
    rx = spawn("callback", "serve", "--port", "0", "--sync", env=env)
    point_callbacks(creds, receiver_url(rx))
    say(creds, open_kfid, "new")
    records = rx.records_until(has_texts("new"), timeout=60)
    rx.stop()
    assert texts(records + _drain(rx)) == ["new"]
    r = run("msg", "history", open_kfid, env=env)
    assert len(r.out.splitlines()) == 4  # the history is stored, just not emitted


@pytest.mark.process
def test_history_flag_emits_older_messages_on_the_first_pull(spawn, run, corp, tmp_path):
    creds, env, open_kfid = corp
    requests.post(creds["base_url"] + "/sandbox/seed_messages",
                  json={"open_kfid": open_kfid, "count": 3}, timeout=10)
    requests.post(creds["base_url"] + "/sandbox/clock", json={"advance": 180}, timeout=10)
    rx = spawn("callback", "serve", "--port", "0", "--sync", "--history", env=env)
    point_callbacks(creds, receiver_url(rx))
    say(creds, open_kfid, "new")
    records = rx.records_until(lambda rs: len(texts(rs)) >= 4, timeout=60)
    assert len(texts(records)) == 4 and "new" in texts(records)


class Gunicorn:
    """`gunicorn -w N 'kfcli.callback:app_from_env(sync=True)'` as a real process; its stdout
    lines are collected as they come."""

    def __init__(self, env: dict, cwd, *, workers: int, threads: int = 1,
                 worker_class: str | None = None,
                 app: str = "kfcli.callback:app_from_env(sync=True)") -> None:
        # Port 0: the kernel picks a free port, which gunicorn names on stderr (choosing one
        # here and passing it on could race with any other process on the machine).
        kind = ["-k", worker_class] if worker_class else []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--workers", str(workers), *kind, "--threads",
             str(threads), "-b", "127.0.0.1:0", app],
            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=cwd)
        self.lines: list[bytes] = []
        self.err = b""
        self._listening = threading.Event()
        self._pumps = [threading.Thread(target=self._pump_out, daemon=True),
                       threading.Thread(target=self._pump_err, daemon=True)]
        for pump in self._pumps:
            pump.start()
        assert self._listening.wait(60), self.err
        self.url = self._url
        deadline = time.monotonic() + 60
        while len(self.workers()) < workers:  # every worker booted
            assert time.monotonic() < deadline and self.proc.poll() is None, self.err
            time.sleep(0.05)
        requests.get(self.url, timeout=30)

    def _pump_out(self) -> None:
        self.lines.extend(iter(self.proc.stdout.readline, b""))

    def _pump_err(self) -> None:
        for chunk in iter(self.proc.stderr.readline, b""):
            self.err += chunk
            if b"Listening at: " in chunk and not self._listening.is_set():
                self._url = chunk.split(b"Listening at: ")[1].split()[0].decode() + "/"
                self._listening.set()

    def emitted(self) -> list[str]:
        return [json.loads(x)["msgid"] for x in list(self.lines)
                if b'"type": "message"' in x or b'"type":"message"' in x]

    def workers(self) -> list[int]:
        found = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True,
                               text=True).stdout
        return [int(p) for p in found.split()]

    def stop(self) -> None:
        """SIGTERM (a graceful stop, as on a deploy); waits until its output is all read."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        for pump in self._pumps:
            pump.join(timeout=30)
        self.proc.stdout.close()
        self.proc.stderr.close()


@pytest.mark.process
def test_gunicorn_with_four_workers_emits_each_message_once(run, corp, tmp_path):
    creds, env, first = corp
    accounts = [first]
    for name in ("Sales", "Billing", "Returns"):
        r = run("account", "add", "--name", name, "--avatar", str(AVATAR), env=env)
        assert r.code == 0, r.err
        accounts.append(r.out.strip())
    gunicorn = Gunicorn(env, tmp_path, workers=4, threads=2)
    try:
        point_callbacks(creds, gunicorn.url)
        jobs = [(k, f"m{i}-{k[-4:]}", f"wmcust{i % 12:03d}") for k in accounts
                for i in range(120)]
        with ThreadPoolExecutor(8) as pool:
            sent = list(pool.map(lambda job: say(creds, *job)["msgid"], jobs))
        assert len(set(sent)) == 480
        deadline = time.monotonic() + 120
        while len(set(gunicorn.emitted())) < 480 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        gunicorn.stop()
    got = gunicorn.emitted()
    assert sorted(got) == sorted(sent), (len(got), len(set(got)), gunicorn.err[-2000:])
    for open_kfid in accounts:
        r = run("msg", "history", open_kfid, env=env)
        held = [json.loads(x)["msgid"] for x in r.out.splitlines()]
        assert len(held) == 120 == len(set(held))


class _RoundRobin:
    """A load balancer in front of several receivers: each request to the next backend."""

    def __init__(self, backends: list[str]) -> None:
        import http.server
        import itertools

        turn = itertools.cycle(backends)
        lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    backend = next(turn)
                resp = requests.request(self.command, backend.rstrip("/") + self.path,
                                        data=body or None, timeout=30)
                self.send_response(resp.status_code)
                self.send_header("Content-Length", str(len(resp.content)))
                self.end_headers()
                self.wfile.write(resp.content)

            do_GET = do_POST = _forward

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _host_env(env: dict, root) -> dict:
    """A second machine: its own home, config, cache and state directories."""
    return {**env, "HOME": str(root), "XDG_STATE_HOME": str(root / "state"),
            "XDG_CACHE_HOME": str(root / "cache"), "XDG_DATA_HOME": str(root / "data"),
            "KFCLI_CONFIG_DIR": str(root / "config")}


def _records(proc) -> list[dict]:
    """What the process wrote so far (a look, without taking the lines)."""
    return [json.loads(line) for line in list(proc.out.queue)]


def _wait_for(procs, sent: set[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = {r["msgid"] for p in procs for r in _records(p) if r.get("type") == "message"}
        if sent <= seen:
            return
        time.sleep(0.2)


@pytest.mark.process
def test_two_hosts_sharing_postgresql_emit_each_message_once(spawn, run, corp, tmp_path,
                                                             pg_url):
    creds, env, open_kfid = corp
    env = {**env, "KFCLI_STORE": pg_url}
    hosts = [spawn("callback", "serve", "--port", "0", "--sync",
                   env=_host_env(env, tmp_path / f"host{i}")) for i in (1, 2)]
    balancer = _RoundRobin([receiver_url(h) for h in hosts])
    try:
        point_callbacks(creds, balancer.url)
        jobs = [f"pg {i}" for i in range(100)]
        with ThreadPoolExecutor(4) as pool:
            sent = set(pool.map(lambda text: say(creds, open_kfid, text,
                                                 f"wmpg{len(text) % 5}")["msgid"], jobs))
        _wait_for(hosts, sent)
    finally:
        for host in hosts:
            host.stop()
        balancer.close()
    outputs = [_drain(h) for h in hosts]  # everything each host wrote (none was taken yet)
    emitted = [r["msgid"] for out in outputs for r in out if r.get("type") == "message"]
    assert sorted(emitted) == sorted(sent)
    r = run("msg", "history", open_kfid, env=env)
    assert r.code == 0, r.err
    held = [json.loads(x)["msgid"] for x in r.out.splitlines()]
    assert sorted(held) == sorted(sent)


@pytest.mark.process
def test_msg_sync_beside_a_receiver_shares_the_account_exactly_once(spawn, corp):
    creds, env, open_kfid = corp
    rx = spawn("callback", "serve", "--port", "0", "--sync", env=env)
    point_callbacks(creds, receiver_url(rx))
    follower = spawn("msg", "sync", open_kfid, "--follow", "--interval", "0.1", env=env)
    with ThreadPoolExecutor(4) as pool:
        sent = set(pool.map(lambda i: say(creds, open_kfid, f"both {i}")["msgid"], range(100)))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        seen = {r["msgid"] for r in _records(rx) if r.get("type") == "message"}
        seen |= {r["msgid"] for r in _records(follower)}
        if sent <= seen:
            break
        time.sleep(0.2)
    rx.stop()
    follower.popen.send_signal(signal.SIGINT)
    emitted = [r["msgid"] for r in _drain(rx) if r.get("type") == "message"]
    emitted += [r["msgid"] for r in _drain(follower)]
    assert sorted(emitted) == sorted(sent)


@pytest.mark.process
def test_receivers_outlive_a_postgresql_restart(spawn, run, corp, pg_url):
    """PostgreSQL restarts while a receiver runs: the pulls that fail are retried once the
    database is back; nothing is lost or written twice."""
    from tests import pgutil

    creds, env, open_kfid = corp
    env = {**env, "KFCLI_STORE": pg_url}
    rx = spawn("callback", "serve", "--port", "0", "--sync", env=env)
    point_callbacks(creds, receiver_url(rx))
    before = {say(creds, open_kfid, f"before {i}")["msgid"] for i in range(5)}
    _wait_for([rx], before)
    pgutil.restart_server()
    after = {say(creds, open_kfid, f"after {i}")["msgid"] for i in range(5)}
    _wait_for([rx], before | after)
    rx.stop()
    emitted = [r["msgid"] for r in _drain(rx) if r.get("type") == "message"]
    assert sorted(emitted) == sorted(before | after)
    r = run("msg", "history", open_kfid, env=env)
    assert sorted(json.loads(x)["msgid"] for x in r.out.splitlines()) == sorted(before | after)


@pytest.mark.process
def test_a_gunicorn_worker_killed_mid_load_loses_nothing(run, corp, tmp_path):
    """SIGKILL one of four workers while messages pour in: gunicorn starts a new one, which
    catches up; every message is written and the store holds each exactly once."""
    creds, env, open_kfid = corp
    gunicorn = Gunicorn(env, tmp_path, workers=4)
    try:
        point_callbacks(creds, gunicorn.url)
        first = {say(creds, open_kfid, f"first {i}")["msgid"] for i in range(100)}
        deadline = time.monotonic() + 60
        while len(set(gunicorn.emitted())) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        workers = gunicorn.workers()
        assert len(workers) == 4, (workers, gunicorn.proc.poll(), gunicorn.err[-3000:])
        os.kill(workers[0], signal.SIGKILL)
        second = {say(creds, open_kfid, f"second {i}")["msgid"] for i in range(100)}
        sent = first | second
        deadline = time.monotonic() + 120
        while not sent <= set(gunicorn.emitted()) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        gunicorn.stop()
    assert set(gunicorn.emitted()) == sent
    r = run("msg", "history", open_kfid, env=env)
    held = [json.loads(x)["msgid"] for x in r.out.splitlines()]
    assert sorted(held) == sorted(sent)


@pytest.mark.process
def test_the_sqlite_url_forms_name_the_same_file_every_time(run, corp, tmp_path):
    creds, env, open_kfid = corp
    from urllib.parse import quote

    path = tmp_path / "odd?dir#1%" / "store.db"
    for url in ("sqlite:///" + quote(str(path).lstrip("/")),  # sqlite:///tmp/…
                "sqlite:///" + quote(str(path)),  # sqlite:////tmp/… (SQLAlchemy's form)
                str(path)):
        # A writer creates the file (the first URL) and a read finds it by every form.
        r = run("msg", "sync", open_kfid, env={**env, "KFCLI_STORE": url})
        assert r.code == 0, (url, r.err)
        r = run("msg", "history", open_kfid, env={**env, "KFCLI_STORE": url})
        assert r.code == 0, (url, r.err)
    assert path.exists() and not (tmp_path / "odd").exists()


@pytest.mark.process
def test_callbacks_answered_before_a_graceful_stop_are_not_lost(run, corp, tmp_path):
    """gunicorn's SIGTERM while callbacks wait in the queue: each was recorded in the store
    before WeCom got "success", so what they announced is pulled (now, or by the next start)."""
    creds, env, open_kfid = corp
    gunicorn = Gunicorn(env, tmp_path, workers=1)
    point_callbacks(creds, gunicorn.url)
    sent = {say(creds, open_kfid, f"burst {i}")["msgid"] for i in range(30)}
    gunicorn.stop()
    emitted = set(gunicorn.emitted())
    r = run("msg", "sync", open_kfid, env=env)  # whatever the stop left is still announced
    emitted |= {json.loads(x)["msgid"] for x in r.out.splitlines()}
    assert emitted == sent
