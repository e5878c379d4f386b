"""The sandbox's own control endpoints under /sandbox/ (DESIGN.md §8). Not part of WeCom.

JSON in and out, no access token. A request that makes no sense is HTTP 400 with
``{"errcode": 40058, "errmsg": ...}`` (or the WeCom code that fits, e.g. 95004 for an
unknown open_kfid). POST answers carry ``errcode: 0``; GET answers are exactly the documented
objects.
"""

from __future__ import annotations

import json
import re
from typing import Any

from . import callbacks, customers, directory
from .errors import ControlError, WeComError
from .faults import KINDS
from .handlers.common import account_by_id
from .routing import CONTROL, Request
from .store import Tx

MAX_SEED = 1_000_000
MAX_DELAY_SECONDS = 300
_EXTERNAL_USERID_RE = re.compile(r"[0-9A-Za-z_-]{1,64}")
_AES_KEY_RE = re.compile(r"[A-Za-z0-9]{43}")


# --- directory, stats ---------------------------------------------------------------------


@CONTROL.route("GET", "/sandbox/directory")
def get_directory(request: Request) -> dict[str, Any]:
    return {"userids": list(directory.userids()), "department_ids": list(directory.DEPARTMENT_IDS)}


@CONTROL.route("GET", "/sandbox/stats")
def get_stats(request: Request) -> dict[str, Any]:
    return {"requests": request.server.stats.snapshot()}


# --- customers ----------------------------------------------------------------------------


@CONTROL.route("POST", "/sandbox/customer_message")
def customer_message(request: Request) -> dict[str, Any]:
    open_kfid = _required_str(request.body, "open_kfid")
    external_userid = _external_userid(request.body)
    text = _required_str(request.body, "text")
    now = request.now_int
    with request.db.write() as db:
        _account(db, open_kfid)
        external_userid = customers.ensure_customer(db, external_userid, now)
        customers.customer_spoke(db, open_kfid, external_userid, now)
        (msgid,) = customers.add_text_messages(db, open_kfid, [(external_userid, text)], now)
    callbacks.notify_new_messages(request.server, open_kfid)
    return {"errcode": 0, "msgid": msgid, "external_userid": external_userid}


@CONTROL.route("POST", "/sandbox/seed_messages")
def seed_messages(request: Request) -> dict[str, Any]:
    open_kfid = _required_str(request.body, "open_kfid")
    count = request.body.get("count")
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_SEED:
        raise ControlError(f"count must be an integer 1..{MAX_SEED}")
    external_userid = _external_userid(request.body)
    now = request.now_int
    with request.db.write() as db:
        _account(db, open_kfid)
        if external_userid is not None:
            senders = [customers.ensure_customer(db, external_userid, now)]
        else:
            senders = list(customers.session_customers(db, open_kfid, min(5, count), now))
        for sender in senders:
            customers.customer_spoke(db, open_kfid, sender, now)
        messages = (
            (senders[i % len(senders)], f"seed message {i + 1} of {count}") for i in range(count)
        )
        customers.add_text_messages(db, open_kfid, messages, now)
    callbacks.notify_new_messages(request.server, open_kfid)
    return {"errcode": 0, "count": count, "external_userids": senders}


@CONTROL.route("GET", "/sandbox/sent_messages")
def sent_messages(request: Request) -> dict[str, Any]:
    open_kfid = request.query.get("open_kfid", "")
    if open_kfid:
        rows = request.db.query(
            "SELECT body FROM sent_messages WHERE open_kfid = ? ORDER BY seq", (open_kfid,)
        )
    else:
        rows = request.db.query("SELECT body FROM sent_messages ORDER BY seq")
    return {"messages": [json.loads(row["body"]) for row in rows]}


# --- faults -------------------------------------------------------------------------------


