"""The migration runner (kfcli.core.store.migrations): numbered steps per dialect, applied
after the store's version, in order, in one transaction; the same runner for SQLite and
PostgreSQL. A store left at any earlier version (by running the steps up to it, as a build
of that version did) migrates to exactly the schema of a new store, its data filled in."""

from __future__ import annotations

import json
import sqlite3
from contextlib import contextmanager

import pytest

from kfcli.core.errors import KfError
from kfcli.core.store import SCHEMA_VERSION, open_store
from kfcli.core.store.base import SCHEMA_STEPS
from kfcli.core.store.migrations import check_steps, pending
from tests import pgutil
from tests.core.test_store import is_pg

CORP = "wwcorp"
KFID = "wkaccount"
TEXT = {"msgid": "t1", "msgtype": "text", "origin": 3, "open_kfid": KFID,
        "external_userid": "wmA", "send_time": 1000, "text": {"content": "申请退款 Refund"}}
IMAGE = {"msgid": "i1", "msgtype": "image", "origin": 3, "open_kfid": KFID,
         "external_userid": "wmA", "send_time": 1001, "image": {"media_id": "MEDIA1"}}


def steps_of(url: str):
    if is_pg(url):
        from kfcli.core.store import postgres

        return postgres.MIGRATIONS
    from kfcli.core.store import sqlite

    return sqlite.MIGRATIONS


@contextmanager
def connection(url: str):
    """A connection behind kfcli's back, in a transaction committed at the end."""
    if is_pg(url):
        import psycopg

        with psycopg.connect(url) as conn:  # commits on leaving the block
            yield conn
    else:
        conn = sqlite3.connect(url, isolation_level=None)
        conn.execute("BEGIN")
        try:
            yield conn
            conn.execute("COMMIT")
        finally:
            conn.close()


def run_steps(conn, url: str, numbers) -> None:
    for number in numbers:
        for operation in steps_of(url)[number]:
            if isinstance(operation, str):
                conn.execute(operation)
            else:
                operation(conn)


def build(url: str, version: int) -> None:
    """A store as builds of each schema up to `version` left it: two messages (a text, an
    image), a cursor and a consumer position stored by a build of schema 1, then the steps
    up to `version`, as the builds of each schema ran them in turn."""
    pg = is_pg(url)
    mark = "%s" if pg else "?"
    with connection(url) as conn:
        run_steps(conn, url, [1])
        conn.execute(f"INSERT INTO meta (key, value) VALUES ('schema_version', {mark})",
                     (str(version),))
        if pg:
            conn.execute("INSERT INTO accounts (corp_id, open_kfid, cursor) VALUES "
                         "(%s, %s, 'c1')", (CORP, KFID))
            insert = ("INSERT INTO messages (corp_id, open_kfid, msgid, external_userid, "
                      "origin, msgtype, send_time, stored_at, body) VALUES "
                      f"('{CORP}', '{KFID}', %s, 'wmA', 3, %s, %s, 1.0, %s)")
        else:
            conn.execute("INSERT INTO corps (id, corp_id) VALUES (1, ?)", (CORP,))
            conn.execute("INSERT INTO accounts (id, corp_id, open_kfid, cursor) VALUES "
                         "(1, ?, ?, 'c1')", (CORP, KFID))
            insert = ("INSERT INTO messages (corp, account, msgid, external_userid, origin, "
                      "msgtype, send_time, stored_at, body) VALUES "
                      "(1, 1, ?, 'wmA', 3, ?, ?, 1.0, ?)")
        for doc in (TEXT, IMAGE):
            conn.execute(insert, (doc["msgid"], doc["msgtype"], doc["send_time"],
                                  json.dumps(doc, ensure_ascii=False)))
        conn.execute("INSERT INTO consumers (corp_id, name, open_kfid, position, updated_at) "
                     f"VALUES ({mark}, 'bot', {mark}, 1, 1.0)", (CORP, KFID))
        run_steps(conn, url, range(2, version + 1))


def schema(url: str) -> object:
    """The store's tables (their columns), indexes, triggers, constraints and functions."""
    if is_pg(url):
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            return [conn.execute(sql).fetchall() for sql in (
                "SELECT table_name, column_name, ordinal_position, data_type, column_default, "
                "is_nullable FROM information_schema.columns WHERE table_schema = 'public' "
                "ORDER BY 1, 3",
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
                "ORDER BY 1",
                "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM "
                "pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2",
                "SELECT proname, pg_get_functiondef(oid) FROM pg_proc WHERE "
                "pronamespace = 'public'::regnamespace ORDER BY 1",
                "SELECT extname FROM pg_extension ORDER BY 1")]
    conn = sqlite3.connect(url)
    try:
        found = {}
        for kind, name, sql in conn.execute("SELECT type, name, sql FROM sqlite_master "
                                            "ORDER BY name"):
            if kind == "table" and not (sql or "").startswith("CREATE VIRTUAL"):
                found[name] = conn.execute(f"PRAGMA table_xinfo('{name}')").fetchall()
            else:
                found[name] = (kind, " ".join((sql or "").split()))
        return found
    finally:
        conn.close()


