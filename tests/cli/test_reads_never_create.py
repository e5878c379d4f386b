"""Reads never create (issue 21): a command that only reads and finds no store where the
settings point exits 3 naming the path, creating nothing; writers create it. An account or
a customer the store has never seen gets a note on stderr, exit 0."""

from __future__ import annotations

import pytest

ALICE = "wmReadsAlice0000000000000000001"


@pytest.mark.parametrize("command", [
    ["msg", "history"],
    ["msg", "history", "wkReadsNone000000000000000000001", "--customer", ALICE],
    ["msg", "search", "退款"],
    ["msg", "export", "--format", "csv", "-O", "-"],
    ["store", "status"],
    ["msg", "media", "msgNone", "-O", "-"],
    ["msg", "inbox"],
    ["msg", "inbox", "wkReadsNone000000000000000000001"],
])
def test_a_read_of_a_mistyped_store_path_is_exit_3_and_creates_nothing(kf, sandbox, tmp_path,
                                                                       command) -> None:
    typo = tmp_path / "stoer" / "store.db"
    for store in (str(typo), "sqlite:///" + str(typo).lstrip("/")):
        r = kf(*command, env={"KFCLI_STORE": store})
        assert r.code == 3, r.text
        assert str(typo) in r.err and "KFCLI_STORE" in r.err and r.out == ""
        assert not typo.parent.exists()  # no file, no directory


def test_the_default_store_is_not_created_by_a_read(kf, sandbox, home) -> None:
    from kfcli.core.store import default_path

    r = kf("msg", "history")
    assert r.code == 3 and str(default_path()) in r.err and "(the default)" in r.err
    assert not default_path().exists()
    # A writer creates it; then reads work.
    open_kfid = sandbox.account()
    assert kf("msg", "sync", open_kfid).code == 0 and default_path().exists()
    assert kf("msg", "history").code == 0


def test_writers_create_it(kf, sandbox, tmp_path) -> None:
    fresh = tmp_path / "new" / "store.db"
    open_kfid = sandbox.account()
    sandbox.say(open_kfid, "hello", external_userid=ALICE)
    r = kf("msg", "sync", open_kfid, env={"KFCLI_STORE": str(fresh)})
    assert r.code == 0, r.err
    assert fresh.exists()


def test_an_unknown_account_or_customer_is_a_note(kf, sandbox) -> None:
    open_kfid = sandbox.account()
    sandbox.say(open_kfid, "hello", external_userid=ALICE)
    assert kf("msg", "sync", open_kfid).code == 0
    typo = "wkTypo000000000000000000000000001"
    for command in (["msg", "history", typo], ["msg", "search", "hello", "--account", typo],
                    ["msg", "export", "--format", "jsonl", "-O", "-", "--account", typo]):
        r = kf(*command)
        assert r.code == 0 and r.out == "", r.text
        assert f"no stored messages for account {typo}" in r.err
    for command in (["msg", "history", open_kfid, "--customer", "wmTypo"],
                    ["msg", "search", "hello", "--customer", "wmTypo"]):
        r = kf(*command)
        assert r.code == 0 and r.out == "", r.text
        assert "no stored messages for customer wmTypo" in r.err
    # A known customer with nothing in the span is just empty: no note.
    r = kf("msg", "history", open_kfid, "--customer", ALICE, "--until", "2020-01-01")
    assert r.code == 0 and r.out == "" and "no stored messages" not in r.err


def test_postgresql_without_kfcli_tables_is_missing_for_reads(kf, sandbox, pg_empty_url
                                                              ) -> None:
    r = kf("msg", "history", env={"KFCLI_STORE": pg_empty_url})
    assert r.code == 3 and "no message store at postgresql://" in r.err, r.text
    assert ":****@" in r.err or "@" not in r.err.split("postgresql://")[1].split()[0]
    r = kf("store", "status", env={"KFCLI_STORE": pg_empty_url})
    assert r.code == 3, r.text
