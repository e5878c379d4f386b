"""`kfcli msg sync`: paging, saved cursors, exactly-once across crashes, faults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests


def msgids(out: str) -> list[str]:
    return [json.loads(line)["msgid"] for line in out.splitlines() if line.strip()]


@pytest.fixture
def seeded(sandbox):
    open_kfid = sandbox.account()
    doc = sandbox.post("/sandbox/seed_messages", {"open_kfid": open_kfid, "count": 2500})
    assert doc["errcode"] == 0, doc
    return open_kfid


def test_pages_through_everything_then_resumes_from_the_saved_cursor(kf, sandbox, seeded):
    r = kf("msg", "sync", seeded, "--limit", "1000")
    assert r.code == 0, r.err
    first = msgids(r.out)
    assert len(first) == 2500 and len(set(first)) == 2500
    assert sandbox.stats()["/cgi-bin/kf/sync_msg"] == 3
    assert kf("msg", "sync", seeded).out == ""  # nothing new
    customer = sandbox.say(seeded, "one more")
    r = kf("msg", "sync", seeded)
    lines = [json.loads(line) for line in r.out.splitlines()]
    assert len(lines) == 1 and lines[0]["text"]["content"] == "one more"
    assert lines[0]["external_userid"] == customer and lines[0]["origin"] == 3
    # --all pulls from the start again: everything is already stored, so nothing is new...
    r = kf("msg", "sync", seeded, "--all")
    assert r.code == 0 and r.out == ""
    assert sandbox.stats()["/cgi-bin/kf/sync_msg"] == 3 + 2 + 3
    # ...and the store holds every message once.
    r = kf("msg", "history", seeded)
    assert len(msgids(r.out)) == 2501 == len(set(msgids(r.out)))


def test_empty_pages_with_has_more_are_followed(kf, sandbox, seeded):
    sandbox.fault(fault="empty_page", path="/cgi-bin/kf/sync_msg", times=3)
    r = kf("msg", "sync", seeded)
    assert r.code == 0, r.err
    assert len(set(msgids(r.out))) == 2500 == len(msgids(r.out))


@pytest.mark.parametrize("fault", [
    {"fault": "errcode", "errcode": 45009},
    {"fault": "errcode", "errcode": 42001},
    {"fault": "http_status", "status": 500},
    {"fault": "disconnect"},
])
def test_faults_mid_stream_lose_and_duplicate_nothing(kf, sandbox, seeded, fault):
    kf("msg", "sync", seeded, "--limit", "1", "--no-save")  # a token in the cache
    # The first page goes through; the second request fails.
    sandbox.fault(**fault, path="/cgi-bin/kf/sync_msg", after=1)
    r = kf("msg", "sync", seeded, "--limit", "1000")
    assert r.code == 0, r.err
    ids = msgids(r.out)
    assert len(ids) == 2500 == len(set(ids))


def test_expired_tokens_mid_stream(kf, sandbox, seeded):
    r = kf("msg", "sync", seeded, "--limit", "500")
    assert r.code == 0
    sandbox.post("/sandbox/seed_messages", {"open_kfid": seeded, "count": 10})
    sandbox.fault(fault="expire_tokens")
    r = kf("msg", "sync", seeded)
    assert r.code == 0, r.err
    assert len(msgids(r.out)) == 10


def _read_lines(proc, count: int) -> bytes:
    got = b""
    while got.count(b"\n") < count:
        chunk = proc.stdout.read1(65536)
        assert chunk, "sync ended early"
        got += chunk
    return got


def _killed_output(proc, got: bytes) -> list[str]:
    """SIGKILL kfcli; whatever reached the pipe before and after the kill counts as output."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    got += proc.stdout.read()  # the writer process finishes what it was handed
    proc.stdout.close()
    return [json.loads(line)["msgid"] for line in got.decode().splitlines()
            if line.endswith("}")]


