"""`kfcli.core.batch`: reading batch lines and deriving msgids."""

from __future__ import annotations

import json

import pytest

from kfcli.core import limits
from kfcli.core.batch import derive_msgid, parse
from kfcli.core.errors import UsageError

K = "wkBatch0001"


def text_line(**extra) -> str:
    return json.dumps({"open_kfid": K, "external_userid": "wmA", "msgtype": "text",
                       "text": {"content": "hi"}, **extra})


def test_msgids_are_valid_and_stable():
    a = derive_msgid(K, "wmA", reply_to="x1", position=1)
    assert a == derive_msgid(K, "wmA", reply_to="x1", position=1)
    assert limits.check_msgid(a) == a and len(a) == limits.MSGID_BYTES
    assert a.startswith("kfr")
    others = {derive_msgid(K, "wmA", reply_to="x1", position=2),
              derive_msgid(K, "wmB", reply_to="x1", position=1),
              derive_msgid(K, "wmA", reply_to="x2", position=1),
              derive_msgid("wkOther", "wmA", reply_to="x1", position=1)}
    assert a not in others and len(others) == 4
    b = derive_msgid(K, "wmA", line=3, content=["text", {"content": "hi"}])
    assert b.startswith("kfb") and b != derive_msgid(K, "wmA", line=4,
                                                    content=["text", {"content": "hi"}])
    assert b == derive_msgid(K, "wmA", line=3, content=["text", {"content": "hi"}])


def test_replies_count_their_position_per_message():
    replies: dict = {}
    first = parse(1, text_line(reply_to="x1"), replies)
    second = parse(2, text_line(reply_to="x1"), replies)
    other = parse(3, text_line(reply_to="x2"), replies)
    assert first.msgid == derive_msgid(K, "wmA", reply_to="x1", position=1)
    assert second.msgid == derive_msgid(K, "wmA", reply_to="x1", position=2)
    assert other.msgid == derive_msgid(K, "wmA", reply_to="x2", position=1)
    given = parse(4, text_line(reply_to="x1", msgid="mine01"), replies)
    assert given.msgid == "mine01" and replies[(K, "x1")] == 2  # a given msgid counts not
    touser = parse(5, text_line().replace('"external_userid"', '"touser"'), replies)
    assert touser.customer == "wmA"
    quiet = parse(6, json.dumps({"open_kfid": K, "external_userid": "wmA", "reply_to": "x3",
                                 "no_reply": True}), replies)
    assert quiet.no_reply and quiet.msgtype is None


@pytest.mark.parametrize(("text", "problem"), [
    ("[1]", "line 7: expected an object"),
    ('{"open_kfid": "wkBatch0001"}', "external_userid (or touser) is missing"),
    (text_line(extra=1), "unexpected keys: extra"),
    (text_line(touser="wmB"), "external_userid and touser differ"),
    (json.dumps({"open_kfid": K, "external_userid": "wmA", "msgtype": "sticker",
                 "sticker": {}}), "line 7: msgtype: expected one of"),
    (json.dumps({"open_kfid": K, "external_userid": "wmA", "msgtype": "text"}),
     "has msgtype 'text' but no 'text' object"),
    (text_line(no_reply=True), "no_reply needs reply_to"),
    (text_line(reply_to="x", no_reply=True), "no_reply lines carry no message"),
    (text_line(no_reply="yes"), "no_reply: expected true or false"),
    (text_line(msgid=5), "msgid: expected a string"),
    ("x" * (70 * 1024), "longer than 64 KB"),
])
def test_bad_lines_say_which_and_why(text, problem):
    with pytest.raises(UsageError) as err:
        parse(7, text, {})
    assert problem in err.value.message


def test_a_closed_window_is_skipped_without_a_request(tmp_path):
    from kfcli.core.batch import Ledger
    from kfcli.core.store import Incoming, open_store

    store = open_store(str(tmp_path / "store.db"))
    store.commit_page("wwB", K, expected=None, cursor="c", owner=None, messages=[
        Incoming.from_api({"msgid": "in1", "open_kfid": K, "external_userid": "wmA",
                           "origin": 3, "send_time": 1_000_000, "msgtype": "text",
                           "text": {"content": "hi"}})])
    line = parse(1, text_line(reply_to="in1"), {})
    late = Ledger(lambda: store, "wwB", print, now=lambda: 1_000_000 + 49 * 3600)
    status, errcode, reason = late.check(line)
    assert (status, errcode) == ("skipped", 95002)
    assert "last message was 49 h ago" in reason
    early = Ledger(lambda: store, "wwB", print, now=lambda: 1_000_000 + 3600)
    assert early.check(line) is None
    early.sent(line)
    assert early.check(line) == ("already_sent", None, None)
    window = store.reply_window("wwB", K, "wmA")
    assert window is not None and window.describe(1_000_000 + 3600) == \
        "reply window: 4 of 5 left, closes in 47 h"  # the send recorded counts
    assert store.reply_window("wwB", K, "wmNobody") is None


def test_an_unusable_store_warns_once_and_the_batch_goes_on():
    from kfcli.core.batch import Ledger
    from kfcli.core.errors import ConfigError

    warnings = []

    def broken():
        raise ConfigError("store.db is a directory")

    ledger = Ledger(broken, "wwB", warnings.append)
    line = parse(1, text_line(reply_to="in1"), {})
    assert ledger.check(line) is None
    ledger.sent(line)
    ledger.ack(line, "replied")
    assert len(warnings) == 1 and "store.db is a directory" in warnings[0]
