"""Customers and the upgrade service: /cgi-bin/kf/customer/* (kf-api.md §2.8).

batchget answers from the ``customers`` table; enter-session context comes from the
latest enter_session event (POST /sandbox/enter_session) of the last 48 h, whichever
account it was for. Upgrade targets must be in the corp's fixed 升级服务 configuration
(`directory.UPGRADE_*`); a recommendation is remembered in ``sessions.upgrade``.
"""

from __future__ import annotations

import json
from typing import Any

from .. import directory, rules
from ..errors import WeComError
from ..params import optional_str, optional_uint
from ..routing import API, Request
from ..store import Tx
from .common import account_from_body, customer_from_body


@API.route("POST", "/cgi-bin/kf/customer/batchget")
def customer_batchget(request: Request) -> dict[str, Any]:
    wanted = request.body.get("external_userid_list")
    if not isinstance(wanted, list) or not 1 <= len(wanted) <= rules.BATCHGET_MAX:
        raise WeComError(40058, f"external_userid_list must hold 1..{rules.BATCHGET_MAX} ids")
    if not all(isinstance(item, str) for item in wanted):
        raise WeComError(40058, "external_userid_list items must be strings")
    need_context = optional_uint(request.body, "need_enter_session_context") or 0
    if need_context not in (0, 1):
        raise WeComError(40058, "need_enter_session_context must be 0 or 1")
    unique = list(dict.fromkeys(wanted))
    customers: list[dict[str, Any]] = []
    invalid: list[str] = []
    with request.db.read() as db:
        marks = ",".join("?" * len(unique))
        rows = {
            row["external_userid"]: row
            for row in db.all(f"SELECT * FROM customers WHERE external_userid IN ({marks})", unique)
        }
        for external_userid in unique:
            row = rows.get(external_userid)
            if row is None:
                invalid.append(external_userid)
                continue
            customer = {
                "external_userid": external_userid,
                "nickname": row["nickname"],
                "avatar": row["avatar"],
                "gender": row["gender"],
                "unionid": row["unionid"],
            }
            if need_context:
                context = _enter_context(db, external_userid, request.now)
                if context is not None:
                    customer["enter_session_context"] = context
            customers.append(customer)
    return {"customer_list": customers, "invalid_external_userid": invalid}


def _enter_context(db: Tx, external_userid: str, now: float) -> dict[str, Any] | None:
    row = db.one(
        "SELECT scene, scene_param, enter_channels FROM sessions "
        "WHERE external_userid = ? AND entered_at > ? ORDER BY entered_at DESC LIMIT 1",
        (external_userid, now - rules.ENTER_CONTEXT_TTL),
    )
    if row is None:
        return None
    context: dict[str, Any] = {"scene": row["scene"] or "", "scene_param": row["scene_param"] or ""}
    if row["enter_channels"]:
        context["wechat_channels"] = json.loads(row["enter_channels"])
    return context


@API.route("GET", "/cgi-bin/kf/customer/get_upgrade_service_config")
def get_upgrade_service_config(request: Request) -> dict[str, Any]:
    return {
        "member_range": {
            "userid_list": list(directory.UPGRADE_MEMBER_USERIDS),
            "department_id_list": list(directory.UPGRADE_MEMBER_DEPARTMENTS),
        },
        "groupchat_range": {"chat_id_list": list(directory.UPGRADE_GROUPCHAT_IDS)},
    }


@API.route("POST", "/cgi-bin/kf/customer/upgrade_service")
def upgrade_service(request: Request) -> dict[str, Any]:
    body = request.body
    kind = body.get("type")
    # type 1 needs a member object, type 2 a groupchat object; anything else is a parameter
    # error (40058). A target outside the 升级服务 configuration is 95021 (kf-api.md §2.8).
    if kind == rules.UPGRADE_MEMBER:
        key, id_field = "member", "userid"
    elif kind == rules.UPGRADE_GROUPCHAT:
        key, id_field = "groupchat", "chat_id"
    else:
        raise WeComError(40058, "type must be 1 (member) or 2 (groupchat)")
    target = body.get(key)
    if not isinstance(target, dict):
        raise WeComError(40058, f"type {kind} requires the {key} object")
    target_id = target.get(id_field)
    if not isinstance(target_id, str) or not target_id:
        raise WeComError(40058, f"field {key}.{id_field} missing or unexpected empty string")
    wording = optional_str(target, "wording")
    if kind == rules.UPGRADE_MEMBER:
        configured = directory.upgrade_member_allowed(target_id)
    else:
        configured = target_id in directory.UPGRADE_GROUPCHAT_IDS
    now = request.now_int
    with request.db.write() as db:
        open_kfid = account_from_body(request, db)["open_kfid"]
        external_userid = customer_from_body(request, db)
        if not configured:
            raise WeComError(95021)
        record = {"type": kind, key: {id_field: target_id}, "at": now}
        if wording is not None:
            record[key]["wording"] = wording
        db.execute(
            "INSERT INTO sessions (open_kfid, external_userid, upgrade) VALUES (?, ?, ?) "
            "ON CONFLICT (open_kfid, external_userid) DO UPDATE SET upgrade = excluded.upgrade",
            (open_kfid, external_userid, json.dumps(record, ensure_ascii=False)),
        )
    return {}


@API.route("POST", "/cgi-bin/kf/customer/cancel_upgrade_service")
def cancel_upgrade_service(request: Request) -> dict[str, Any]:
    # Cancelling when nothing is recommended succeeds too: the marker is gone either way.
    with request.db.write() as db:
        open_kfid = account_from_body(request, db)["open_kfid"]
        external_userid = customer_from_body(request, db)
        db.execute(
            "UPDATE sessions SET upgrade = NULL WHERE open_kfid = ? AND external_userid = ?",
            (open_kfid, external_userid),
        )
    return {}
