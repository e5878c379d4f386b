"""Servicers (接待人员) of an account: /cgi-bin/kf/servicer/add, /del and /list (kf-api.md §2.3).

add and del answer per item in ``result_list``; the call itself succeeds (errcode 0) even
when every item fails. Userids and departments come from the simulated directory
(`directory`, GET /sandbox/directory).
"""

from __future__ import annotations

from typing import Any

from .. import directory, rules
from ..errors import ERRMSG, WeComError
from ..routing import API, Request
from ..store import Tx
from .common import account_by_id, account_from_body, required_query


@API.route("POST", "/cgi-bin/kf/servicer/add")
def servicer_add(request: Request) -> dict[str, Any]:
    return {"result_list": _batch(request, adding=True)}


@API.route("POST", "/cgi-bin/kf/servicer/del")
def servicer_del(request: Request) -> dict[str, Any]:
    return {"result_list": _batch(request, adding=False)}


@API.route("GET", "/cgi-bin/kf/servicer/list")
def servicer_list(request: Request) -> dict[str, Any]:
    open_kfid = required_query(request, "open_kfid")
    with request.db.read() as db:
        account_by_id(db, open_kfid)
        rows = db.all(
            "SELECT userid, department_id, status, stop_type FROM servicers "
            "WHERE open_kfid = ? ORDER BY department_id IS NOT NULL, rowid",
            (open_kfid,),
        )
    servicers: list[dict[str, Any]] = []
    for row in rows:
        if row["userid"] is None:
            servicers.append({"department_id": row["department_id"]})
            continue
        item: dict[str, Any] = {"userid": row["userid"], "status": row["status"]}
        if row["status"] == rules.SERVICER_STOPPED:
            item["stop_type"] = row["stop_type"]  # only when stopped (§2.3)
        servicers.append(item)
    return {"servicer_list": servicers}


def _batch(request: Request, adding: bool) -> list[dict[str, Any]]:
    userids = _id_list(request.body, "userid_list", str)
    departments = _id_list(request.body, "department_id_list", int)
    if not userids and not departments:
        raise WeComError(40058, "userid_list and department_id_list are both empty")
    results: list[dict[str, Any]] = []
    with request.db.write() as db:
        open_kfid = account_from_body(request, db)["open_kfid"]
        for userid in userids:
            code, errmsg = (_add_user if adding else _del_user)(db, open_kfid, userid, request)
            results.append({"userid": userid, "errcode": code, "errmsg": errmsg})
        for department_id in departments:
            code, errmsg = (_add_department if adding else _del_department)(
                db, open_kfid, department_id, request
            )
            results.append({"department_id": department_id, "errcode": code, "errmsg": errmsg})
    return results


def _id_list(body: dict[str, Any], field: str, kind: type) -> list[Any]:
    value = body.get(field)
    if value is None:
        return []
    if not isinstance(value, list):
        raise WeComError(40058, f"field {field} must be an array")
    if len(value) > rules.SERVICER_BATCH_MAX:
        raise WeComError(40058, f"{field} has more than {rules.SERVICER_BATCH_MAX} items")
    for item in value:
        # Department ids are JSON integers (uint32); bool is not a number in JSON.
        if isinstance(item, bool) or not isinstance(item, kind) or item in ("", None):
            raise WeComError(40058, f"field {field} items must be {kind.__name__}s")
    return value


def _item_error(code: int, detail: str | None = None) -> tuple[int, str]:
    return code, detail or ERRMSG[code]


def _add_user(db: Tx, open_kfid: str, userid: str, request: Request) -> tuple[int, str]:
    if not directory.is_member(userid):
        return _item_error(rules.USERID_NOT_FOUND)
    if _has_user(db, open_kfid, userid):
        return 0, "ignored"
    count = db.scalar(
        "SELECT COUNT(*) FROM servicers WHERE open_kfid = ? AND userid IS NOT NULL", (open_kfid,)
    )
    if int(count or 0) >= rules.MAX_SERVICER_USERIDS:
        return _item_error(
            rules.SERVICER_LIMIT_ERRCODE,
            f"account already has {rules.MAX_SERVICER_USERIDS} servicers",
        )
    db.execute(
        "INSERT INTO servicers (open_kfid, userid, added_at) VALUES (?, ?, ?)",
        (open_kfid, userid, request.now_int),
    )
    return 0, "success"


def _del_user(db: Tx, open_kfid: str, userid: str, request: Request) -> tuple[int, str]:
    if not directory.is_member(userid):
        return _item_error(rules.USERID_NOT_FOUND)
    deleted = db.execute(
        "DELETE FROM servicers WHERE open_kfid = ? AND userid = ?", (open_kfid, userid)
    ).rowcount
    return (0, "success") if deleted else (0, "ignored")


def _add_department(
    db: Tx, open_kfid: str, department_id: int, request: Request
) -> tuple[int, str]:
    if department_id not in directory.DEPARTMENT_IDS:
        return _item_error(rules.DEPARTMENT_NOT_FOUND)
    if db.one(
        "SELECT 1 FROM servicers WHERE open_kfid = ? AND department_id = ?",
        (open_kfid, department_id),
    ):
        return 0, "ignored"
    count = db.scalar(
        "SELECT COUNT(*) FROM servicers WHERE open_kfid = ? AND department_id IS NOT NULL",
        (open_kfid,),
    )
    if int(count or 0) >= rules.MAX_SERVICER_DEPARTMENTS:
        return _item_error(
            rules.SERVICER_LIMIT_ERRCODE,
            f"account already has {rules.MAX_SERVICER_DEPARTMENTS} servicer departments",
        )
    db.execute(
        "INSERT INTO servicers (open_kfid, department_id, added_at) VALUES (?, ?, ?)",
        (open_kfid, department_id, request.now_int),
    )
    return 0, "success"


def _del_department(
    db: Tx, open_kfid: str, department_id: int, request: Request
) -> tuple[int, str]:
    if department_id not in directory.DEPARTMENT_IDS:
        return _item_error(rules.DEPARTMENT_NOT_FOUND)
    deleted = db.execute(
        "DELETE FROM servicers WHERE open_kfid = ? AND department_id = ?",
        (open_kfid, department_id),
    ).rowcount
    return (0, "success") if deleted else (0, "ignored")


def _has_user(db: Tx, open_kfid: str, userid: str) -> bool:
    row = db.one("SELECT 1 FROM servicers WHERE open_kfid = ? AND userid = ?", (open_kfid, userid))
    return row is not None
