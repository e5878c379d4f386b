"""Sending to customers: /cgi-bin/kf/send_msg and /send_msg_on_event (kf-api.md §2.6, §2.7).

Order of checks, chosen so that a client retrying with the same ``msgid`` is told
"duplicate" rather than some rule the first attempt's success has since tripped (e.g. the
5-message limit): parameters, account, customer, **msgid duplicate**, message body, then
session state, 48 h window and message count.

Delivered messages go to ``sent_messages`` (GET /sandbox/sent_messages) as the request body
with the final msgid and with over-long link/miniprogram titles truncated as delivered.
They never show up in sync_msg (§2.5).
"""

from __future__ import annotations

import json
from typing import Any

from .. import ids, rules, sessions
from ..errors import WeComError
from ..params import required_str
from ..routing import API, Request
from ..store import Tx
from .common import account_from_body, customer_from_body, media_checker

STATE_NEW, STATE_BOT = 0, 1


@API.route("POST", "/cgi-bin/kf/send_msg")
def send_msg(request: Request) -> dict[str, Any]:
    body = request.body
    required_str(body, "touser")
    msgid = rules.check_msgid(body.get("msgid"))
    msgtype = _msgtype(body, rules.SEND_MSGTYPES)
    now = request.now_int
    with request.db.write() as db:
        open_kfid = account_from_body(request, db)["open_kfid"]
        external_userid = customer_from_body(request, db, "touser")
        _check_unused(db, open_kfid, msgid)
        delivered = rules.check_message(body, msgtype, media_checker(db, now))

        session = sessions.get(db, open_kfid, external_userid)
        # send_msg works in states 0 and 1 only (kf-api.md §1.5); no session at all is the
        # same error. A session in 0/1 whose 48 h ran out is 95002, the more precise code.
        if session is None or session["service_state"] not in (STATE_NEW, STATE_BOT):
            raise WeComError(95018)
        window_start = session["window_start"]
        if window_start is None or now >= window_start + rules.SESSION_WINDOW:
            raise WeComError(95002)
        if session["window_sent"] >= rules.WINDOW_MESSAGES:
            raise WeComError(95001)
        # Replying by API makes a new session (0) the smart assistant's (1), kf-api.md §1.5.
        db.execute(
            "UPDATE sessions SET service_state = ?, window_sent = window_sent + 1 "
            "WHERE open_kfid = ? AND external_userid = ?",
            (STATE_BOT, open_kfid, external_userid),
        )
        msgid = _deliver(
            db, "send_msg", open_kfid, external_userid, msgid, body, msgtype, delivered, now
        )
    return {"msgid": msgid}


@API.route("POST", "/cgi-bin/kf/send_msg_on_event")
def send_msg_on_event(request: Request) -> dict[str, Any]:
    body = request.body
    code = required_str(body, "code")
    msgid = rules.check_msgid(body.get("msgid"))
    msgtype = _msgtype(body, ("text", "msgmenu"))
    now = request.now_int
    with request.db.write() as db:
        row = db.one("SELECT * FROM event_codes WHERE code = ?", (code,))
        # 95007 "invalid msg token" for a code that is unknown, used, expired, or (except
        # welcome codes) no longer matches the session's state (kf-api.md §1.6).
        if row is None or row["used_at"] is not None or now >= row["expires_at"]:
            raise WeComError(95007)
        open_kfid, external_userid = row["open_kfid"], row["external_userid"]
        if row["kind"] != rules.CODE_WELCOME:
            session = sessions.get(db, open_kfid, external_userid)
            if sessions.effective_state(session, now) != row["service_state"]:
                raise WeComError(95007, "session state changed since the code was issued")
        # Queue and servicer-pick codes allow text only; welcome and closing codes allow
        # text and msgmenu (kf-api.md §1.6).
        allowed = rules.EVENT_CODE_MSGTYPES[row["kind"]]
        if msgtype not in allowed:
            raise WeComError(40008, f"this code allows msgtype {'/'.join(allowed)} only")
        _check_unused(db, open_kfid, msgid)
        delivered = rules.check_message(body, msgtype, media_checker(db, now))
        db.execute("UPDATE event_codes SET used_at = ? WHERE code = ?", (now, code))
        msgid = _deliver(
            db,
            "send_msg_on_event",
            open_kfid,
            external_userid,
            msgid,
            body,
            msgtype,
            delivered,
            now,
        )
    return {"msgid": msgid}


def _msgtype(body: dict[str, Any], allowed: tuple[str, ...]) -> str:
    msgtype = required_str(body, "msgtype")
    if msgtype not in allowed:
        raise WeComError(40008)
    return msgtype


def _check_unused(db: Tx, open_kfid: str, msgid: str | None) -> None:
    """40058 "msgid duplicated" for a msgid this account already used (kf-api.md §2.6).

    Clients rely on errcode 40058 plus the word "msgid" in errmsg to recognise a retry of a
    message that was in fact delivered; nothing is delivered a second time.
    """
    if msgid is None:
        return
    if db.one("SELECT 1 FROM sent_messages WHERE open_kfid = ? AND msgid = ?", (open_kfid, msgid)):
        raise WeComError(40058, "msgid duplicated")


def _deliver(
    db: Tx,
    api: str,
    open_kfid: str,
    external_userid: str,
    msgid: str | None,
    body: dict[str, Any],
    msgtype: str,
    delivered: dict[str, Any],
    now: int,
) -> str:
    if msgid is None:
        msgid = ids.msgid()
        while db.one(
            "SELECT 1 FROM sent_messages WHERE open_kfid = ? AND msgid = ?", (open_kfid, msgid)
        ):
            msgid = ids.msgid()
    record = {**body, "msgid": msgid, msgtype: delivered}
    db.execute(
        "INSERT INTO sent_messages (open_kfid, msgid, external_userid, api, body, sent_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (open_kfid, msgid, external_userid, api, json.dumps(record, ensure_ascii=False), now),
    )
    return msgid