@pytest.mark.process
def test_three_kills_mid_stream_then_rerun_is_exactly_once(sandbox, home):
    """20,000 messages, kfcli killed three times at deterministic points: twice after the
    reader took N lines (kfcli cannot have finished: the pipes hold far less than the rest),
    once while it waits for a page the sandbox holds back. 0 lost, 0 twice."""
    open_kfid = sandbox.account()
    doc = sandbox.post("/sandbox/seed_messages", {"open_kfid": open_kfid, "count": 20000})
    assert doc["errcode"] == 0, doc
    env = {**os.environ, **sandbox.env}
    cmd = [sys.executable, "-m", "kfcli", "msg", "sync", open_kfid, "--limit", "500"]
    written: list[str] = []
    for lines in (3000, 2000):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        written += _killed_output(proc, _read_lines(proc, lines))
    # Third kill: while the 4th page of this run is held back by the sandbox.
    requests_before = sandbox.stats().get("/cgi-bin/kf/sync_msg", 0)
    sandbox.fault(fault="delay", seconds=60, path="/cgi-bin/kf/sync_msg", after=3)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: proc.stdout.read1(65536),
                                                                b"")), daemon=True)
    reader.start()  # keeps the pipe drained, so kfcli reaches the held request on its own
    deadline = time.monotonic() + 120
    while sandbox.stats().get("/cgi-bin/kf/sync_msg", 0) < requests_before + 4:
        assert time.monotonic() < deadline, "the held request never came"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # kfcli waits for the held page: a kill mid-stream
    proc.wait()
    reader.join(timeout=60)  # the writer process finishes what it was handed, then EOF
    proc.stdout.close()
    written += [json.loads(line)["msgid"] for line in b"".join(chunks).decode().splitlines()
                if line.endswith("}")]
    requests.delete(sandbox.base_url + "/sandbox/faults", timeout=10)
    last = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert last.returncode == 0, last.stderr
    written += msgids(last.stdout)
    assert len(written) == 20000 and len(set(written)) == 20000
    # The store holds each once too.
    held = subprocess.run([*cmd[:4], "history", open_kfid], env=env, capture_output=True,
                          text=True, timeout=120).stdout
    assert sorted(msgids(held)) == sorted(written)


def test_formats_and_bad_input(kf, sandbox, seeded):
    r = kf("msg", "sync", seeded, "-o", "json", "--limit", "1000", "--no-save")
    assert len(r.json()) == 2500
    r = kf("msg", "sync", seeded, "-o", "tsv", "--all", "--no-save")
    first = r.out.splitlines()[0].split("\t")
    assert first[1] == seeded and first[3] == "customer" and first[5] == "text"
    assert len(first) == 8 and first[2] == first[4]  # the customer: sender and column
    before = sandbox.stats()
    for args, needle in [(["--limit", "1001"], "1..1000"), (["--voice-format", "mp3"], "amr"),
                         (["--cursor", "c", "--all"], "not both"),
                         (["--cursor", "x" * 65], "64 bytes")]:
        r = kf("msg", "sync", seeded, *args)
        assert r.code == 2 and needle in r.err, (args, r.err)
    assert sandbox.stats() == before


def test_events_are_typed(kf, sandbox):
    open_kfid = sandbox.account()
    sandbox.post("/sandbox/enter_session", {"open_kfid": open_kfid, "scene": "ad",
                                            "scene_param": "x"})
    r = kf("msg", "sync", open_kfid, "-o", "tsv")
    fields = r.out.splitlines()[0].split("\t")
    # An event's ids are inside `event`: the row lifts them into its columns.
    assert fields[1] == open_kfid and fields[2].startswith("wm")
    assert fields[3] == "system" and fields[5] == "enter_session"
    assert fields[6].startswith("entered from scene ad (x)")


def test_library_iterator(sandbox, seeded, home):
    from kfcli.core import KfClient

    client = KfClient(sandbox.creds["corp_id"], sandbox.creds["secret"],
                      base_url=sandbox.base_url)
    stream = client.sync_messages(seeded, limit=1000)
    ids = [m.msgid for m in stream]
    assert len(ids) == 2500 and stream.cursor and not stream.has_more
    again = client.sync_messages(seeded, cursor=stream.cursor)
    assert list(again) == []


