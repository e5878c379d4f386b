"""Rows that scripts can join (issue 21): TSV and tables of `msg sync`, `msg history` and
`msg search` name the account and customer of every message, events included; `--columns`
picks the columns; `msg search` on a terminal uses the shared table fitter."""

from __future__ import annotations

import re

import pytest

from tests.conftest import on_terminal_in_process

ALICE = "wmRowsAlice00000000000000000001"


def plain(out: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", out)


@pytest.fixture
def stored(kf, sandbox):
    open_kfid = sandbox.account()
    ok = lambda doc: doc["errcode"] == 0 or pytest.fail(str(doc))  # noqa: E731
    ok(sandbox.post("/sandbox/enter_session", {"open_kfid": open_kfid, "external_userid": ALICE,
                                               "scene": "ad"}))
    sandbox.say(open_kfid, "我想申请退款，订单号 2026120712345，麻烦尽快处理一下，谢谢",
                external_userid=ALICE)
    r = kf("msg", "sync", open_kfid, "-o", "tsv", "--columns", "open_kfid,external_userid,type")
    assert r.code == 0, r.err
    return open_kfid, r.out


def test_every_row_names_its_conversation(kf, stored) -> None:
    open_kfid, synced = stored
    assert synced.splitlines() == [f"{open_kfid}\t{ALICE}\tenter_session",
                                   f"{open_kfid}\t{ALICE}\ttext"]
    r = kf("msg", "history", open_kfid, "-o", "tsv", "--columns", "external_userid,from,text")
    assert r.code == 0, r.err
    assert r.out.splitlines() == [f"{ALICE}\tsystem\tentered from scene ad, with a welcome_code",
                                  f"{ALICE}\tcustomer\t我想申请退款，订单号 2026120712345，"
                                  "麻烦尽快处理一下，谢谢"]
    r = kf("msg", "search", "退款", "-o", "tsv", "--columns", "msgid,open_kfid")
    assert r.code == 0, r.err
    assert r.out.split("\t")[1] == open_kfid + "\n"


@pytest.mark.parametrize("command", [["msg", "history"], ["msg", "search", "退款"],
                                     ["msg", "sync", "wkRowsNone"]])
def test_an_unknown_column_is_a_usage_error(kf, sandbox, command) -> None:
    before = sandbox.stats()
    r = kf(*command, "-o", "tsv", "--columns", "time,nickname_typo")
    assert r.code == 2 and "nickname_typo" in r.err and "external_userid" in r.err
    assert sandbox.stats() == before  # nothing asked of WeCom


@pytest.mark.parametrize("width", [80, 120])
def test_search_on_a_terminal_shows_the_text_and_whole_ids(stored, sandbox, width) -> None:
    open_kfid, _ = stored
    r = on_terminal_in_process(["msg", "search", "退款"], sandbox.env, columns=width)
    assert r.code == 0, r.err
    out = plain(r.out)
    assert ALICE in out  # never cut
    assert "退款" in out  # the text that matched is visible
    assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", out)  # the time whole
    assert all(len(line) <= width for line in out.splitlines())
    if open_kfid not in out:
        assert "hidden at" in r.err and "account" in r.err


def test_history_columns_on_a_terminal_is_a_table(stored, sandbox) -> None:
    open_kfid, _ = stored
    r = on_terminal_in_process(["msg", "history", open_kfid, "--columns",
                                "external_userid,type,text"], sandbox.env, columns=120)
    assert r.code == 0, r.err
    lines = plain(r.out).splitlines()
    assert lines[0].split() == ["external_userid", "type", "text"]
    assert lines[1].split()[:2] == [ALICE, "enter_session"]


def test_search_names_the_customer(kf, stored, sandbox) -> None:
    from tests.cli.test_export import nickname

    r = on_terminal_in_process(["msg", "search", "退款"], sandbox.env, columns=160)
    assert r.code == 0, r.err
    (row,) = [line for line in plain(r.out).splitlines() if ALICE in line]
    assert nickname(kf, ALICE) in row.split()
