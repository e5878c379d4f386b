"""Search and retention in the store (`Store.search`, `Store.prune`), on both backends: SQLite
in a temporary file, PostgreSQL in a fresh database of the server `pg_virtualenv` provides
(skipped without one, see tests/pgutil.py). Also the in-place upgrade of a version-1 store."""

from __future__ import annotations

import json

import pytest

from kfcli.core.errors import ConfigError
from kfcli.core.store import SCHEMA_VERSION, Incoming, open_store
from kfcli.core.store.base import search_text
from tests import pgutil
from tests.core.test_store import is_pg, raw

CORP = "wwcorp"
KFID = "wkaccount"


def text_msg(msgid: str, content: str, *, customer: str = "wmA", send_time: int = 1000,
             msgtype: str = "text", body: dict | None = None) -> Incoming:
    doc = {"msgid": msgid, "open_kfid": KFID, "external_userid": customer, "send_time":
           send_time, "origin": 3, "msgtype": msgtype,
           msgtype: body if body is not None else {"content": content}}
    return Incoming.from_api(doc)


def ids(rows) -> list[str]:
    return [json.loads(r.text)["msgid"] for r in rows]


def commit(store, messages, *, account: str = KFID, expected=None, cursor="c1"):
    return store.commit_page(CORP, account, expected=expected, cursor=cursor,
                             messages=messages, owner=None)


CONVERSATION = [
    text_msg("m1", "你好，我想申请退款", customer="wmA", send_time=1000),
    text_msg("m2", "Please REFUND my order", customer="wmB", send_time=2000),
    text_msg("m3", "退", customer="wmA", send_time=3000),
    text_msg("m4", "发货了吗？", customer="wmB", send_time=4000),
    text_msg("m5", "退款什么时候到账", customer="wmA", send_time=5000),
    text_msg("m6", "50% off_sale \\o/", customer="wmB", send_time=6000),
]


# ---------------------------------------------------------------------------- search


def test_chinese_substrings_of_any_length_newest_first(store):
    commit(store, CONVERSATION)
    assert ids(store.search(CORP, "申请退款")) == ["m1"]  # four characters: the index
    assert ids(store.search(CORP, "退款")) == ["m5", "m1"]  # two: shorter than a trigram
    assert ids(store.search(CORP, "退")) == ["m5", "m3", "m1"]  # one
    assert ids(store.search(CORP, "退款什么时候到账")) == ["m5"]
    assert ids(store.search(CORP, "申请退款吗")) == []  # every trigram but not the text
    assert ids(store.search(CORP, "退款", oldest_first=True)) == ["m1", "m5"]


def test_latin_is_case_insensitive_and_like_characters_are_literal(store):
    commit(store, CONVERSATION)
    for query in ("refund", "REFUND", "Refund", "re", "R"):
        assert "m2" in ids(store.search(CORP, query)), query
    assert ids(store.search(CORP, "50%")) == ["m6"]
    assert ids(store.search(CORP, "f_s")) == ["m6"]
    assert ids(store.search(CORP, "0%")) == ["m6"]
    assert ids(store.search(CORP, "\\o/")) == ["m6"]
    assert ids(store.search(CORP, "%")) == ["m6"]
    assert ids(store.search(CORP, "_")) == ["m6"]
    assert ids(store.search(CORP, '"')) == []
    assert ids(store.search(CORP, '"退款"')) == []
    assert ids(store.search(CORP, "  退款  ")) == ["m5", "m1"]  # surrounding blanks dropped


def test_filters_limit_and_accounts(store):
    commit(store, CONVERSATION)
    commit(store, [text_msg("o1", "我也要退款", customer="wmA", send_time=2500)],
           account="wkother")
    assert ids(store.search(CORP, "退款")) == ["m5", "o1", "m1"]
    assert ids(store.search(CORP, "退款", open_kfid=KFID)) == ["m5", "m1"]
    assert ids(store.search(CORP, "退款", open_kfid="wkother")) == ["o1"]
    assert ids(store.search(CORP, "退款", open_kfid="wknever")) == []
    assert ids(store.search("wwother", "退款")) == []
    assert ids(store.search(CORP, "退", customer="wmA", open_kfid=KFID)) == ["m5", "m3", "m1"]
    assert ids(store.search(CORP, "re", customer="wmA")) == []
    assert ids(store.search(CORP, "退", since=3000)) == ["m5", "m3"]
    assert ids(store.search(CORP, "退", until=3000)) == ["o1", "m1"]
    assert ids(store.search(CORP, "退", since=2000, until=5000)) == ["m3", "o1"]
    assert ids(store.search(CORP, "退", limit=2)) == ["m5", "m3"]
    assert ids(store.search(CORP, "申请退款", limit=0)) == []
    assert ids(store.search(CORP, "退款", limit=1, oldest_first=True)) == ["m1"]


