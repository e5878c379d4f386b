"""The sandbox's own control endpoints under /sandbox/ (DESIGN.md §8). Not part of WeCom.

JSON in and out, no access token. A request that makes no sense is HTTP 400 with
``{"errcode": 40058, "errmsg": ...}`` (or the WeCom code that fits, e.g. 95004 for an
unknown open_kfid). POST answers carry ``errcode: 0``; GET answers are exactly the documented
objects.

Customers and servicers: customer_message, seed_messages, enter_session, servicer_message
(each returns a sync_msg ``token``), servicer_status. Corp: directory, corp. Inspection:
stats, sent_messages. Test machinery: faults, callback, clock.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from . import callbacks, customers, directory, messages, rules, sessions
from .errors import ControlError, WeComError
from .faults import KINDS
from .handlers.common import account_by_id
from .handlers.corp import CHANNELS_BINDING_KEY
from .handlers.media import store_media
from .handlers.sync import PATH as SYNC_PATH
from .routing import CONTROL, Request
from .store import Tx

MAX_SEED = 1_000_000
MAX_DELAY_SECONDS = 300
MAX_FILENAME_BYTES = 255
_DEFAULT_EXTENSION = {"image": "png", "voice": "amr", "video": "mp4", "file": "bin"}
_EXTERNAL_USERID_RE = re.compile(r"[0-9A-Za-z_-]{1,64}")
_AES_KEY_RE = re.compile(r"[A-Za-z0-9]{43}")


# --- directory, stats ---------------------------------------------------------------------


@CONTROL.route("GET", "/sandbox/directory")
def get_directory(request: Request) -> dict[str, Any]:
    return {"userids": list(directory.userids()), "department_ids": list(directory.DEPARTMENT_IDS)}


@CONTROL.route("GET", "/sandbox/stats")
def get_stats(request: Request) -> dict[str, Any]:
    stats = request.server.stats
    return {"requests": stats.snapshot(), "in_flight": stats.in_flight}


# --- customers ----------------------------------------------------------------------------


@CONTROL.route("POST", "/sandbox/customer_message")
def customer_message(request: Request) -> dict[str, Any]:
    """A customer sends a message: text, or an image, voice, video or file.

    ``{"open_kfid", "external_userid"?, "msgtype"? = "text", "text"}`` or, for media,
    ``{"open_kfid", "external_userid"?, "msgtype", "media_base64", "filename"?}``. The bytes
    are kept as temporary media (media/get serves them, with the filename, for 3 days of
    simulator time) and the message is what sync_msg gives for that type: ``{"msgtype":
    "image", "image": {"media_id": ...}}`` (kf-api.md §3.2; a file message carries no name).
    """
    body = request.body
    open_kfid = _required_str(body, "open_kfid")
    external_userid = _external_userid(body)
    msgtype = body.get("msgtype") or "text"
    if msgtype == "text":
        if body.get("media_base64") not in (None, "") or body.get("filename") not in (None, ""):
            raise ControlError("media_base64 and filename go with msgtype image, voice, "
                               "video or file")
        text = _required_str(body, "text")
        media = None
    elif msgtype in rules.MEDIA_MSGTYPES:
        if body.get("text") not in (None, ""):
            raise ControlError(f"text goes with msgtype text, not {msgtype}")
        media = _customer_media(body, msgtype)
    else:
        raise ControlError("msgtype must be one of text, " + ", ".join(rules.MEDIA_MSGTYPES))
    now = request.now_int
    answer: dict[str, Any] = {"errcode": 0}
    with request.db.write() as db:
        _account(db, open_kfid)
        external_userid = customers.ensure_customer(db, external_userid, now)
        customers.customer_spoke(db, open_kfid, external_userid, now)
        if media is None:
            (msgid,) = customers.add_text_messages(db, open_kfid, [(external_userid, text)], now)
        else:
            data, filename = media
            media_id = store_media(
                db, msgtype, filename, rules.media_content_type(msgtype, data, filename),
                data, now,
            )
            msgid = messages.add(
                db, open_kfid, external_userid, messages.ORIGIN_CUSTOMER, msgtype,
                {"media_id": media_id}, now,
            )
            answer["media_id"] = media_id
        token = callbacks.issue_sync_token(db, open_kfid, now)
    callbacks.notify_new_messages(request.server, open_kfid)
    return {**answer, "msgid": msgid, "external_userid": external_userid, "token": token}


def _customer_media(body: dict[str, Any], msgtype: str) -> tuple[bytes, str]:
    """(bytes, filename) of a customer's media message, checked as WeCom would deliver it."""
    encoded = body.get("media_base64")
    if not isinstance(encoded, str) or not encoded:
        raise ControlError(f"media_base64 is required for msgtype {msgtype} (the file's "
                           "bytes in base64)")
    try:
        data = base64.b64decode("".join(encoded.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ControlError("media_base64 is not valid base64") from None
    problem = rules.customer_media_problem(msgtype, data)
    if problem is not None:
        errcode, words = problem
        raise ControlError(f"media_base64: {words}", errcode=errcode)
    filename = _optional_str(body, "filename")
    if filename is None:
        filename = f"{msgtype}.{_DEFAULT_EXTENSION.get(msgtype, 'bin')}"
        if msgtype == "image" and not data.startswith(b"\x89PNG"):
            filename = "image.jpg"
    elif (
        not filename.isprintable()  # also refuses lone surrogates before encode()
        or len(filename.encode()) > MAX_FILENAME_BYTES
        or filename in (".", "..")
        or any(c in filename for c in "/\\")
    ):
        raise ControlError(f"filename must be a file's name: 1..{MAX_FILENAME_BYTES} bytes, "
                           "no / or \\ or control characters")
    return data, filename


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
        token = callbacks.issue_sync_token(db, open_kfid, now)
    callbacks.notify_new_messages(request.server, open_kfid)
    return {"errcode": 0, "count": count, "external_userids": senders, "token": token}


@CONTROL.route("POST", "/sandbox/enter_session")
def enter_session(request: Request) -> dict[str, Any]:
    """A customer opens the account's chat (from a contact-way link): an enter_session event.

    The event carries scene / scene_param (and wechat_channels when given) and, when the
    customer has not messaged the account or been welcomed in the last 48 h, a welcome_code
    valid 20 s (kf-api.md §1.6, §3.3). The session itself stays as it is (a customer who only
    entered is in state 4); batchget reports the context for 48 h.
    """
    body = request.body
    open_kfid = _required_str(body, "open_kfid")
    external_userid = _external_userid(body)
    scene = _optional_str(body, "scene")
    if scene is not None and (
        len(scene.encode()) > rules.MAX_SCENE_BYTES or not rules.SCENE_RE.fullmatch(scene)
    ):
        raise ControlError("scene must be at most 32 bytes of [0-9a-zA-Z_-]")
    scene_param = _optional_str(body, "scene_param")
    if scene_param is not None and len(scene_param.encode()) > rules.MAX_SCENE_PARAM_BYTES:
        raise ControlError(f"scene_param exceeds {rules.MAX_SCENE_PARAM_BYTES} bytes")
    channels = body.get("wechat_channels")
    if channels is not None and not isinstance(channels, dict):
        raise ControlError("wechat_channels must be an object")
    now = request.now_int
    with request.db.write() as db:
        _account(db, open_kfid)
        external_userid = customers.ensure_customer(db, external_userid, now)
        welcome_code = ""
        if sessions.welcome_allowed(db, open_kfid, external_userid, now):
            state = sessions.effective_state(sessions.get(db, open_kfid, external_userid), now)
            welcome_code = sessions.issue_code(
                db, rules.CODE_WELCOME, open_kfid, external_userid, state, now
            )
        db.execute(
            """
            INSERT INTO sessions (open_kfid, external_userid, scene, scene_param, entered_at,
                                  enter_channels)
            VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT (open_kfid, external_userid) DO UPDATE SET
                scene = excluded.scene, scene_param = excluded.scene_param,
                entered_at = excluded.entered_at, enter_channels = excluded.enter_channels
            """,
            (
                open_kfid,
                external_userid,
                scene or "",
                scene_param or "",
                now,
                json.dumps(channels, ensure_ascii=False) if channels else None,
            ),
        )
        event: dict[str, Any] = {
            "event_type": "enter_session",
            "open_kfid": open_kfid,
            "external_userid": external_userid,
            "scene": scene or "",
            "scene_param": scene_param or "",
        }
        if welcome_code:
            event["welcome_code"] = welcome_code
        if channels:
            event["wechat_channels"] = channels
        messages.add_event(db, open_kfid, external_userid, event, now)
        token = callbacks.issue_sync_token(db, open_kfid, now)
    callbacks.notify_new_messages(request.server, open_kfid)
    return {
        "errcode": 0,
        "external_userid": external_userid,
        "welcome_code": welcome_code,
        "token": token,
    }


@CONTROL.route("POST", "/sandbox/servicer_message")
def servicer_message(request: Request) -> dict[str, Any]:
    """A servicer writes to a customer from the WeCom client: an origin-5 text message.

    The servicer takes the session (state 3) unless it already has it, and a
    session_status_change event records how (kf-api.md §1.5, §3.3): change_type 4 when the
    session had ended (re-opened; its 48 h restart), 1 when it was new, with the bot or
    queued (picked; with a msg_code), 2 when another servicer had it (transferred).
    """
    body = request.body
    open_kfid = _required_str(body, "open_kfid")
    external_userid = _required_str(body, "external_userid")
    userid = _required_str(body, "userid")
    text = _required_str(body, "text")
    now = request.now_int
    with request.db.write() as db:
        _account(db, open_kfid)
        try:
            sessions.require_customer(db, external_userid)
        except WeComError as exc:
            raise ControlError(
                f"{external_userid!r} is not a customer", errcode=exc.errcode
            ) from None
        if sessions.servicer_status(db, open_kfid, userid) is None:
            raise ControlError(f"{userid!r} is not a servicer of this account", errcode=95014)
        row = sessions.get(db, open_kfid, external_userid)
        state = sessions.effective_state(row, now)
        old_servicer = row["servicer_userid"] if row is not None and state == 3 else ""
        if state != 3 or old_servicer != userid:
            event: dict[str, Any] = {
                "event_type": "session_status_change",
                "open_kfid": open_kfid,
                "external_userid": external_userid,
                "new_servicer_userid": userid,
            }
            if state == rules.STATE_ENDED:
                event["change_type"] = 4
                sessions.set_state(db, open_kfid, external_userid, 3, userid, reopened_at=now)
            else:
                sessions.set_state(db, open_kfid, external_userid, 3, userid)
                if state == 3:
                    event["change_type"] = 2
                    event["old_servicer_userid"] = old_servicer
                else:
                    event["change_type"] = 1
                    event["msg_code"] = sessions.issue_code(
                        db, rules.CODE_SERVICER, open_kfid, external_userid, 3, now
                    )
            messages.add_event(db, open_kfid, external_userid, event, now)
        msgid = messages.add(
            db,
            open_kfid,
            external_userid,
            messages.ORIGIN_SERVICER,
            "text",
            {"content": text},
            now,
            servicer_userid=userid,
        )
        token = callbacks.issue_sync_token(db, open_kfid, now)
    callbacks.notify_new_messages(request.server, open_kfid)
    return {"errcode": 0, "msgid": msgid, "token": token}


# --- servicers, corp ----------------------------------------------------------------------


@CONTROL.route("POST", "/sandbox/servicer_status")
def servicer_status(request: Request) -> dict[str, Any]:
    """Stop (stop_type 0) or suspend (1) a servicer, or set it receiving again (status 0).

    ``status`` uses servicer/list's encoding (0 receiving, 1 stopped). Only servicers added
    by userid carry a status; department members are always receiving. A
    servicer_status_change event (which encodes status as 1 receiving / 2 stopped, §3.3) is
    stored for sync_msg.
    """
    body = request.body
    open_kfid = _required_str(body, "open_kfid")
    userid = _required_str(body, "userid")
    status = body.get("status")
    if status not in (rules.SERVICER_RECEIVING, rules.SERVICER_STOPPED) or isinstance(status, bool):
        raise ControlError("status must be 0 (receiving) or 1 (stopped)")
    stop_type = body.get("stop_type", 0)
    if stop_type not in (0, 1) or isinstance(stop_type, bool):
        raise ControlError("stop_type must be 0 (stopped) or 1 (suspended)")
    if status == rules.SERVICER_RECEIVING:
        stop_type = 0
    now = request.now_int
    with request.db.write() as db:
        _account(db, open_kfid)
        updated = db.execute(
            "UPDATE servicers SET status = ?, stop_type = ? WHERE open_kfid = ? AND userid = ?",
            (status, stop_type, open_kfid, userid),
        ).rowcount
        if not updated:
            raise ControlError(f"{userid!r} was not added to this account by userid", errcode=95014)
        event = {
            "event_type": "servicer_status_change",
            "servicer_userid": userid,
            "status": 1 if status == rules.SERVICER_RECEIVING else 2,
            "stop_type": stop_type,
            "open_kfid": open_kfid,
        }
        messages.add_event(db, open_kfid, None, event, now)
    callbacks.notify_new_messages(request.server, open_kfid)
    return {"errcode": 0}


@CONTROL.route("POST", "/sandbox/corp")
def set_corp(request: Request) -> dict[str, Any]:
    """Corp facts that tests may change: ``wechat_channels_binding`` (get_corp_qualification)."""
    binding = request.body.get("wechat_channels_binding")
    if not isinstance(binding, bool):
        raise ControlError("wechat_channels_binding must be true or false")
    with request.db.write() as db:
        db.set_meta(CHANNELS_BINDING_KEY, "true" if binding else "false")
    return {"errcode": 0, "wechat_channels_binding": binding}


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
    if kind == "empty_page":
        # Only sync_msg pages can be empty with has_more 1 (kf-api.md §2.5).
        if path in (None, ""):
            path = SYNC_PATH
        if path != SYNC_PATH:
            raise ControlError(f"the empty_page fault applies to {SYNC_PATH} only")
    if path in (None, ""):
        path = None
    elif not isinstance(path, str) or not path.startswith("/cgi-bin/"):
        raise ControlError("path must be an API path such as /cgi-bin/kf/send_msg")
    times = body.get("times", 1)
    if isinstance(times, bool) or not isinstance(times, int) or times < 1:
        raise ControlError("times must be a positive integer")
    params: dict[str, Any] = {}
    after = body.get("after", 0)
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        raise ControlError("after must be an integer >= 0")
    if after:
        params["after"] = after
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
    """Where encrypted callbacks go: ``{"url", "token"?, "aes_key"?}``.

    Without a Token and EncodingAESKey the simulator signs with its own pair (the one `kfcli
    sandbox serve` printed, and what `--sandbox` gives a receiver): nobody has to hand a
    production pair to a test tool. The answer, like GET's, shows the pair masked.
    """
    body = request.body
    url = body.get("url")
    if url in (None, ""):
        # An empty url switches callbacks off.
        with request.db.write() as db:
            db.execute("DELETE FROM meta WHERE key LIKE 'callback_%'")
        return {"errcode": 0, **_callback_shown(None)}
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ControlError("url must be an http:// or https:// URL")
    token, aes_key = body.get("token"), body.get("aes_key")
    if token in (None, "") and aes_key in (None, ""):
        token = aes_key = ""  # the simulator's own pair
    else:
        if not isinstance(token, str) or not 1 <= len(token) <= 32:
            raise ControlError("token must be a string of 1..32 characters (or leave out "
                               "both token and aes_key: the simulator's own pair signs)")
        if not isinstance(aes_key, str) or not _AES_KEY_RE.fullmatch(aes_key):
            raise ControlError("aes_key must be 43 characters from [A-Za-z0-9] (or leave out "
                               "both token and aes_key: the simulator's own pair signs)")
    with request.db.write() as db:
        db.set_meta("callback_url", url)
        db.set_meta("callback_token", token)
        db.set_meta("callback_aes_key", aes_key)
    return {"errcode": 0, **_callback_shown(callbacks.callback_config(request.server))}


@CONTROL.route("GET", "/sandbox/callback")
def get_callback(request: Request) -> dict[str, Any]:
    """The callback target, its Token and EncodingAESKey masked (DESIGN.md §8: no control
    endpoint returns a secret in clear; anyone who can reach the port could forge callbacks
    with them)."""
    return _callback_shown(callbacks.callback_config(request.server))


def _callback_shown(config: dict[str, str] | None) -> dict[str, str]:
    if config is None:
        return {"url": "", "token": "", "aes_key": "", "keys": ""}
    return {**config, "token": callbacks.masked(config["token"]),
            "aes_key": callbacks.masked(config["aes_key"])}


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


def _optional_str(body: dict[str, Any], field: str) -> str | None:
    value = body.get(field)
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ControlError(f"{field} must be a string")
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
