"""Control endpoints under /sandbox/ (DESIGN.md §8)."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

from kfcli.sandbox import start

from .conftest import Client


def test_directory(client: Client, tmp_path: Path) -> None:
    answer = client.ok("GET", "/sandbox/directory")
    assert set(answer) == {"userids", "department_ids"}
    userids = answer["userids"]
    assert len(userids) >= 300 and len(set(userids)) == len(userids)
    assert all(isinstance(u, str) and u for u in userids)
    assert answer["department_ids"] and all(isinstance(d, int) for d in answer["department_ids"])
    other = start(tmp_path / "other.db")
    try:
        assert Client(other).ok("GET", "/sandbox/directory") == answer  # deterministic
    finally:
        other.stop()


def test_stats_count_api_paths_only(client: Client) -> None:
    assert client.ok("GET", "/sandbox/stats") == {"requests": {}, "in_flight": 0}
    client.accounts()
    client.accounts()
    client.http.post(f"{client.base}/cgi-bin/kf/unknown", json={})
    client.http.get(f"{client.base}/cgi-bin/kf/account/list")  # 41001 still counts
    client.ok("GET", "/sandbox/directory")
    assert client.ok("GET", "/sandbox/stats") == {
        "requests": {
            "/cgi-bin/gettoken": 1,
            "/cgi-bin/kf/account/list": 3,
            "/cgi-bin/kf/unknown": 1,
        },
        "in_flight": 0,
    }


def test_customer_message(client: Client, db: sqlite3.Connection) -> None:
    open_kfid = client.add_account()
    answer = client.ok(
        "POST", "/sandbox/customer_message", {"open_kfid": open_kfid, "text": "你好"}
    )
    assert answer["errcode"] == 0
    external_userid = answer["external_userid"]
    assert re.fullmatch(r"wm[A-Za-z0-9_-]{30}", external_userid)
    row = db.execute("SELECT * FROM messages WHERE msgid = ?", (answer["msgid"],)).fetchone()
    assert row["open_kfid"] == open_kfid and row["external_userid"] == external_userid
    assert row["origin"] == 3 and row["msgtype"] == "text"
    assert json.loads(row["body"]) == {"content": "你好"}
    now = client.ok("GET", "/sandbox/clock")["now"]
    assert abs(row["send_time"] - now) <= 2
    session = db.execute(
        "SELECT * FROM sessions WHERE open_kfid = ? AND external_userid = ?",
        (open_kfid, external_userid),
    ).fetchone()
    assert session["service_state"] == 0 and session["window_sent"] == 0
    assert db.execute(
        "SELECT 1 FROM customers WHERE external_userid = ?", (external_userid,)
    ).fetchone()

    # The same customer again: a second message, same customer row, fresh msgid.
    again = client.ok(
        "POST",
        "/sandbox/customer_message",
        {"open_kfid": open_kfid, "external_userid": external_userid, "text": "在吗"},
    )
    assert again["external_userid"] == external_userid and again["msgid"] != answer["msgid"]
    assert db.execute("SELECT COUNT(*) FROM customers").fetchone()[0] == 1


def test_customer_message_session_rules(client: Client, db: sqlite3.Connection) -> None:
    open_kfid = client.add_account()
    user = "wmCustomerOne"
    body = {"open_kfid": open_kfid, "external_userid": user, "text": "hi"}
    client.ok("POST", "/sandbox/customer_message", body)

    def session() -> sqlite3.Row:
        return db.execute(
            "SELECT * FROM sessions WHERE open_kfid = ? AND external_userid = ?", (open_kfid, user)
        ).fetchone()

    # A session with a servicer (3) stays with it; the window and count restart.
    db.execute(
        "UPDATE sessions SET service_state = 3, servicer_userid = 'user001', window_sent = 4, "
        "window_start = window_start - 100"
    )
    before = session()["window_start"]
    client.ok("POST", "/sandbox/customer_message", body)
    assert session()["service_state"] == 3 and session()["servicer_userid"] == "user001"
    assert session()["window_sent"] == 0 and session()["window_start"] >= before + 100

    # An ended session (4) reopens as new (0).
    db.execute("UPDATE sessions SET service_state = 4, window_sent = 5")
    client.ok("POST", "/sandbox/customer_message", body)
    assert session()["service_state"] == 0 and session()["window_sent"] == 0

    # A session whose 48 h ran out counts as ended too.
    db.execute("UPDATE sessions SET service_state = 3")
    client.advance(48 * 3600)
    client.ok("POST", "/sandbox/customer_message", body)
    assert session()["service_state"] == 0 and session()["servicer_userid"] == ""


def test_customer_message_errors(client: Client) -> None:
    open_kfid = client.add_account()
    cases = [
        ({"text": "hi"}, 40058),
        ({"open_kfid": open_kfid}, 40058),
        ({"open_kfid": open_kfid, "text": ""}, 40058),
        ({"open_kfid": open_kfid, "text": "hi", "external_userid": "bad id"}, 40058),
        ({"open_kfid": "wk" + "q" * 30, "text": "hi"}, 95004),
    ]
    for body, errcode in cases:
        response = client.control("POST", "/sandbox/customer_message", body)
        assert response.status_code == 400, body
        assert response.json()["errcode"] == errcode, body


def test_seed_50000_messages(client: Client, db: sqlite3.Connection) -> None:
    open_kfid = client.add_account()
    answer = client.ok("POST", "/sandbox/seed_messages", {"open_kfid": open_kfid, "count": 50_000})
    assert answer["errcode"] == 0 and answer["count"] == 50_000
    total, distinct, customers = db.execute(
        "SELECT COUNT(*), COUNT(DISTINCT msgid), COUNT(DISTINCT external_userid) FROM messages "
        "WHERE open_kfid = ? AND origin = 3",
        (open_kfid,),
    ).fetchone()
    assert total == distinct == 50_000
    assert 1 < customers <= 10
    states = db.execute(
        "SELECT DISTINCT service_state FROM sessions WHERE open_kfid = ?", (open_kfid,)
    ).fetchall()
    assert [s[0] for s in states] == [0]
    # Sequence numbers follow insertion order (sync_msg cursors rely on it).
    texts = [
        json.loads(r[0])["content"]
        for r in db.execute(
            "SELECT body FROM messages WHERE open_kfid = ? ORDER BY seq LIMIT 3", (open_kfid,)
        )
    ]
    assert texts == [f"seed message {i} of 50000" for i in (1, 2, 3)]


def test_seed_for_one_customer(client: Client, db: sqlite3.Connection) -> None:
    open_kfid = client.add_account()
    body = {"open_kfid": open_kfid, "count": 7, "external_userid": "wmSeeded"}
    assert client.ok("POST", "/sandbox/seed_messages", body)["count"] == 7
    rows = db.execute("SELECT DISTINCT external_userid FROM messages").fetchall()
    assert [r[0] for r in rows] == ["wmSeeded"]
    for bad in (
        {"open_kfid": open_kfid},
        {"open_kfid": open_kfid, "count": 0},
        {"open_kfid": open_kfid, "count": "5"},
        {"count": 5},
    ):
        assert client.control("POST", "/sandbox/seed_messages", bad).status_code == 400, bad


def test_sent_messages(client: Client, db: sqlite3.Connection) -> None:
    open_kfid = client.add_account()
    assert client.ok("GET", "/sandbox/sent_messages", open_kfid=open_kfid) == {"messages": []}
    # Filled by send_msg / send_msg_on_event; the table exists from the start.
    for n, kf in enumerate([open_kfid, "wkOther", open_kfid]):
        body = {"touser": "wmX", "open_kfid": kf, "msgid": f"m{n}", "msgtype": "text"}
        db.execute(
            "INSERT INTO sent_messages (open_kfid, msgid, api, body, sent_at) "
            "VALUES (?, ?, 'send_msg', ?, 0)",
            (kf, f"m{n}", json.dumps(body)),
        )
    messages = client.ok("GET", "/sandbox/sent_messages", open_kfid=open_kfid)["messages"]
    assert [m["msgid"] for m in messages] == ["m0", "m2"]


def test_callback_target(client: Client) -> None:
    assert client.ok("GET", "/sandbox/callback")["url"] == ""
    target = {"url": "http://127.0.0.1:9/cb", "token": "tok", "aes_key": "a" * 43}
    shown = {"url": target["url"], "token": "****", "aes_key": "****aaaa", "keys": "given"}
    assert client.ok("POST", "/sandbox/callback", target) == {"errcode": 0, **shown}
    assert client.ok("GET", "/sandbox/callback") == shown
    for bad in (
        {**target, "url": "ftp://x"},
        {**target, "aes_key": "short"},
        {**target, "aes_key": "+" * 43},
        {**target, "token": ""},
        {"url": target["url"], "token": "tok"},  # half a pair
    ):
        assert client.control("POST", "/sandbox/callback", bad).status_code == 400, bad
    assert client.ok("POST", "/sandbox/callback", {"url": ""})["errcode"] == 0
    assert client.ok("GET", "/sandbox/callback")["url"] == ""


def test_no_control_endpoint_hands_out_the_callback_secrets(client: Client) -> None:
    # The attack: whoever reaches the port asks for the Token and EncodingAESKey and forges
    # callbacks to the real receiver. Both a given pair and the simulator's own stay masked.
    own = client.server.credentials
    given = {"token": "ProductionToken1", "aes_key": "Q" * 43}
    for body in (given, {}):
        answer = client.ok("POST", "/sandbox/callback", {"url": "http://127.0.0.1:9/", **body})
        shown = client.ok("GET", "/sandbox/callback")
        for secret in (given["token"], given["aes_key"], own["token"], own["aes_key"]):
            assert secret not in json.dumps(answer) and secret not in json.dumps(shown)
        assert shown["keys"] == ("given" if body else "sandbox")
    # Nor does any other GET endpoint.
    for path in ("/sandbox/directory", "/sandbox/stats", "/sandbox/sent_messages",
                 "/sandbox/faults", "/sandbox/clock"):
        text = client.control("GET", path).text
        assert own["token"] not in text and own["aes_key"] not in text
        assert own["secret"] not in text, path


def test_clock(client: Client, db_path: Path) -> None:
    before = client.ok("GET", "/sandbox/clock")["now"]
    answer = client.ok("POST", "/sandbox/clock", {"advance": 3600})
    assert answer["errcode"] == 0
    assert 3600 <= answer["now"] - before <= 3602
    for bad in ({"advance": -1}, {"advance": "10"}, {}, {"advance": True}):
        assert client.control("POST", "/sandbox/clock", bad).status_code == 400, bad
    # Persisted in the database: another server on the same file agrees.
    other = start(db_path)
    try:
        assert Client(other).ok("GET", "/sandbox/clock")["offset"] == 3600
    finally:
        other.stop()


def test_bad_control_requests(client: Client) -> None:
    response = client.http.post(f"{client.base}/sandbox/clock", data=b"{nope")
    assert response.status_code == 400
    assert response.json()["errcode"] == 40058 and response.json()["errmsg"]
    response = client.http.post(f"{client.base}/sandbox/clock", data=b"[]")
    assert response.status_code == 400
    assert client.control("GET", "/sandbox/nothing").status_code == 404
    response = client.control("POST", "/sandbox/directory", {})
    assert response.status_code == 405 and "GET" in response.headers["Allow"]
