"""The store contract (kfcli.core.store.base), run against both backends: SQLite in a temporary
file, PostgreSQL in a fresh database of the server `pg_virtualenv` provides (skipped without
one, see tests/pgutil.py). Then what only one backend has: PostgreSQL's errors and restarts,
SQLite's files."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from kfcli.core.errors import ConfigError, NetworkError
from kfcli.core.store import SCHEMA_VERSION, CursorMoved, Incoming, open_store
from tests import pgutil

CORP = "wwcorp"
KFID = "wkaccount"


def msg(msgid: str, *, customer: str = "wmcustomer", send_time: int = 1000,
        text: str | None = None) -> Incoming:
    body = text if text is not None else json.dumps({"msgid": msgid, "msgtype": "text"})
    return Incoming(msgid=msgid, external_userid=customer, servicer_userid="", origin=3,
                    msgtype="text", send_time=send_time, text=body)


def texts(rows) -> list[str]:
    return [json.loads(r.text)["msgid"] for r in rows]


def is_pg(url: str) -> bool:
    return url.startswith("postgresql://")


def raw(url: str, *statements: str) -> list[tuple]:
    """Run SQL on the store behind kfcli's back; the last statement's rows."""
    rows: list[tuple] = []
    if is_pg(url):
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            for sql in statements:
                cur = conn.execute(sql)
                rows = cur.fetchall() if cur.description else []
    else:
        conn = sqlite3.connect(url)
        try:
            for sql in statements:
                rows = conn.execute(sql).fetchall()
            conn.commit()
        finally:
            conn.close()
    return rows


def tables(url: str) -> list[str]:
    if is_pg(url):
        rows = raw(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                   "ORDER BY tablename")
    else:
        rows = raw(url, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT "
                   "LIKE 'sqlite_%' ORDER BY name")
    return [r[0] for r in rows]


def run_python(script: str, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


# ---------------------------------------------------------------------------- schema


def test_schema_is_created_on_first_use_and_reopened_as_is(store_url):
    with open_store(store_url) as store:
        assert store.schema_version() == SCHEMA_VERSION
        store.commit_page(CORP, KFID, expected=None, cursor="c1", messages=[msg("a")],
                          owner=None)
    assert {"meta", "messages", "accounts", "outbox", "callbacks", "consumers"} <= set(
        tables(store_url))
    with open_store(store_url) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert store.cursor(CORP, KFID) == "c1"
        assert texts(store.messages(CORP, KFID)) == ["a"]
        assert store.backend == ("postgresql" if is_pg(store_url) else "sqlite")


def test_a_schema_from_a_newer_kfcli_is_refused_and_left_untouched(store_url):
    with open_store(store_url) as store:
        store.commit_page(CORP, KFID, expected=None, cursor="c1", messages=[msg("a")],
                          owner=None)
    # As a newer build that records no compatible_from: no older build may use it.
    raw(store_url, "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
        "DELETE FROM meta WHERE key IN ('compatible_from', 'migrated_by')",
        "DROP TABLE consumers")
    before = tables(store_url)
    file_before = None if is_pg(store_url) else Path(store_url).read_bytes()
    with pytest.raises(ConfigError) as err:
        open_store(store_url)
    assert err.value.exit_code == 3
    assert "newer kfcli" in err.value.message and "untouched" in err.value.message
    assert tables(store_url) == before  # nothing created, nothing upgraded
    assert raw(store_url, "SELECT value FROM meta WHERE key = 'schema_version'") == [("99",)]
    if file_before is not None:
        assert Path(store_url).read_bytes() == file_before


# ---------------------------------------------------------------------------- commit_page


def test_commit_page_stores_each_message_once_in_page_order(store):
    first = store.commit_page(CORP, KFID, expected=None, cursor="c1",
                              messages=[msg("z"), msg("y"), msg("x")], owner=None)
    assert texts(first.rows) == ["z", "y", "x"]
    seqs = [r.seq for r in first.rows]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    assert first.outbox_id is None

    again = store.commit_page(CORP, KFID, expected="c1", cursor="c2",
                              messages=[msg("z"), msg("y"), msg("x")], owner=None)
    assert again.rows == [] and store.cursor(CORP, KFID) == "c2"

    partial = store.commit_page(CORP, KFID, expected="c2", cursor="c3",
                                messages=[msg("x"), msg("w"), msg("z"), msg("v")], owner=None)
    assert texts(partial.rows) == ["w", "v"]
    assert partial.rows[0].seq > seqs[-1] and partial.rows[0].seq < partial.rows[1].seq

    # A msgid repeated within a page counts once; the first copy is the one stored.
    repeated = store.commit_page(CORP, KFID, expected="c3", cursor="c4",
                                 messages=[msg("u", text='{"msgid": "u", "n": 1}'),
                                           msg("u", text='{"msgid": "u", "n": 2}'), msg("t")],
                                 owner=None)
    assert [r.text for r in repeated.rows] == ['{"msgid": "u", "n": 1}',
                                               json.dumps({"msgid": "t", "msgtype": "text"})]
    stored = list(store.messages(CORP, KFID))
    assert texts(stored) == ["z", "y", "x", "w", "v", "u", "t"]
    assert [r.seq for r in stored] == sorted(r.seq for r in stored)
    assert stored[5].text == '{"msgid": "u", "n": 1}'
    assert store.last_seq(CORP, KFID) == stored[-1].seq == store.last_seq(CORP)

    # An empty page still moves the cursor.
    empty = store.commit_page(CORP, KFID, expected="c4", cursor="c5", messages=[], owner="o")
    assert empty.rows == [] and empty.outbox_id is None and store.cursor(CORP, KFID) == "c5"


def test_msgids_are_unique_per_corp_not_per_account(store):
    store.commit_page(CORP, "wk1", expected=None, cursor="c", messages=[msg("m")], owner=None)
    other = store.commit_page(CORP, "wk2", expected=None, cursor="c", messages=[msg("m")],
                              owner=None)
    assert other.rows == []
    corp2 = store.commit_page("wwother", "wk1", expected=None, cursor="c",
                              messages=[msg("m")], owner=None)
    assert texts(corp2.rows) == ["m"]


def test_emit_from_stores_everything_but_returns_only_what_is_recent(store):
    page = [msg("old", send_time=5), msg("edge", send_time=50), msg("new", send_time=500)]
    got = store.commit_page(CORP, KFID, expected=None, cursor="c1", messages=page,
                            owner="sync:host:1", emit_from=50)
    assert texts(got.rows) == ["edge", "new"]
    assert texts(store.messages(CORP, KFID)) == ["old", "edge", "new"]
    [entry] = store.outbox(CORP, KFID, owner_prefix="sync:")
    assert entry.id == got.outbox_id and entry.emit_from == 50
    assert (entry.first_seq, entry.last_seq) == (got.rows[0].seq, got.rows[-1].seq)
    assert store.outbox_rows(CORP, entry) == got.rows

    nothing_recent = store.commit_page(CORP, KFID, expected="c1", cursor="c2",
                                       messages=[msg("older", send_time=1)],
                                       owner="sync:host:1", emit_from=50)
    assert nothing_recent.rows == [] and nothing_recent.outbox_id is None
    assert "older" in texts(store.messages(CORP, KFID))
    assert len(store.outbox(CORP, KFID, owner_prefix="")) == 1


def test_a_moved_cursor_commits_nothing(store):
    with pytest.raises(CursorMoved):
        store.commit_page(CORP, KFID, expected="never", cursor="c1", messages=[msg("a")],
                          owner="o")
    assert store.cursor(CORP, KFID) is None and store.status(CORP) == []
    assert list(store.messages(CORP)) == []

    store.commit_page(CORP, KFID, expected=None, cursor="c1", messages=[msg("a")], owner="o")
    with pytest.raises(CursorMoved):
        store.commit_page(CORP, KFID, expected=None, cursor="c2",
                          messages=[msg("b"), msg("c")], owner="o")
    with pytest.raises(CursorMoved):
        store.commit_page(CORP, KFID, expected="c0", cursor="c2", messages=[msg("b")],
                          owner="o")
    assert store.cursor(CORP, KFID) == "c1"
    assert texts(store.messages(CORP)) == ["a"]
    assert len(store.outbox(CORP, KFID, owner_prefix="")) == 1


def test_cursor_times_and_set_cursor(store):
    store.commit_page(CORP, KFID, expected=None, cursor="c1", messages=[], owner=None)
    [first] = store.status(CORP)
    assert first.cursor == "c1" and first.cursor_at == first.last_pull_at
    assert isinstance(first.cursor_at, float)
    store.commit_page(CORP, KFID, expected="c1", cursor="c1", messages=[], owner=None)
    [same] = store.status(CORP)
    assert same.cursor_at == first.cursor_at and same.last_pull_at >= first.last_pull_at

    store.set_cursor(CORP, KFID, "manual")
    assert store.cursor(CORP, KFID) == "manual" and store.accounts(CORP) == [KFID]
    store.set_cursor(CORP, KFID, None)
    assert store.cursor(CORP, KFID) is None and store.accounts(CORP) == []
    store.set_cursor(CORP, "wknew", "c")
    assert store.accounts(CORP) == ["wknew"]


# ---------------------------------------------------------------------------- outbox


def test_outbox_entries_by_owner_prefix(store):
    a = store.commit_page(CORP, KFID, expected=None, cursor="c1",
                          messages=[msg("a1"), msg("a2")], owner="sync:h:1")
    b = store.commit_page(CORP, KFID, expected="c1", cursor="c2", messages=[msg("b1")],
                          owner="callback:h:2")
    c = store.commit_page(CORP, KFID, expected="c2", cursor="c3", messages=[msg("c1")],
                          owner="sync:h:3")
    store.commit_page(CORP, "wkother", expected=None, cursor="c1", messages=[msg("o1")],
                      owner="sync:h:1")
    sync = store.outbox(CORP, KFID, owner_prefix="sync:")
    assert [e.id for e in sync] == [a.outbox_id, c.outbox_id]
    assert [e.owner for e in sync] == ["sync:h:1", "sync:h:3"]
    assert [e.open_kfid for e in sync] == [KFID, KFID]
    assert [e.id for e in store.outbox(CORP, KFID, owner_prefix="")] == [
        a.outbox_id, b.outbox_id, c.outbox_id]
    assert store.outbox(CORP, KFID, owner_prefix="sync:h:1x") == []
    assert texts(store.outbox_rows(CORP, sync[0])) == ["a1", "a2"]
    assert {s.open_kfid: s.pending_outbox for s in store.status(CORP)} == {KFID: 3,
                                                                          "wkother": 1}

    store.outbox_done([a.outbox_id, b.outbox_id])
    store.outbox_done([])
    assert [e.id for e in store.outbox(CORP, KFID, owner_prefix="")] == [c.outbox_id]


# ---------------------------------------------------------------------------- requests


def test_request_and_take(store):
    assert store.take_request(CORP, KFID) == (False, None)
    assert not store.has_request(CORP, KFID)
    store.request_pull(CORP, KFID, token="tok1", callback={
        "ToUserName": CORP, "CreateTime": "1700000000", "MsgType": "event",
        "Event": "kf_msg_or_event", "Token": "tok1", "OpenKfId": KFID})
    store.request_pull(CORP, KFID, token=None)  # a catch-up keeps the callback's token
    assert store.has_request(CORP, KFID)
    [status] = store.status(CORP)
    assert status.last_callback_at is not None and status.cursor is None
    assert store.accounts(CORP) == [KFID]  # a pending request is caught up on, too
    assert store.take_request(CORP, KFID) == (True, "tok1")
    assert store.take_request(CORP, KFID) == (False, None)
    assert store.accounts(CORP) == []  # neither a cursor nor a request
    assert not store.has_request(CORP, KFID)

    store.request_pull(CORP, "wkother", token=None)
    assert store.take_request(CORP, "wkother") == (True, None)
    [other] = [s for s in store.status(CORP) if s.open_kfid == "wkother"]
    assert other.last_callback_at is None


def test_only_one_of_many_takers_gets_the_request(store):
    store.request_pull(CORP, KFID, token="t")
    results: list[tuple[bool, str | None]] = []
    barrier = threading.Barrier(6)

    def take() -> None:
        barrier.wait()
        results.append(store.take_request(CORP, KFID))

    threads = [threading.Thread(target=take) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results, key=lambda r: not r[0]) == [(True, "t")] + [(False, None)] * 5


# ---------------------------------------------------------------------------- locks


def test_a_taken_lock_is_refused_until_released(store):
    lock = store.lock("pull:a")
    assert lock is not None
    assert store.lock("pull:a") is None
    assert store.lock("pull:a", wait=0.2) is None
    other = store.lock("pull:b")
    assert other is not None
    other.release()
    lock.release()
    lock.release()  # idempotent
    with store.lock("pull:a") as again:
        assert again is not None
        assert store.lock("pull:a") is None
    assert store.lock("pull:a") is not None


def test_a_waiting_taker_gets_the_lock_when_released(store):
    held = store.lock("pull:a")
    assert held is not None
    started = threading.Event()
    got = []

    def waiter() -> None:
        started.set()
        lock = store.lock("pull:a", wait=120)
        got.append(lock)
        if lock is not None:
            lock.release()

    thread = threading.Thread(target=waiter)
    thread.start()
    started.wait()
    held.release()
    thread.join()
    assert got and got[0] is not None


HOLDER = r"""
import sys
from kfcli.core.store import open_store
store = open_store(sys.argv[1])
lock = store.lock(sys.argv[2])
print("held" if lock else "refused", flush=True)
sys.stdin.read()
"""


@pytest.mark.process
def test_a_killed_holder_releases_its_lock(store, store_url):
    proc = run_python(HOLDER, store_url, "pull:killed", stdin=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == "held", proc.stderr.read()
        assert store.lock("pull:killed") is None
    finally:
        proc.kill()
        proc.wait()
    lock = store.lock("pull:killed", wait=120)
    assert lock is not None
    lock.release()


# ---------------------------------------------------------------------------- consumers


def test_consumer_positions_only_move_forward(store):
    assert store.consumer_position(CORP, "bot", KFID) is None
    store.set_consumer_position(CORP, "bot", KFID, 5)
    store.set_consumer_position(CORP, "bot", KFID, 3)
    assert store.consumer_position(CORP, "bot", KFID) == 5
    store.set_consumer_position(CORP, "bot", KFID, 9)
    store.set_consumer_position(CORP, "bot", "wkother", 2)
    store.set_consumer_position(CORP, "audit", KFID, 1)
    assert store.consumer_position(CORP, "bot", KFID) == 9
    assert store.consumer_position(CORP, "bot", "wkother") == 2
    assert store.consumer_position(CORP, "audit", KFID) == 1
    assert store.consumer_position("wwother", "bot", KFID) is None



def test_consumers_are_listed_with_how_far_behind_they_are(store):
    committed = store.commit_page(CORP, KFID, expected=None, cursor="c1",
                                  messages=[msg(f"m{i}") for i in range(5)], owner=None)
    seqs = [r.seq for r in committed.rows]
    store.set_consumer_position(CORP, "bot", KFID, seqs[1])
    store.set_consumer_position(CORP, "audit", KFID, seqs[-1])
    listed = {c.name: c for c in store.consumers(CORP)}
    assert [c.name for c in store.consumers(CORP)] == ["audit", "bot"]
    assert listed["bot"].behind == 3 and listed["bot"].position == seqs[1]
    assert listed["audit"].behind == 0 and listed["audit"].open_kfid == KFID
    assert listed["bot"].as_dict()["updated_at"] > 0
    assert store.consumers("wwother") == []

# ---------------------------------------------------------------------------- reading


def test_status(store):
    store.commit_page(CORP, "wkb", expected=None, cursor="c1",
                      messages=[msg("b1", send_time=30), msg("b2", send_time=10)], owner="o")
    store.commit_page(CORP, "wka", expected=None, cursor="c1",
                      messages=[msg("a1", send_time=7)], owner=None)
    store.request_pull(CORP, "wkc", token=None)
    store.commit_page("wwother", "wkz", expected=None, cursor="c", messages=[msg("z")],
                      owner=None)
    rows = store.status(CORP)
    assert [s.open_kfid for s in rows] == ["wka", "wkb", "wkc"]
    a, b, c = rows
    assert (a.messages, a.oldest, a.newest, a.cursor, a.pending_outbox) == (1, 7, 7, "c1", 0)
    assert (b.messages, b.oldest, b.newest, b.cursor, b.pending_outbox) == (2, 10, 30, "c1", 1)
    assert (c.messages, c.oldest, c.newest, c.cursor, c.pending_outbox) == (0, None, None,
                                                                            None, 0)
    assert c.cursor_at is None and c.last_pull_at is None
    assert b.as_dict()["has_cursor"] is True and c.as_dict()["has_cursor"] is False
    assert all(type(getattr(b, f)) is int for f in ("messages", "oldest", "newest",
                                                    "pending_outbox"))
    assert store.status("wwnobody") == []


@pytest.fixture
def history(store):
    """Two accounts, three customers, send_time 100, 110, ... in pages of five."""
    model = []
    for account in ("wk1", "wk2"):
        expected = None
        for page in range(4):
            batch = []
            for i in range(5):
                n = page * 5 + i
                m = msg(f"{account}-{n}", customer=f"wm{n % 3}", send_time=100 + 10 * n)
                batch.append(m)
            got = store.commit_page(CORP, account, expected=expected, cursor=f"c{page}",
                                    messages=batch, owner=None)
            expected = f"c{page}"
            model += [(r.seq, account, m.external_userid, m.send_time, r.text)
                      for r, m in zip(got.rows, batch, strict=True)]
    return store, model


def test_messages_filters(history):
    store, model = history

    def expect(open_kfid=None, customer=None, since=None, until=None, after_seq=0,
               limit=None, newest=False):
        rows = [(seq, text) for seq, account, cust, sent, text in sorted(model)
                if (open_kfid is None or account == open_kfid)
                and (customer is None or cust == customer)
                and (since is None or sent >= since) and (until is None or sent < until)
                and seq > after_seq]
        if limit is not None:
            rows = rows[-limit:] if newest else rows[:limit]
            if limit == 0:
                rows = []
        return rows

    cases = [
        {}, {"open_kfid": "wk1"}, {"open_kfid": "wk2", "customer": "wm1"},
        {"customer": "wm2"}, {"open_kfid": "wk1", "since": 150},
        {"open_kfid": "wk1", "until": 150}, {"open_kfid": "wk1", "since": 120, "until": 160},
        {"open_kfid": "wk1", "after_seq": model[7][0]}, {"open_kfid": "wk1", "limit": 3},
        {"open_kfid": "wk1", "limit": 3, "newest": True},
        {"open_kfid": "wk2", "customer": "wm0", "since": 130, "limit": 2, "newest": True},
        {"open_kfid": "wk1", "limit": 0}, {"open_kfid": "wk1", "limit": 100, "newest": True},
        {"open_kfid": "wknone"},
    ]
    for case in cases:
        got = [(r.seq, r.text) for r in store.messages(CORP, **case)]
        assert got == expect(**case), case
    assert list(store.messages("wwother")) == []

    wk1 = [seq for seq, account, *_ in model if account == "wk1"]
    assert store.last_seq(CORP, "wk1") == max(wk1)
    assert store.last_seq(CORP) == max(seq for seq, *_ in model)
    assert store.last_seq(CORP, "wknone") == 0 and store.last_seq("wwother") == 0
    assert store.seq_before(CORP, "wk1", 150) == max(
        seq for seq, account, _c, sent, _t in model if account == "wk1" and sent < 150)
    assert store.seq_before(CORP, "wk1", 100) == 0


def test_messages_stream_and_can_stop_early(store):
    expected = None
    for page in range(3):
        batch = [msg(f"m{page * 1000 + i}") for i in range(1000)]
        store.commit_page(CORP, KFID, expected=expected, cursor=f"c{page}", messages=batch,
                          owner=None)
        expected = f"c{page}"
    rows = store.messages(CORP, KFID)
    assert texts([next(rows), next(rows)]) == ["m0", "m1"]
    rows.close()
    for i, _row in enumerate(store.messages(CORP, KFID)):
        if i == 1500:
            break
    assert sum(1 for _ in store.messages(CORP, KFID)) == 3000
    # Still usable for writing after abandoned reads.
    store.commit_page(CORP, KFID, expected="c2", cursor="c3", messages=[msg("last")],
                      owner=None)
    assert texts(store.messages(CORP, KFID, limit=1, newest=True)) == ["last"]


# ---------------------------------------------------------------------------- concurrency


def test_threads_share_one_store(store):
    errors: list[BaseException] = []
    done = threading.Event()
    seen: list[int] = []  # what a reader following the whole corp by seq saw

    def writer(t: int) -> None:
        try:
            account, expected = f"wk{t}", None
            for page in range(8):
                batch = [msg(f"t{t}-{page}-{i}") for i in range(25)]
                got = store.commit_page(CORP, account, expected=expected, cursor=f"c{page}",
                                        messages=batch, owner=f"thread:{t}")
                assert texts(got.rows) == [json.loads(m.text)["msgid"] for m in batch]
                expected = f"c{page}"
                assert sum(1 for _ in store.messages(CORP, account)) == 25 * (page + 1)
                assert store.cursor(CORP, account) == expected
        except BaseException as exc:
            errors.append(exc)

    def follower() -> None:
        try:
            last = 0
            while True:
                finished = done.is_set()
                for row in store.messages(CORP, after_seq=last):
                    seen.append(row.seq)
                    last = row.seq
                if finished:
                    return
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
    reader = threading.Thread(target=follower)
    reader.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    reader.join()
    assert not errors, errors
    stored = list(store.messages(CORP))
    assert len(stored) == 8 * 8 * 25
    # Seqs are handed out in commit order: a follower never misses one.
    assert seen == [r.seq for r in stored]
    for t in range(8):
        assert sum(1 for _ in store.messages(CORP, f"wk{t}")) == 200
        assert len(store.outbox(CORP, f"wk{t}", owner_prefix="thread:")) == 8


PULLER = r"""
import json, sys
from kfcli.core.store import Incoming, open_store
url, me, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
store = open_store(url)
new = []
for r in range(rounds):
    lock = store.lock("pull:wwcorp:wk", wait=300)
    assert lock is not None
    with lock:
        cursor = store.cursor("wwcorp", "wk")
        start = (me * 7 + r * 13) % 60
        page = [Incoming(f"m{i}", f"wm{i % 3}", "", 3, "text", i, json.dumps({"msgid": f"m{i}"}))
                for i in range(start, start + 40)]
        got = store.commit_page("wwcorp", "wk", expected=cursor, cursor=str(int(cursor or 0) + 1),
                                messages=page, owner=None)
        new += [row.text for row in got.rows]
