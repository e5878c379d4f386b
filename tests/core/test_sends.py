"""kfcli.core.sends and the store's record of sends: the journal, and sends archived later
(a batch's, many in one transaction) never lost when the batch dies first."""

from __future__ import annotations

import json

from kfcli.core.sends import SendJournal, record, send_record
from kfcli.core.store import Incoming, open_store

CORP, K = "wwSends", "wkSends"


def _store_with_a_customer(path):
    store = open_store(str(path))
    store.commit_page(CORP, K, expected=None, cursor="c", owner=None, messages=[
        Incoming.from_api({"msgid": "in1", "open_kfid": K, "external_userid": "wmA",
                           "origin": 3, "send_time": 1_000_000, "msgtype": "text",
                           "text": {"content": "退款怎么办"}})])
    return store


def test_sends_recorded_later_count_at_once_and_are_archived_by_any_process(tmp_path):
    store = _store_with_a_customer(tmp_path / "s.db")
    rec = send_record(CORP, K, "wmA", "out1", "text", {"content": "退款已受理"},
                      answered=["in1"])
    record(store, rec, later=True)
    window = store.reply_window(CORP, K, "wmA")
    assert window is not None and window.sent == 1  # counted at once
    assert store.waiting(CORP, K) == []  # answered at once
    assert [json.loads(r.text)["msgid"] for r in store.messages(CORP, K)] == ["in1"]
    store.close()  # the batch dies before archiving: the message is kept with the send

    again = open_store(str(tmp_path / "s.db"))
    assert again.archive_sends(CORP) == 1
    got = [json.loads(r.text) for r in again.messages(CORP, K)]
    assert [(m["origin"], m["msgid"]) for m in got] == [(3, "in1"), (100, "out1")]
    assert got[1]["text"] == {"content": "退款已受理"} and got[1]["send_time"] >= 1_000_000
    assert [json.loads(r.text)["msgid"] for r in again.search(CORP, "已受理")] == ["out1"]
    assert again.archive_sends(CORP) == 0
    record(again, rec)  # recorded again: nothing changes
    assert len(list(again.messages(CORP, K))) == 2
    again.close()


def test_the_journal_keeps_sends_until_a_store_takes_them(tmp_path):
    journal = SendJournal("sqlite:///x", tmp_path / "journal")
    assert journal.pending() == 0
    for n in (1, 2):
        journal.keep(send_record(CORP, K, "wmA", f"out{n}", "text", {"content": f"n{n}"}))
    assert journal.pending() == 2
    store = _store_with_a_customer(tmp_path / "s.db")
    assert journal.replay(store) == 2 and journal.pending() == 0
    assert [json.loads(r.text)["msgid"] for r in store.messages(CORP, K)] == \
        ["in1", "out1", "out2"]
    assert journal.replay(store) == 0
    store.close()
