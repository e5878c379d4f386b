"""One consumer for every account (issue 22): `msg history --consumer NAME` without an
OPEN_KFID reads every account of the corp in one stream, takes in an account that appears
while it runs (from its first stored message), keeps a position per account, and writes
each message exactly once across kill -9."""

from __future__ import annotations

import json
import signal

import pytest


def texts(records: list[dict]) -> list[str]:
    return [r["text"]["content"] for r in records]


@pytest.mark.process
def test_one_consumer_for_every_account_takes_in_new_ones(kf, sandbox, spawn, store_env):
    env = {**sandbox.env, **store_env}
    first = sandbox.account("First")
    sandbox.say(first, "old news", external_userid="wmA")
    assert kf("msg", "sync", first, env=env).code == 0
    # A new consumer begins after the newest stored message ("old news"); its first run
    # sets its start, and the follower resumes from there.
    r = kf("msg", "history", "--consumer", "bot", "-o", "jsonl", env=env)
    assert r.code == 0 and r.out == ""
    consumer = spawn("msg", "history", "--follow", "--consumer", "bot", "--interval", "0.1",
                     "-o", "jsonl", env=env)
    sandbox.say(first, "a1", external_userid="wmA")
    assert kf("msg", "sync", first, env=env).code == 0
    assert texts(consumer.records_until(lambda r: len(r) == 1)) == ["a1"]

    # An account added while the consumer runs: its messages come, from its first one.
    second = sandbox.account("Second")
    for text in ("b1", "b2"):
        sandbox.say(second, text, external_userid="wmB")
    assert kf("msg", "sync", second, env=env).code == 0
    sandbox.say(first, "a2", external_userid="wmA")
    assert kf("msg", "sync", first, env=env).code == 0
    got = consumer.records_until(lambda r: len(r) == 3)
    assert texts(got) == ["b1", "b2", "a2"]
    assert {r["open_kfid"] for r in got} == {first, second}

    # Killed (SIGKILL) and restarted: what it wrote is never written again, nothing is lost.
    consumer.popen.send_signal(signal.SIGKILL)
    consumer.popen.wait(timeout=30)
    for text in ("b3", "b4"):
        sandbox.say(second, text, external_userid="wmB")
    sandbox.say(first, "a3", external_userid="wmA")
    assert kf("msg", "sync", second, env=env).code == 0
    assert kf("msg", "sync", first, env=env).code == 0
    r = kf("msg", "history", "--all-accounts", "--consumer", "bot", "-o", "jsonl", env=env)
    assert r.code == 0, r.err
    assert texts([json.loads(line) for line in r.out.splitlines()]) == ["b3", "b4", "a3"]
    r = kf("msg", "history", "--consumer", "bot", "-o", "jsonl", env=env)
    assert r.code == 0 and r.out == ""

    status = kf("store", "status", "-o", "json", env=env).json()
    positions = {c["open_kfid"]: c["behind"] for c in status["consumers"] if c["name"] == "bot"}
    assert positions[first] == 0 and positions[second] == 0 and "*" in positions

    r = kf("msg", "history", first, "--all-accounts", env=env)
    assert r.code == 2
    # Without a consumer: every account's stored messages, in the order they were stored.
    r = kf("msg", "history", "-o", "jsonl", env=env)
    assert texts([json.loads(line) for line in r.out.splitlines()]) == [
        "old news", "a1", "b1", "b2", "a2", "b3", "b4", "a3"]


@pytest.mark.process
def test_every_account_bot_loop_answers_each_message_once(kf, sandbox, spawn, store_env):
    """--ack replies over every account: a restarted consumer hands back exactly the
    messages no reply acknowledged, of whichever account."""
    env = {**sandbox.env, **store_env}
    one, two = sandbox.account("One"), sandbox.account("Two")
    r = kf("msg", "history", "--consumer", "bot", "--ack", "replies", "-o", "jsonl", env=env)
    assert r.code == 0 and r.out == ""  # starts now
    sandbox.say(one, "q1", external_userid="wmA")
    sandbox.say(two, "q2", external_userid="wmB")
    for k in (one, two):
        assert kf("msg", "sync", k, env=env).code == 0
    r = kf("msg", "history", "--consumer", "bot", "--ack", "replies", "-o", "jsonl", env=env)
    handed = [json.loads(line) for line in r.out.splitlines()]
    assert texts(handed) == ["q1", "q2"]
    # Only q2 is answered: the next run hands q1 back (and q2 with it, already answered).
    q2 = handed[1]
    line = json.dumps({"open_kfid": two, "external_userid": "wmB", "msgtype": "text",
                       "text": {"content": "a2"}, "reply_to": q2["msgid"]})
    r = kf("msg", "send", "--batch", "-", input=line + "\n", env=env)
    assert r.code == 0, r.err
    r = kf("msg", "history", "--consumer", "bot", "--ack", "replies", "-o", "jsonl", env=env)
    # (and the answer a2, stored with its conversation: origin 100, which a bot skips)
    again = [json.loads(x) for x in r.out.splitlines()]
    assert texts(again) == ["q1", "q2", "a2"] and [m["origin"] for m in again] == [3, 3, 100]
    assert "never answered" in r.err