store.close()
print(json.dumps(new))
"""


@pytest.mark.process
def test_processes_pulling_under_the_lock_store_each_message_once(store_url):
    # The workers also race to create the schema of a store nobody opened yet.
    procs = [run_python(PULLER, store_url, str(me), "5") for me in range(6)]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        outputs.append(json.loads(out))
    with open_store(store_url) as store:
        stored = texts(store.messages("wwcorp", "wk"))
        assert store.cursor("wwcorp", "wk") == "30"
    expected = {f"m{i}" for me in range(6) for r in range(5)
                for i in range((me * 7 + r * 13) % 60, (me * 7 + r * 13) % 60 + 40)}
    assert sorted(stored) == sorted(expected)  # each exactly once
    new = [json.loads(t)["msgid"] for out in outputs for t in out]
    assert sorted(new) == sorted(expected)  # and each reported new to exactly one committer


def test_a_forked_child_reconnects(store):
    store.commit_page(CORP, KFID, expected=None, cursor="c1", messages=[msg("parent")],
                      owner=None)
    held = store.lock("pull:parent")
    assert held is not None
    pid = os.fork()
    if pid == 0:  # the child: exit status 0 only if everything works
        code = 1
        try:
            held.release()  # the parent's lock: a no-op here
            assert store.lock("pull:parent") is None
            store.commit_page(CORP, KFID, expected="c1", cursor="c2",
                              messages=[msg("child")], owner=None)
            assert texts(store.messages(CORP, KFID)) == ["parent", "child"]
            store.close()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # The parent's connections and lock survived the child.
    assert store.lock("pull:parent") is None
    held.release()
    assert texts(store.messages(CORP, KFID)) == ["parent", "child"]
    store.commit_page(CORP, KFID, expected="c2", cursor="c3", messages=[msg("parent2")],
                      owner=None)
    assert store.cursor(CORP, KFID) == "c3"


# ---------------------------------------------------------------------------- PostgreSQL


def _pg_url_with(url: str, *, password: str | None = None, dbname: str | None = None) -> str:
    parts = urlsplit(url)
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    netloc = user + (f":{password}" if password is not None else "") + "@" + hostport
    return parts._replace(netloc=netloc, path="/" + (dbname or parts.path.lstrip("/"))).geturl()


def _assert_hidden(err, password: str) -> None:
    shown = " ".join([str(err), err.message, err.hint or "", json.dumps(err.to_dict()),
                      repr(err)])
    assert password not in shown


def test_pg_unreachable_server_is_a_network_error():
    pytest.importorskip("psycopg")
    password = "unreachable-secret-pw"
    with pytest.raises(NetworkError) as err:
        open_store(f"postgresql://kfcli:{password}@127.0.0.1:1/kfcli")
    assert err.value.exit_code == 6
    assert "127.0.0.1:1" in err.value.message
    assert "PostgreSQL runs" in err.value.hint
    _assert_hidden(err.value, password)


def test_pg_wrong_password_is_a_config_error(pg_url):
    password = "wrong-secret-password"
    with pytest.raises(ConfigError) as err:
        open_store(_pg_url_with(pg_url, password=password))
    assert err.value.exit_code == 3 and "login" in err.value.message
    _assert_hidden(err.value, password)
    _assert_hidden(err.value, os.environ.get("PGPASSWORD") or "no password set")


def test_pg_missing_database_is_a_config_error(pg_url):
    with pytest.raises(ConfigError) as err:
        open_store(_pg_url_with(pg_url, password=os.environ.get("PGPASSWORD"),
                                dbname="kfcli_no_such_db"))
    assert err.value.exit_code == 3 and "does not exist" in err.value.message
    _assert_hidden(err.value, os.environ.get("PGPASSWORD") or "no password set")


def test_pg_the_password_is_never_shown(pg_url):
    password = urlsplit(pg_url).password
    with open_store(pg_url) as store:
        for shown in (store.display_url, repr(store)):
            assert "****" in shown or not password
            assert not password or password not in shown


WITHOUT_PSYCOPG = r"""
import json, sys
sys.modules["psycopg"] = None
from kfcli.core.errors import KfError
from kfcli.core.store import open_store
try:
    open_store("postgresql://kfcli:some-secret-pw@127.0.0.1:1/kfcli")
