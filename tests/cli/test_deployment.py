"""The deployment the README describes: gunicorn's threaded workers keep answering callbacks
while slow clients trickle, and the example systemd unit is valid."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.cli.test_receiver_store import Gunicorn, corp, point_callbacks, say  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "examples" / "kfcli-receiver.service"


def _gunicorn_commands(text: str) -> list[list[str]]:
    """Every gunicorn command line in `text` (continuation lines joined), as words."""
    joined = re.sub(r"\\\n\s*", " ", text)
    found = (re.search(r"(?:^\s*|=)(?:\S*/)?(gunicorn\s+-.*)", line)
             for line in joined.splitlines())
    return [shlex.split(m.group(1).split("#")[0]) for m in found if m]


@pytest.mark.process
def test_every_gunicorn_command_in_the_docs_uses_threaded_workers():
    """Sync workers are held by a slow client for the whole request: four trickling
    connections stop a four-worker receiver. The README and the unit run gthread."""
    readme = _gunicorn_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    unit = _gunicorn_commands(UNIT.read_text(encoding="utf-8"))
    assert readme and len(unit) == 1
    for words in readme + unit:
        assert words[words.index("-k") + 1] == "gthread", words
        assert int(words[words.index("--threads") + 1]) >= 8, words


def _slow_client(url: str) -> socket.socket:
    """A connection that has begun a request and sends the rest of its headers a byte at a
    time, never finishing."""
    host, port = url.split("//")[1].rstrip("/").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(b"POST / HTTP/1.1\r\nHost: receiver\r\nX-Slow: ")
    return sock


@pytest.mark.process
def test_threaded_workers_answer_callbacks_while_slow_clients_trickle(corp, tmp_path):  # noqa: F811
    """One gunicorn worker with the README's `-k gthread --threads 8`, four clients that
    trickle their headers a byte at a time (each holds a thread, as one would hold a whole
    sync worker): real callbacks are still answered and their messages pulled and written."""
    creds, env, open_kfid = corp
    gunicorn = Gunicorn(env, tmp_path, workers=1, threads=8, worker_class="gthread")
    slow = [_slow_client(gunicorn.url) for _ in range(4)]
    stop = threading.Event()

    def trickle() -> None:
        while not stop.wait(0.2):  # pacing of the load, not a measurement
            for sock in slow:
                sock.sendall(b"a")

    trickler = threading.Thread(target=trickle, daemon=True)
    trickler.start()
    try:
        point_callbacks(creds, gunicorn.url)
        sent = {say(creds, open_kfid, f"while slow {i}")["msgid"] for i in range(10)}
        deadline = time.monotonic() + 120
        while not sent <= set(gunicorn.emitted()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sent <= set(gunicorn.emitted()), gunicorn.err[-3000:]
        # The slow clients were still being read all along: none was dropped or answered.
        assert trickler.is_alive()  # a send to a dropped connection would have ended it
        stop.set()
        trickler.join(timeout=10)
        for sock in slow:
            sock.setblocking(False)
            with pytest.raises(BlockingIOError):  # neither an answer nor the end
                sock.recv(1)
    finally:
        stop.set()
        trickler.join(timeout=10)
        for sock in slow:
            sock.close()
        gunicorn.stop()
    assert sorted(gunicorn.emitted()) == sorted(sent)


@pytest.mark.process
def test_the_units_receiver_stores_every_message_and_writes_nothing(corp, run,  # noqa: F811
                                                                     tmp_path):
    """The unit's application (`app_from_env(sync=True, no_emit=True)`) and worker options:
    callbacks are answered, every message is stored, stdout stays empty."""
    creds, env, open_kfid = corp
    [words] = _gunicorn_commands(UNIT.read_text(encoding="utf-8"))
    assert "no_emit=True" in words[-1]
    gunicorn = Gunicorn(env, tmp_path, workers=1, worker_class=words[words.index("-k") + 1],
                        threads=int(words[words.index("--threads") + 1]), app=words[-1])
    try:
        point_callbacks(creds, gunicorn.url)
        sent = {say(creds, open_kfid, f"stored {i}")["msgid"] for i in range(5)}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            r = run("msg", "history", open_kfid, "-o", "jsonl", env=env)
            stored = {json.loads(line)["msgid"] for line in r.out.splitlines()}
            if sent <= stored:
                break
            time.sleep(0.2)
        assert stored == sent, gunicorn.err[-3000:]
    finally:
        gunicorn.stop()
    assert gunicorn.lines == []


@pytest.mark.process
@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed")
@pytest.mark.parametrize(("name", "restart"), [("kfcli-receiver.service", "on-failure"),
                                               ("kfcli-bot.service", "always")])
def test_the_example_systemd_units_verify(tmp_path, name, restart):
    """`systemd-analyze verify` finds nothing to say about the units (it checks that ExecStart
    exists, so a unit's /opt/kfcli/bin/ is pointed at this environment's)."""
    text = (UNIT.parent / name).read_text(encoding="utf-8")
    for setting in (f"Restart={restart}", "StartLimitIntervalSec=0", "LimitNOFILE=",
                    "Environment=KFCLI_STORE=", "StandardOutput=", "EnvironmentFile="):
        assert re.search(rf"^{re.escape(setting)}", text, re.MULTILINE), setting
    bindir = Path(sys.executable).parent
    assert (bindir / "gunicorn").exists()
    unit = tmp_path / name
    unit.write_text(text.replace("/opt/kfcli/bin/", f"{bindir}/"), encoding="utf-8")
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
