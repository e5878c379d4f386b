"""End to end with real processes: a customer message in the simulator reaches `kfcli callback
serve` as an encrypted WeCom callback, and the receiver pulls the message with sync_msg.

    kfcli sandbox serve ──POST kf_msg_or_event──▶ kfcli callback serve --sync ──sync_msg──┐
          ▲                                                                               │
    kfcli sandbox callback URL / kfcli sandbox say KFID hello          ◀──────────────────┘

Also `kfcli sandbox callback`'s own behaviour (defaults, errors, --off).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

AVATAR = Path(__file__).resolve().parents[2] / "examples" / "avatar.png"
KFCLI = [shutil.which("kfcli") or ""] if shutil.which("kfcli") else [sys.executable, "-m", "kfcli"]


class Proc:
    """A background kfcli whose stdout and stderr lines are read as they come."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.popen = subprocess.Popen([*KFCLI, *args], env=env, text=True,
                                      stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE)
        self.out: queue.Queue[str] = queue.Queue()
        self.err: queue.Queue[str] = queue.Queue()
        self.err_seen: list[str] = []
        for stream, lines in ((self.popen.stdout, self.out), (self.popen.stderr, self.err)):
            threading.Thread(target=_pump, args=(stream, lines), daemon=True).start()

    def out_line(self, timeout: float = 10) -> str:
        return self.out.get(timeout=timeout)

    def err_line(self, timeout: float = 10) -> str:
        line = self.err.get(timeout=timeout)
        self.err_seen.append(line)
        return line

    def records_until(self, done, timeout: float = 5) -> list[dict]:
        """JSON lines from stdout until `done(records)` holds (fails after `timeout`)."""
        records: list[dict] = []
        deadline = time.monotonic() + timeout
        while not done(records):
            left = deadline - time.monotonic()
            try:
                records.append(json.loads(self.out.get(timeout=max(0.01, left))))
            except queue.Empty:
                while not self.err.empty():
                    self.err_seen.append(self.err.get())
                pytest.fail(f"only got {records}; stderr: {''.join(self.err_seen)}")
        return records

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def _pump(stream, lines: queue.Queue) -> None:
    for line in iter(stream.readline, ""):
        lines.put(line)
    stream.close()


@pytest.fixture
def spawn(home) -> Iterator:
    procs: list[Proc] = []

    def _spawn(*args: str, env: dict[str, str] | None = None) -> Proc:
        proc = Proc(list(args), {**os.environ, **(env or {})})
        procs.append(proc)
        return proc

    yield _spawn
    for proc in reversed(procs):
        proc.stop()


def receiver_url(rx: Proc) -> str:
    line = rx.err_line()
    assert line.startswith("listening on http://127.0.0.1:"), line
    return line.split()[2]


def hello_arrived(records: list[dict]) -> bool:
    return any(r.get("type") == "message" and r.get("text", {}).get("content") == "hello"
               for r in records)


def test_say_reaches_callback_serve_which_syncs_the_message(spawn, run, tmp_path):
    sandbox = spawn("sandbox", "serve", "--port", "0", "--db", str(tmp_path / "kf.db"))
    creds = json.loads(sandbox.out_line())
    env = {"KFCLI_BASE_URL": creds["base_url"], "KFCLI_CORP_ID": creds["corp_id"],
           "KFCLI_SECRET": creds["secret"], "KFCLI_TOKEN": creds["token"],
           "KFCLI_AES_KEY": creds["aes_key"]}
    rx = spawn("callback", "serve", "--port", "0", "--sync", env=env)
    url = receiver_url(rx)

    r = run("account", "add", "--name", "Support", "--avatar", str(AVATAR), env=env)
    assert r.code == 0, r.err
    open_kfid = r.out.strip()
    r = run("sandbox", "callback", url, "-o", "json", env=env)
    assert r.code == 0, r.err
    assert r.json()["url"] == url and creds["token"] not in r.out
    r = run("sandbox", "say", open_kfid, "hello", "-o", "json", env=env)
    assert r.code == 0, r.err
    external_userid = r.json()["external_userid"]

    records = rx.records_until(hello_arrived)
    callbacks = [x for x in records if x["type"] == "callback"]
    assert callbacks, records
    assert callbacks[0]["OpenKfId"] == open_kfid
    assert callbacks[0]["ToUserName"] == creds["corp_id"]
    assert callbacks[0]["Event"] == "kf_msg_or_event"
    message = next(x for x in records if x["type"] == "message")
    assert message["open_kfid"] == open_kfid and message["external_userid"] == external_userid
    assert message["origin"] == 3 and message["msgtype"] == "text"


def test_embedded_sandbox_delivers_before_the_command_exits(spawn, run):
    # `kfcli --sandbox` stops its simulator as soon as the command is done: the callback of
    # `say` must still go out. The receiver's own --sandbox shares the same database.
    rx = spawn("--sandbox", "callback", "serve", "--port", "0", "--sync")
    url = receiver_url(rx)
    r = run("--sandbox", "account", "add", "--name", "Support", "--avatar", str(AVATAR))
    assert r.code == 0, r.err
    open_kfid = r.out.strip()
    assert run("--sandbox", "sandbox", "callback", url).code == 0
    assert run("--sandbox", "sandbox", "say", open_kfid, "hello").code == 0
    records = rx.records_until(hello_arrived)
    assert records[0]["type"] == "callback" and records[0]["OpenKfId"] == open_kfid


def test_sandbox_callback_command(kf, sandbox):
    creds = sandbox.creds
    keys = {"KFCLI_TOKEN": creds["token"], "KFCLI_AES_KEY": creds["aes_key"]}
    url = "http://127.0.0.1:9/kf"

    r = kf("sandbox", "callback", url)  # no Token / EncodingAESKey configured
    assert r.code == 3 and "KFCLI_TOKEN" in r.err and "--token" in r.err
    r = kf("sandbox", "callback", "ftp://example.com/", env=keys)
    assert r.code == 2 and "http://" in r.err
    r = kf("sandbox", "callback", url, "--aes-key", "short", env=keys)
    assert r.code == 2 and "43" in r.err
    r = kf("sandbox", "callback", url, "--off")
    assert r.code == 2
    assert sandbox.get("/sandbox/callback")["url"] == ""  # nothing was sent

    r = kf("sandbox", "callback", url, "-o", "json", env=keys)
    assert r.code == 0, r.err
    shown = r.json()
    assert shown["url"] == url and shown["token"].startswith("****")
    assert creds["token"] not in r.out and creds["aes_key"] not in r.out
    assert sandbox.get("/sandbox/callback") == {"url": url, "token": creds["token"],
                                                "aes_key": creds["aes_key"]}

    r = kf("sandbox", "callback", url, "--token", "Other123", "--aes-key", "A" * 43, env=keys)
    assert r.code == 0, r.err
    assert sandbox.get("/sandbox/callback") == {"url": url, "token": "Other123",
                                                "aes_key": "A" * 43}
    r = kf("sandbox", "callback", "-o", "json")
    assert r.code == 0 and r.json()["url"] == url and "Other123" not in r.out

    r = kf("sandbox", "callback", "--off", "-o", "json")
    assert r.code == 0 and r.json()["url"] == ""
    assert sandbox.get("/sandbox/callback")["url"] == ""


def test_sandbox_callback_needs_a_simulator(run):
    r = run("sandbox", "callback", "--off")
    assert r.code == 2 and "--sandbox" in r.err