def test_each_dialect_has_a_step_for_every_version_described():
    from kfcli.core.store import postgres, sqlite

    for steps in (sqlite.MIGRATIONS, postgres.MIGRATIONS):
        check_steps(steps)
        assert sorted(steps) == list(range(1, SCHEMA_VERSION + 1)) == sorted(SCHEMA_STEPS)
    with pytest.raises(AssertionError):
        check_steps({n: () for n in range(1, SCHEMA_VERSION)})  # the last one missing
    assert pending(0) == list(range(1, SCHEMA_VERSION + 1))
    assert pending(SCHEMA_VERSION - 1) == [SCHEMA_VERSION]
    assert pending(SCHEMA_VERSION) == pending(SCHEMA_VERSION + 1) == []


@pytest.mark.parametrize("version", range(1, SCHEMA_VERSION))
def test_a_store_of_every_earlier_version_migrates_to_the_schema_of_a_new_one(
        empty_store_url, version, tmp_path):
    build(empty_store_url, version)
    with open_store(empty_store_url, migrate=False) as store:
        assert store.schema_version() == version
        assert store.migrate() == (version, SCHEMA_VERSION)
        assert store.migrate() == (SCHEMA_VERSION, SCHEMA_VERSION)  # done: nothing again
        assert store.schema_notes()["compatible_from"]
        # What older builds did not fill in is filled in: search, media, consumers.
        assert [json.loads(r.text)["msgid"] for r in store.search(CORP, "退款")] == ["t1"]
        assert [json.loads(r.text)["msgid"] for r in store.search(CORP, "退")] == ["t1"]
        assert [(i.msgid, i.state) for i in store.media_due(CORP)] == [("i1", "pending")]
        assert store.cursor(CORP, KFID) == "c1"
        assert store.consumer_position(CORP, "bot", KFID) == 1
        assert store.unanswered(CORP, "bot", KFID, upto=2, since=0) == 1
        store.record_sent(CORP, KFID, "wmA", "sent1")
        assert store.was_sent(CORP, KFID, "sent1")
    if is_pg(empty_store_url):
        with pgutil.fresh_database(migrated=False) as new:
            open_store(new).close()
            assert schema(empty_store_url) == schema(new)
    else:
        new = str(tmp_path / "new.db")
        open_store(new).close()
        assert schema(empty_store_url) == schema(new)


def test_a_failed_step_leaves_the_store_at_its_version(empty_store_url, monkeypatch):
    build(empty_store_url, SCHEMA_VERSION - 1)
    before = schema(empty_store_url)
    steps = steps_of(empty_store_url)
    last = steps[SCHEMA_VERSION]

    def fail(conn) -> None:
        raise RuntimeError("a step that fails halfway")

    monkeypatch.setitem(steps, SCHEMA_VERSION, (*last, fail))
    with pytest.raises(RuntimeError, match="halfway"):
        open_store(empty_store_url)
    # All or nothing: the statements of the step that ran before the failure are undone.
    assert schema(empty_store_url) == before
    with open_store(empty_store_url, migrate=False) as store:
        assert store.schema_version() == SCHEMA_VERSION - 1
    monkeypatch.setitem(steps, SCHEMA_VERSION, last)
    with open_store(empty_store_url) as store:
        assert store.schema_version() == SCHEMA_VERSION


def test_a_store_of_a_schema_3_build_without_the_sends_table_gets_it(empty_store_url):
    """Builds of schema 3 before the reply window check did not create `sent`."""
    build(empty_store_url, 3)
    with connection(empty_store_url) as conn:
        conn.execute("DROP TABLE sent")
    with open_store(empty_store_url) as store:
        store.record_sent(CORP, KFID, "wmA", "sent1")
        assert store.was_sent(CORP, KFID, "sent1")


def test_a_store_error_in_a_step_is_a_kfcli_error(empty_store_url, monkeypatch):
    build(empty_store_url, SCHEMA_VERSION - 1)
    steps = steps_of(empty_store_url)
    monkeypatch.setitem(steps, SCHEMA_VERSION,
                        (*steps[SCHEMA_VERSION], "CREATE TABLE meta (key text)"))
    with pytest.raises(KfError, match="meta"):
        open_store(empty_store_url)
    with open_store(empty_store_url, migrate=False) as store:
        assert store.schema_version() == SCHEMA_VERSION - 1