def test_empty_query_is_refused(store):
    for query in ("", "   ", "\n\t"):
        with pytest.raises(ValueError):
            list(store.search(CORP, query))


def test_menus_links_and_other_titles_are_searchable(store):
    commit(store, [
        text_msg("menu", "", msgtype="msgmenu", body={
            "head_content": "请选择", "list": [
                {"type": "click", "click": {"id": "1", "content": "申请售后"}},
                {"type": "view", "view": {"url": "https://x", "content": "查看物流"}}],
            "tail_content": "谢谢"}),
        text_msg("link", "", msgtype="link", body={"title": "Spring Sale 春季促销",
                                                    "desc": "全场八折", "url": "https://x"}),
        text_msg("mini", "", msgtype="miniprogram", body={"title": "会员中心", "appid": "wx1"}),
        text_msg("img", "", msgtype="image", body={"media_id": "MEDIA售后"}),
    ])
    assert ids(store.search(CORP, "售后")) == ["menu"]
    assert ids(store.search(CORP, "查看物流")) == ["menu"]
    assert ids(store.search(CORP, "spring sale")) == ["link"]
    assert ids(store.search(CORP, "八折")) == ["link"]
    assert ids(store.search(CORP, "会员")) == ["mini"]
    assert ids(store.search(CORP, "media")) == []  # ids are not text


def test_a_duplicate_is_indexed_once_and_a_text_given_as_is_is_searchable(store):
    commit(store, CONVERSATION[:2])
    commit(store, CONVERSATION[:2], expected="c1", cursor="c2")
    assert ids(store.search(CORP, "申请退款")) == ["m1"]
    # An Incoming built without a search text (a caller of the library) is worked out on commit.
    bare = Incoming("x1", "wmA", "", 3, "text", 1, json.dumps(
        {"msgid": "x1", "msgtype": "text", "text": {"content": "没有索引的退款"}},
        ensure_ascii=False))
    commit(store, [bare], expected="c2", cursor="c3")
    assert ids(store.search(CORP, "索引的退款")) == ["x1"]


def test_search_text():
    assert search_text({"msgtype": "text", "text": {"content": "Hello 世界"}}) == "hello 世界"
    assert search_text({"msgtype": "image", "image": {"media_id": "X"}}) == ""
    assert search_text({"msgtype": "event", "event": {"event_type": "enter_session",
                                                      "scene": "Spring"}}) == "spring"
    assert search_text({"msgtype": None}) == ""


# ---------------------------------------------------------------------------- upgrade


def _downgrade_to_v1(url: str) -> None:
    """Make the store what kfcli with schema version 1 wrote: no search text, no index."""
    if is_pg(url):
        raw(url, "DROP INDEX messages_search", "ALTER TABLE messages DROP COLUMN search_text",
            "DROP EXTENSION pg_trgm", "UPDATE meta SET value = '1' WHERE key = "
            "'schema_version'")
    else:
        raw(url, "DROP TRIGGER messages_fts_delete",
            "DROP TABLE messages_fts", "ALTER TABLE messages DROP COLUMN search",
            "UPDATE meta SET value = '1' WHERE key = 'schema_version'")