@CONTROL.route("POST", "/sandbox/faults")
def add_fault(request: Request) -> dict[str, Any]:
    body = request.body
    kind = body.get("fault")
    if kind == "expire_tokens":
        with request.db.write() as db:
            expired = db.execute("DELETE FROM access_tokens").rowcount
        return {"errcode": 0, "expired": expired}
    if kind not in KINDS:
        raise ControlError(f"fault must be one of {', '.join((*KINDS, 'expire_tokens'))}")
    path = body.get("path")
    if path in (None, ""):
        path = None
    elif not isinstance(path, str) or not path.startswith("/cgi-bin/"):
        raise ControlError("path must be an API path such as /cgi-bin/kf/send_msg")
    times = body.get("times", 1)
    if isinstance(times, bool) or not isinstance(times, int) or times < 1:
        raise ControlError("times must be a positive integer")
    params: dict[str, Any] = {}
    if kind == "errcode":
        errcode = body.get("errcode")
        if isinstance(errcode, bool) or not isinstance(errcode, int) or errcode == 0:
            raise ControlError("errcode must be a non-zero integer")
        params["errcode"] = errcode
    elif kind == "http_status":
        status = body.get("status", 500)
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            raise ControlError("status must be an HTTP error status 400..599")
        params["status"] = status
    elif kind == "delay":
        seconds = body.get("seconds")
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, (int, float))
            or not 0 < seconds <= MAX_DELAY_SECONDS
        ):
            raise ControlError(f"seconds must be a number in (0, {MAX_DELAY_SECONDS}]")
        params["seconds"] = float(seconds)
    fault = request.server.faults.add(kind, path, times, **params)
    return {"errcode": 0, "fault": fault.as_dict()}


@CONTROL.route("GET", "/sandbox/faults")
def list_faults(request: Request) -> dict[str, Any]:
    return {"faults": request.server.faults.pending()}


@CONTROL.route("DELETE", "/sandbox/faults")
def clear_faults(request: Request) -> dict[str, Any]:
    return {"errcode": 0, "cleared": request.server.faults.clear()}


# --- callback target, clock ---------------------------------------------------------------


@CONTROL.route("POST", "/sandbox/callback")
def set_callback(request: Request) -> dict[str, Any]:
    body = request.body
    url = body.get("url")
    if url in (None, ""):
        # An empty url switches callbacks off.
        with request.db.write() as db:
            db.execute("DELETE FROM meta WHERE key LIKE 'callback_%'")
        return {"errcode": 0}
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ControlError("url must be an http:// or https:// URL")
    token = body.get("token")
    if not isinstance(token, str) or not 1 <= len(token) <= 32:
        raise ControlError("token must be a string of 1..32 characters")
    aes_key = body.get("aes_key")
    if not isinstance(aes_key, str) or not _AES_KEY_RE.fullmatch(aes_key):
        raise ControlError("aes_key must be 43 characters from [A-Za-z0-9]")
    with request.db.write() as db:
        db.set_meta("callback_url", url)
        db.set_meta("callback_token", token)
        db.set_meta("callback_aes_key", aes_key)
    return {"errcode": 0}


@CONTROL.route("GET", "/sandbox/callback")
def get_callback(request: Request) -> dict[str, Any]:
    return callbacks.callback_config(request.server) or {"url": "", "token": "", "aes_key": ""}


@CONTROL.route("POST", "/sandbox/clock")
def advance_clock(request: Request) -> dict[str, Any]:
    advance = request.body.get("advance")
    if isinstance(advance, bool) or not isinstance(advance, (int, float)) or advance < 0:
        raise ControlError("advance must be a number of seconds >= 0")
    # The offset is in the database so that every process serving this file agrees on
    # the time; the read-modify-write is one IMMEDIATE transaction so advances add up.
    with request.db.write() as db:
        offset = float(db.meta("clock_offset") or 0) + float(advance)
        db.set_meta("clock_offset", repr(offset))
    return {"errcode": 0, **_clock(request)}


@CONTROL.route("GET", "/sandbox/clock")
def get_clock(request: Request) -> dict[str, Any]:
    return _clock(request)


def _clock(request: Request) -> dict[str, Any]:
    offset = float(request.db.meta("clock_offset") or 0)
    return {"now": int(request.db.now()), "offset": offset}


# --- helpers ------------------------------------------------------------------------------


def _required_str(body: dict[str, Any], field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value:
        raise ControlError(f"{field} is required (a non-empty string)")
    return value


def _external_userid(body: dict[str, Any]) -> str | None:
    value = body.get("external_userid")
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not _EXTERNAL_USERID_RE.fullmatch(value):
        raise ControlError("external_userid must be 1..64 characters from [0-9A-Za-z_-]")
    return value


def _account(db: Tx, open_kfid: str) -> None:
    try:
        account_by_id(db, open_kfid)
    except WeComError as exc:
        raise ControlError(f"open_kfid {open_kfid!r}: {exc.text}", errcode=exc.errcode) from None
