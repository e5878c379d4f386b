"""`kfcli msg search`, `msg history --grep` and `kfcli store prune` (with the retention_days
setting), driven through the installed CLI against the sandbox; the search itself on
PostgreSQL too (KFCLI_STORE pointing at a fresh database)."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import on_terminal_in_process


def msgids(out: str) -> list[str]:
    return [json.loads(line)["msgid"] for line in out.splitlines() if line.strip()]


def contents(out: str) -> list[str]:
    return [json.loads(line)["text"]["content"] for line in out.splitlines() if line.strip()]


@pytest.fixture
def chats(kf, sandbox, store_env):
    """Two customers of one account, synced into the store: (open_kfid, customers, env)."""
    open_kfid = sandbox.account()
    a = sandbox.say(open_kfid, "我想申请退款")
    b = sandbox.say(open_kfid, "Please give me a REFUND")
    sandbox.say(open_kfid, "退货地址是哪里", external_userid=a)
    sandbox.say(open_kfid, "谢谢", external_userid=b)
    r = kf("msg", "sync", open_kfid, env=store_env)
    assert r.code == 0, r.err
    return open_kfid, (a, b), store_env


def test_search_chinese_and_latin_newest_first(kf, chats):
    open_kfid, (a, b), env = chats
    r = kf("msg", "search", "退款", env=env)
    assert r.code == 0, r.err
    assert contents(r.out) == ["我想申请退款"]
    r = kf("msg", "search", "退", env=env)  # one character: shorter than a trigram
    assert contents(r.out) == ["退货地址是哪里", "我想申请退款"]
    r = kf("msg", "search", "申请退款", env=env)
    assert contents(r.out) == ["我想申请退款"]
    for query in ("refund", "REFUND", "Refund"):
        r = kf("msg", "search", query, env=env)
        assert contents(r.out) == ["Please give me a REFUND"], query
    # Each line exactly the object msg history writes.
    history = kf("msg", "history", open_kfid, env=env).out.splitlines()
    assert kf("msg", "search", "谢谢", env=env).out.splitlines() == [history[3]]


def test_search_filters(kf, chats):
    open_kfid, (a, b), env = chats
    assert contents(kf("msg", "search", "退", "--customer", b, env=env).out) == []
    assert contents(kf("msg", "search", "退", "--customer", a, "--limit", "1",
                       env=env).out) == ["退货地址是哪里"]
    assert contents(kf("msg", "search", "退", "--account", open_kfid, env=env).out) == [
        "退货地址是哪里", "我想申请退款"]
    assert kf("msg", "search", "退", "--account", "wkunknown", env=env).out == ""
    assert contents(kf("msg", "search", "退", "--since", "1h", env=env).out) == [
        "退货地址是哪里", "我想申请退款"]
    assert kf("msg", "search", "退", "--until", "1h", env=env).out == ""
    r = kf("msg", "search", "退", "-o", "tsv", env=env)
    fields = r.out.splitlines()[0].split("\t")
    assert fields[1:7] == [open_kfid, a, "customer", a, "text", "退货地址是哪里"]
    assert len(kf("msg", "search", "退", "-o", "json", env=env).json()) == 2
    assert kf("msg", "search", "nothing here", "-o", "json", env=env).json() == []


def test_history_grep_is_consistent_with_search(kf, chats):
    open_kfid, (a, b), env = chats
    r = kf("msg", "history", open_kfid, "--grep", "退", env=env)
    assert r.code == 0, r.err
    assert contents(r.out) == ["我想申请退款", "退货地址是哪里"]  # oldest first, as history
    r = kf("msg", "history", open_kfid, "--grep", "退", "--limit", "1", env=env)
    assert contents(r.out) == ["退货地址是哪里"]
    r = kf("msg", "history", open_kfid, "--grep", "REFUND", "--customer", b, env=env)
    assert contents(r.out) == ["Please give me a REFUND"]
    r = kf("msg", "history", open_kfid, "--grep", "  ", env=env)
    assert r.code == 2 and "--grep" in r.err
    r = kf("msg", "history", open_kfid, "--grep", "x", "--follow", env=env)
    assert r.code == 2


@pytest.mark.parametrize("args, needle", [
    (["", ], "TEXT"),
    (["   "], "TEXT"),
    (["退", "--since", "2026-11-02", "--until", "2026-11-01"], "later than --since"),
    (["退", "--since", "soon"], "--since"),
    (["退", "--limit", "0"], "--limit"),
    (["退", "--limit", "5", "--all"], "--all"),
    (["退", "--account", ""], "open_kfid"),
])
def test_search_bad_input_is_exit_2(kf, sandbox, args, needle):
    r = kf("msg", "search", *args)
    assert r.code == 2, r.text
    assert needle in r.err
    assert r.out == ""


def test_nothing_found_is_exit_0_with_a_note_on_a_terminal(kf, sandbox, home):
    open_kfid = sandbox.account()
    sandbox.say(open_kfid, "你好")
    assert kf("msg", "sync", open_kfid).code == 0
    r = kf("msg", "search", "退款")
    assert r.code == 0 and r.out == ""
    t = on_terminal_in_process(["msg", "search", "退款"], sandbox.env)
    assert t.code == 0
    assert "no messages match" in t.err


def test_the_match_is_highlighted_on_a_terminal(kf, sandbox, home):
    open_kfid = sandbox.account()
    customer = sandbox.say(open_kfid, "我想申请退款")
    sandbox.say(open_kfid, "Please REFUND me", external_userid=customer)
    assert kf("msg", "sync", open_kfid).code == 0
    t = on_terminal_in_process(["msg", "search", "退款"], sandbox.env)
    assert t.code == 0, t.err
    assert "time" in t.out and "customer" in t.out and customer in t.out
    assert "\x1b[1;7m退款\x1b[0m" in t.out  # bold reverse, just the match
    assert "我想申请" in t.out
    t = on_terminal_in_process(["msg", "search", "refund"], sandbox.env)
    assert "\x1b[1;7mREFUND\x1b[0m" in t.out  # the text as written, found in any case
    # Piped: no escape sequences at all.
    r = kf("msg", "search", "退款", "-o", "tsv")
    assert "\x1b" not in r.out and "我想申请退款" in r.out


# ---------------------------------------------------------------------------- prune


def test_prune_needs_a_date_or_retention_days(kf, sandbox):
    r = kf("store", "prune", "--yes")
    assert r.code == 2
    assert "--before" in r.err and "retention_days" in r.err


@pytest.mark.parametrize("value", ["0", "36501", "-1", "1.5", "abc", ""])
def test_retention_days_is_validated(kf, value):
    r = kf("config", "set", "retention_days", value)
    assert r.code == 2, r.text
    r = kf("store", "prune", "--yes", env={"KFCLI_RETENTION_DAYS": value or " "})
    assert r.code in (2, 3), r.text


def test_prune_removes_old_messages_and_reports_per_account(kf, sandbox, store_env):
    first = sandbox.account("One")
    second = sandbox.account("Two")
    for i in range(3):
        sandbox.say(first, f"退款 {i}")
    sandbox.say(second, "退货")
    assert kf("msg", "sync", first, env=store_env).code == 0
    assert kf("msg", "sync", second, env=store_env).code == 0
    r = kf("store", "prune", "--before", "2000-01-01", "--yes", env=store_env)
    assert r.code == 0, r.err
    assert "removed 0 messages" in r.err
    # Without a terminal and without --yes: refused (whether or not anything is old enough),
    # nothing changes.
    r = kf("store", "prune", "--before", "2000-01-01", env=store_env)
    assert r.code == 2 and "--yes" in r.err
    assert len(kf("msg", "search", "退", env=store_env).out.splitlines()) == 4
    # send_time is whole seconds: on a clock 3 s ahead, "1 s ago" is surely after every one
    later = lambda: time.time() + 3  # noqa: E731
    r = kf("store", "prune", "--before", "1s", "--dry-run", "-o", "json", env=store_env,
           clock=later)
    assert r.code == 0, r.err
    assert r.json()["messages"] == 4 and r.json()["dry_run"] is True
    r = kf("store", "prune", "--before", "0s", "--yes", "-o", "json", env=store_env,
           clock=later)
    assert r.code == 0, r.err
    doc = r.json()
    assert doc["accounts"] == {first: 3, second: 1} and doc["messages"] == 4
    assert doc["media"] == 0
    assert kf("msg", "search", "退", env=store_env).out == ""
    assert kf("msg", "history", first, env=store_env).out == ""
    # The cursor stays: nothing is pulled again.
    assert kf("msg", "sync", first, env=store_env).out == ""
    sandbox.say(first, "新的退款")
    r = kf("msg", "sync", first, env=store_env)
    assert contents(r.out) == ["新的退款"]
    assert contents(kf("msg", "search", "退款", env=store_env).out) == ["新的退款"]


def test_prune_with_retention_days(kf, sandbox):
    open_kfid = sandbox.account()
    sandbox.say(open_kfid, "你好")
    assert kf("msg", "sync", open_kfid).code == 0
    r = kf("config", "set", "retention_days", "30")
    assert r.code == 0, r.err
    r = kf("store", "prune", "--yes")
    assert r.code == 0, r.err
    assert "retention_days (30 days" in r.err and "removed 0 messages" in r.err
    r = kf("store", "prune", "--yes", "-o", "json", env={"KFCLI_RETENTION_DAYS": "1"})
    assert r.code == 0 and r.json()["messages"] == 0
    r = kf("store", "prune", "--before", "2999-01-01", "--yes")
    assert r.code == 2 and "future" in r.err