def test_a_version_1_store_is_upgraded_in_place_and_backfilled(store_url):
    assert SCHEMA_VERSION >= 3
    with open_store(store_url) as store:
        commit(store, CONVERSATION)
        store.set_consumer_position(CORP, "bot", KFID, 3)
    _downgrade_to_v1(store_url)
    with open_store(store_url) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert ids(store.search(CORP, "申请退款")) == ["m1"]
        assert ids(store.search(CORP, "退款")) == ["m5", "m1"]
        assert ids(store.search(CORP, "refund")) == ["m2"]
        assert store.cursor(CORP, KFID) == "c1"
        assert store.consumer_position(CORP, "bot", KFID) == 3
        commit(store, [text_msg("m7", "第二次退款申请", send_time=7000)], expected="c1",
               cursor="c2")
        assert ids(store.search(CORP, "退款申请")) == ["m7"]
        assert ids(store.search(CORP, "退款")) == ["m7", "m5", "m1"]
    if not is_pg(store_url):
        raw(store_url, "INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')")


def test_pg_without_pg_trgm_the_error_names_it(pg_empty_url, monkeypatch):
    from kfcli.core.store import postgres

    steps = [postgres.Extension("pg_trgm_not_installed", "search")
             if isinstance(op, postgres.Extension) else op for op in postgres.MIGRATIONS[2]]
    monkeypatch.setitem(postgres.MIGRATIONS, 2, steps)
    with pytest.raises(ConfigError) as err:
        open_store(pg_empty_url)
    assert "pg_trgm" in err.value.message and "CREATE EXTENSION" in err.value.hint
    assert err.value.exit_code == 3


# ---------------------------------------------------------------------------- prune


def test_prune_removes_old_messages_per_account_and_keeps_the_index_in_step(store, store_url):
    commit(store, CONVERSATION)
    commit(store, [text_msg("o1", "旧的退款", send_time=1500), text_msg("o2", "新的退款",
                                                                        send_time=9000)],
           account="wkother")
    preview = store.prune(CORP, 3000, dry_run=True)
    assert preview.messages == {KFID: 2, "wkother": 1} and preview.total == 3
    assert len(list(store.messages(CORP))) == 8  # a dry run removes nothing
    done = store.prune(CORP, 3000)
    assert done.messages == {KFID: 2, "wkother": 1}
    assert done.as_dict()["messages"] == 3
    assert ids(store.messages(CORP, KFID)) == ["m3", "m4", "m5", "m6"]
    assert ids(store.search(CORP, "退款")) == ["o2", "m5"]
    assert ids(store.search(CORP, "我想申请退款")) == []
    assert store.prune(CORP, 3000).total == 0
    # New messages after a prune get new seqs, still searchable.
    commit(store, [text_msg("m9", "又一个退款")], expected="c1", cursor="c2")
    assert ids(store.search(CORP, "一个退款")) == ["m9"]
    if not is_pg(store_url):
        raw(store_url, "INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')")


def test_prune_keeps_pending_outbox_messages_consumers_and_unpulled_callbacks(store):
    done = store.commit_page(CORP, KFID, expected=None, cursor="c1",
                             messages=CONVERSATION[:2], owner="sync-1")
    assert done.outbox_id is not None
    commit(store, CONVERSATION[2:4], expected="c1", cursor="c2")
    store.set_consumer_position(CORP, "bot", KFID, 4)
    store.request_pull(CORP, KFID, token=None, callback={"CreateTime": "10", "Token": "t"})
    store.request_pull(CORP, "wknew", token=None, callback={"CreateTime": "10", "Token": "t"})
    result = store.prune(CORP, 2 * 10**9)
    assert result.messages == {KFID: 2}  # m3, m4; m1 and m2 still to be written out
    assert result.kept_pending == 2
    assert result.callbacks == 1  # wknew was never pulled: its first callback still counts
    assert ids(store.messages(CORP, KFID)) == ["m1", "m2"]
    assert [e.id for e in store.outbox(CORP, KFID, owner_prefix="sync")] == [done.outbox_id]
    assert store.consumer_position(CORP, "bot", KFID) == 4
    assert store.first_callback_time(CORP, "wknew") == 10
    assert store.first_callback_time(CORP, KFID) is None
    store.outbox_done([done.outbox_id])
    assert store.prune(CORP, 2 * 10**9).messages == {KFID: 2}
    assert list(store.messages(CORP)) == []
    store.set_consumer_position(CORP, "bot", KFID, 1)
    assert store.consumer_position(CORP, "bot", KFID) == 4


