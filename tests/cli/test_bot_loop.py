"""The bot loop of the README made of shell pipes, on SQLite and PostgreSQL:

    kfcli msg history K --consumer bot --ack replies -o jsonl | BOT | kfcli msg send --batch -

Each customer message gets exactly one reply, also when the bot dies after reading messages
it never answered (they are handed to it again), and when the loop runs again."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BOTS = {"python": f"{sys.executable} {ROOT / 'examples' / 'bot.py'}",
        "shell": f"sh {ROOT / 'examples' / 'bot.sh'}"}
# A bot that dies after reading its first message, before answering anything.
DIES = f"{sys.executable} -c 'import sys; sys.stdin.readline()'"


def loop(sandbox, store_env: dict, open_kfid: str, bot: str) -> subprocess.CompletedProcess:
    """The pipeline; what the consumer wrote is kept (`tee`) and added to stderr, so that a
    failure shows all three stages."""
    import tempfile

    kfcli = f"{sys.executable} -m kfcli"
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as read:
        command = (f"{kfcli} msg history {open_kfid} --consumer bot --ack replies -o jsonl "
                   f"| tee {read.name} | {bot} | {kfcli} msg send --batch -")
        ran = subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                             env={**os.environ, **sandbox.env, **store_env}, timeout=120)
        ran.stderr += f"\n[the consumer wrote]\n{Path(read.name).read_text()!r}"
    return ran


def replies(sandbox, open_kfid: str) -> list[tuple[str, str]]:
    return [(m["touser"], m["text"]["content"]) for m in sandbox.sent(open_kfid)]


@pytest.mark.process
@pytest.mark.parametrize("bot", ["python", "shell"])
def test_every_customer_message_gets_one_reply(kf, sandbox, store_env, bot):
    if bot == "shell" and not shutil.which("jq"):
        pytest.fail("jq is needed for examples/bot.sh (.ci/run installs it)")
    open_kfid = sandbox.account()
    r = kf("msg", "history", open_kfid, "--consumer", "bot", "-o", "jsonl", env=store_env)
    assert r.code == 0 and r.out == ""  # the consumer starts at the newest message
    sandbox.say(open_kfid, "订单什么时候发货？", external_userid="wmA")
    sandbox.say(open_kfid, "hello", external_userid="wmB")
    assert kf("msg", "sync", open_kfid, env=store_env).code == 0

    ran = loop(sandbox, store_env, open_kfid, BOTS[bot])
    assert ran.returncode == 0, ran.stderr
    assert len(replies(sandbox, open_kfid)) == 2, ran.stderr
    assert sorted(replies(sandbox, open_kfid)) == [
        ("wmA", "收到：订单什么时候发货？（我们会尽快回复）" if bot == "python"
         else "收到：订单什么时候发货？"),
        ("wmB", "收到：hello（我们会尽快回复）" if bot == "python" else "收到：hello")]
    again = loop(sandbox, store_env, open_kfid, BOTS[bot])  # nothing new: nothing sent
    assert again.returncode == 0, again.stderr
    assert len(replies(sandbox, open_kfid)) == 2


@pytest.mark.process
def test_a_bot_that_dies_before_answering_is_handed_the_messages_again(kf, sandbox,
                                                                       store_env):
    open_kfid = sandbox.account()
    kf("msg", "history", open_kfid, "--consumer", "bot", env=store_env)
    for n in range(3):
        sandbox.say(open_kfid, f"question {n}", external_userid=f"wmQ{n}")
    assert kf("msg", "sync", open_kfid, env=store_env).code == 0

    died = loop(sandbox, store_env, open_kfid, DIES)
    assert died.returncode == 0, died.stderr
    assert replies(sandbox, open_kfid) == []  # read (the consumer moved on) but unanswered
    status = kf("store", "status", "-o", "json", env=store_env).json()
    assert [c["behind"] for c in status["consumers"]] == [0]

    ran = loop(sandbox, store_env, open_kfid, BOTS["python"])
    assert ran.returncode == 0, ran.stderr
    assert "never answered; resuming from it" in ran.stderr
    assert sorted(to for to, _ in replies(sandbox, open_kfid)) == ["wmQ0", "wmQ1", "wmQ2"]

    # Answered and acknowledged: a third run hands out nothing, sends nothing.
    third = loop(sandbox, store_env, open_kfid, BOTS["python"])
    assert third.returncode == 0 and "resuming" not in third.stderr
    assert len(replies(sandbox, open_kfid)) == 3


@pytest.mark.process
def test_a_reply_sent_but_not_acknowledged_is_not_sent_twice(kf, sandbox, store_env):
    """The sender killed between sending and recording: the message comes round again, the
    bot answers it again, and the derived msgid keeps WeCom from delivering it twice."""
    open_kfid = sandbox.account()
    kf("msg", "history", open_kfid, "--consumer", "bot", env=store_env)
    sandbox.say(open_kfid, "只回一次", external_userid="wmOnce")
    assert kf("msg", "sync", open_kfid, env=store_env).code == 0
    r = kf("msg", "history", open_kfid, "--consumer", "bot", "-o", "jsonl", env=store_env)
    (inbound,) = [json.loads(x) for x in r.out.splitlines()]
    # Sent straight to WeCom, as by a sender killed before it could record the answer.
    r = kf("msg", "send", open_kfid, "wmOnce", "--text", "first wording",
           "--reply-to", inbound["msgid"])
    assert r.code == 0, r.err
    ran = loop(sandbox, store_env, open_kfid, BOTS["python"])
    assert ran.returncode == 0, ran.stderr
    assert "resuming" in ran.stderr and '"already_sent"' in ran.stdout
    assert replies(sandbox, open_kfid) == [("wmOnce", "first wording")]


def test_ack_needs_a_consumer(kf, sandbox):
    open_kfid = sandbox.account()
    r = kf("msg", "history", open_kfid, "--ack", "replies")
    assert r.code == 2 and "--consumer" in r.err
    r = kf("msg", "history", open_kfid, "--consumer", "bot", "--ack", "everything")
    assert r.code == 2 and "replies" in r.err


@pytest.mark.process
@pytest.mark.parametrize("bot", ["python", "shell"])
def test_a_backlog_longer_than_the_reply_window_is_answered_within_it(kf, sandbox, store_env,
                                                                      bot):
    """WeCom allows 5 sends per customer message: a customer with 8 queued messages gets
    one reply acknowledging all 8 (reply_to as a list), nothing is refused (95001), and none
    of the 8 is handed out again."""
    open_kfid = sandbox.account()
    kf("msg", "history", open_kfid, "--consumer", "bot", env=store_env)
    questions = [f"backlog {n}" for n in range(8)]
    for text in questions:
        sandbox.say(open_kfid, text, external_userid="wmBacklog")
    sandbox.say(open_kfid, "alone", external_userid="wmAlone")
    assert kf("msg", "sync", open_kfid, env=store_env).code == 0

    ran = loop(sandbox, store_env, open_kfid, BOTS[bot])
    assert ran.returncode == 0, ran.stderr
    results = [json.loads(line) for line in ran.stdout.splitlines()]
    assert {r["status"] for r in results} == {"sent"}, (results, ran.stderr)
    sent = replies(sandbox, open_kfid)
    backlog = [text for to, text in sent if to == "wmBacklog"]
    assert len(backlog) == 1 and all(q in backlog[0] for q in questions)
    assert [to for to, _ in sent].count("wmAlone") == 1
    # Every one of the 8 is acknowledged: a new run hands nothing back, sends nothing.
    again = loop(sandbox, store_env, open_kfid, BOTS[bot])
    assert again.returncode == 0 and "never answered" not in again.stderr, again.stderr
    assert len(replies(sandbox, open_kfid)) == 2
    # And the customer can still be answered 5 times (one send of the window was used).
    r = kf("msg", "history", open_kfid, "--customer", "wmBacklog", env=store_env)
    assert r.code == 0


@pytest.mark.process
def test_the_shell_bot_keeps_a_line_that_arrives_in_two_parts():
    """bash reads a pipe a byte at a time: a line whose rest comes after more than the
    bot's 0.1 s of quiet (a writer, or bash itself, stalled on a busy machine) was cut in two,
    and jq choked on the halves. The part read is now kept until the rest arrives."""
    if not shutil.which("jq"):
        pytest.fail("jq is needed for examples/bot.sh (.ci/run installs it)")
    line = json.dumps({"msgid": "m1", "open_kfid": "wkA", "external_userid": "wmA",
                       "origin": 3, "msgtype": "text", "text": {"content": "分两次到"}},
                      ensure_ascii=False)
    half = len(line) // 2
    code = (f"import sys, time; sys.stdout.write({line[:half]!r}); sys.stdout.flush(); "
            f"time.sleep(1); sys.stdout.write({line[half:]!r} + '\\n')")
    writer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        ran = subprocess.run(["sh", str(ROOT / "examples" / "bot.sh")], stdin=writer.stdout,
                             capture_output=True, text=True, timeout=60)
    finally:
        writer.stdout.close()
        writer.wait(timeout=60)
    assert ran.returncode == 0 and ran.stderr == "", ran.stderr
    assert [json.loads(x) for x in ran.stdout.splitlines()] == [
        {"open_kfid": "wkA", "external_userid": "wmA", "reply_to": "m1", "msgtype": "text",
         "text": {"content": "收到：分两次到"}}]
