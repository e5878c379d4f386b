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
    status, errcode, reason = early.check(line)
    assert (status, errcode) == ("already_sent", None)
    assert f"matches the send of msgid {line.msgid}" in reason and "'hi'" in reason
    window = store.reply_window("wwB", K, "wmA")
    assert window is not None and window.describe(1_000_000 + 3600) == \
        "reply window: 4 of 5 left, closes in 47 h"  # the send recorded counts
    assert store.reply_window("wwB", K, "wmNobody") is None


def test_a_misconfigured_store_stops_the_batch_before_it_sends():
    from kfcli.core.batch import Ledger
    from kfcli.core.errors import ConfigError

    def broken():
        raise ConfigError("store.db is a directory")

    with pytest.raises(ConfigError):
        Ledger(broken, "wwB", print).open()


class _FlakyStore:
    """A store whose writes fail while `down` is set."""

    def __init__(self) -> None:
        self.down = False
        self.sent: list[str] = []
        self.acked: list[str] = []

    def _up(self) -> None:
        from kfcli.core.errors import NetworkError

        if self.down:
            raise NetworkError("cannot reach the PostgreSQL store at db:5432")

    def was_sent(self, corp_id, open_kfid, msgid):
        self._up()
        return msgid in self.sent

    def reply_window(self, corp_id, open_kfid, customer, *, clock=None, state=True):
        self._up()
        return None

    def clock(self, corp_id, open_kfid):
        self._up()
        return 0

    def archive_sends(self, corp_id):
        self._up()
        return 0

    def record_sent(self, corp_id, open_kfid, customer, msgid, message=None, *, sent_at=None,
                    answered=(), later=False):
        self._up()
        self.sent.append(msgid)

    def ack_replies(self, corp_id, open_kfid, msgids, *, status):
        self._up()
        self.acked.extend(msgids)

    def close(self):
        pass


def test_a_store_outage_is_logged_once_and_what_was_sent_meanwhile_is_recorded_after():
    """The store goes away mid-batch: one line says so, the lines go on (WeCom decides), the
    records wait in order, and the first line after the back-off finds the store back,
    writes them, and one line says so."""
    from kfcli.core.batch import Ledger

    store, log, now = _FlakyStore(), [], [0.0]
    ledger = Ledger(lambda: store, "wwB", log.append, clock=lambda: now[0])
    ledger.open()
    lines = [parse(n, text_line(reply_to=f"in{n}"), {}) for n in range(1, 6)]
    ledger.sent(lines[0])
    store.down = True
    for line in lines[1:4]:
        assert ledger.check(line) is None  # WeCom decides
        ledger.sent(line)
        ledger.ack(line, "replied")
    assert len(log) == 1 and "cannot reach the PostgreSQL store" in log[0]
    assert len(ledger.backlog) == 6
    store.down = False
    ledger.sent(lines[4])  # before the back-off is over: kept for later
    assert store.sent == [lines[0].msgid] and len(ledger.backlog) == 7
    now[0] += 60
    ledger.finish()
    assert store.sent == [line.msgid for line in lines]
    assert store.acked == ["in2", "in3", "in4"]
    assert not ledger.backlog
    assert len(log) == 2 and "works again" in log[1] and "recorded 7 results" in log[1]


def test_finish_waits_for_the_store(monkeypatch):
    """At the end of the input the records still waiting are written once the store is back:
    finish() backs off meanwhile (its sleeps are what brings the store back here)."""
    from kfcli.core.batch import Ledger

    store, log, now = _FlakyStore(), [], [0.0]
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        now[0] += seconds
        if len(sleeps) == 3:
            store.down = False

    ledger = Ledger(lambda: store, "wwB", log.append, clock=lambda: now[0], sleep=sleep)
    store.down = True
    ledger.open()
    line = parse(1, text_line(reply_to="in1"), {})
    ledger.sent(line)
    ledger.finish()
    assert store.sent == [line.msgid] and len(sleeps) == 3
    assert sleeps == sorted(sleeps)  # backing off
    assert len(log) == 2


def test_reply_to_a_list_answers_several_messages_with_one_send():
    base = {"open_kfid": "wkA", "external_userid": "wmB", "msgtype": "text",
            "text": {"content": "hi"}}
    replies: dict = {}
    line = parse(1, json.dumps({**base, "reply_to": ["m1", "m2", "m3"]}), replies)
    assert line.answers == ("m1", "m2", "m3") and line.reply_to == "m1"
    assert line.msgid == derive_msgid("wkA", "wmB", reply_to="m1\nm2\nm3")
    assert line.msgid != parse(2, json.dumps({**base, "reply_to": "m1"}), {}).msgid
    ack = parse(3, json.dumps({"open_kfid": "wkA", "external_userid": "wmB",
                               "reply_to": ["m4", "m5"], "no_reply": True}), {})
    assert ack.no_reply and ack.answers == ("m4", "m5")
    for bad, why in (([], "1 to 100"), (["m1", "m1"], "twice"), ([3], "strings"),
                     (["x"] * 101, "1 to 100"), (7, "a list of msgids")):
        with pytest.raises(UsageError) as err:
            parse(4, json.dumps({**base, "reply_to": bad}), {})
        assert why in err.value.message
