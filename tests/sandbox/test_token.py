"""gettoken and access-token checks (kf-api.md §1.2, DESIGN.md §3/§8)."""

from __future__ import annotations

import re
from pathlib import Path

from kfcli.sandbox import start

from .conftest import Client


def test_gettoken_issues_a_long_token(client: Client) -> None:
    answer = client.gettoken()
    assert answer["errcode"] == 0 and answer["errmsg"] == "ok"
    assert re.fullmatch(r"[A-Za-z0-9_-]{64,512}", answer["access_token"])
    assert answer["expires_in"] == 7200


def test_gettoken_errors(client: Client) -> None:
    creds = client.server.credentials
    url = f"{client.base}/cgi-bin/gettoken"
    cases = [
        ({"corpsecret": creds["secret"]}, 41002),
        ({"corpid": "", "corpsecret": creds["secret"]}, 41002),
        ({"corpid": creds["corp_id"]}, 41004),
        ({"corpid": "ww0000000000000000", "corpsecret": creds["secret"]}, 40013),
        ({"corpid": creds["corp_id"], "corpsecret": creds["secret"] + "x"}, 40001),
    ]
    for params, errcode in cases:
        answer = client.http.get(url, params=params).json()
        assert answer["errcode"] == errcode, (params, answer)
        assert "access_token" not in answer


def test_same_token_while_valid(client: Client) -> None:
    first = client.gettoken()
    client.advance(100)
    second = client.gettoken()
    assert second["access_token"] == first["access_token"]
    assert 7090 <= second["expires_in"] <= 7100


def test_token_expiry(client: Client) -> None:
    old = client.token()
    # The simulator's clock is the real one plus the advances: leave room for a slow machine.
    client.advance(7170)
    assert client.post("/cgi-bin/kf/account/list", {})["errcode"] == 0
    client.advance(30)
    assert client.post("/cgi-bin/kf/account/list", {})["errcode"] == 42001
    fresh = client.gettoken()
    assert fresh["access_token"] != old and fresh["expires_in"] == 7200
    assert (
        client.post("/cgi-bin/kf/account/list", {}, access_token=fresh["access_token"])["errcode"]
        == 0
    )
    # The expired one stays expired (42001), it does not become "unknown".
    assert client.post("/cgi-bin/kf/account/list", {}, access_token=old)["errcode"] == 42001


def test_missing_and_unknown_tokens(client: Client) -> None:
    url = f"{client.base}/cgi-bin/kf/account/list"
    assert client.http.post(url, json={}).json()["errcode"] == 41001
    assert client.http.post(url, params={"access_token": ""}, json={}).json()["errcode"] == 41001
    answer = client.http.post(url, params={"access_token": "x" * 64}, json={}).json()
    assert answer["errcode"] == 40014
    # Every /cgi-bin path but gettoken needs the token, media upload included.
    answer = client.http.post(f"{client.base}/cgi-bin/media/upload", params={"type": "image"})
    assert answer.json()["errcode"] == 41001


def test_token_ttl_is_configurable(db_path: Path) -> None:
    server = start(db_path, token_ttl=60)
    try:
        client = Client(server)
        assert client.gettoken()["expires_in"] == 60
        client.token()
        client.advance(61)
        assert client.post("/cgi-bin/kf/account/list", {})["errcode"] == 42001
        client.close()
    finally:
        server.stop()


def test_tokens_survive_a_restart(db_path: Path) -> None:
    server = start(db_path)
    try:
        token = Client(server).token()
    finally:
        server.stop()
    server = start(db_path)
    try:
        client = Client(server)
        assert client.post("/cgi-bin/kf/account/list", {}, access_token=token)["errcode"] == 0
        assert client.gettoken()["access_token"] == token
    finally:
        server.stop()
