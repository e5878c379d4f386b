"""Followers outlive the store: `msg history --follow`, `--consumer`, `msg sync --follow` and
`msg send --batch` ride out a stopped PostgreSQL server and a SQLite store that cannot be
written (a full disk, simulated with the process's file-size limit), then go on exactly once.
Real processes; each step waits for what the follower says or writes, never for the clock."""

from __future__ import annotations

import json
import os
import queue
import resource
import signal
import subprocess
import time
from urllib.parse import urlsplit

import pytest

from tests import pgutil
from tests.cli.conftest import Proc


class Follower(Proc):
    """A background kfcli (stdin a pipe) whose output lines are read as they come."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        super().__init__(args, {**os.environ, **env}, stdin=subprocess.PIPE)
        self.said: list[str] = []

    def records(self, count: int, timeout: float = 120) -> list[dict]:
        """The next `count` JSON lines of stdout."""
        found = []
        try:
            for _ in range(count):
                found.append(json.loads(self.out.get(timeout=timeout)))
        except queue.Empty:
            pytest.fail(f"got {len(found)} of {count} lines; stderr: {self.stderr()}")
        return found

    def says(self, text: str, timeout: float = 120) -> str:
        """Wait for a stderr line containing `text` (and return it)."""
        for line in self.said:
            if text in line:
                return line
        while True:
            try:
                line = self.err.get(timeout=timeout)
            except queue.Empty:
                pytest.fail(f"no {text!r} on stderr: {self.stderr()}")
            self.said.append(line)
            if text in line:
                return line

    def stderr(self) -> str:
        while not self.err.empty():
            self.said.append(self.err.get())
        return "".join(self.said)

    def send(self, lines: list[str]) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write("".join(line + "\n" for line in lines))
        self.popen.stdin.flush()

    def end(self, sig: int = signal.SIGINT) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        return self.popen.wait(timeout=60)

    def nothing_more(self) -> list[str]:
        """After the process ended: stdout lines not read yet."""
        self.popen.wait(timeout=60)
        rest = []
        while True:
            try:
                rest.append(self.out.get(timeout=5))
            except queue.Empty:
                return rest


@pytest.fixture
def followers(home):
    started: list[Follower] = []

    def start(*args: str, env: dict[str, str]) -> Follower:
        follower = Follower(list(args), env)
        started.append(follower)
        return follower

    yield start
    for follower in started:
        if follower.popen.poll() is None:
            follower.popen.kill()
            follower.popen.wait()


@pytest.fixture
def pg(sandbox, pg_url):
    """An account on the simulator, and the env for a PostgreSQL store."""
    pgutil._cluster()  # skip at once where the server cannot be stopped
    return sandbox.account(), {**sandbox.env, "KFCLI_STORE": pg_url}


def _said(sandbox, open_kfid: str, texts: list[str], customer: str = "wmA") -> list[str]:
    body = {"open_kfid": open_kfid, "external_userid": customer}
    return [sandbox.post("/sandbox/customer_message", {**body, "text": text})["msgid"]
            for text in texts]


def _synced(run, open_kfid: str, env: dict) -> None:
    r = run("msg", "sync", open_kfid, "--no-media", env=env)
    assert r.code == 0, r.err


def _history(run, open_kfid: str, env: dict) -> list[str]:
    r = run("msg", "history", open_kfid, "-o", "jsonl", env=env)
    assert r.code == 0, r.err
    return [json.loads(line)["msgid"] for line in r.out.splitlines()]


@pytest.mark.process
def test_history_follow_waits_for_a_stopped_postgresql(sandbox, run, followers, pg):
    open_kfid, env = pg
    first = _said(sandbox, open_kfid, ["one", "two"])
    _synced(run, open_kfid, env)
    follower = followers("msg", "history", open_kfid, "--follow", "--interval", "0.1",
                         "-o", "jsonl", env=env)
    assert [r["msgid"] for r in follower.records(2)] == first
    with pgutil.server_stopped():
        follower.says("the message store: cannot reach the PostgreSQL store")
    later = _said(sandbox, open_kfid, ["three", "four"])
    _synced(run, open_kfid, env)
    assert [r["msgid"] for r in follower.records(2)] == later
    assert "the message store works again" in follower.says("works again after")
    assert follower.end() == 130
    assert follower.nothing_more() == []
    err = follower.stderr()
    assert err.count("cannot reach") == 1 and "Traceback" not in err


@pytest.mark.process
def test_a_consumer_rides_out_a_stopped_postgresql_exactly_once(sandbox, run, followers, pg):
    """The consumer's position lives in PostgreSQL and its lock is a PostgreSQL session: both
    survive the server's stop; a consumer restarted afterwards resumes after the last message
    written, and a second one of the same name is refused."""
    open_kfid, env = pg
    consumer = ["msg", "history", open_kfid, "--follow", "--consumer", "bot", "--interval",
                "0.1", "-o", "jsonl"]
    # The consumer's first run records its start (after the newest message, none yet).
    assert run(*consumer[:3], "--consumer", "bot", env=env).code == 0
    follower = followers(*consumer, env=env)
    first = _said(sandbox, open_kfid, ["one", "two"])
    _synced(run, open_kfid, env)
    assert [r["msgid"] for r in follower.records(2)] == first
    with pgutil.server_stopped():
        follower.says("the message store: ")
    later = _said(sandbox, open_kfid, ["three", "four", "five"])
    _synced(run, open_kfid, env)
    assert [r["msgid"] for r in follower.records(3)] == later
    follower.says("works again after")
    # The lock was taken again: a second consumer of the same name is refused.
    r = run(*consumer[:3], "--consumer", "bot", env=env)
    assert r.code == 1 and "already running" in r.err
    follower.end(signal.SIGKILL)
    assert follower.nothing_more() == []
    last = _said(sandbox, open_kfid, ["six"])
    _synced(run, open_kfid, env)
    again = followers(*consumer, env=env)
    assert [r["msgid"] for r in again.records(1)] == last  # nothing written twice
    again.end()


@pytest.mark.process
def test_a_consumer_started_while_postgresql_is_down_waits_for_it(sandbox, run, followers,
                                                                   pg):
    open_kfid, env = pg
    assert run("msg", "history", open_kfid, "--consumer", "bot", env=env).code == 0
    with pgutil.server_stopped():
        follower = followers("msg", "history", open_kfid, "--follow", "--consumer", "bot",
                             "--interval", "0.1", "-o", "jsonl", env=env)
        follower.says("the message store: cannot reach the PostgreSQL store")
        assert follower.popen.poll() is None
    follower.says("works again after")
    first = _said(sandbox, open_kfid, ["one"])
    _synced(run, open_kfid, env)
    assert [r["msgid"] for r in follower.records(1)] == first
    assert follower.end() == 130


def _advisory_holders(dbname: str) -> list[int]:
    with pgutil.admin() as conn:
        return [pid for (pid,) in conn.execute(
            "SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
            "WHERE l.locktype = 'advisory' AND l.granted AND d.datname = %s", (dbname,))]


def _until(what, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not (found := what()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return found


@pytest.mark.process
def test_a_consumer_takes_its_lock_again_when_its_session_is_ended(sandbox, run, followers,
                                                                    pg):
    """Only the connection holding the consumer's lock drops (its session terminated): the
    consumer notices at its next look at the store and takes the lock again, so a second
    consumer of the same name is still refused."""
    open_kfid, env = pg
    dbname = urlsplit(env["KFCLI_STORE"]).path.lstrip("/")
    consumer = ["msg", "history", open_kfid, "--follow", "--consumer", "bot", "--interval",
                "0.1", "-o", "jsonl"]
    assert run(*consumer[:3], "--consumer", "bot", env=env).code == 0
    follower = followers(*consumer, env=env)
    first = _said(sandbox, open_kfid, ["one"])
    _synced(run, open_kfid, env)
    assert [r["msgid"] for r in follower.records(1)] == first
    [held] = _until(lambda: _advisory_holders(dbname))
    with pgutil.admin() as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (held,))
    _until(lambda: [pid for pid in _advisory_holders(dbname) if pid != held])
    r = run(*consumer[:3], "--consumer", "bot", env=env)
    assert r.code == 1 and "already running" in r.err
    later = _said(sandbox, open_kfid, ["two"])
    _synced(run, open_kfid, env)
    assert [r["msgid"] for r in follower.records(1)] == later
    assert follower.end() == 130


@pytest.mark.process
def test_msg_sync_follow_pulls_what_arrived_while_postgresql_was_stopped(sandbox, run,
                                                                         followers, pg):
    open_kfid, env = pg
    follower = followers("msg", "sync", open_kfid, "--follow", "--interval", "0.1",
                         "--no-media", "-o", "jsonl", env=env)
    first = _said(sandbox, open_kfid, ["one"])
    assert [r["msgid"] for r in follower.records(1)] == first
    with pgutil.server_stopped():
        follower.says("the message store: ")
        during = _said(sandbox, open_kfid, ["two", "three", "four"])  # WeCom keeps them
    assert [r["msgid"] for r in follower.records(3)] == during
    follower.says("works again after")
    after = _said(sandbox, open_kfid, ["five"])
    assert [r["msgid"] for r in follower.records(1)] == after
    assert follower.end() == 130
    assert follower.nothing_more() == []
    assert _history(run, open_kfid, env) == first + during + after  # each stored once
    assert follower.stderr().count("the message store: ") == 1


def _answers(open_kfid: str, msgids: list[str]) -> list[str]:
    return [json.dumps({"open_kfid": open_kfid, "external_userid": f"wm{i:03d}",
                        "msgtype": "text", "text": {"content": f"答复 {i}"},
                        "reply_to": msgid}) for i, msgid in msgids]


def _batch_across_an_outage(sandbox, run, followers, env, open_kfid, outage) -> Follower:
    """30 customers each write; a batch answers 10, the store goes away (`outage`, a context
    manager), 10 more are answered, it comes back, 10 more, and the input ends: every answer
    is sent once and recorded (a rerun answers every line from the store, without a
    request)."""
    msgids = [(i, _said(sandbox, open_kfid, [f"question {i}"], customer=f"wm{i:03d}")[0])
              for i in range(30)]
    _synced(run, open_kfid, env)
    lines = _answers(open_kfid, msgids)
    batch = followers("msg", "send", "--batch", "-", "--parallel", "2", env=env)
    batch.send(lines[:10])
    assert {r["status"] for r in batch.records(10)} == {"sent"}
    with outage(batch):
        batch.send(lines[10:20])
        assert {r["status"] for r in batch.records(10)} == {"sent"}
        batch.says("the message store: ")
    batch.send(lines[20:])
    assert {r["status"] for r in batch.records(10)} == {"sent"}
    batch.popen.stdin.close()
    assert batch.popen.wait(timeout=120) == 0, batch.stderr()
    assert "recorded" in batch.says("works again after")
    assert len(sandbox.sent(open_kfid)) == 30
    requests = sandbox.stats().get("/cgi-bin/kf/send_msg", 0)
    again = run("msg", "send", "--batch", "-", input="\n".join(lines) + "\n", env=env)
    assert again.code == 0, again.err
    assert {json.loads(x)["status"] for x in again.out.splitlines()} == {"already_sent"}
    assert sandbox.stats().get("/cgi-bin/kf/send_msg", 0) == requests  # from the store
    return batch


@pytest.mark.process
def test_a_batch_records_what_it_sent_while_postgresql_was_stopped(sandbox, run, followers,
                                                                   pg):
    open_kfid, env = pg

    def outage(batch):
        return pgutil.server_stopped()

    _batch_across_an_outage(sandbox, run, followers, env, open_kfid, outage)


class _DiskFull:
    """The process cannot write beyond the start of any file (its RLIMIT_FSIZE is 0, which
    SQLite meets as a failed write, as on a full disk) until the block ends."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def __enter__(self) -> None:
        self.old = resource.prlimit(self.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(self.pid, resource.RLIMIT_FSIZE, (0, self.old[1]))

    def __exit__(self, *exc: object) -> None:
        resource.prlimit(self.pid, resource.RLIMIT_FSIZE, self.old)


@pytest.mark.process
@pytest.mark.skipif(not hasattr(resource, "prlimit"), reason="needs Linux's prlimit")
def test_a_batch_records_what_it_sent_while_the_sqlite_disk_was_full(sandbox, run, followers,
                                                                     tmp_path):
    open_kfid = sandbox.account()
    env = {**sandbox.env, "KFCLI_STORE": f"sqlite:///{tmp_path / 'store' / 'store.db'}"}
    _batch_across_an_outage(sandbox, run, followers, env, open_kfid,
                            lambda batch: _DiskFull(batch.popen.pid))


@pytest.mark.process
@pytest.mark.skipif(not hasattr(resource, "prlimit"), reason="needs Linux's prlimit")
def test_a_consumer_records_its_position_once_the_sqlite_disk_has_room(sandbox, run,
                                                                       followers, tmp_path):
    """A consumer writes messages while its store cannot be written: the position waits in
    its journal and is recorded once the disk has room; killed after that, it resumes after
    the last message it wrote."""
    open_kfid = sandbox.account()
    env = {**sandbox.env, "KFCLI_STORE": f"sqlite:///{tmp_path / 'store' / 'store.db'}"}
    consumer = ["msg", "history", open_kfid, "--follow", "--consumer", "bot", "--interval",
                "0.1", "-o", "jsonl"]
    _said(sandbox, open_kfid, ["zero"])
    _synced(run, open_kfid, env)
    assert run(*consumer[:3], "--consumer", "bot", env=env).code == 0  # starts after "zero"
    follower = followers(*consumer, env=env)
    first = _said(sandbox, open_kfid, ["one"])
    _synced(run, open_kfid, env)
    assert [r["msgid"] for r in follower.records(1)] == first
    with _DiskFull(follower.popen.pid):
        during = _said(sandbox, open_kfid, ["two", "three"])
        _synced(run, open_kfid, env)  # another process, with room
        assert [r["msgid"] for r in follower.records(2)] == during
        follower.says("the message store: ")
    follower.says("works again after")
    follower.end(signal.SIGKILL)
    assert follower.nothing_more() == []
    last = _said(sandbox, open_kfid, ["four"])
    _synced(run, open_kfid, env)
    again = followers(*consumer, env=env)
    assert [r["msgid"] for r in again.records(1)] == last
    again.end()
