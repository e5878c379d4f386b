"""`kfcli msg history`: the store read back, filters, --follow, and --consumer positions that
survive kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest


def msgids(out: str) -> list[str]:
    return [json.loads(line)["msgid"] for line in out.splitlines() if line.strip()]


@pytest.fixture
def stored(kf, sandbox):
    """An account with 30 messages from three customers, pulled into the store."""
    open_kfid = sandbox.account()
    for i in range(30):
        sandbox.say(open_kfid, f"message {i}", external_userid=f"wmcustomer{i % 3}")
    r = kf("msg", "sync", open_kfid)
    assert r.code == 0, r.err
    return open_kfid, r.out


def test_history_is_what_sync_wrote_oldest_first(kf, stored):
    open_kfid, synced = stored
    r = kf("msg", "history", open_kfid)
    assert r.code == 0, r.err
    assert r.out == synced  # the same objects, byte for byte
    r = kf("msg", "history", open_kfid, "--customer", "wmcustomer1")
    lines = [json.loads(x) for x in r.out.splitlines()]
    assert [x["text"]["content"] for x in lines] == [f"message {i}" for i in range(1, 30, 3)]
    r = kf("msg", "history", open_kfid, "--limit", "4")
    assert [json.loads(x)["text"]["content"] for x in r.out.splitlines()] == \
        [f"message {i}" for i in range(26, 30)]
    times = [json.loads(x)["send_time"] for x in synced.splitlines()]
    r = kf("msg", "history", open_kfid, "--since", str(times[0]), "--until", str(times[-1] + 1))
    assert len(r.out.splitlines()) == 30
    r = kf("msg", "history", open_kfid, "--until", str(times[0]))
    assert r.code == 0 and r.out == ""
    r = kf("msg", "history", open_kfid, "-o", "tsv", "--limit", "1")
    assert r.out.split("\t")[6] == "message 29"
    r = kf("msg", "history", open_kfid, "-o", "json")
    assert len(r.json()) == 30


@pytest.mark.parametrize("args, needle", [
    (["--since", "yesterday-ish"], "--since"),
    (["--since", "2026-11-02", "--until", "2026-11-01"], "later than --since"),
    (["--consumer", "bad name!"], "--consumer"),
    (["--limit", "0"], "--limit"),
    (["--customer", ""], "external_userid"),
    (["--since", "99999999999999999999"], "9999-12-31"),
    (["--until", "99999999999999999999d"], "1970-01-01"),
    (["--limit", "99999999999999999999"], "--limit"),
])
def test_bad_input_is_refused_before_reading(kf, sandbox, args, needle):
    r = kf("msg", "history", sandbox.account(), *args)
    assert r.code == 2 and needle in r.err and "Traceback" not in r.err, r.err


def test_a_new_consumer_starts_after_the_newest_message_then_resumes(kf, sandbox, stored):
    open_kfid, _ = stored
    r = kf("msg", "history", open_kfid, "--consumer", "bot")
    assert r.code == 0 and r.out == ""  # like Kafka's "latest"
    sandbox.say(open_kfid, "for the bot")
    assert kf("msg", "sync", open_kfid).code == 0
    r = kf("msg", "history", open_kfid, "--consumer", "bot")
    assert [json.loads(x)["text"]["content"] for x in r.out.splitlines()] == ["for the bot"]
    assert kf("msg", "history", open_kfid, "--consumer", "bot").out == ""
    r = kf("store", "status", "-o", "json")
    [bot] = [c for c in r.json()["consumers"] if c["name"] == "bot"]
    assert bot["open_kfid"] == open_kfid and bot["behind"] == 0
    # Another name has a position of its own; --since picks where a new one starts.
    r = kf("msg", "history", open_kfid, "--consumer", "audit", "--since", "2000-01-01")
    assert len(r.out.splitlines()) == 31


@pytest.mark.process
def test_consumer_killed_mid_stream_resumes_exactly_once(sandbox, home):
    open_kfid = sandbox.account()
    sandbox.post("/sandbox/seed_messages", {"open_kfid": open_kfid, "count": 5000})
    env = {**os.environ, **sandbox.env}
    assert subprocess.run([sys.executable, "-m", "kfcli", "msg", "sync", open_kfid], env=env,
                          capture_output=True).returncode == 0
    cmd = [sys.executable, "-m", "kfcli", "msg", "history", open_kfid, "--consumer", "c1",
           "--since", "2000-01-01"]
    written: list[str] = []
    for lines in (1500, 1200):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        got = b""
        while got.count(b"\n") < lines:  # each batch is settled before the next is read,
            chunk = proc.stdout.read1(65536)  # so kfcli is at most a batch ahead: mid-stream
            assert chunk, "history ended early"
            got += chunk
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        got += proc.stdout.read()
        proc.stdout.close()
        written += [json.loads(x)["msgid"] for x in got.decode().splitlines() if x.endswith("}")]
    last = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert last.returncode == 0, last.stderr
    written += msgids(last.stdout)
    assert len(written) == 5000 == len(set(written))


@pytest.mark.process
def test_follow_writes_messages_as_they_are_stored(kf, sandbox, stored, home):
    open_kfid, _ = stored
    env = {**os.environ, **sandbox.env}
    proc = subprocess.Popen([sys.executable, "-m", "kfcli", "msg", "history", open_kfid,
                             "--follow", "--interval", "0.1", "--limit", "1"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert json.loads(proc.stdout.readline())["text"]["content"] == "message 29"
        sandbox.say(open_kfid, "later")
        assert kf("msg", "sync", open_kfid).code == 0
        assert json.loads(proc.stdout.readline())["text"]["content"] == "later"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 130
        err = proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
    assert "Traceback" not in err


@pytest.mark.process
def test_one_process_per_consumer_name(sandbox, stored, home):
    open_kfid, _ = stored
    env = {**os.environ, **sandbox.env}
    base = [sys.executable, "-m", "kfcli", "msg", "history", open_kfid, "--consumer", "solo"]
    first = subprocess.Popen([*base, "--follow", "--since", "2000-01-01"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        first.stdout.readline()  # running and holding its consumer lock
        second = subprocess.run(base, env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode == 1 and "already running" in second.stderr
        assert second.stdout == ""
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(timeout=10)
        first.stdout.close()


@pytest.mark.process
def test_a_reader_that_stops_early_ends_it_quietly(sandbox, home):
    open_kfid = sandbox.account()
    sandbox.post("/sandbox/seed_messages", {"open_kfid": open_kfid, "count": 3000})
    env = {**os.environ, **sandbox.env}
    assert subprocess.run([sys.executable, "-m", "kfcli", "msg", "sync", open_kfid], env=env,
                          capture_output=True).returncode == 0
    for fmt in ("jsonl", "tsv"):  # 3000 lines: more than a pipe holds, so kfcli meets EPIPE
        proc = subprocess.Popen([sys.executable, "-m", "kfcli", "msg", "history", open_kfid,
                                 "-o", fmt], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        proc.stdout.readline()
        proc.stdout.close()  # like `| head -1`
        err = proc.stderr.read()
        proc.stderr.close()
        assert proc.wait(timeout=60) == 0, err
        assert err == b""


def test_errors_leave_stdout_empty_even_for_json(kf, sandbox):
    r = kf("msg", "sync", "wk" + "0" * 30, "-o", "json")
    assert r.code == 4 and r.out == ""
    r = kf("msg", "history", sandbox.account(), "-o", "json")
    assert r.code == 0 and r.json() == []


def test_a_directory_as_the_store_is_a_configuration_error(kf, sandbox, tmp_path):
    r = kf("msg", "history", sandbox.account(), env={"KFCLI_STORE": str(tmp_path)})
    assert r.code == 3 and "is a directory" in r.err and "Traceback" not in r.err
