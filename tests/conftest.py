"""Shared fixtures: an isolated home for every test, a sandbox over real HTTP, and runners that
drive kfcli as a user does.

`run` and `kf` run a command in this process, through `kfcli.cli.app.run` and an
`Environment` holding the test's stdin, environment variables and collected output. A test
about processes (signals, kill -9, pseudo-terminals, start-up and imports, the locale of a
real process, completion shells, gunicorn, receivers in the background) spawns the installed
`kfcli` (`spawn_kfcli`, `on_terminal`, the `spawn` fixture…) and is marked
`@pytest.mark.process` (`pytest -m process` selects those tests, `-m "not process"` the rest).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

KFCLI = shutil.which("kfcli") or ""


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)

    @property
    def text(self) -> str:
        return self.out + self.err


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Config, cache, state and data directories private to the test."""
    root = tmp_path / "home"
    env = {
        "HOME": str(root),
        "KFCLI_CONFIG_DIR": str(root / "config"),
        "XDG_CONFIG_HOME": str(root / "xdg-config"),
        "XDG_CACHE_HOME": str(root / "cache"),
        "XDG_STATE_HOME": str(root / "state"),
        "XDG_DATA_HOME": str(root / "data"),
        # No pager on the tests' pseudo-terminals (tests/cli/test_pager.py sets its own).
        "PAGER": "cat",
    }
    for key in list(os.environ):
        if key.startswith("KFCLI_") or key == "NO_COLOR":
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return root


class Sandbox:
    def __init__(self, server) -> None:
        self.server = server
        self.base_url: str = server.base_url
        self.creds: dict[str, str] = server.credentials

    @property
    def env(self) -> dict[str, str]:
        return {
            "KFCLI_BASE_URL": self.base_url,
            "KFCLI_CORP_ID": self.creds["corp_id"],
            "KFCLI_SECRET": self.creds["secret"],
        }

    def get(self, path: str, **params):
        resp = requests.get(self.base_url + path, params=params, timeout=10)
        return resp.json()

    def post(self, path: str, body: dict):
        resp = requests.post(self.base_url + path, json=body, timeout=10)
        return resp.json()

    def stats(self) -> dict[str, int]:
        return self.get("/sandbox/stats")["requests"]

    def idle(self, timeout: float = 60) -> None:
        """Wait until no API request is being handled (a stalled one has taken effect)."""
        import time

        deadline = time.monotonic() + timeout
        while self.get("/sandbox/stats")["in_flight"]:
            assert time.monotonic() < deadline, "the sandbox stayed busy"
            time.sleep(0.02)

    def fault(self, **body) -> None:
        resp = requests.post(self.base_url + "/sandbox/faults", json=body, timeout=10)
        assert resp.status_code == 200, resp.text

    def api(self, method: str, path: str, body: dict | None = None, **params):
        """An authenticated call made directly, to inspect the simulator's state."""
        token = self.get(
            "/cgi-bin/gettoken", corpid=self.creds["corp_id"], corpsecret=self.creds["secret"]
        )["access_token"]
        resp = requests.request(
            method, self.base_url + path, params={"access_token": token, **params}, json=body,
            timeout=10,
        )
        return resp.json()

    def accounts(self) -> list[dict]:
        return self.api("POST", "/cgi-bin/kf/account/list", {"limit": 100})["account_list"]

    def upload(self, data: bytes = b"", media_type: str = "image", name: str = "a.png") -> str:
        token = self.get("/cgi-bin/gettoken", corpid=self.creds["corp_id"],
                         corpsecret=self.creds["secret"])["access_token"]
        resp = requests.post(self.base_url + "/cgi-bin/media/upload",
                             params={"access_token": token, "type": media_type},
                             files={"media": (name, data or PNG)}, timeout=10)
        doc = resp.json()
        assert doc["errcode"] == 0, doc
        return doc["media_id"]

    def account(self, name: str = "Support") -> str:
        doc = self.api("POST", "/cgi-bin/kf/account/add", {"name": name,
                                                           "media_id": self.upload()})
        assert doc["errcode"] == 0, doc
        return doc["open_kfid"]

    def say(self, open_kfid: str, text: str = "hello", external_userid: str | None = None
            ) -> str:
        body = {"open_kfid": open_kfid, "text": text}
        if external_userid:
            body["external_userid"] = external_userid
        doc = self.post("/sandbox/customer_message", body)
        assert doc["errcode"] == 0, doc
        return doc["external_userid"]

    def sent(self, open_kfid: str) -> list[dict]:
        return self.get("/sandbox/sent_messages", open_kfid=open_kfid)["messages"]

    def state(self, open_kfid: str, external_userid: str) -> int:
        doc = self.api("POST", "/cgi-bin/kf/service_state/get",
                       {"open_kfid": open_kfid, "external_userid": external_userid})
        return doc["service_state"]


@pytest.fixture
def sandbox(tmp_path: Path):
    from kfcli.sandbox import start

    server = start(tmp_path / "sandbox.db")
    try:
        yield Sandbox(server)
    finally:
        server.stop()


