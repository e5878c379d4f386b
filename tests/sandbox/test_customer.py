"""Customers, the upgrade service and corp qualification (kf-api.md §2.8, §2.9)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from kfcli.sandbox import start

from .conftest import Client

BATCHGET = "/cgi-bin/kf/customer/batchget"
CONFIG = "/cgi-bin/kf/customer/get_upgrade_service_config"
UPGRADE = "/cgi-bin/kf/customer/upgrade_service"
CANCEL = "/cgi-bin/kf/customer/cancel_upgrade_service"


def enter(client: Client, open_kfid: str, **body: object) -> dict:
    return client.ok("POST", "/sandbox/enter_session", {"open_kfid": open_kfid, **body})


def test_batchget(client: Client) -> None:
    open_kfid = client.add_account()
    first = client.customer(open_kfid, "wmFirstCustomer")
    second = client.customer(open_kfid)
    answer = client.post(BATCHGET, {"external_userid_list": [first, "wmUnknown", second, first]})
    assert answer["errcode"] == 0
    assert [c["external_userid"] for c in answer["customer_list"]] == [first, second]
    assert answer["invalid_external_userid"] == ["wmUnknown"]
    customer = answer["customer_list"][0]
    assert set(customer) == {"external_userid", "nickname", "avatar", "gender", "unionid"}
    assert customer["nickname"] and customer["avatar"].startswith("http")
    assert customer["gender"] in (0, 1, 2) and customer["unionid"]
    # No context unless asked for.
    assert "enter_session_context" not in customer


def test_profiles_are_deterministic(client: Client, tmp_path: Path) -> None:
    ids = [f"wmDeterministic{n}" for n in range(40)]
    open_kfid = client.add_account()
    for external_userid in ids:
        client.customer(open_kfid, external_userid)
    mine = client.post(BATCHGET, {"external_userid_list": ids})["customer_list"]
    other = start(tmp_path / "other.db")
    try:
        theirs_client = Client(other)
        kf = theirs_client.add_account()
        for external_userid in reversed(ids):
            theirs_client.customer(kf, external_userid)
        theirs = theirs_client.post(BATCHGET, {"external_userid_list": ids})["customer_list"]
    finally:
        other.stop()
    assert mine == theirs
    nicknames = {c["nickname"] for c in mine}
    assert len(nicknames) > 5
    assert any(not name.isascii() for name in nicknames)  # some Chinese nicknames


def test_enter_session_context(client: Client) -> None:
    open_kfid = client.add_account()
    entered = enter(client, open_kfid, scene="poster", scene_param="from=上海")
    user = entered["external_userid"]
    never_entered = client.customer(open_kfid)
    body = {"external_userid_list": [user, never_entered], "need_enter_session_context": 1}
    with_context, without = client.post(BATCHGET, body)["customer_list"]
    assert with_context["enter_session_context"] == {"scene": "poster", "scene_param": "from=上海"}
    assert "enter_session_context" not in without
    # The latest entry wins, with its Channels details.
    channels = {"nickname": "视频号A", "scene": 1}
    enter(client, open_kfid, external_userid=user, scene="ch", wechat_channels=channels)
    [customer] = client.post(BATCHGET, {**body, "external_userid_list": [user]})["customer_list"]
    assert customer["enter_session_context"] == {
        "scene": "ch",
        "scene_param": "",
        "wechat_channels": channels,
    }
    # Only entries of the last 48 h count.
    client.later(48 * 3600)
    [customer] = client.post(BATCHGET, {**body, "external_userid_list": [user]})["customer_list"]
    assert "enter_session_context" not in customer


def test_enter_session_control(client: Client) -> None:
    open_kfid = client.add_account()
    answer = enter(client, open_kfid)
    assert answer["errcode"] == 0 and answer["welcome_code"] and answer["token"]
    assert answer["external_userid"].startswith("wm")
    named = enter(client, open_kfid, external_userid="wmNamedOne")
    assert named["external_userid"] == "wmNamedOne"
    assert client.post(BATCHGET, {"external_userid_list": ["wmNamedOne"]})["customer_list"]
    for bad in (
        {"open_kfid": open_kfid, "scene": "has space"},
        {"open_kfid": open_kfid, "scene": "s" * 33},
        {"open_kfid": open_kfid, "scene_param": "p" * 129},
        {"open_kfid": open_kfid, "wechat_channels": "x"},
        {"scene": "x"},
    ):
        assert client.control("POST", "/sandbox/enter_session", bad).status_code == 400, bad


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"external_userid_list": []},
        {"external_userid_list": [f"wm{n}" for n in range(101)]},
        {"external_userid_list": "wmOne"},
        {"external_userid_list": [1]},
        {"external_userid_list": ["wmOne"], "need_enter_session_context": 2},
    ],
)
def test_batchget_bad_requests(client: Client, body: dict) -> None:
    assert client.post(BATCHGET, body)["errcode"] == 40058


def test_batchget_100_ids(client: Client) -> None:
    answer = client.post(BATCHGET, {"external_userid_list": [f"wm{n}" for n in range(100)]})
    assert answer["errcode"] == 0 and len(answer["invalid_external_userid"]) == 100


# --- upgrade service ----------------------------------------------------------------------


def test_upgrade_config(client: Client) -> None:
    answer = client.get(CONFIG)
    assert answer["errcode"] == 0
    members = answer["member_range"]
    assert members["userid_list"] and all(isinstance(u, str) for u in members["userid_list"])
    assert members["department_id_list"]
    assert all(type(d) is int for d in members["department_id_list"])
    assert answer["groupchat_range"]["chat_id_list"]
    assert client.get(CONFIG) == answer  # deterministic
    assert client.post(CONFIG, {})["errcode"] == 43001


def test_upgrade_and_cancel(client: Client, db: sqlite3.Connection) -> None:
    open_kfid = client.add_account()
    user = client.customer(open_kfid)
    config = client.get(CONFIG)
    member = config["member_range"]["userid_list"][0]
    chat = config["groupchat_range"]["chat_id_list"][0]
    base = {"open_kfid": open_kfid, "external_userid": user}

    def pending() -> dict | None:
        row = db.execute(
            "SELECT upgrade FROM sessions WHERE open_kfid = ? AND external_userid = ?",
            (open_kfid, user),
        ).fetchone()
        return json.loads(row[0]) if row[0] else None

    answer = client.post(
        UPGRADE, {**base, "type": 1, "member": {"userid": member, "wording": "专属顾问"}}
    )
    assert answer == {"errcode": 0, "errmsg": "ok"}
    assert pending()["member"] == {"userid": member, "wording": "专属顾问"}
    assert client.post(UPGRADE, {**base, "type": 2, "groupchat": {"chat_id": chat}})["errcode"] == 0
    assert pending()["groupchat"] == {"chat_id": chat}
    assert client.post(CANCEL, base) == {"errcode": 0, "errmsg": "ok"}
    assert pending() is None
    assert client.post(CANCEL, base)["errcode"] == 0  # nothing pending: still fine
    # A member of a configured department counts as configured (department 3 holds user002,
    # user013, user024, ...: directory.department_of).
    assert config["member_range"]["department_id_list"] == [3]
    assert "user013" not in config["member_range"]["userid_list"]
    assert (
        client.post(UPGRADE, {**base, "type": 1, "member": {"userid": "user013"}})["errcode"] == 0
    )


def test_upgrade_rules(client: Client) -> None:
    open_kfid = client.add_account()
    user = client.customer(open_kfid)
    base = {"open_kfid": open_kfid, "external_userid": user}
    cases = [
        ({"type": 1, "member": {"userid": "user300"}}, 95021),  # not configured
        ({"type": 1, "member": {"userid": "nobody"}}, 95021),
        ({"type": 2, "groupchat": {"chat_id": "wrNotConfigured"}}, 95021),
        ({"type": 1, "groupchat": {"chat_id": "wrSandboxGroupChat000000000001"}}, 40058),
        ({"type": 2, "member": {"userid": "user001"}}, 40058),
        ({"type": 3, "member": {"userid": "user001"}}, 40058),
        ({"member": {"userid": "user001"}}, 40058),
        ({"type": 1, "member": {}}, 40058),
        ({"type": 1, "member": "user001"}, 40058),
    ]
    for extra, errcode in cases:
        assert client.post(UPGRADE, {**base, **extra})["errcode"] == errcode, extra
    good = {"type": 1, "member": {"userid": "user001"}}
    assert (
        client.post(UPGRADE, {**good, "open_kfid": open_kfid, "external_userid": "wmX"})["errcode"]
        == 40096
    )
    assert client.post(UPGRADE, {**good, "external_userid": user})["errcode"] == 40058
    assert (
        client.post(CANCEL, {"open_kfid": open_kfid, "external_userid": "wmX"})["errcode"] == 40096
    )
    assert (
        client.post(CANCEL, {"open_kfid": "wk" + "q" * 30, "external_userid": user})["errcode"]
        == 95004
    )


# --- corp ---------------------------------------------------------------------------------


def test_corp_qualification(client: Client, db_path: Path) -> None:
    path = "/cgi-bin/kf/get_corp_qualification"
    assert client.get(path) == {"errcode": 0, "errmsg": "ok", "wechat_channels_binding": False}
    answer = client.ok("POST", "/sandbox/corp", {"wechat_channels_binding": True})
    assert answer == {"errcode": 0, "wechat_channels_binding": True}
    assert client.get(path)["wechat_channels_binding"] is True
    # Stored in the database: another server on the same file agrees.
    other = start(db_path)
    try:
        assert Client(other).get(path)["wechat_channels_binding"] is True
    finally:
        other.stop()
    for bad in ({}, {"wechat_channels_binding": "true"}, {"wechat_channels_binding": 1}):
        assert client.control("POST", "/sandbox/corp", bad).status_code == 400
    client.ok("POST", "/sandbox/corp", {"wechat_channels_binding": False})
    assert client.get(path)["wechat_channels_binding"] is False