except KfError as exc:
    print(json.dumps({"code": exc.exit_code, **exc.to_dict()}))
"""


@pytest.mark.process
def test_pg_without_psycopg_says_what_to_install():
    proc = run_python(WITHOUT_PSYCOPG)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    result = json.loads(out)
    assert result["code"] == 3 and result["type"] == "config"
    assert "pip install 'kfcli[postgres]'" in result["hint"]
    assert "some-secret-pw" not in out


def test_pg_a_connection_lost_mid_read_is_a_network_error(pg_url):
    with open_store(pg_url) as store:
        batch = [msg(f"m{i}") for i in range(1500)]
        store.commit_page(CORP, KFID, expected=None, cursor="c1", messages=batch, owner=None)
        rows = store.messages(CORP, KFID)
        next(rows)
        with pgutil.admin() as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                         "datname = %s AND pid <> pg_backend_pid()",
                         (urlsplit(pg_url).path.lstrip("/"),))
        with pytest.raises(NetworkError) as err:
            list(rows)  # the second batch needs the server
        assert err.value.exit_code == 6
        # The pool replaces the broken connections.
        assert sum(1 for _ in store.messages(CORP, KFID)) == 1500


def test_pg_a_restart_costs_at_most_one_failed_commit(pg_url):
    with open_store(pg_url) as store:
        store.commit_page(CORP, KFID, expected=None, cursor="c1", messages=[msg("before")],
                          owner=None)
        held = store.lock("pull:restart")
        assert held is not None
        pgutil.restart_server()
        failures = 0
        for _ in range(3):
            try:
                got = store.commit_page(CORP, KFID, expected="c1", cursor="c2",
                                        messages=[msg("after")], owner=None)
                break
            except NetworkError:
                failures += 1
        assert failures <= 1
        assert texts(got.rows) == ["after"]
        held.release()  # its connection died with the server: nothing to do, no error
        lock = store.lock("pull:restart")  # and the lock with it
        assert lock is not None
        lock.release()
        assert texts(store.messages(CORP, KFID)) == ["before", "after"]
        assert store.cursor(CORP, KFID) == "c2"


# ---------------------------------------------------------------------------- SQLite


def test_sqlite_a_file_that_is_not_a_store_is_left_alone(tmp_path):
    path = tmp_path / "notes.db"
    content = b"these are my notes, not a database\n" * 200
    path.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        open_store(str(path))
    assert err.value.exit_code == 3 and "not a kfcli store" in err.value.message
    assert path.read_bytes() == content


READ_ONLY = r"""
import json, os, sys
from kfcli.core.errors import KfError
from kfcli.core.store import Incoming, open_store
if os.access(sys.argv[1], os.W_OK):
    print(json.dumps({"code": "writable"}))
    sys.exit()
