"""KF accounts and contact-way links (kf-api.md §2.2)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest

from kfcli.sandbox import rules

from .conftest import AMR, Client


def test_add_list_update_delete(client: Client) -> None:
    media_id = client.image()
    open_kfid = client.add_account("售前咨询", media_id)
    assert re.fullmatch(r"wk[A-Za-z0-9_-]{30}", open_kfid)
    [account] = client.accounts()
    assert account["open_kfid"] == open_kfid
    assert account["name"] == "售前咨询"
    assert account["manage_privilege"] is True
    assert account["avatar"].startswith("https://wework.qpic.cn/wwpic/")
    avatar = account["avatar"]

    # Omitted fields keep their value; "" counts as omitted.
    answer = client.post("/cgi-bin/kf/account/update", {"open_kfid": open_kfid, "name": "售后"})
    assert answer == {"errcode": 0, "errmsg": "ok"}
    assert client.accounts()[0]["name"] == "售后"
    assert client.accounts()[0]["avatar"] == avatar
    new_media = client.image()
    answer = client.post(
        "/cgi-bin/kf/account/update", {"open_kfid": open_kfid, "name": "", "media_id": new_media}
    )
    assert answer["errcode"] == 0
    [account] = client.accounts()
    assert account["name"] == "售后" and account["avatar"] != avatar

    answer = client.post("/cgi-bin/kf/account/del", {"open_kfid": open_kfid})
    assert answer == {"errcode": 0, "errmsg": "ok"}
    assert client.accounts() == []
    # A deleted account is "does not exist" everywhere.
    assert client.post("/cgi-bin/kf/account/del", {"open_kfid": open_kfid})["errcode"] == 95004
    answer = client.post("/cgi-bin/kf/account/update", {"open_kfid": open_kfid, "name": "x"})
    assert answer["errcode"] == 95004
    answer = client.post("/cgi-bin/kf/add_contact_way", {"open_kfid": open_kfid})
    assert answer["errcode"] == 95004


def test_name_rules(client: Client) -> None:
    media_id = client.image()
    add = "/cgi-bin/kf/account/add"
    assert client.post(add, {"name": "中" * 16, "media_id": media_id})["errcode"] == 0
    assert client.post(add, {"name": "a" * 16, "media_id": media_id})["errcode"] == 0
    assert client.post(add, {"name": "a" * 17, "media_id": media_id})["errcode"] == 95006
    assert client.post(add, {"name": "中" * 17, "media_id": media_id})["errcode"] == 95006
    assert client.post(add, {"name": "   ", "media_id": media_id})["errcode"] == 95006
    assert client.post(add, {"media_id": media_id})["errcode"] == 40058
    assert client.post(add, {"name": "", "media_id": media_id})["errcode"] == 40058
    assert client.post(add, {"name": None, "media_id": media_id})["errcode"] == 40058
    open_kfid = client.accounts()[0]["open_kfid"]
    update = "/cgi-bin/kf/account/update"
    assert client.post(update, {"open_kfid": open_kfid, "name": "b" * 17})["errcode"] == 95006
    assert client.accounts()[0]["name"] == "中" * 16


def test_media_rules(client: Client) -> None:
    add = "/cgi-bin/kf/account/add"
    assert client.post(add, {"name": "n"})["errcode"] == 40058
    assert client.post(add, {"name": "n", "media_id": "nope"})["errcode"] == 40007
    assert client.post(add, {"name": "n", "media_id": "3" * 129})["errcode"] == 40007
    voice = client.upload(AMR, "voice", "a.amr")["media_id"]
    assert client.post(add, {"name": "n", "media_id": voice})["errcode"] == 40007
    open_kfid = client.add_account()
    answer = client.post("/cgi-bin/kf/account/update", {"open_kfid": open_kfid, "media_id": "x"})
    assert answer["errcode"] == 40007
    assert client.accounts()[0]["name"] == "客服"  # nothing changed


def test_media_expires_after_three_days(client: Client) -> None:
    media_id = client.image()
    client.advance(3 * 24 * 3600 - 60)
    client.token(refresh=True)
    assert (
        client.post("/cgi-bin/kf/account/add", {"name": "a", "media_id": media_id})["errcode"] == 0
    )
    client.advance(60)
    client.token(refresh=True)
    answer = client.post("/cgi-bin/kf/account/add", {"name": "b", "media_id": media_id})
    assert answer["errcode"] == 40007
    assert [a["name"] for a in client.accounts()] == ["a"]


def test_account_limit(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rules, "MAX_ACCOUNTS", 3)
    media_id = client.image()
    ids = [client.add_account(f"k{i}", media_id) for i in range(3)]
    answer = client.post("/cgi-bin/kf/account/add", {"name": "k3", "media_id": media_id})
    assert answer["errcode"] == 95005
    client.post("/cgi-bin/kf/account/del", {"open_kfid": ids[0]})
    client.add_account("k4", media_id)  # deleted accounts free their slot
    assert len(client.accounts()) == 3


def test_open_kfid_errors(client: Client) -> None:
    for path in ("/cgi-bin/kf/account/del", "/cgi-bin/kf/account/update"):
        assert client.post(path, {})["errcode"] == 40058
        assert client.post(path, {"open_kfid": ""})["errcode"] == 40058
        assert client.post(path, {"open_kfid": 7})["errcode"] == 40058
        assert client.post(path, {"open_kfid": "wk" + "a" * 63})["errcode"] == 95000
        assert client.post(path, {"open_kfid": "wk bad id"})["errcode"] == 95000
        assert client.post(path, {"open_kfid": "wk" + "a" * 30})["errcode"] == 95004


def test_list_paging(client: Client) -> None:
    media_id = client.image()
    ids = [client.add_account(f"acc{i}", media_id) for i in range(5)]
    listed = client.post("/cgi-bin/kf/account/list", {"offset": 0, "limit": 2})["account_list"]
    assert [a["open_kfid"] for a in listed] == ids[:2]
    listed = client.post("/cgi-bin/kf/account/list", {"offset": 2, "limit": 2})["account_list"]
    assert [a["open_kfid"] for a in listed] == ids[2:4]
    listed = client.post("/cgi-bin/kf/account/list", {"offset": 4, "limit": 100})["account_list"]
    assert [a["open_kfid"] for a in listed] == ids[4:]
    assert client.post("/cgi-bin/kf/account/list", {"offset": 9})["account_list"] == []
    assert client.post("/cgi-bin/kf/account/list", {"limit": None})["errcode"] == 0
    for bad in ({"limit": 0}, {"limit": 101}, {"limit": -1}, {"offset": -1}, {"limit": 1.5}):
        assert client.post("/cgi-bin/kf/account/list", bad)["errcode"] == 40058, bad


def test_list_default_and_get_form_return_first_100(client: Client) -> None:
    media_id = client.image()
    ids = [client.add_account(f"acc{i}", media_id) for i in range(101)]
    answer = client.get("/cgi-bin/kf/account/list", offset="100", limit="1")
    assert answer["errcode"] == 0
    assert [a["open_kfid"] for a in answer["account_list"]] == ids[:100]
    assert set(answer["account_list"][0]) == {"open_kfid", "name", "avatar", "manage_privilege"}
    listed = client.post("/cgi-bin/kf/account/list", {})["account_list"]
    assert [a["open_kfid"] for a in listed] == ids[:100]
    listed = client.post("/cgi-bin/kf/account/list", {"offset": 100})["account_list"]
    assert [a["open_kfid"] for a in listed] == ids[100:]


def test_contact_way(client: Client) -> None:
    open_kfid = client.add_account()
    path = "/cgi-bin/kf/add_contact_way"
    plain = client.post(path, {"open_kfid": open_kfid})
    assert plain["errcode"] == 0
    assert re.fullmatch(r"https://work\.weixin\.qq\.com/kf/kfc[0-9a-f]+", plain["url"])
    assert client.post(path, {"open_kfid": open_kfid, "scene": ""})["url"] == plain["url"]

    with_scene = client.post(path, {"open_kfid": open_kfid, "scene": "Spring_2024-a"})["url"]
    parts = urlsplit(with_scene)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == plain["url"]
    [enc] = parse_qs(parts.query)["enc_scene"]
    assert enc and "Spring" not in enc
    again = client.post(path, {"open_kfid": open_kfid, "scene": "Spring_2024-a"})["url"]
    assert again == with_scene
    other = client.post(path, {"open_kfid": open_kfid, "scene": "b"})["url"]
    assert other != with_scene

    assert client.post(path, {"open_kfid": open_kfid, "scene": "s" * 32})["errcode"] == 0
    for scene in ("s" * 33, "a b", "中文", "a.b", "a/b"):
        answer = client.post(path, {"open_kfid": open_kfid, "scene": scene})
        assert answer["errcode"] == 40058, scene
    assert client.post(path, {"open_kfid": open_kfid, "scene": 5})["errcode"] == 40058
    assert client.post(path, {})["errcode"] == 40058
    assert client.post(path, {"open_kfid": "wk" + "z" * 30})["errcode"] == 95004
    # Another account gets another link.
    assert client.post(path, {"open_kfid": client.add_account()})["url"] != plain["url"]
