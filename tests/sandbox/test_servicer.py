"""Servicers: servicer/add, /del, /list and POST /sandbox/servicer_status (kf-api.md §2.3)."""

from __future__ import annotations

import pytest

from kfcli.sandbox import rules

from .conftest import Client

ADD = "/cgi-bin/kf/servicer/add"
DEL = "/cgi-bin/kf/servicer/del"
LIST = "/cgi-bin/kf/servicer/list"


def test_add_list_delete_with_per_item_results(client: Client) -> None:
    open_kfid = client.add_account()
    answer = client.post(
        ADD,
        {
            "open_kfid": open_kfid,
            "userid_list": ["user001", "nobody", "user002", "user001"],
            "department_id_list": [2, 999],
        },
    )
    # Top-level success even though some items failed: each item carries its own result.
    assert answer["errcode"] == 0
    assert answer["result_list"] == [
        {"userid": "user001", "errcode": 0, "errmsg": "success"},
        {"userid": "nobody", "errcode": 60111, "errmsg": "userid not found"},
        {"userid": "user002", "errcode": 0, "errmsg": "success"},
        {"userid": "user001", "errcode": 0, "errmsg": "ignored"},
        {"department_id": 2, "errcode": 0, "errmsg": "success"},
        {"department_id": 999, "errcode": 60123, "errmsg": "invalid department_id"},
    ]
    # Adding again is "ignored", not an error.
    again = client.add_servicers(open_kfid, ["user002"], [2])
    assert [item["errmsg"] for item in again] == ["ignored", "ignored"]

    listed = client.get(LIST, open_kfid=open_kfid)
    assert listed["errcode"] == 0
    assert listed["servicer_list"] == [
        {"userid": "user001", "status": 0},
        {"userid": "user002", "status": 0},
        {"department_id": 2},
    ]

    removed = client.post(
        DEL,
        {
            "open_kfid": open_kfid,
            "userid_list": ["user001", "user003", "ghost"],
            "department_id_list": [2, 5, 999],
        },
    )
    assert removed["errcode"] == 0
    assert [
        (r.get("userid", r.get("department_id")), r["errcode"], r["errmsg"])
        for r in removed["result_list"]
    ] == [
        ("user001", 0, "success"),
        ("user003", 0, "ignored"),
        ("ghost", 60111, "userid not found"),
        (2, 0, "success"),
        (5, 0, "ignored"),
        (999, 60123, "invalid department_id"),
    ]
    assert client.get(LIST, open_kfid=open_kfid)["servicer_list"] == [
        {"userid": "user002", "status": 0}
    ]


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({}, 40058),  # neither list
        ({"userid_list": []}, 40058),
        ({"userid_list": [f"user{n:03d}" for n in range(1, 102)]}, 40058),  # 101 items
        ({"department_id_list": list(range(101))}, 40058),
        ({"department_id_list": ["2"]}, 40058),  # department ids are JSON integers
        ({"department_id_list": [True]}, 40058),
        ({"userid_list": "user001"}, 40058),
        ({"userid_list": [1]}, 40058),
    ],
)
def test_bad_batches(client: Client, body: dict, errcode: int) -> None:
    open_kfid = client.add_account()
    assert client.post(ADD, {"open_kfid": open_kfid, **body})["errcode"] == errcode
    assert client.post(DEL, {"open_kfid": open_kfid, **body})["errcode"] == errcode


def test_batch_of_100_is_fine(client: Client) -> None:
    open_kfid = client.add_account()
    results = client.add_servicers(open_kfid, [f"user{n:03d}" for n in range(1, 101)])
    assert len(results) == 100 and all(r["errmsg"] == "success" for r in results)


def test_account_errors(client: Client) -> None:
    body = {"userid_list": ["user001"]}
    assert client.post(ADD, body)["errcode"] == 40058
    assert client.post(ADD, {"open_kfid": "wk" + "x" * 30, **body})["errcode"] == 95004
    assert client.post(ADD, {"open_kfid": "bad id!", **body})["errcode"] == 95000
    assert client.get(LIST)["errcode"] == 40058
    assert client.get(LIST, open_kfid="wk" + "x" * 30)["errcode"] == 95004
    # POST is not how servicer/list is called.
    assert client.post(LIST, {})["errcode"] == 43001


def test_per_account_limits(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    # The limits are read at call time, so a lowered limit exercises the same code path.
    monkeypatch.setattr(rules, "MAX_SERVICER_USERIDS", 2)
    monkeypatch.setattr(rules, "MAX_SERVICER_DEPARTMENTS", 1)
    open_kfid = client.add_account()
    results = client.add_servicers(open_kfid, ["user001", "user002", "user003"], [2, 3])
    assert [r["errcode"] for r in results] == [0, 0, rules.SERVICER_LIMIT_ERRCODE, 0, 95010]
    assert "2 servicers" in results[2]["errmsg"]
    # Another account has its own allowance.
    other = client.add_account()
    assert client.add_servicers(other, ["user003"])[0]["errcode"] == 0


def test_servicer_status_control(client: Client) -> None:
    open_kfid = client.add_account()
    client.add_servicers(open_kfid, ["user001", "user002", "user003"], [4])
    status = "/sandbox/servicer_status"
    body = {"open_kfid": open_kfid, "userid": "user001", "status": 1, "stop_type": 1}
    assert client.ok("POST", status, body) == {"errcode": 0}
    client.ok("POST", status, {"open_kfid": open_kfid, "userid": "user002", "status": 1})
    listed = client.get(LIST, open_kfid=open_kfid)["servicer_list"]
    assert listed == [
        {"userid": "user001", "status": 1, "stop_type": 1},
        {"userid": "user002", "status": 1, "stop_type": 0},
        {"userid": "user003", "status": 0},
        {"department_id": 4},
    ]
    client.ok("POST", status, {"open_kfid": open_kfid, "userid": "user001", "status": 0})
    assert client.get(LIST, open_kfid=open_kfid)["servicer_list"][0] == {
        "userid": "user001",
        "status": 0,
    }
    for bad in (
        {"open_kfid": open_kfid, "userid": "user009", "status": 1},  # not a servicer
        {"open_kfid": open_kfid, "userid": "user001", "status": 2},
        {"open_kfid": open_kfid, "userid": "user001", "status": 1, "stop_type": 3},
        {"open_kfid": open_kfid, "status": 1},
    ):
        assert client.control("POST", status, bad).status_code == 400, bad
    response = client.control(
        "POST", status, {"open_kfid": open_kfid, "userid": "user009", "status": 1}
    )
    assert response.json()["errcode"] == 95014
