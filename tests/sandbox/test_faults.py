"""Injected faults (POST/GET/DELETE /sandbox/faults, DESIGN.md §8)."""

from __future__ import annotations

import time

import pytest
import requests

from .conftest import Client

ADD = "/cgi-bin/kf/account/add"


def fault(client: Client, **body: object) -> dict:
    return client.ok("POST", "/sandbox/faults", body)


def test_errcode_fault_fails_before_taking_effect(client: Client) -> None:
    media_id = client.image()
    fault(client, fault="errcode", errcode=45009, path=ADD, times=2)
    for _ in range(2):
        answer = client.post(ADD, {"name": "n", "media_id": media_id})
        assert answer["errcode"] == 45009
        assert answer["errmsg"].startswith("api freq out of limit, hint: [")
    assert client.accounts() == []  # other paths are not affected
    assert client.post(ADD, {"name": "n", "media_id": media_id})["errcode"] == 0
    assert len(client.accounts()) == 1
    # Faults are answered before auth too, and count as requests.
    assert client.ok("GET", "/sandbox/stats")["requests"][ADD] == 3


def test_fault_without_path_hits_any_api_path(client: Client) -> None:
    fault(client, fault="errcode", errcode=-1)
    answer = client.gettoken()
    assert answer["errcode"] == -1 and "access_token" not in answer
    assert client.gettoken()["errcode"] == 0
    # Control paths are never faulted.
    fault(client, fault="errcode", errcode=-1)
    assert client.control("GET", "/sandbox/directory").status_code == 200
    assert client.ok("GET", "/sandbox/faults")["faults"][0]["times"] == 1


def test_http_status_fault(client: Client) -> None:
    media_id = client.image()
    fault(client, fault="http_status", status=502, path=ADD)
    response = client.http.post(
        f"{client.base}{ADD}",
        params={"access_token": client.token()},
        json={"name": "n", "media_id": media_id},
    )
    assert response.status_code == 502
    assert not response.headers["Content-Type"].startswith("application/json")
    assert client.accounts() == []
    assert client.post(ADD, {"name": "n", "media_id": media_id})["errcode"] == 0


def test_disconnect_fault_takes_effect_but_drops_the_answer(client: Client) -> None:
    media_id = client.image()
    fault(client, fault="disconnect", path=ADD)
    with pytest.raises(requests.ConnectionError):
        client.http.post(
            f"{client.base}{ADD}",
            params={"access_token": client.token()},
            json={"name": "dropped", "media_id": media_id},
        )
    # The session recovers (new connection) and the account exists.
    assert [a["name"] for a in client.accounts()] == ["dropped"]


def test_delay_fault(client: Client) -> None:
    fault(client, fault="delay", seconds=0.3, path="/cgi-bin/kf/account/list", times=1)
    started = time.monotonic()
    assert client.post("/cgi-bin/kf/account/list", {})["errcode"] == 0
    assert time.monotonic() - started >= 0.3
    assert client.ok("GET", "/sandbox/faults") == {"faults": []}


def test_delay_combines_with_another_fault(client: Client) -> None:
    fault(client, fault="delay", seconds=0.2, path="/cgi-bin/kf/account/list")
    fault(client, fault="errcode", errcode=45033, path="/cgi-bin/kf/account/list")
    started = time.monotonic()
    assert client.post("/cgi-bin/kf/account/list", {})["errcode"] == 45033
    assert time.monotonic() - started >= 0.2


def test_expire_tokens(client: Client) -> None:
    old = client.token()
    answer = fault(client, fault="expire_tokens")
    assert answer["errcode"] == 0 and answer["expired"] == 1
    assert client.post("/cgi-bin/kf/account/list", {})["errcode"] == 40014
    fresh = client.token(refresh=True)
    assert fresh != old
    assert client.post("/cgi-bin/kf/account/list", {})["errcode"] == 0


def test_list_and_clear_faults(client: Client) -> None:
    fault(client, fault="errcode", errcode=95018, path="/cgi-bin/kf/send_msg", times=3)
    fault(client, fault="disconnect")
    faults = client.ok("GET", "/sandbox/faults")["faults"]
    assert [(f["fault"], f["path"], f["times"]) for f in faults] == [
        ("errcode", "/cgi-bin/kf/send_msg", 3),
        ("disconnect", None, 1),
    ]
    assert faults[0]["errcode"] == 95018
    assert client.ok("DELETE", "/sandbox/faults") == {"errcode": 0, "cleared": 2}
    assert client.ok("GET", "/sandbox/faults") == {"faults": []}
    assert client.post("/cgi-bin/kf/account/list", {})["errcode"] == 0


def test_bad_fault_requests(client: Client) -> None:
    for body in (
        {},
        {"fault": "explode"},
        {"fault": "errcode"},
        {"fault": "errcode", "errcode": 0},
        {"fault": "errcode", "errcode": "45009"},
        {"fault": "errcode", "errcode": 45009, "times": 0},
        {"fault": "errcode", "errcode": 45009, "path": "/sandbox/stats"},
        {"fault": "http_status", "status": 200},
        {"fault": "delay"},
        {"fault": "delay", "seconds": 0},
    ):
        response = client.control("POST", "/sandbox/faults", body)
        assert response.status_code == 400, body
        assert response.json()["errcode"] == 40058
    assert client.ok("GET", "/sandbox/faults") == {"faults": []}


def test_after_lets_requests_through_first(client: Client) -> None:
    client.token()
    answer = fault(
        client, fault="errcode", errcode=-1, path="/cgi-bin/kf/account/list", times=2, after=2
    )
    assert answer["fault"]["after"] == 2
    codes = [client.post("/cgi-bin/kf/account/list", {})["errcode"] for _ in range(5)]
    assert codes == [0, 0, -1, -1, 0]
    # Other paths do not count against `after`.
    fault(client, fault="errcode", errcode=45009, path="/cgi-bin/kf/account/list", after=1)
    client.get("/cgi-bin/kf/servicer/list", open_kfid="x")
    codes = [client.post("/cgi-bin/kf/account/list", {})["errcode"] for _ in range(3)]
    assert codes == [0, 45009, 0]
    for bad in (-1, "1", True):
        response = client.control("POST", "/sandbox/faults", {"fault": "disconnect", "after": bad})
        assert response.status_code == 400, bad
