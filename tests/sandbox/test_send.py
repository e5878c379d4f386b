"""send_msg and send_msg_on_event (kf-api.md §1.5, §1.6, §2.6, §2.7)."""

from __future__ import annotations

import re
import sqlite3
from typing import Any

import pytest
import requests

from .conftest import AMR, MP4, Client

SEND = "/cgi-bin/kf/send_msg"
ON_EVENT = "/cgi-bin/kf/send_msg_on_event"


@pytest.fixture
def kf(client: Client) -> str:
    open_kfid = client.add_account()
    client.add_servicers(open_kfid, ["user001"])
    return open_kfid


def media(client: Client, media_type: str) -> str:
    data = {"image": None, "voice": AMR, "video": MP4, "file": b"report contents"}[media_type]
    if data is None:
        return client.image()
    answer = client.upload(data, media_type, f"x.{media_type}")
    assert answer["errcode"] == 0, answer
    return answer["media_id"]


# --- delivery, state and window -------------------------------------------------------------


def test_send_text_is_delivered_and_recorded(client: Client, kf: str) -> None:
    user = client.customer(kf)
    assert client.state(kf, user)["service_state"] == 0
    answer = client.send_text(kf, user, "您好", msgid="my-id_1")
    assert answer == {"errcode": 0, "errmsg": "ok", "msgid": "my-id_1"}
    # Replying by API hands a new session to the assistant (0 -> 1).
    assert client.state(kf, user)["service_state"] == 1
    # Without a msgid one is generated (≤ 32 bytes of [0-9a-zA-Z_-]).
    generated = client.send_text(kf, user, "second")["msgid"]
    assert re.fullmatch(r"[0-9a-zA-Z_-]{1,32}", generated)
    assert client.sent(kf) == [
        {
            "touser": user,
            "open_kfid": kf,
            "msgid": "my-id_1",
            "msgtype": "text",
            "text": {"content": "您好"},
        },
        {
            "touser": user,
            "open_kfid": kf,
            "msgtype": "text",
            "text": {"content": "second"},
            "msgid": generated,
        },
    ]
    assert client.sent(client.add_account()) == []


@pytest.mark.parametrize("state", [2, 3, 4])
def test_send_needs_state_0_or_1(client: Client, kf: str, state: int) -> None:
    user = client.customer(kf)
    client.trans(kf, user, state, "user001" if state == 3 else None)
    answer = client.send_text(kf, user)
    assert answer["errcode"] == 95018, answer
    assert answer["errmsg"].startswith("send msg session status invalid")
    assert client.sent(kf) == []


def test_send_without_session(client: Client, kf: str) -> None:
    stranger = client.customer(client.add_account())  # a customer of another account
    assert client.send_text(kf, stranger)["errcode"] == 95018
    assert client.send_text(kf, "wmNeverACustomer")["errcode"] == 40096
    assert (
        client.post(SEND, {"open_kfid": kf, "msgtype": "text", "text": {"content": "x"}})["errcode"]
        == 40058
    )


def test_five_messages_per_customer_message(client: Client, kf: str) -> None:
    user = client.customer(kf)
    for n in range(5):
        assert client.send_text(kf, user, f"reply {n}")["errcode"] == 0
    answer = client.send_text(kf, user, "one too many")
    assert answer["errcode"] == 95001 and answer["errmsg"].startswith("send msg count limit")
    client.say(kf, "another question", user)  # a new customer message: 5 more
    for n in range(5):
        assert client.send_text(kf, user, f"again {n}")["errcode"] == 0
    assert client.send_text(kf, user)["errcode"] == 95001
    assert len(client.sent(kf)) == 10


def test_48_hour_window(client: Client, kf: str) -> None:
    user = client.customer(kf)
    assert client.send_text(kf, user)["errcode"] == 0
    client.later(48 * 3600 - 60)  # a minute of room for a slow machine
    assert client.send_text(kf, user)["errcode"] == 0
    client.later(60)
    answer = client.send_text(kf, user)
    assert answer["errcode"] == 95002 and answer["errmsg"].startswith("send msg time limit")
    client.say(kf, "hello again", user)
    assert client.send_text(kf, user)["errcode"] == 0


# --- msgid ----------------------------------------------------------------------------------


def test_duplicate_msgid_is_40058_and_not_delivered_again(client: Client, kf: str) -> None:
    user = client.customer(kf)
    assert client.send_text(kf, user, "once", msgid="dup")["errcode"] == 0
    answer = client.send_text(kf, user, "once", msgid="dup")
    assert answer["errcode"] == 40058
    assert "msgid" in answer["errmsg"] and "duplicated" in answer["errmsg"]
    assert [m["msgid"] for m in client.sent(kf)] == ["dup"]
    # msgids are unique per account, not per corp.
    other = client.add_account()
    assert client.send_text(other, client.customer(other), msgid="dup")["errcode"] == 0


