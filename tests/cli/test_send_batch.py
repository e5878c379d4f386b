"""`kfcli msg send --batch` and `--reply-to`: one result per line, lines sent as they arrive,
msgids derived so that nothing is ever delivered twice, one customer's messages in order."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading

import pytest

from kfcli.core.batch import derive_msgid


def line(open_kfid: str, customer: str, text: str, **extra) -> str:
    return json.dumps({"open_kfid": open_kfid, "external_userid": customer,
                       "msgtype": "text", "text": {"content": text}, **extra},
                      ensure_ascii=False)


def results(out: str) -> dict[int, dict]:
    found = [json.loads(x) for x in out.splitlines()]
    return {r["line"]: r for r in found}


def texts(sandbox, open_kfid: str, customer: str | None = None) -> list[str]:
    return [m["text"]["content"] for m in sandbox.sent(open_kfid)
            if customer is None or m["touser"] == customer]


def test_a_batch_is_sent_once_however_often_it_runs(kf, sandbox, tmp_path):
    open_kfid = sandbox.account()
    sandbox.say(open_kfid, "在吗", external_userid="wmA")
    sandbox.say(open_kfid, "hello", external_userid="wmB")
    inbound = sandbox.get("/sandbox/sent_messages")  # (nothing sent yet)
    assert inbound["messages"] == []
    x = "inboundmsg0001"
    batch = tmp_path / "replies.jsonl"
    batch.write_text("\n".join([
        line(open_kfid, "wmA", "您好！", reply_to=x),
        line(open_kfid, "wmA", "请问有什么可以帮您？", reply_to=x),
        "",
        "{not json",
        line(open_kfid, "wmB", "hi B"),
        line(open_kfid, "wmA", ""),
        json.dumps({"open_kfid": open_kfid, "external_userid": "wmB", "reply_to": "y1",
                    "no_reply": True}),
        line(open_kfid, "wmNobody", "to no one"),
    ]) + "\n", encoding="utf-8")
    r = kf("msg", "send", "--batch", str(batch))
    assert r.code == 2, r.err  # unreadable lines: 2, the others still sent
    got = results(r.out)
    assert sorted(got) == [1, 2, 4, 5, 6, 7, 8]  # one result per non-blank line
    assert [got[n]["status"] for n in (1, 2, 5)] == ["sent", "sent", "sent"]
    assert got[1]["msgid"] == derive_msgid(open_kfid, "wmA", reply_to=x, position=1)
    assert got[2]["msgid"] == derive_msgid(open_kfid, "wmA", reply_to=x, position=2)
    assert got[4]["status"] == "failed" and got[4]["invalid"] is True
    assert got[4]["message"].startswith("line 4: not JSON")
    assert got[6]["invalid"] and "line 6: text.content" in got[6]["message"]
    assert got[7]["status"] == "skipped"
    assert (got[8]["status"], got[8]["errcode"]) == ("failed", 40096)
    assert "1 failed, 2 invalid" in r.err
    sent = {c: texts(sandbox, open_kfid, c) for c in ("wmA", "wmB")}
    assert sent == {"wmA": ["您好！", "请问有什么可以帮您？"], "wmB": ["hi B"]}

    again = kf("msg", "send", "--batch", "-", "--parallel", "1",
               input=batch.read_text(encoding="utf-8"))
    assert again.code == 2
    got = results(again.out)
    assert [got[n]["status"] for n in (1, 2, 5)] == ["already_sent"] * 3
    assert {c: texts(sandbox, open_kfid, c) for c in ("wmA", "wmB")} == sent  # no more

    # A bot that words its first answer differently on a rerun still cannot answer twice,
    # and a single send of "reply #1 to x" is the same message.
    reworded = line(open_kfid, "wmA", "您好，在的！", reply_to=x)
    r = kf("msg", "send", "--batch", "-", input=reworded + "\n")
    assert r.code == 0 and results(r.out)[1]["status"] == "already_sent"
    r = kf("msg", "send", open_kfid, "wmA", "--text", "again", "--reply-to", x)
    assert r.code == 0, r.err
    assert r.out.strip() == derive_msgid(open_kfid, "wmA", reply_to=x, position=1)
    assert "was delivered before" in r.err
    r = kf("msg", "send", open_kfid, "wmA", "--text", "third", "--reply-to", x,
           "--reply-number", "3")
    assert r.code == 0 and "delivered before" not in r.err
    assert texts(sandbox, open_kfid, "wmA") == ["您好！", "请问有什么可以帮您？", "third"]


@pytest.mark.process
def test_lines_are_sent_as_they_arrive(sandbox, home):
    """A pipe that stays open: each line's result comes back before the next is written."""
    open_kfid = sandbox.account()
    sandbox.say(open_kfid, "hi", external_userid="wmA")
    proc = subprocess.Popen([sys.executable, "-m", "kfcli", "msg", "send", "--batch", "-"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **sandbox.env})
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
    try:
        for n in (1, 2, 3):
            proc.stdin.write(line(open_kfid, "wmA", f"message {n}") + "\n")
            proc.stdin.flush()
            result = json.loads(lines.get(timeout=60))  # while stdin is still open
            assert (result["line"], result["status"]) == (n, "sent")
            assert texts(sandbox, open_kfid)[-1] == f"message {n}"
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()


