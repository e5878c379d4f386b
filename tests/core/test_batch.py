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