def test_duplicate_wins_over_the_window(client: Client, kf: str) -> None:
    # A retry of the 5th message must hear "duplicate", not "over the limit".
    user = client.customer(kf)
    for n in range(5):
        assert client.send_text(kf, user, msgid=f"m{n}")["errcode"] == 0
    answer = client.send_text(kf, user, msgid="m4")
    assert answer["errcode"] == 40058 and "msgid" in answer["errmsg"]


def test_retry_after_disconnect_delivers_once(client: Client, kf: str) -> None:
    user = client.customer(kf)
    client.ok("POST", "/sandbox/faults", {"fault": "disconnect", "path": SEND})
    body = {
        "touser": user,
        "open_kfid": kf,
        "msgid": "retry-me",
        "msgtype": "text",
        "text": {"content": "exactly once"},
    }
    with pytest.raises(requests.ConnectionError):
        client.post(SEND, body)
    answer = client.post(SEND, body)
    assert answer["errcode"] == 40058 and "msgid" in answer["errmsg"]
    assert [m["text"]["content"] for m in client.sent(kf)] == ["exactly once"]


@pytest.mark.parametrize("msgid", ["a" * 33, "有中文", "bad id", "a.b", 123])
def test_bad_msgid(client: Client, kf: str, msgid: object) -> None:
    user = client.customer(kf)
    assert client.send_text(kf, user, msgid=msgid)["errcode"] == 40058
    assert client.sent(kf) == []


def test_msgid_of_32_bytes(client: Client, kf: str) -> None:
    user = client.customer(kf)
    assert client.send_text(kf, user, msgid="A-_9" * 8)["msgid"] == "A-_9" * 8


# --- message bodies -------------------------------------------------------------------------


def send(client: Client, kf: str, msgtype: str, obj: Any) -> dict[str, Any]:
    """Send with a fresh customer message first, so the 5-message window never interferes."""
    user = client.customer(kf, "wmBodyTester")
    return client.post(SEND, {"touser": user, "open_kfid": kf, "msgtype": msgtype, msgtype: obj})


def menu(items: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"head_content": "请选择", "list": items, **extra}


CLICK = {"type": "click", "click": {"id": "101", "content": "满意"}}
VIEW = {"type": "view", "view": {"url": "https://example.com/a", "content": "看看"}}
MINI = {
    "type": "miniprogram",
    "miniprogram": {"appid": "wx123", "pagepath": "pages/index", "content": "打开"},
}
TEXT_ITEM = {"type": "text", "text": {"content": "纯文本\n第二行"}}

BODY_CASES: list[tuple[str, Any, int]] = [
    ("text", {"content": "中" * 682}, 0),  # 2046 bytes
    ("text", {"content": "a" * 2048}, 0),
    ("text", {"content": "a" * 2049}, 45002),
    ("text", {"content": "中" * 683}, 45002),  # 2049 bytes
    ("text", {"content": ""}, 44004),
    ("text", {}, 44004),
    ("text", {"content": 5}, 40058),
    ("text", None, 40058),
    ("text", "hello", 40058),
    ("msgmenu", menu([CLICK, VIEW, MINI, TEXT_ITEM], tail_content="谢谢"), 0),
    ("msgmenu", menu([CLICK] * 10), 0),
    ("msgmenu", menu([CLICK] * 11), 95008),
    ("msgmenu", menu([{"type": "news", "news": {"content": "x"}}]), 95009),
    ("msgmenu", menu([{"click": {"id": "1", "content": "x"}}]), 95009),
    ("msgmenu", menu(["click"]), 95009),
    ("msgmenu", menu([{"type": "click", "click": {"id": "x" * 65, "content": "ok"}}]), 40058),
    ("msgmenu", menu([{"type": "click", "click": {"id": "1", "content": ""}}]), 40058),
    ("msgmenu", menu([{"type": "click", "click": {"id": "1", "content": "x" * 129}}]), 40058),
    ("msgmenu", menu([{"type": "click", "click": {"content": "no id"}}]), 40058),
    ("msgmenu", menu([{"type": "view", "view": {"url": "u" * 2049, "content": "x"}}]), 40058),
    (
        "msgmenu",
        menu(
            [
                {
                    "type": "miniprogram",
                    "miniprogram": {"appid": "a" * 33, "pagepath": "p", "content": "x"},
                }
            ]
        ),
        40058,
    ),
    ("msgmenu", menu([{"type": "text", "text": {"content": "x" * 257}}]), 40058),
    ("msgmenu", menu([{"type": "text", "text": {"content": "x" * 256}}]), 0),
    ("msgmenu", menu([], head_content="h" * 1025), 40058),
    ("msgmenu", menu([CLICK], tail_content="t" * 1025), 40058),
    ("msgmenu", {"head_content": "h" * 1024, "tail_content": "t" * 1024}, 0),
    ("msgmenu", {}, 40058),
    ("msgmenu", {"list": "click"}, 40058),
    ("location", {"latitude": 23.1, "longitude": 113.3, "name": "广州塔", "address": "广州"}, 0),
    ("location", {"latitude": -90, "longitude": 180}, 0),
    ("location", {"latitude": 90.5, "longitude": 0}, 40058),
    ("location", {"latitude": 0, "longitude": -180.01}, 40058),
    ("location", {"latitude": "23.1", "longitude": 113.3}, 40058),
    ("location", {"longitude": 113.3}, 40058),
    ("location", {"latitude": True, "longitude": 1}, 40058),
    ("ca_link", {"link_url": "https://work.weixin.qq.com/ca/cawcde"}, 0),
    ("ca_link", {}, 40058),
    ("ca_link", {"link_url": "work.weixin.qq.com/ca"}, 40058),
]


