"""Acknowledged replies in both stores: what `msg history --consumer --ack replies` resumes
from, and the upgrade that adds where each consumer started."""

from __future__ import annotations

from kfcli.core.store import SCHEMA_VERSION, Incoming, open_store
from tests.core.test_store import is_pg, raw

CORP = "wwReplies"
KFID = "wkReplies"


def msg(msgid: str, origin: int = 3, send_time: int = 10_000) -> Incoming:
    return Incoming.from_api({"msgid": msgid, "open_kfid": KFID, "external_userid": "wmA",
                              "send_time": send_time, "origin": origin, "msgtype": "text",
                              "text": {"content": msgid}})


def seq_of(store, msgid: str) -> int:
    return store.message(CORP, msgid)[0].seq


def test_the_oldest_unanswered_customer_message_after_the_consumer_started(store):
    store.commit_page(CORP, KFID, expected=None, cursor="c1", owner=None,
                      messages=[msg("before")])
    store.set_consumer_position(CORP, "bot", KFID, seq_of(store, "before"))  # starts here
    store.commit_page(CORP, KFID, expected="c1", cursor="c2", owner=None, messages=[
        msg("q1"), msg("servicer", origin=5), msg("q2"), msg("old", send_time=10)])
    top = seq_of(store, "old")
    assert store.unanswered(CORP, "bot", KFID, upto=top, since=100) == seq_of(store, "q1")
    store.ack_replies(CORP, KFID, ["q1"])
    assert store.unanswered(CORP, "bot", KFID, upto=top, since=100) == seq_of(store, "q2")
    store.ack_replies(CORP, KFID, ["q2", "q2"], status="no_reply")  # twice: recorded once
    # "old" was sent before the reply window: never handed out again; "before" came before
    # the consumer started.
    assert store.unanswered(CORP, "bot", KFID, upto=top, since=100) is None
    assert store.unanswered(CORP, "bot", KFID, upto=top, since=0) == top
    assert store.unanswered(CORP, "bot", KFID, upto=seq_of(store, "q1"), since=0) is None
    assert store.unanswered(CORP, "other", KFID, upto=top, since=100) == \
        seq_of(store, "before")  # a consumer the store never saw starts at 0
    assert store.unanswered(CORP, "bot", "wkNever", upto=top, since=0) is None
    # Moving the position on never moves where the consumer started.
    store.set_consumer_position(CORP, "bot", KFID, top)
    store.ack_replies(CORP, KFID, ["old"])
    assert store.unanswered(CORP, "bot", KFID, upto=top, since=0) is None


def test_consumers_of_a_version_2_store_start_at_0(store_url):
    with open_store(store_url) as store:
        store.commit_page(CORP, KFID, expected=None, cursor="c1", owner=None,
                          messages=[msg("q1")])
        store.set_consumer_position(CORP, "bot", KFID, 1)
    if is_pg(store_url):
        raw(store_url, "ALTER TABLE consumers DROP COLUMN first_position", "DROP TABLE replies",
            "DROP TABLE media_parts", "DROP TABLE media",
            "UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    else:
        raw(store_url, "DROP TRIGGER media_delete", "DROP TABLE media", "DROP TABLE replies",
            "ALTER TABLE consumers DROP COLUMN first_position",
            "UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    with open_store(store_url) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert store.consumer_position(CORP, "bot", KFID) == 1
        assert store.unanswered(CORP, "bot", KFID, upto=1, since=0) == 1
        store.ack_replies(CORP, KFID, ["q1"])
        assert store.unanswered(CORP, "bot", KFID, upto=1, since=0) is None
