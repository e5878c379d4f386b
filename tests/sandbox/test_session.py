"""Session state: service_state/get and /trans (kf-api.md §1.5, §1.6, §2.4)."""

from __future__ import annotations

import sqlite3

import pytest

from .conftest import Client

GET = "/cgi-bin/kf/service_state/get"
TRANS = "/cgi-bin/kf/service_state/trans"


def session_in(client: Client, open_kfid: str, state: int) -> str:
    """A customer whose session with ``open_kfid`` is in ``state`` (servicer user001 in 3)."""
    user = client.customer(open_kfid)
    path = {0: [], 1: [1], 2: [2], 3: [3], 4: [4]}[state]
    for target in path:
        answer = client.trans(open_kfid, user, target, "user001" if target == 3 else None)
        assert answer["errcode"] == 0, answer
    assert client.state(open_kfid, user)["service_state"] == state
    return user


@pytest.fixture
def kf(client: Client) -> str:
    open_kfid = client.add_account()
    client.add_servicers(open_kfid, ["user001", "user002"])
    return open_kfid


ALLOWED = [(0, 1), (0, 2), (0, 3), (0, 4), (1, 2), (1, 3), (1, 4), (2, 3), (2, 4), (3, 4)]


@pytest.mark.parametrize(("old", "new"), ALLOWED)
def test_allowed_transitions(client: Client, kf: str, old: int, new: int) -> None:
    user = session_in(client, kf, old)
    answer = client.trans(kf, user, new, "user002" if new == 3 else None)
    assert answer["errcode"] == 0, answer
    state = client.state(kf, user)
    assert state["service_state"] == new
    assert state["servicer_userid"] == ("user002" if new == 3 else "")


def test_transfer_to_another_servicer(client: Client, kf: str) -> None:
    user = session_in(client, kf, 3)
    assert client.trans(kf, user, 3, "user002")["errcode"] == 0
    assert client.state(kf, user) == {
        "errcode": 0,
        "errmsg": "ok",
        "service_state": 3,
        "servicer_userid": "user002",
    }
    # ... but not to the servicer who already has it.
    assert client.trans(kf, user, 3, "user002")["errcode"] == 95016


FORBIDDEN = [(0, 0), (1, 0), (1, 1), (2, 0), (2, 1), (2, 2), (3, 0), (3, 1), (3, 2)]
FORBIDDEN += [(4, n) for n in range(5)]


@pytest.mark.parametrize(("old", "new"), FORBIDDEN)
def test_forbidden_transitions(client: Client, kf: str, old: int, new: int) -> None:
    user = session_in(client, kf, old)
    answer = client.trans(kf, user, new, "user002" if new == 3 else None)
    assert answer["errcode"] == 95016, answer
    assert answer["errmsg"].startswith(f"service_state {old} cannot change to {new}")
    assert client.state(kf, user)["service_state"] == old


def test_customer_without_session_is_state_4(client: Client, kf: str) -> None:
    other = client.add_account()
    user = client.customer(other)  # a customer of the corp, but not of kf
    assert client.state(kf, user) == {
        "errcode": 0,
        "errmsg": "ok",
        "service_state": 4,
        "servicer_userid": "",
    }
    assert client.trans(kf, user, 1)["errcode"] == 95016


def test_session_ends_after_48_hours(client: Client, kf: str) -> None:
    user = session_in(client, kf, 3)
    assert client.state(kf, user)["servicer_userid"] == "user001"
    client.later(48 * 3600)
    assert client.state(kf, user) == {
        "errcode": 0,
        "errmsg": "ok",
        "service_state": 4,
        "servicer_userid": "",
    }
    assert client.trans(kf, user, 4)["errcode"] == 95016
    client.say(kf, "back again", user)  # a new message opens a new session
    assert client.state(kf, user)["service_state"] == 0


def test_msg_codes(client: Client, kf: str, db: sqlite3.Connection) -> None:
    now = client.ok("GET", "/sandbox/clock")["now"]
    user = client.customer(kf)
    assert "msg_code" not in client.trans(kf, user, 1)
    expected = [(2, "queue", 48 * 3600), (3, "servicer", 48 * 3600), (4, "end", 20)]
    for state, kind, ttl in expected:
        answer = client.trans(kf, user, state, "user001" if state == 3 else None)
        code = answer["msg_code"]
        assert isinstance(code, str) and code
        row = db.execute("SELECT * FROM event_codes WHERE code = ?", (code,)).fetchone()
        assert row["kind"] == kind and row["service_state"] == state
        assert row["open_kfid"] == kf and row["external_userid"] == user
        assert abs(row["expires_at"] - (now + ttl)) <= 2 and row["used_at"] is None


def test_servicer_rules(client: Client, kf: str) -> None:
    user = client.customer(kf)
    # Target 3 needs a servicer_userid.
    assert client.trans(kf, user, 3)["errcode"] == 40058
    assert client.trans(kf, user, 3, "")["errcode"] == 40058
    # Not a servicer of this account (a corp member, or nobody at all): 95014.
    assert client.trans(kf, user, 3, "user050")["errcode"] == 95014
    assert client.trans(kf, user, 3, "nobody")["errcode"] == 95014
    # Stopped or suspended: 95019.
    status = {"open_kfid": kf, "userid": "user001", "status": 1, "stop_type": 0}
    client.ok("POST", "/sandbox/servicer_status", status)
    assert client.trans(kf, user, 3, "user001")["errcode"] == 95019
    client.ok("POST", "/sandbox/servicer_status", {**status, "stop_type": 1})
    answer = client.trans(kf, user, 3, "user001")
    assert answer["errcode"] == 95019 and "suspended" in answer["errmsg"]
    assert client.state(kf, user)["service_state"] == 0
    client.ok("POST", "/sandbox/servicer_status", {**status, "status": 0})
    assert client.trans(kf, user, 3, "user001")["errcode"] == 0


def test_servicer_through_department(client: Client) -> None:
    open_kfid = client.add_account()
    # Department 2 holds user001, user012, user023, ... (GET /sandbox/directory, sessions.py).
    client.add_servicers(open_kfid, departments=[2])
    user = client.customer(open_kfid)
    assert client.trans(open_kfid, user, 3, "user002")["errcode"] == 95014
    assert client.trans(open_kfid, user, 3, "user012")["errcode"] == 0
    other = client.add_account()
    client.add_servicers(other, departments=[1])  # the root department: everyone
    assert client.trans(other, client.customer(other), 3, "user300")["errcode"] == 0


@pytest.mark.parametrize("value", [5, -1, "1", None, True, 1.5])
def test_bad_service_state_is_40058(client: Client, kf: str, value: object) -> None:
    user = client.customer(kf)
    body = {"open_kfid": kf, "external_userid": user, "service_state": value}
    assert client.post(TRANS, body)["errcode"] == 40058


def test_lookup_errors(client: Client, kf: str) -> None:
    user = client.customer(kf)
    for path in (GET, TRANS):
        extra = {"service_state": 1} if path == TRANS else {}
        assert client.post(path, {"open_kfid": kf, **extra})["errcode"] == 40058
        assert client.post(path, {"external_userid": user, **extra})["errcode"] == 40058
        body = {"open_kfid": kf, "external_userid": "wmNeverSeen", **extra}
        assert client.post(path, body)["errcode"] == 40096
        body = {"open_kfid": "wk" + "0" * 30, "external_userid": user, **extra}
        assert client.post(path, body)["errcode"] == 95004
        body = {"open_kfid": "no/such", "external_userid": user, **extra}
        assert client.post(path, body)["errcode"] == 95000