def test_one_customers_messages_keep_their_order_in_parallel(kf, sandbox):
    open_kfid = sandbox.account()
    customers = [f"wmOrder{i}" for i in range(6)]
    for customer in customers:
        sandbox.say(open_kfid, "hi", external_userid=customer)
    batch = [line(open_kfid, customers[n % 6], f"{customers[n % 6]} #{n // 6}")
             for n in range(30)]
    r = kf("msg", "send", "--batch", "-", "--parallel", "4", input="\n".join(batch) + "\n")
    assert r.code == 0, r.err
    assert sorted(results(r.out)) == list(range(1, 31))
    for customer in customers:
        assert texts(sandbox, open_kfid, customer) == [f"{customer} #{k}" for k in range(5)]


def test_a_rate_limit_is_waited_out(kf, sandbox):
    open_kfid = sandbox.account()
    sandbox.say(open_kfid, "hi", external_userid="wmA")
    sandbox.fault(fault="errcode", errcode=45009, path="/cgi-bin/kf/send_msg")
    r = kf("msg", "send", "--batch", "-", input=line(open_kfid, "wmA", "after a wait") + "\n")
    assert r.code == 0, r.err
    assert results(r.out)[1]["status"] == "sent"
    assert texts(sandbox, open_kfid) == ["after a wait"]


def test_batch_usage_errors(kf, sandbox, tmp_path):
    open_kfid = sandbox.account()
    cases = [
        (["msg", "send", open_kfid, "wmA", "--batch", "-"], "not from the command line"),
        (["msg", "send", "--batch", "-", "--text", "hi"], "not with --text"),
        (["msg", "send", "--batch", "-", "--msgid", "abc"], "not with --msgid"),
        (["msg", "send", "--batch", str(tmp_path / "missing.jsonl")], "cannot read"),
        (["msg", "send", "--batch", "-", "--parallel", "0"], "--parallel"),
        (["msg", "send", open_kfid, "wmA", "--text", "x", "--reply-to", "a b"], "msgid"),
        (["msg", "send", open_kfid, "wmA", "--text", "x", "--reply-to", "ab", "--msgid",
          "cd"], "not both"),
        (["msg", "send", "--text", "x"], "OPEN_KFID and EXTERNAL_USERID"),
    ]
    for args, message in cases:
        r = kf(*args, input="")
        assert r.code == 2, (args, r.err)
        assert message in r.err and "Traceback" not in r.err, (args, r.err)
    assert sandbox.sent(open_kfid) == []


@pytest.mark.process
def test_a_reader_that_leaves_stops_the_batch_quietly(sandbox, home):
    open_kfid = sandbox.account()
    sandbox.say(open_kfid, "hi", external_userid="wmA")
    batch = "".join(line(open_kfid, "wmA", f"m{n}") + "\n" for n in range(20))
    proc = subprocess.run(
        ["bash", "-o", "pipefail", "-c", f"{sys.executable} -m kfcli msg send --batch - | "
         "head -1"], input=batch, capture_output=True, text=True,
        env={**os.environ, **sandbox.env}, timeout=120)
    assert proc.returncode == 0, proc.stderr  # kfcli's own status too (pipefail)
    assert "Traceback" not in proc.stderr and len(proc.stdout.splitlines()) == 1


@pytest.mark.process
def test_the_reply_window_is_checked_from_the_store(kf, sandbox, store_env):
    """Five replies per customer message: the sixth is skipped with WeCom's errcode, without
    a request; a rerun is answered from the store, also without one."""
    open_kfid = sandbox.account()
    sandbox.say(open_kfid, "在吗", external_userid="wmWin")
    r = kf("msg", "sync", open_kfid, "-o", "jsonl", env=store_env)
    inbound = json.loads(r.out)["msgid"]
    batch = "".join(line(open_kfid, "wmWin", f"reply {n}", reply_to=inbound) + "\n"
                    for n in range(7))
    r = kf("msg", "send", "--batch", "-", "--parallel", "1", input=batch, env=store_env)
    assert r.code == 0, r.err  # skipped lines are not failures
    got = results(r.out)
    assert [got[n]["status"] for n in range(1, 8)] == ["sent"] * 5 + ["skipped"] * 2
    assert got[6]["errcode"] == 95001 and "WeCom allows 5" in got[6]["message"]
    assert len(sandbox.sent(open_kfid)) == 5
    requests = sandbox.stats().get("/cgi-bin/kf/send_msg", 0)
    assert requests == 5  # the skipped lines never reached WeCom

    again = kf("msg", "send", "--batch", "-", "--parallel", "1", input=batch, env=store_env)
    assert again.code == 0, again.err
    got = results(again.out)
    assert [got[n]["status"] for n in range(1, 8)] == ["already_sent"] * 5 + ["skipped"] * 2
    assert sandbox.stats().get("/cgi-bin/kf/send_msg", 0) == requests  # none: from the store

    from tests.conftest import on_terminal

    view = on_terminal(["msg", "history", open_kfid, "--customer", "wmWin"],
                       {**sandbox.env, **store_env})
    assert "reply window: 0 of 5 left, closes in 48 h" in view.err
    sandbox.say(open_kfid, "还在吗", external_userid="wmWin")  # a new message re-opens it
    assert kf("msg", "sync", open_kfid, env=store_env).code == 0
    view = on_terminal(["msg", "history", open_kfid, "--customer", "wmWin"],
                       {**sandbox.env, **store_env})
    assert "reply window: 5 of 5 left, closes in 48 h" in view.err