@pytest.mark.parametrize(("msgtype", "obj", "errcode"), BODY_CASES)
def test_message_bodies(client: Client, kf: str, msgtype: str, obj: Any, errcode: int) -> None:
    answer = send(client, kf, msgtype, obj)
    assert answer["errcode"] == errcode, answer
    delivered = client.sent(kf)
    if errcode:
        assert delivered == []
    else:
        [message] = delivered
        assert message["msgtype"] == msgtype and message[msgtype] == obj


def test_unknown_msgtype(client: Client, kf: str) -> None:
    assert send(client, kf, "news", {"articles": []})["errcode"] == 40008
    assert send(client, kf, "event", {})["errcode"] == 40008
    user = client.customer(kf)
    assert client.post(SEND, {"touser": user, "open_kfid": kf})["errcode"] == 40058


@pytest.mark.parametrize("media_type", ["image", "voice", "video", "file"])
def test_media_messages(client: Client, kf: str, db: sqlite3.Connection, media_type: str) -> None:
    good = media(client, media_type)
    assert send(client, kf, media_type, {"media_id": good})["errcode"] == 0
    other_type = media(client, "file" if media_type != "file" else "image")
    assert send(client, kf, media_type, {"media_id": other_type})["errcode"] == 40007
    assert send(client, kf, media_type, {"media_id": "3nope"})["errcode"] == 40007
    assert send(client, kf, media_type, {})["errcode"] == 40058
    # Temporary media lives 3 days.
    db.execute("UPDATE media SET created_at = created_at - 3 * 86400 WHERE media_id = ?", (good,))
    assert send(client, kf, media_type, {"media_id": good})["errcode"] == 40007
    assert [m[media_type]["media_id"] for m in client.sent(kf)] == [good]


def test_link(client: Client, kf: str) -> None:
    thumb = client.image()
    link = {
        "title": "标" * 50,
        "desc": "d" * 600,
        "url": "https://example.com/x",
        "thumb_media_id": thumb,
    }
    assert send(client, kf, "link", link)["errcode"] == 0
    [message] = client.sent(kf)
    # Over-long title (150 bytes) and desc are truncated to 128 / 512 bytes, not refused.
    assert message["link"]["title"] == "标" * 42  # 126 bytes: no character is split
    assert message["link"]["desc"] == "d" * 512
    assert message["link"]["url"] == link["url"]
    bad_cases = [
        ({**link, "url": "ftp://example.com"}, 40058),
        ({**link, "url": "https://e.com/" + "x" * 2040}, 40058),
        ({k: v for k, v in link.items() if k != "title"}, 40058),
        ({k: v for k, v in link.items() if k != "url"}, 40058),
        ({k: v for k, v in link.items() if k != "thumb_media_id"}, 40058),
        ({**link, "thumb_media_id": media(client, "file")}, 40007),
    ]
    for obj, errcode in bad_cases:
        assert send(client, kf, "link", obj)["errcode"] == errcode, obj
    assert send(client, kf, "link", {**link, "desc": None})["errcode"] == 0


def test_miniprogram(client: Client, kf: str) -> None:
    thumb = client.image()
    mini = {
        "appid": "wx8bd80126147dfAAA",
        "title": "t" * 70,
        "thumb_media_id": thumb,
        "pagepath": "pages/index?x=1",
    }
    assert send(client, kf, "miniprogram", mini)["errcode"] == 0
    assert client.sent(kf)[0]["miniprogram"]["title"] == "t" * 64
    for field in ("appid", "thumb_media_id", "pagepath"):
        obj = {k: v for k, v in mini.items() if k != field}
        assert send(client, kf, "miniprogram", obj)["errcode"] == 40058, field
    assert send(client, kf, "miniprogram", {**mini, "thumb_media_id": "3x"})["errcode"] == 40007