try:
    store = open_store(sys.argv[1])
    store.commit_page("wwcorp", "wk", expected=None, cursor="c",
                      messages=[Incoming("m", "", "", 3, "text", 1, "{}")], owner=None)
except KfError as exc:
    print(json.dumps({"code": exc.exit_code, **exc.to_dict()}))
else:
    print(json.dumps({"code": 0}))
"""


def _without_root_overrides() -> None:
    """In the child before exec: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the
    bounding set, so that even root obeys file modes after exec."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        libc.prctl(24, capability, 0, 0, 0)  # PR_CAPBSET_DROP


@pytest.mark.process
def test_sqlite_a_read_only_store_is_a_config_error(tmp_path):
    directory = tmp_path / "ro"
    directory.mkdir()
    path = directory / "store.db"
    with open_store(str(path)) as store:
        store.commit_page(CORP, KFID, expected=None, cursor="c", messages=[msg("a")],
                          owner=None)
    path.chmod(0o444)
    directory.chmod(0o555)
    try:
        # Root writes to any file whatever its mode, unless it gives up the capability.
        kwargs = {"preexec_fn": _without_root_overrides} if os.geteuid() == 0 else {}
        proc = run_python(READ_ONLY, str(path), **kwargs)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        result = json.loads(out)
        if result["code"] == "writable":
            pytest.skip("cannot make a file read-only for this user here")
        assert result["code"] == 3 and result["type"] == "config", result
    finally:
        directory.chmod(0o700)


def _open_fresh(path: str, barrier, results) -> None:
    barrier.wait()
    try:
        from kfcli.core.store import open_store

        open_store(path).close()
        results.put("ok")
    except Exception as exc:  # noqa: BLE001 - handed to the test
        results.put(repr(exc))


@pytest.mark.process
def test_processes_creating_one_sqlite_store_at_once_all_succeed(tmp_path):
    """gunicorn's workers start together on a store that does not exist yet: the switch to
    WAL, which needs the database to itself, was answered SQLITE_BUSY at once (not after the
    busy timeout) to all but one, and a worker failed to boot ("stayed locked for 60 s")."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    for round_ in range(6):
        path = str(tmp_path / f"store{round_}.db")
        barrier, results = context.Barrier(4), context.Queue()
        workers = [context.Process(target=_open_fresh, args=(path, barrier, results))
                   for _ in range(4)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=120)
        assert [results.get(timeout=10) for _ in workers] == ["ok"] * 4