@pytest.mark.process
def test_follow_picks_up_new_messages_and_ctrl_c_saves_the_cursor(sandbox, home):
    open_kfid = sandbox.account()
    sandbox.say(open_kfid, "before")
    env = {**os.environ, **sandbox.env}
    cmd = [sys.executable, "-m", "kfcli", "msg", "sync", open_kfid, "--follow",
           "--interval", "0.2"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        first = json.loads(proc.stdout.readline())
        assert first["text"]["content"] == "before"
        sandbox.say(open_kfid, "during")
        second = json.loads(proc.stdout.readline())
        assert second["text"]["content"] == "during"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 130
        proc.stdout.close()
        proc.stderr.close()
    sandbox.say(open_kfid, "after")
    r = subprocess.run(cmd[:-3], env=env, capture_output=True, text=True)
    assert [json.loads(x)["text"]["content"] for x in r.stdout.splitlines()] == ["after"]


def test_tokens_from_callback_lines(kf, sandbox):
    open_kfid = sandbox.account()
    doc = sandbox.post("/sandbox/customer_message", {"open_kfid": open_kfid, "text": "hi"})
    lines = "\n".join([
        json.dumps({"type": "callback", "OpenKfId": "wkOther", "Token": "x"}),
        json.dumps({"type": "callback", "OpenKfId": open_kfid, "Token": doc["token"]}),
    ]) + "\n"
    r = kf("msg", "sync", open_kfid, "--tokens-from", "-", input=lines)
    assert r.code == 0, r.err
    assert [json.loads(x)["msgid"] for x in r.out.splitlines()] == [doc["msgid"]]


@pytest.mark.process
def test_follow_outlives_rate_limits_and_network_trouble(sandbox, home):
    open_kfid = sandbox.account()
    env = {**os.environ, **sandbox.env}
    proc = subprocess.Popen([sys.executable, "-m", "kfcli", "msg", "sync", open_kfid,
                             "--follow", "--interval", "0.1"],
                            env={**env, "PYTHONFAULTHANDLER": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # 1 try + 3 retries exhaust the client's own backoff: the follower must carry on.
        sandbox.fault(fault="errcode", errcode=45009, path="/cgi-bin/kf/sync_msg", times=4)
        sandbox.say(open_kfid, "still here")
        line = json.loads(proc.stdout.readline())
        assert line["text"]["content"] == "still here"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:  # what was it doing? (faulthandler's dump on SIGABRT)
            proc.send_signal(signal.SIGABRT)
            code = proc.wait(timeout=60)
        err = proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
    assert code == 130, err
    assert "pulling again" in err and "Traceback" not in err


@pytest.mark.process
def test_two_runs_on_one_account_share_it_exactly_once(sandbox, seeded, home):
    env = {**os.environ, **sandbox.env}
    cmd = [sys.executable, "-m", "kfcli", "msg", "sync", seeded, "--limit", "100"]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    head = first.stdout.readline()  # running, holding the pull lock, blocked on the pipe
    second = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    rest = first.stdout.read()
    first.wait(timeout=60)
    first.stdout.close()
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    both = msgids((head + rest + out).decode())
    assert len(both) == 2500 == len(set(both))


def test_tokens_from_a_missing_file_sends_nothing(kf, sandbox, seeded):
    before = sandbox.stats()
    r = kf("msg", "sync", seeded, "--tokens-from", "/nonexistent/callbacks.jsonl")
    assert r.code == 2 and "cannot read" in r.err
    assert sandbox.stats() == before


def test_a_cursor_saved_by_an_older_kfcli_moves_into_the_store_once(kf, sandbox, home):
    open_kfid = sandbox.account()
    for i in range(5):
        sandbox.say(open_kfid, f"seen {i}")
    page = sandbox.api("POST", "/cgi-bin/kf/sync_msg", {"open_kfid": open_kfid, "limit": 5})
    # What kfcli before the store kept: state/kfcli/sync/<profile>-<corp>/<open_kfid>.json
    old = home / "state" / "kfcli" / "sync" / f"default-{sandbox.creds['corp_id']}" / \
        f"{open_kfid}.json"
    old.parent.mkdir(parents=True)
    old.write_text(json.dumps({"cursor": page["next_cursor"], "recent": []}))
    sandbox.say(open_kfid, "new")
    r = kf("msg", "sync", open_kfid)
    assert r.code == 0, r.err
    assert [json.loads(x)["text"]["content"] for x in r.out.splitlines()] == ["new"]
    assert "moved the saved cursor" in r.err
    assert not old.exists() and old.with_name(old.name + ".migrated").exists()
    assert kf("msg", "sync", open_kfid).out == ""