# --- send_msg_on_event ----------------------------------------------------------------------


def enter(client: Client, kf: str, user: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"open_kfid": kf, "scene": "ad1"}
    if user is not None:
        body["external_userid"] = user
    return client.ok("POST", "/sandbox/enter_session", body)


def on_event(client: Client, code: str, msgtype: str = "text", **extra: Any) -> dict[str, Any]:
    obj = {"content": "欢迎"} if msgtype == "text" else menu([CLICK])
    return client.post(ON_EVENT, {"code": code, "msgtype": msgtype, msgtype: obj, **extra})


def test_welcome_code(client: Client, kf: str) -> None:
    entered = enter(client, kf)
    code, user = entered["welcome_code"], entered["external_userid"]
    assert code
    answer = on_event(client, code, msgid="welcome-1")
    assert answer == {"errcode": 0, "errmsg": "ok", "msgid": "welcome-1"}
    assert client.sent(kf) == [
        {"code": code, "msgtype": "text", "text": {"content": "欢迎"}, "msgid": "welcome-1"}
    ]
    # Single use.
    assert on_event(client, code)["errcode"] == 95007
    # Welcomed in the last 48 h: entering again earns no code.
    assert enter(client, kf, user)["welcome_code"] == ""
    # Welcome codes allow menus too; they are not sent through the 48 h window.
    fresh = enter(client, kf)["welcome_code"]
    assert on_event(client, fresh, "msgmenu")["errcode"] == 0
    assert client.state(kf, user)["service_state"] == 4


def test_welcome_code_expires_after_20_seconds(client: Client, kf: str) -> None:
    code = enter(client, kf)["welcome_code"]
    client.later(20)
    answer = on_event(client, code)
    assert answer["errcode"] == 95007 and answer["errmsg"].startswith("invalid msg token")
    assert client.sent(kf) == []


def test_no_welcome_code_after_a_customer_message(client: Client, kf: str) -> None:
    user = client.customer(kf)
    assert enter(client, kf, user)["welcome_code"] == ""
    client.later(48 * 3600)
    assert enter(client, kf, user)["welcome_code"] != ""


def test_closing_code(client: Client, kf: str) -> None:
    user = client.customer(kf)
    code = client.trans(kf, user, 4)["msg_code"]
    assert on_event(client, code, "msgmenu")["errcode"] == 0
    code = client.trans(kf, client.customer(kf, "wmSecond"), 4)["msg_code"]
    client.later(20)
    assert on_event(client, code)["errcode"] == 95007


def test_queue_and_servicer_codes_allow_text_only(client: Client, kf: str) -> None:
    user = client.customer(kf)
    queue_code = client.trans(kf, user, 2)["msg_code"]
    assert on_event(client, queue_code, "msgmenu")["errcode"] == 40008
    assert on_event(client, queue_code, "image", image={"media_id": "x"})["errcode"] == 40008
    assert on_event(client, queue_code)["errcode"] == 0
    servicer_code = client.trans(kf, user, 3, "user001")["msg_code"]
    assert on_event(client, servicer_code, "msgmenu")["errcode"] == 40008
    assert on_event(client, servicer_code)["errcode"] == 0
    assert len(client.sent(kf)) == 2


def test_code_only_in_the_state_it_was_issued_in(client: Client, kf: str) -> None:
    user = client.customer(kf)
    queue_code = client.trans(kf, user, 2)["msg_code"]
    client.trans(kf, user, 3, "user001")
    answer = on_event(client, queue_code)
    assert answer["errcode"] == 95007
    # A closing code stops working when the customer opens a new session.
    end_code = client.trans(kf, user, 4)["msg_code"]
    client.say(kf, "wait", user)
    assert on_event(client, end_code)["errcode"] == 95007
    assert client.sent(kf) == []


def test_on_event_errors(client: Client, kf: str) -> None:
    assert on_event(client, "no-such-code")["errcode"] == 95007
    assert client.post(ON_EVENT, {"msgtype": "text", "text": {"content": "x"}})["errcode"] == 40058
    code = enter(client, kf)["welcome_code"]
    assert on_event(client, code, msgid="x" * 33)["errcode"] == 40058
    assert (
        client.post(ON_EVENT, {"code": code, "msgtype": "text", "text": {"content": ""}})["errcode"]
        == 44004
    )
    # Failed attempts do not use the code up; a used msgid is refused per account.
    client.send_text(kf, client.customer(kf), msgid="taken")
    answer = on_event(client, code, msgid="taken")
    assert answer["errcode"] == 40058 and "msgid" in answer["errmsg"]
    assert on_event(client, code, msgid="fresh")["errcode"] == 0
