"""sync_msg: paging, cursors, history, tokens, message shapes, faults (kf-api.md §2.5, §3)."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Client

SYNC = "/cgi-bin/kf/sync_msg"


def sync(client: Client, open_kfid: str, **body: Any) -> dict[str, Any]:
    answer = client.post(SYNC, {"open_kfid": open_kfid, **body})
    assert answer["errcode"] == 0, answer
    return answer


def sync_all(client: Client, open_kfid: str, cursor: str = "", **body: Any) -> list[dict]:
    messages: list[dict] = []
    while True:
        answer = sync(client, open_kfid, cursor=cursor, **body)
        messages += answer["msg_list"]
        cursor = answer["next_cursor"]
        if not answer["has_more"]:
            return messages


def test_paging_across_2500_messages(client: Client) -> None:
    open_kfid = client.add_account()
    client.ok("POST", "/sandbox/seed_messages", {"open_kfid": open_kfid, "count": 2500})
    pages, cursor, seen = [], "", []
    while True:
        answer = sync(client, open_kfid, cursor=cursor, limit=1000)
        pages.append((len(answer["msg_list"]), answer["has_more"]))
        seen += answer["msg_list"]
        assert isinstance(answer["next_cursor"], str)
        assert 0 < len(answer["next_cursor"].encode()) <= 64
        cursor = answer["next_cursor"]
        if not answer["has_more"]:
            break
    assert pages == [(1000, 1), (1000, 1), (500, 0)]
    assert [m["text"]["content"] for m in seen] == [
        f"seed message {n} of 2500" for n in range(1, 2501)
    ]
    assert len({m["msgid"] for m in seen}) == 2500
    # Caught up: an empty page, has_more 0, and the cursor still works.
    answer = sync(client, open_kfid, cursor=cursor)
    assert answer["msg_list"] == [] and answer["has_more"] == 0
    client.say(open_kfid, "one more")
    answer = sync(client, open_kfid, cursor=answer["next_cursor"])
    assert [m["text"]["content"] for m in answer["msg_list"]] == ["one more"]


def test_default_limit_is_1000(client: Client) -> None:
    open_kfid = client.add_account()
    client.ok("POST", "/sandbox/seed_messages", {"open_kfid": open_kfid, "count": 1001})
    answer = sync(client, open_kfid)
    assert len(answer["msg_list"]) == 1000 and answer["has_more"] == 1
    assert len(sync(client, open_kfid, limit=1)["msg_list"]) == 1
    # 0 means the default too, as the Go SDK sends it for an unset limit (DESIGN.md §8).
    answer = sync(client, open_kfid, limit=0)
    assert answer["errcode"] == 0 and len(answer["msg_list"]) == 1000


def test_cursor_resume_and_reread(client: Client) -> None:
    open_kfid = client.add_account()
    user = client.customer(open_kfid)  # message 1
    for text in ("two", "three", "four"):
        client.say(open_kfid, text, user)
    first = sync(client, open_kfid, limit=2)
    assert [m["text"]["content"] for m in first["msg_list"]] == ["hi", "two"]
    rest = sync(client, open_kfid, cursor=first["next_cursor"], limit=2)
    assert [m["text"]["content"] for m in rest["msg_list"]] == ["three", "four"]
    assert rest["has_more"] == 0
    # A cursor is a position: using it again reads the same messages again.
    again = sync(client, open_kfid, cursor=first["next_cursor"])
    assert again["msg_list"] == rest["msg_list"]
    # Cursors are per account.
    other = client.add_account()
    answer = client.post(SYNC, {"open_kfid": other, "cursor": first["next_cursor"]})
    assert answer["errcode"] == 40058


def test_customer_message_shape(client: Client) -> None:
    open_kfid = client.add_account()
    said = client.say(open_kfid, '你好 "quoted" \\ \n end')
    now = client.ok("GET", "/sandbox/clock")["now"]
    [message] = sync(client, open_kfid)["msg_list"]
    assert set(message) == {
        "msgid",
        "open_kfid",
        "external_userid",
        "send_time",
        "origin",
        "msgtype",
        "text",
    }
    assert message["msgid"] == said["msgid"]
    assert message["open_kfid"] == open_kfid
    assert message["external_userid"] == said["external_userid"]
    assert message["origin"] == 3 and message["msgtype"] == "text"
    assert message["text"] == {"content": '你好 "quoted" \\ \n end'}
    assert abs(message["send_time"] - now) <= 2


def test_events_and_servicer_messages(client: Client) -> None:
    open_kfid = client.add_account()
    client.add_servicers(open_kfid, ["user001", "user002"])
    entered = client.ok(
        "POST",
        "/sandbox/enter_session",
        {"open_kfid": open_kfid, "scene": "ad_2024", "scene_param": "渠道=A&x=1"},
    )
    user = entered["external_userid"]
    client.say(open_kfid, "question", user)
    client.ok(
        "POST",
        "/sandbox/servicer_message",
        {"open_kfid": open_kfid, "external_userid": user, "userid": "user001", "text": "答复"},
    )
    client.ok(
        "POST",
        "/sandbox/servicer_status",
        {"open_kfid": open_kfid, "userid": "user002", "status": 1, "stop_type": 1},
    )
    messages = sync(client, open_kfid)["msg_list"]
    enter_event, customer, picked, reply, status = messages

    # Events carry open_kfid / external_userid only inside "event".
    assert set(enter_event) == {"msgid", "send_time", "origin", "msgtype", "event"}
    assert enter_event["origin"] == 4 and enter_event["msgtype"] == "event"
    assert enter_event["event"] == {
        "event_type": "enter_session",
        "open_kfid": open_kfid,
        "external_userid": user,
        "scene": "ad_2024",
        "scene_param": "渠道=A&x=1",
        "welcome_code": entered["welcome_code"],
    }
    assert customer["origin"] == 3 and customer["text"] == {"content": "question"}

    # The servicer picks the new session up (change_type 1, with a msg_code) and writes.
    assert set(picked) == {"msgid", "send_time", "origin", "msgtype", "event"}
    event = picked["event"]
    assert event["event_type"] == "session_status_change" and event["change_type"] == 1
    assert event["new_servicer_userid"] == "user001" and event["msg_code"]
    assert event["open_kfid"] == open_kfid and event["external_userid"] == user
    assert reply == {
        "msgid": reply["msgid"],
        "open_kfid": open_kfid,
        "external_userid": user,
        "send_time": reply["send_time"],
        "origin": 5,
        "servicer_userid": "user001",
        "msgtype": "text",
        "text": {"content": "答复"},
    }
    assert client.state(open_kfid, user)["servicer_userid"] == "user001"

    # servicer_status_change encodes status as 1 receiving / 2 stopped (kf-api.md §3.3).
    assert status["event"] == {
        "event_type": "servicer_status_change",
        "servicer_userid": "user002",
        "status": 2,
        "stop_type": 1,
        "open_kfid": open_kfid,
    }


def test_servicer_reopens_and_transfers(client: Client) -> None:
    open_kfid = client.add_account()
    client.add_servicers(open_kfid, ["user001", "user002"])
    user = client.customer(open_kfid)
    client.trans(open_kfid, user, 3, "user001")
    client.trans(open_kfid, user, 4)
    write = {"open_kfid": open_kfid, "external_userid": user, "text": "still there?"}
    client.ok("POST", "/sandbox/servicer_message", {**write, "userid": "user001"})
    assert client.state(open_kfid, user)["service_state"] == 3
    client.ok("POST", "/sandbox/servicer_message", {**write, "userid": "user002"})
    client.ok("POST", "/sandbox/servicer_message", {**write, "userid": "user002"})
    events = [m["event"] for m in sync(client, open_kfid)["msg_list"] if m["origin"] == 4]
    assert [(e["change_type"], e.get("old_servicer_userid")) for e in events] == [
        (4, None),  # re-opened an ended session
        (2, "user001"),  # transferred
    ]
    assert client.state(open_kfid, user)["servicer_userid"] == "user002"
    # A servicer-written message opens no window: the API still may not send in state 3.
    assert client.send_text(open_kfid, user)["errcode"] == 95018
    for bad, errcode in (
        ({**write, "userid": "user099"}, 95014),
        ({**write, "external_userid": "wmNobody", "userid": "user001"}, 40096),
        ({**write, "userid": "user001", "text": ""}, 40058),
    ):
        response = client.control("POST", "/sandbox/servicer_message", bad)
        assert response.status_code == 400 and response.json()["errcode"] == errcode, bad


def test_api_sent_messages_are_not_returned(client: Client) -> None:
    open_kfid = client.add_account()
    user = client.customer(open_kfid)
    assert client.send_text(open_kfid, user, "from the API")["errcode"] == 0
    code = client.trans(open_kfid, user, 4)["msg_code"]
    on_event = {"code": code, "msgtype": "text", "text": {"content": "bye"}}
    assert client.post("/cgi-bin/kf/send_msg_on_event", on_event)["errcode"] == 0
    messages = sync_all(client, open_kfid)
    assert [m["text"]["content"] for m in messages] == ["hi"]
    assert len(client.sent(open_kfid)) == 2


def test_history_is_three_days(client: Client) -> None:
    open_kfid = client.add_account()
    client.say(open_kfid, "old")
    early = sync(client, open_kfid, limit=1)
    client.later(3 * 24 * 3600 + 1)
    client.say(open_kfid, "new")
    assert [m["text"]["content"] for m in sync_all(client, open_kfid)] == ["new"]
    # A cursor from before is still accepted; what aged out is gone.
    answer = sync(client, open_kfid, cursor=early["next_cursor"])
    assert [m["text"]["content"] for m in answer["msg_list"]] == ["new"]


def test_accounts_are_separate(client: Client) -> None:
    first, second = client.add_account(), client.add_account()
    client.say(first, "for first")
    client.say(second, "for second")
    assert [m["text"]["content"] for m in sync_all(client, first)] == ["for first"]
    assert [m["open_kfid"] for m in sync_all(client, second)] == [second]


def test_empty_page_fault(client: Client) -> None:
    open_kfid = client.add_account()
    client.ok("POST", "/sandbox/seed_messages", {"open_kfid": open_kfid, "count": 30})
    first = sync(client, open_kfid, limit=10)
    answer = client.ok("POST", "/sandbox/faults", {"fault": "empty_page", "path": SYNC})
    assert answer["fault"] == {
        "id": answer["fault"]["id"],
        "fault": "empty_page",
        "path": SYNC,
        "times": 1,
    }
    # Without a cursor: empty, has_more 1, and the cursor resumes at the very start.
    empty = sync(client, open_kfid, limit=10)
    assert empty["msg_list"] == [] and empty["has_more"] == 1
    assert client.ok("GET", "/sandbox/faults")["faults"] == []
    resumed = sync(client, open_kfid, cursor=empty["next_cursor"], limit=10)
    assert resumed["msg_list"] == first["msg_list"]


def test_empty_page_fault_resumes_from_the_request_cursor(client: Client) -> None:
    open_kfid = client.add_account()
    client.ok("POST", "/sandbox/seed_messages", {"open_kfid": open_kfid, "count": 30})
    first = sync(client, open_kfid, limit=10)
    client.ok("POST", "/sandbox/faults", {"fault": "empty_page", "times": 2})
    cursor = first["next_cursor"]
    for _ in range(2):
        empty = sync(client, open_kfid, cursor=cursor, limit=10)
        assert empty["msg_list"] == [] and empty["has_more"] == 1
        cursor = empty["next_cursor"]
    rest = sync_all(client, open_kfid, cursor, limit=10)
    assert [m["text"]["content"] for m in rest] == [
        f"seed message {n} of 30" for n in range(11, 31)
    ]
    # A client that loops on has_more (not on an empty list) reads everything.
    client.ok("POST", "/sandbox/faults", {"fault": "empty_page", "times": 3})
    assert len(sync_all(client, open_kfid, limit=7)) == 30
    # The fault applies to sync_msg only.
    bad = {"fault": "empty_page", "path": "/cgi-bin/kf/send_msg"}
    assert client.control("POST", "/sandbox/faults", bad).status_code == 400


def test_tokens(client: Client) -> None:
    open_kfid = client.add_account()
    token = client.say(open_kfid)["token"]
    seeded = client.ok("POST", "/sandbox/seed_messages", {"open_kfid": open_kfid, "count": 2})
    assert seeded["token"] and seeded["token"] != token
    assert len(token.encode()) <= 128
    assert len(sync(client, open_kfid, token=token)["msg_list"]) == 3
    for bad in ("ENCnot-issued", "x" * 129):
        answer = client.post(SYNC, {"open_kfid": open_kfid, "token": bad})
        assert answer["errcode"] == 95007, bad
    # 590 s later (plus however long this machine takes, up to 10 s): still valid.
    client.later(590)
    assert sync(client, open_kfid, token=token)["errcode"] == 0
    client.later(10)  # 10 minutes old, at least
    answer = client.post(SYNC, {"open_kfid": open_kfid, "token": token})
    assert answer["errcode"] == 95007
    assert answer["errmsg"].startswith("invalid msg token")
    # "" means "not given" (DESIGN.md §8).
    assert sync(client, open_kfid, token="", cursor="")["errcode"] == 0


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({"limit": 1001}, 40058),
        ({"limit": "10"}, 40058),
        ({"cursor": "not-a-cursor"}, 40058),
        ({"cursor": "A" * 65}, 40058),
        ({"cursor": 5}, 40058),
        ({"voice_format": 2}, 40058),
        ({"open_kfid": ""}, 40058),
        ({"open_kfid": None}, 40058),
        ({"open_kfid": "wk" + "z" * 30}, 95004),
        ({"open_kfid": "???"}, 95000),
    ],
)
def test_bad_requests(client: Client, body: dict, errcode: int) -> None:
    open_kfid = client.add_account()
    answer = client.post(SYNC, {"open_kfid": open_kfid, **body})
    assert answer["errcode"] == errcode, answer


def test_edited_cursor_is_refused(client: Client) -> None:
    import base64

    open_kfid = client.add_account()
    client.say(open_kfid)
    cursor = sync(client, open_kfid)["next_cursor"]
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    position, tag = raw.split(".")
    assert int(position) > 0
    forged = base64.urlsafe_b64encode(f"0.{tag}".encode()).decode().rstrip("=")
    assert client.post(SYNC, {"open_kfid": open_kfid, "cursor": forged})["errcode"] == 40058
