"""Fixtures for CLI tests that run kfcli as background processes (receivers, simulators)."""

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

    def __init__(self, args: list[str], env: dict[str, str], *,
                 stdin: int = subprocess.DEVNULL) -> None:
        self.popen = subprocess.Popen([*KFCLI, *args], env=env, text=True,
                                      stdin=stdin, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE)
        self.out: queue.Queue[str] = queue.Queue()
        self.err: queue.Queue[str] = queue.Queue()
        self.err_seen: list[str] = []
        for stream, lines in ((self.popen.stdout, self.out), (self.popen.stderr, self.err)):
            threading.Thread(target=_pump, args=(stream, lines), daemon=True).start()

    def out_line(self, timeout: float = 60) -> str:
        return self.out.get(timeout=timeout)

    def err_line(self, timeout: float = 60) -> str:
        line = self.err.get(timeout=timeout)
        self.err_seen.append(line)
        return line

    def records_until(self, done, timeout: float = 60) -> list[dict]:
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


@pytest.fixture(params=["sqlite", "postgresql"])
def store_env(request, home):
    """The store a CLI test's commands use, as environment: the default SQLite file ({}), or
    a fresh PostgreSQL database (KFCLI_STORE)."""
    if request.param == "sqlite":
        yield {}
    else:
        from tests import pgutil

        with pgutil.fresh_database() as url:
            yield {"KFCLI_STORE": url}
