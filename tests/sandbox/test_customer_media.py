"""Customers send image, voice, video and file messages (POST /sandbox/customer_message with a
msgtype): the sync_msg shape, media/get of the bytes, expiry after 3 days of simulator time."""

from __future__ import annotations

import base64
import sqlite3

import pytest

from .conftest import AMR, JPG, MP4, PNG, Client

MB = 1024 * 1024
DAY = 86400


def send(client: Client, open_kfid: str, msgtype: str, data: bytes, **extra) -> dict:
    body = {"open_kfid": open_kfid, "msgtype": msgtype,
            "media_base64": base64.b64encode(data).decode(), **extra}
    return client.ok("POST", "/sandbox/customer_message", body)


def refused(client: Client, body: dict) -> dict:
    response = client.control("POST", "/sandbox/customer_message", body)
    assert response.status_code == 400, response.text
    return response.json()


def sync(client: Client, open_kfid: str) -> list[dict]:
    answer = client.post("/cgi-bin/kf/sync_msg", {"open_kfid": open_kfid})
    assert answer["errcode"] == 0, answer
    return answer["msg_list"]


def media_get(client: Client, media_id: str):
    return client.http.get(f"{client.base}/cgi-bin/media/get",
                           params={"access_token": client.token(), "media_id": media_id})


@pytest.mark.parametrize(
    ("msgtype", "data", "filename", "content_type"),
    [
        ("image", PNG, "photo.png", "image/png"),
        ("image", JPG, "photo.jpg", "image/jpeg"),
        ("voice", AMR, "voice.amr", "audio/amr"),
        ("video", MP4, "clip.mp4", "video/mp4"),
        ("file", b"%PDF-1.4 not really", "报价单.pdf", "application/pdf"),
    ],
)
def test_each_type_arrives_as_wecom_shapes_it(
    client: Client, msgtype: str, data: bytes, filename: str, content_type: str
) -> None:
    open_kfid = client.add_account()
    answer = send(client, open_kfid, msgtype, data, filename=filename,
                  external_userid="wmCustomer1")
    assert answer["errcode"] == 0 and answer["external_userid"] == "wmCustomer1"
    assert answer["msgid"] and answer["token"] and answer["media_id"]

    (message,) = sync(client, open_kfid)
    assert set(message) == {"msgid", "open_kfid", "external_userid", "send_time", "origin",
                            "msgtype", msgtype}
    assert message["msgid"] == answer["msgid"]
    assert message["origin"] == 3 and message["msgtype"] == msgtype
    assert message["external_userid"] == "wmCustomer1"
    assert message[msgtype] == {"media_id": answer["media_id"]}  # no filename, no size

    response = media_get(client, answer["media_id"])
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["Content-Type"] == content_type
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment; filename=")
    if filename.isascii():
        assert f'filename="{filename}"' in disposition
    else:
        assert "filename*=UTF-8''" in disposition


def test_message_opens_the_session_like_text(client: Client) -> None:
    open_kfid = client.add_account()
    answer = send(client, open_kfid, "image", PNG)
    assert answer["external_userid"].startswith("wm")
    state = client.state(open_kfid, answer["external_userid"])
    assert state["errcode"] == 0 and state["service_state"] == 0
    # The 48 h window is open: the enterprise may answer.
    assert client.send_text(open_kfid, answer["external_userid"])["errcode"] == 0


def test_default_filenames(client: Client, db: sqlite3.Connection) -> None:
    open_kfid = client.add_account()
    for msgtype, data, expected in (("image", PNG, "image.png"), ("image", JPG, "image.jpg"),
                                    ("voice", AMR, "voice.amr"), ("file", b"hello!", "file.bin")):
        media_id = send(client, open_kfid, msgtype, data)["media_id"]
        row = db.execute("SELECT type, filename, size FROM media WHERE media_id = ?",
                         (media_id,)).fetchone()
        assert (row["type"], row["filename"], row["size"]) == (msgtype, expected, len(data))


def test_media_expires_after_three_days_of_simulator_time(client: Client) -> None:
    open_kfid = client.add_account()
    media_id = send(client, open_kfid, "image", PNG)["media_id"]
    uploaded = client.upload(PNG)["media_id"]
    client.later(3 * DAY - 60)
    assert media_get(client, media_id).content == PNG
    assert media_get(client, uploaded).content == PNG
    client.later(120)
    for expired in (media_id, uploaded):
        response = media_get(client, expired)
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.json()["errcode"] == 40007