def spawn_kfcli(*args: str, input: str | None = None, env: dict[str, str] | None = None,
                timeout: float = 60) -> Result:
    """Run the installed `kfcli` in a subprocess; stdin is not a terminal, nor is stdout."""
    cmd = [KFCLI] if KFCLI else [sys.executable, "-m", "kfcli"]
    proc = subprocess.run(
        [*cmd, *args],
        input=input if input is not None else "",
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def run_in_process(*args: str, input: str | None = None, env: dict[str, str] | None = None,
                   timeout: float = 60, clock=None) -> Result:
    """Run one kfcli command in this process: what `spawn_kfcli` does, without the process.
    The variables are the Environment's, and the process's for the call too (the transport
    and platformdirs read them there). `clock`: the command's time (default: the real one).
    The output is read as a text-mode pipe reads it (universal newlines)."""
    from kfcli.cli.app import run
    from kfcli.cli.environment import Environment

    del timeout  # a command run here cannot be stopped from outside
    environ = {**os.environ, **(env or {})}
    with _process_environ(environ):
        outcome = run(list(args), env=Environment.captured(input or "", environ=environ,
                                                            clock=clock))
    return Result(outcome.code, _as_pipe(outcome.out), _as_pipe(outcome.err))


@contextmanager
def _process_environ(environ: dict[str, str]):
    """The process's environment is `environ` inside the block (for what reads it there)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def on_terminal_in_process(args: list[str], env: dict[str, str], *, columns: int = 200
                           ) -> Result:
    """What `on_terminal` shows (stdout and stderr on a terminal `columns` wide, COLUMNS set,
    stdin not a terminal), run in this process: the Environment says the streams are a
    terminal. The text as the terminal got it, CR LF back to LF (lone CRs kept)."""
    from kfcli.cli.app import run
    from kfcli.cli.environment import Environment

    environ = {**os.environ, "TERM": "xterm-256color", **env, "COLUMNS": str(columns)}
    with _process_environ(environ):
        outcome = run(list(args), env=Environment.captured(environ=environ, terminal=True))
    return Result(outcome.code, outcome.out, outcome.err)


def _as_pipe(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


@pytest.fixture
def run(home: Path):
    """Run a kfcli command in this process (`run_in_process`): stdin is not a terminal, nor
    is stdout."""
    return run_in_process


def on_pty(args: list[str], env: dict[str, str]) -> str:
    """Run kfcli with stdout and stderr on a pseudo-terminal; returns what the terminal got."""
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "kfcli", *args],
                            env={**os.environ, "COLUMNS": "200", "TERM": "xterm-256color",
                                 **env},
                            stdout=slave, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=30)
    os.close(master)
    assert proc.returncode == 0, b"".join(chunks)
    return b"".join(chunks).decode("utf-8", "replace")


def on_terminal(args: list[str], env: dict[str, str], *, columns: int = 200,
                columns_env: bool = True, timeout: float = 60) -> Result:
    """Run kfcli with stdout and stderr each on its own pseudo-terminal `columns` wide (the
    window size, and COLUMNS unless `columns_env` is false); whatever the exit code, returns
    what each terminal got, with the terminal's CR LF turned back into LF."""
    import fcntl
    import pty
    import selectors
    import struct
    import termios
    import time

    size = struct.pack("HHHH", 24, columns, 0, 0)
    masters, slaves = [], []
    for _ in range(2):
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, size)
        masters.append(master)
        slaves.append(slave)
    full_env = {**os.environ, "TERM": "xterm-256color", **env}
    full_env.pop("COLUMNS", None)
    if columns_env:
        full_env["COLUMNS"] = str(columns)
    proc = subprocess.Popen([sys.executable, "-m", "kfcli", *args], env=full_env,
                            stdout=slaves[0], stderr=slaves[1], stdin=subprocess.DEVNULL)
    for slave in slaves:
        os.close(slave)
    chunks: dict[int, list[bytes]] = {m: [] for m in masters}
    selector = selectors.DefaultSelector()
    for master in masters:
        selector.register(master, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while selector.get_map() and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=1):
            try:
                data = os.read(key.fd, 65536)
            except OSError:  # EIO: the other side is closed
                data = b""
            if data:
                chunks[key.fd].append(data)
            else:
                selector.unregister(key.fd)
    selector.close()
    code = proc.wait(timeout=timeout)
    for master in masters:
        os.close(master)
    out, err = (b"".join(chunks[m]).decode("utf-8", "replace").replace("\r\n", "\n")
                for m in masters)
    return Result(code, out, err)


@pytest.fixture
def kf(run, sandbox: Sandbox):
    """`kfcli` wired to the test's sandbox through the environment, as a CI script would."""

    def _kf(*args: str, **kwargs) -> Result:
        env = {**sandbox.env, **kwargs.pop("env", {})}
        return run(*args, env=env, **kwargs)

    return _kf


# A valid 1x1 PNG (69 bytes).  (defined below the fixtures that use it at call time)
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c49444154"
    "78da63f8cfc0000003010100f70341430000000049454e44ae426082"
)


@pytest.fixture
def avatar(tmp_path: Path) -> Path:
    path = tmp_path / "avatar.png"
    path.write_bytes(PNG)
    return path


# PostgreSQL (helpers in tests/pgutil.py): a server from the libpq environment, as
# `pg_virtualenv` sets it; without one these tests skip, unless KFCLI_REQUIRE_POSTGRES=1.
@pytest.fixture(autouse=True)
def _postgres_in_use():
    """Every test holds the server shared: a test that restarts it waits for the others."""
    from tests import pgutil

    with pgutil.server_in_use():
        yield


@pytest.fixture
def pg_url():
    """A fresh PostgreSQL database for this test (dropped afterwards), the store's tables
    already made: its postgresql:// URL, password included."""
    from tests import pgutil

    with pgutil.fresh_database() as url:
        yield url


@pytest.fixture
def pg_empty_url():
    """Like `pg_url`, but a database kfcli has never used: no tables."""
    from tests import pgutil

    with pgutil.fresh_database(migrated=False) as url:
        yield url