def test_reply_to_of_another_customer_or_account_is_refused(kf, sandbox, store_env):
    """The attack: a line for customer B whose reply_to is A's message would be sent to B
    and record A's message as answered, so `--ack replies` never hands A's message out
    again. Refused before any request (invalid), nothing recorded."""
    open_kfid, other = sandbox.account(), sandbox.account("Sales")
    sandbox.say(open_kfid, "help me", external_userid="wmA")
    sandbox.say(open_kfid, "hi", external_userid="wmB")
    sandbox.say(other, "elsewhere", external_userid="wmB")
    for account in (open_kfid, other):
        assert kf("msg", "sync", account, env=store_env).code == 0
    by_text = {}
    for account in (open_kfid, other):
        r = kf("msg", "history", account, "-o", "jsonl", env=store_env)
        by_text.update({m["text"]["content"]: m["msgid"]
                        for m in map(json.loads, r.out.splitlines())})
    # First position the consumer with acknowledgements: it starts before every message.
    r = kf("msg", "history", open_kfid, "--consumer", "ackbot", "--ack", "replies",
           "--since", "0", "-o", "jsonl", env=store_env)
    assert r.code == 0, r.err
    assert [json.loads(x)["text"]["content"] for x in r.out.splitlines()] == \
        ["help me", "hi"]

    batch = (line(open_kfid, "wmB", "for B", reply_to=by_text["help me"]) + "\n"
             + json.dumps({"open_kfid": open_kfid, "external_userid": "wmB",
                           "reply_to": by_text["help me"], "no_reply": True}) + "\n"
             + line(open_kfid, "wmB", "wrong account", reply_to=by_text["elsewhere"]) + "\n"
             + line(open_kfid, "wmB", "fine", reply_to=by_text["hi"]) + "\n")
    r = kf("msg", "send", "--batch", "-", "--parallel", "1", input=batch, env=store_env)
    assert r.code == 2, r.err
    got = results(r.out)
    for n, word in ((1, "another customer (wmA)"), (2, "another customer (wmA)"),
                    (3, "another account")):
        assert got[n]["status"] == "failed" and got[n]["invalid"] is True, got[n]
        assert word in got[n]["message"] and got[n]["msgid"] is None
    assert got[4]["status"] == "sent"
    assert texts(sandbox, open_kfid) == ["fine"]  # nothing else reached WeCom
    # A's message is still unanswered: a restarted acknowledging consumer gets it again.
    r = kf("msg", "history", open_kfid, "--consumer", "ackbot", "--ack", "replies",
           "-o", "jsonl", env=store_env)
    assert r.code == 0, r.err
    assert "help me" in [json.loads(x)["text"]["content"] for x in r.out.splitlines()]


@pytest.mark.process
@pytest.mark.parametrize("source", ["stdin", "file"])
def test_a_line_that_is_not_utf8_is_refused_alone(sandbox, home, tmp_path, source):
    """A GBK line in the middle of a batch gets its own "invalid" result; the lines around
    it are still sent (from a pipe as from a file)."""
    open_kfid = sandbox.account()
    sandbox.say(open_kfid, "hi", external_userid="wmA")
    data = (line(open_kfid, "wmA", "first").encode() + b"\n"
            + line(open_kfid, "wmA", "你好").encode("gbk") + b"\n"
            + line(open_kfid, "wmA", "third").encode() + b"\n")
    batch = tmp_path / "batch.jsonl"
    batch.write_bytes(data)
    args = [sys.executable, "-m", "kfcli", "msg", "send", "--batch",
            "-" if source == "stdin" else str(batch)]
    proc = subprocess.run(args, input=data if source == "stdin" else b"", capture_output=True,
                          env={**os.environ, **sandbox.env}, timeout=120)
    assert proc.returncode == 2, proc.stderr
    out = [json.loads(x) for x in proc.stdout.decode().splitlines()]
    bad = next(r for r in out if r["line"] == 2)
    assert bad["invalid"] is True and bad["status"] == "failed"
    assert "not UTF-8 (byte 0x" in bad["message"] and "iconv" in bad["message"]
    assert sorted(r["status"] for r in out if r["line"] != 2) == ["sent", "sent"]
    assert texts(sandbox, open_kfid) == ["first", "third"]
    assert b"Traceback" not in proc.stderr and b"internal error" not in proc.stderr