def test_sqlite_short_queries_use_the_index_and_fall_back_to_a_scan(tmp_path, monkeypatch):
    from kfcli.core.store import sqlite

    with open_store(str(tmp_path / "store.db")) as store:
        commit(store, CONVERSATION)
        plan = raw(str(tmp_path / "store.db"), "EXPLAIN QUERY PLAN SELECT term FROM "
                   "messages_fts_vocab WHERE term >= 'a' AND term < 'b'")
        assert "INDEX" in plan[0][-1]
        assert ids(store.search(CORP, "退")) == ["m5", "m3", "m1"]
        assert ids(store.search(CORP, "款")) == ["m5", "m1"]  # the last character of a text
        assert ids(store.search(CORP, "o/")) == ["m6"]
        monkeypatch.setattr(sqlite, "MAX_TERMS", 0)  # too many terms: a scan, same answers
        assert ids(store.search(CORP, "退")) == ["m5", "m3", "m1"]
        assert ids(store.search(CORP, "款")) == ["m5", "m1"]
        assert ids(store.search(CORP, "退", customer="wmA", limit=1)) == ["m5"]


# ---------------------------------------------------------------------------- short queries


def test_short_queries_at_either_end_across_pieces_with_filters(store):
    commit(store, [
        text_msg("s1", "发票已开", customer="wmA", send_time=1000),
        text_msg("s2", "请开发票", customer="wmB", send_time=2000),
        text_msg("s3", "", msgtype="link", customer="wmA", send_time=3000,
                 body={"title": "退货须知 OK", "desc": "款项原路返回", "url": "https://x"}),
        text_msg("s4", "Ok 发", customer="wmA", send_time=4000),
    ])
    assert ids(store.search(CORP, "发票")) == ["s2", "s1"]  # at the end, at the start
    assert ids(store.search(CORP, "发")) == ["s4", "s2", "s1"]
    assert ids(store.search(CORP, "退")) == ["s3"]  # the first character of a text
    assert ids(store.search(CORP, "回")) == ["s3"]  # the last
    assert ids(store.search(CORP, "款")) == ["s3"]  # the first of the second piece
    assert ids(store.search(CORP, "知款")) == []  # "知 ok\n款": not a substring
    assert ids(store.search(CORP, "k款")) == []  # "ok\n款": pieces are lines apart
    for query in ("ok", "OK", "Ok", "oK", "o", "K", " k "):
        assert ids(store.search(CORP, query)) == ["s4", "s3"], query
    assert ids(store.search(CORP, "发", customer="wmA")) == ["s4", "s1"]
    assert ids(store.search(CORP, "发", open_kfid=KFID, customer="wmB")) == ["s2"]
    assert ids(store.search(CORP, "发", open_kfid="wknever")) == []
    assert ids(store.search("wwother", "发")) == []
    assert ids(store.search(CORP, "发", since=2000)) == ["s4", "s2"]
    assert ids(store.search(CORP, "发", until=2000)) == ["s1"]
    assert ids(store.search(CORP, "发", limit=1)) == ["s4"]
    assert ids(store.search(CORP, "发票", limit=0)) == []
    assert ids(store.search(CORP, "发", limit=2, oldest_first=True)) == ["s1", "s2"]


def test_short_queries_find_exactly_the_substrings(store):
    """Every one- and two-character query over texts of a small alphabet (pieces on lines of
    their own, upper case, LIKE's special characters) finds what `in` finds, newest first."""
    import random

    from kfcli.core.store.base import search_query

    rng = random.Random(7)
    alphabet = ["退", "款", "发", "a", "B", "b", " ", "%", "_", "\\"]
    docs = []
    for i in range(120):
        pieces = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 5)))
                  for _ in range(3)]
        body = {"title": pieces[0], "desc": pieces[1], "content": pieces[2]}
        docs.append(text_msg(f"r{i}", "", msgtype="link", body=body,
                             customer=rng.choice(["wmA", "wmB"]),
                             send_time=rng.randint(1, 50)))
    commit(store, docs)
    texts = [(m.send_time, n, m.msgid, m.external_userid, m.searchable())
             for n, m in enumerate(docs)]
    newest = sorted(texts, reverse=True)
    queries = {search_query(a + b) for a in alphabet for b in ["", *alphabet]
               if (a + b).strip()}
    assert len(queries) == 72  # B and b are one letter
    for query in sorted(queries):
        expected = [msgid for _t, _n, msgid, _c, text in newest if query in text]
        assert ids(store.search(CORP, query)) == expected, query
        mine = [msgid for _t, _n, msgid, c, text in newest if query in text and c == "wmA"]
        assert ids(store.search(CORP, query, customer="wmA", limit=3)) == mine[:3], query