def test_expired_customer_media_cannot_be_sent_back(client: Client) -> None:
    open_kfid = client.add_account()
    answer = send(client, open_kfid, "image", PNG)
    client.later(3 * DAY + 1)
    client.say(open_kfid, "again", answer["external_userid"])  # window open again
    body = {"touser": answer["external_userid"], "open_kfid": open_kfid, "msgtype": "image",
            "image": {"media_id": answer["media_id"]}}
    assert client.post("/cgi-bin/kf/send_msg", body)["errcode"] == 40007


@pytest.mark.parametrize(
    ("body", "errcode", "words"),
    [
        ({"msgtype": "sticker", "media_base64": "AAAA"}, 40058, "msgtype must be"),
        ({"msgtype": "image"}, 40058, "media_base64 is required"),
        ({"msgtype": "image", "media_base64": "not base64!"}, 40058, "not valid base64"),
        ({"msgtype": "image", "media_base64": base64.b64encode(b"\x89PNG").decode()}, 40006,
         "more than 5"),
        ({"msgtype": "image", "media_base64": base64.b64encode(b"GIF89a....").decode()}, 40005,
         "JPG or PNG"),
        ({"msgtype": "voice", "media_base64": base64.b64encode(PNG).decode()}, 40005, "AMR"),
        ({"msgtype": "video", "media_base64": base64.b64encode(PNG).decode()}, 40005, "MP4"),
        ({"msgtype": "image", "media_base64": base64.b64encode(PNG).decode(), "text": "hi"},
         40058, "text goes with msgtype text"),
        ({"text": "hi", "media_base64": base64.b64encode(PNG).decode()}, 40058,
         "go with msgtype image"),
        ({"msgtype": "file", "media_base64": base64.b64encode(PNG).decode(),
          "filename": "../etc/passwd"}, 40058, "filename must be"),
        ({"msgtype": "file", "media_base64": base64.b64encode(PNG).decode(),
          "filename": "a\nb"}, 40058, "filename must be"),
        ({"msgtype": "file", "media_base64": base64.b64encode(PNG).decode(),
          "filename": "x" * 256}, 40058, "filename must be"),
        ({"msgtype": "file", "media_base64": base64.b64encode(PNG).decode(),
          "filename": 7}, 40058, "filename must be a string"),
    ],
)
def test_validation(client: Client, db: sqlite3.Connection, body: dict, errcode: int,
                    words: str) -> None:
    open_kfid = client.add_account()
    media_before = db.execute("SELECT count(*) FROM media").fetchone()[0]
    answer = refused(client, {"open_kfid": open_kfid, **body})
    assert answer["errcode"] == errcode and words in answer["errmsg"], answer
    assert db.execute("SELECT count(*) FROM messages").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM media").fetchone()[0] == media_before


@pytest.mark.parametrize(("msgtype", "head", "cap", "errcode"),
                         [("image", PNG, 2 * MB, 40009), ("voice", AMR, 2 * MB, 40006),
                          ("video", MP4, 10 * MB, 40011)])
def test_size_caps_of_sync_msg(client: Client, msgtype: str, head: bytes, cap: int,
                               errcode: int) -> None:
    open_kfid = client.add_account()
    assert send(client, open_kfid, msgtype, head + b"\0" * (cap - len(head)))["media_id"]
    answer = refused(client, {"open_kfid": open_kfid, "msgtype": msgtype,
                              "media_base64": base64.b64encode(head + b"\0" * cap).decode()})
    assert answer["errcode"] == errcode and f"up to {cap // MB} MB" in answer["errmsg"]


def test_unknown_account(client: Client) -> None:
    answer = refused(client, {"open_kfid": "wkNoSuchAccount", "msgtype": "image",
                              "media_base64": base64.b64encode(PNG).decode()})
    assert answer["errcode"] in (95000, 95004)


def test_text_still_works_with_explicit_msgtype(client: Client) -> None:
    open_kfid = client.add_account()
    answer = client.ok("POST", "/sandbox/customer_message",
                       {"open_kfid": open_kfid, "msgtype": "text", "text": "你好"})
    assert "media_id" not in answer
    (message,) = sync(client, open_kfid)
    assert message["text"] == {"content": "你好"}
