"""`kfcli.core.transcript`: what each kind of message reads as in a transcript or an export."""

from __future__ import annotations

import json

import pytest

from kfcli.core.sync import Message
from kfcli.core.transcript import describe, iso, who


def event(**fields) -> Message:
    return Message.from_api({"msgid": "m", "origin": 4, "msgtype": "event", "send_time": 1,
                             "event": fields})


@pytest.mark.parametrize("doc, text", [
    ({"msgtype": "text", "text": {"content": "你好\n第二行"}}, "你好\n第二行"),
    ({"msgtype": "image", "image": {"media_id": "MEDIA"}}, "[image]"),
    ({"msgtype": "voice", "voice": {"media_id": "MEDIA"}}, "[voice]"),
    ({"msgtype": "file", "file": {"media_id": "MEDIA"}}, "[file]"),
    ({"msgtype": "file", "file": {"media_id": "M", "filename": "发票.pdf"}}, "[file 发票.pdf]"),
    ({"msgtype": "link", "link": {"title": "Spring sale", "url": "https://x"}},
     "[link: Spring sale]"),
    ({"msgtype": "msgmenu", "msgmenu": {
        "head_content": "您对本次服务是否满意呢？" * 5,
        "list": [{"type": "click", "click": {"id": "1", "content": "满意"}},
                 {"type": "view", "view": {"url": "https://x", "content": "不满意"}}]}},
     "[menu: " + ("您对本次服务是否满意呢？" * 5)[:39] + "… / 满意 / 不满意]"),
    ({"msgtype": "location", "location": {"name": "Office", "address": "1 Road"}},
     "[location: Office 1 Road]"),
])
def test_messages(doc, text) -> None:
    m = Message.from_api({"msgid": "m", "origin": 3, "send_time": 1, **doc})
    assert describe(m) == text


@pytest.mark.parametrize("fields, text", [
    ({"event_type": "enter_session", "scene": "spring_sale"}, "entered from scene spring_sale"),
    ({"event_type": "enter_session"}, "entered the session"),
    ({"event_type": "session_status_change", "change_type": 1,
      "new_servicer_userid": "user001"}, "picked from the queue by user001"),
    ({"event_type": "session_status_change", "change_type": 2,
      "old_servicer_userid": "user001", "new_servicer_userid": "user002"},
     "transferred to user002"),
    ({"event_type": "session_status_change", "change_type": 3,
      "old_servicer_userid": "user001"}, "session ended"),
    ({"event_type": "session_status_change", "change_type": 4,
      "new_servicer_userid": "user001"}, "session re-opened by user001"),
    ({"event_type": "user_recall_msg", "recall_msgid": "abc"}, "recalled message abc"),
])
def test_events(fields, text) -> None:
    assert describe(event(**fields)) == text
    assert who(event(**fields)) == "system"


def test_who_and_iso() -> None:
    servicer = Message.from_api({"origin": 5, "servicer_userid": "user001", "msgtype": "text"})
    customer = Message.from_api({"origin": 3, "external_userid": "wm1", "msgtype": "text"})
    assert (who(servicer), who(customer)) == ("user001", "customer")
    stamp = iso(1_790_000_000)
    assert stamp[10] == "T" and stamp[-6] in "+-" and stamp[-3] == ":"


def test_a_new_origin_is_one_entry(monkeypatch) -> None:
    """kfcli's own sends (a recorded origin WeCom never uses) need one entry in ORIGINS:
    every view then puts them on the company's side under that name."""
    import io

    from kfcli.core import origins
    from kfcli.core.export import Exporter, Selection
    from kfcli.core.transcript import origin_name, row, side

    monkeypatch.setitem(origins.ORIGINS, 9, origins.Origin(9, "kfcli", "company"))
    sent = Message.from_api({"msgid": "s1", "origin": 9, "msgtype": "text", "send_time": 1,
                             "open_kfid": "wk1", "external_userid": "wm1",
                             "text": {"content": "收到"}})
    assert (who(sent), side(sent), origin_name(sent), sent.sender) == \
        ("kfcli", "company", "kfcli", "kfcli")
    assert row(sent)["origin"] == "kfcli" and row(sent)["text"] == "收到"
    unknown = Message.from_api({"msgid": "u", "origin": 7, "msgtype": "text", "send_time": 1})
    assert (side(unknown), origin_name(unknown)) == ("system", "7")

    class Store:  # what an export reads: one stored message
        def messages(self, *args, **kwargs):
            from kfcli.core.store.base import Row

            yield Row(1, json.dumps(sent.raw))

    page = io.StringIO()
    Exporter(Store(), Selection("ww1")).write("html", page)  # type: ignore[arg-type]
    assert '<div class="msg company kfcli">' in page.getvalue()