def test_pg_short_queries_use_their_index(pg_url, monkeypatch):
    import psycopg

    with open_store(pg_url) as store:
        commit(store, CONVERSATION)
        raw(pg_url, "INSERT INTO messages (corp_id, open_kfid, msgid, stored_at, body, "
            "search_text) SELECT 'wwcorp', 'wkaccount', 'bulk' || i, 0, '{}', CASE WHEN "
            "i % 1000 = 0 THEN '请开发票' ELSE '我想退货 ' || i END "
            "FROM generate_series(1, 20000) i", "ANALYZE messages")
        executed: list[tuple] = []
        execute = psycopg.ServerCursor.execute

        def recording(self, query, params=None, **kwargs):
            executed.append((query, params))
            return execute(self, query, params, **kwargs)

        monkeypatch.setattr(psycopg.ServerCursor, "execute", recording)
        assert len(list(store.search(CORP, "发票"))) == 20
        assert len(list(store.search(CORP, "发", limit=5))) == 5
        assert ids(store.search(CORP, "发", open_kfid=KFID, since=1)) == ["m4"]
    assert len(executed) == 3
    with psycopg.connect(pg_url) as conn:
        plans = ["\n".join(r[0] for r in conn.execute("EXPLAIN " + query, params))
                 for query, params in executed]
    assert all("Seq Scan on messages" not in plan for plan in plans), plans
    # Nor the trigram index, which holds nothing for them and is read whole.
    assert all("on messages_search " not in plan for plan in plans), plans
    # The last: six messages of the account since 1, read by the time index instead.
    assert all("messages_search_short" in plan for plan in plans[:2]), plans


def test_pg_a_version_2_store_gets_the_short_query_index(pg_url):
    from kfcli.core.store import postgres

    with open_store(pg_url) as store:
        commit(store, CONVERSATION)
    index = "SELECT indexdef FROM pg_indexes WHERE indexname = 'messages_search_short'"
    raw(pg_url, *postgres.MIGRATIONS[3][-2:])  # run again: nothing changes, nothing fails
    assert len(raw(pg_url, index)) == 1
    # What kfcli with schema version 2 wrote: no media tables, no short-query index.
    raw(pg_url, "DROP INDEX messages_search_short", "DROP FUNCTION kfcli_short_grams(text)",
        "DROP TABLE IF EXISTS media_parts", "DROP TABLE IF EXISTS media",
        "UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    assert raw(pg_url, index) == []
    with open_store(pg_url) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert "kfcli_short_grams(search_text)" in raw(pg_url, index)[0][0]
        assert ids(store.search(CORP, "退款")) == ["m5", "m1"]
        assert ids(store.search(CORP, "退")) == ["m5", "m3", "m1"]
        assert ids(store.search(CORP, "re")) == ["m2"]
        commit(store, [text_msg("m7", "开发票", send_time=7000)], expected="c1", cursor="c2")
        assert ids(store.search(CORP, "发")) == ["m7", "m4"]
        assert ids(store.search(CORP, "发票")) == ["m7"]


def test_pg_short_queries_on_a_sql_ascii_database():
    """SQL_ASCII: characters are bytes to PostgreSQL, one Chinese character three of them, so
    the short-query index cannot serve it; a scan answers instead, the same."""
    import secrets

    pgutil.need_server()
    name = "kfcli_t_ascii_" + secrets.token_hex(6)
    with pgutil.admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}" ENCODING \'SQL_ASCII\' LC_COLLATE \'C\' '
                     "LC_CTYPE 'C' TEMPLATE template0")
    try:
        with open_store(pgutil.url(name)) as store:
            commit(store, CONVERSATION)
            assert ids(store.search(CORP, "退")) == ["m5", "m3", "m1"]
            assert ids(store.search(CORP, "退款")) == ["m5", "m1"]
            assert ids(store.search(CORP, "re")) == ["m2"]
    finally:
        with pgutil.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
