"""WeCom's limits and validation rules, in one place.

Every number the simulator enforces lives here with its source in kf-api.md, so a reader can
check the simulator against the reference without hunting through handlers. Handlers read
these names at call time (``rules.MAX_ACCOUNTS``), which also lets tests lower a limit.
Functions here raise `WeComError` with the code WeCom uses for that rule.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .errors import WeComError

# --- time -----------------------------------------------------------------------------------

DEFAULT_TOKEN_TTL = 7200  # gettoken expires_in, kf-api.md §1.2
MEDIA_TTL = 3 * 24 * 3600  # temporary media live 3 days, kf-api.md §2.12
SESSION_WINDOW = 48 * 3600  # reply window after a customer message, kf-api.md §1.6
WINDOW_MESSAGES = 5  # messages allowed per customer message, kf-api.md §1.6
SYNC_HISTORY = 3 * 24 * 3600  # sync_msg with an empty cursor starts 3 days back, §2.5

# --- accounts (kf-api.md §2.2) -----------------------------------------------------------

# The 10-account cap for unverified corps (95027) is not simulated: the simulated corp counts
# as verified, so a newcomer is never blocked by a rule they cannot change in the sandbox.
# Likewise "a self-built app needs one configured account before add" is not simulated.
MAX_ACCOUNTS = 5000
MAX_ACCOUNT_NAME_CHARS = 16  # characters, not bytes
MAX_MEDIA_ID_BYTES = 128
MAX_OPEN_KFID_BYTES = 64
ACCOUNT_LIST_DEFAULT_LIMIT = 100
ACCOUNT_LIST_MAX_LIMIT = 100

# add_contact_way scene, kf-api.md §2.2
MAX_SCENE_BYTES = 32
SCENE_RE = re.compile(r"[0-9a-zA-Z_-]*")

# Real open_kfids are opaque url-safe strings ("wk" + 30 chars); anything outside this
# alphabet cannot have been issued by WeCom and is "invalid" (95000) rather than "unknown".
OPEN_KFID_RE = re.compile(r"[0-9A-Za-z_-]+")

# --- media (kf-api.md §2.12) ----------------------------------------------------------------

MB = 1024 * 1024
MEDIA_MIN_BYTES = 6  # "all files > 5 bytes"
MEDIA_MAX_BYTES = {"image": 10 * MB, "voice": 2 * MB, "video": 10 * MB, "file": 20 * MB}
MEDIA_TYPES = tuple(MEDIA_MAX_BYTES)
# Oversize errors: the upload page lists 40009 (image) and 40011 (video) for size problems and
# 40006 as the generic "invalid file size"; the global table's 40010 (voice size) is not
# among the codes the upload page names, so voice and file use 40006.
MEDIA_OVERSIZE_ERRCODE = {"image": 40009, "voice": 40006, "video": 40011, "file": 40006}
# What a customer sends reaches sync_msg only up to these sizes; bigger items arrive as a text
# notice instead (kf-api.md §2.12, DOC:31078). The sandbox refuses them rather than invent
# the notice's wording.
CUSTOMER_MEDIA_MAX_BYTES = {"image": 2 * MB, "voice": 2 * MB, "video": 10 * MB, "file": 20 * MB}
_FORMATS = {
    "image": "JPG or PNG",
    "voice": "AMR (a file starting with #!AMR)",
    "video": "MP4",
}
# Largest request body read at all (a 20 MB file plus multipart overhead fits easily).
MAX_BODY_BYTES = 64 * MB


# --- validators -----------------------------------------------------------------------------


def check_account_name(name: str) -> None:
    """95006 for a name WeCom refuses: over 16 characters, or nothing visible."""
    if len(name) > MAX_ACCOUNT_NAME_CHARS:
        raise WeComError(95006, f"name exceeds {MAX_ACCOUNT_NAME_CHARS} characters")
    if not name.strip():
        raise WeComError(95006, "name is blank")


def check_open_kfid_format(open_kfid: str) -> None:
    """95000 for an id that cannot be a WeCom open_kfid (existence is checked separately)."""
    if len(open_kfid.encode()) > MAX_OPEN_KFID_BYTES or not OPEN_KFID_RE.fullmatch(open_kfid):
        raise WeComError(95000)


def check_scene(scene: str) -> None:
    """40058 for a contact-way scene over 32 bytes or outside [0-9a-zA-Z_-]."""
    if len(scene.encode()) > MAX_SCENE_BYTES:
        raise WeComError(40058, f"scene exceeds {MAX_SCENE_BYTES} bytes")
    if not SCENE_RE.fullmatch(scene):
        raise WeComError(40058, "scene must match [0-9a-zA-Z_-]*")


def check_media_content(media_type: str, data: bytes) -> None:
    """Size and format rules for an upload of ``media_type`` (already known to be valid)."""
    if not data:
        raise WeComError(44001)
    if len(data) < MEDIA_MIN_BYTES:
        raise WeComError(40006, "file must be larger than 5 bytes")
    if len(data) > MEDIA_MAX_BYTES[media_type]:
        raise WeComError(MEDIA_OVERSIZE_ERRCODE[media_type])
    if not _format_ok(media_type, data):
        raise WeComError(40005)


def customer_media_problem(media_type: str, data: bytes) -> tuple[int, str] | None:
    """Why a customer could not send ``data`` as a ``media_type`` message, or None.

    (errcode, words): the upload rules' codes for the same faults (44001 empty, 40006 too
    small, the type's oversize code, 40005 wrong format), with the sync_msg size caps.
    Shared by POST /sandbox/customer_message and `kfcli sandbox say`, which checks first.
    """
    size = len(data)
    if not size:
        return 44001, "the file is empty"
    if size < MEDIA_MIN_BYTES:
        return 40006, f"the file is {size} bytes; WeCom needs more than {MEDIA_MIN_BYTES - 1}"
    cap = CUSTOMER_MEDIA_MAX_BYTES[media_type]
    if size > cap:
        return (
            MEDIA_OVERSIZE_ERRCODE[media_type],
            f"the file is {size / MB:.1f} MB; WeCom delivers {media_type} messages from "
            f"customers up to {cap // MB} MB (larger ones arrive as a text notice)",
        )
    if not _format_ok(media_type, data):
        return 40005, f"a customer's {media_type} must be {_FORMATS[media_type]}"
    return None


def media_content_type(media_type: str, data: bytes, filename: str) -> str:
    """The Content-Type media/get sends for media stored without one."""
    if media_type == "image":
        return "image/png" if data.startswith(b"\x89PNG") else "image/jpeg"
    if media_type == "voice":
        return "audio/amr"
    if media_type == "video":
        return "video/mp4"
    import mimetypes

    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def _format_ok(media_type: str, data: bytes) -> bool:
    # Formats by magic bytes: image JPG/PNG, voice AMR, video MP4 (an ISO-BMFF "ftyp" box
    # first); "file" accepts anything. kf-api.md §2.12.
    if media_type == "image":
        return data.startswith(b"\xff\xd8\xff") or data.startswith(b"\x89PNG\r\n\x1a\n")
    if media_type == "voice":
        return data.startswith(b"#!AMR")
    if media_type == "video":
        return data[4:8] == b"ftyp"
    return True


def truncate_bytes(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes without splitting a character."""
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# --- servicers (kf-api.md §2.3) --------------------------------------------------------------

SERVICER_BATCH_MAX = 100  # userid_list / department_id_list items per call
MAX_SERVICER_USERIDS = 2000  # per account
MAX_SERVICER_DEPARTMENTS = 20  # per account
# Per-item codes in result_list. 60111 "userid not found" is WeCom's global code for a userid
# outside the directory (kf-api.md §5); 60123 "invalid department_id" is its code for an
# unknown department (global error page, DOC:90313).
USERID_NOT_FOUND = 60111
DEPARTMENT_NOT_FOUND = 60123
# kf-api.md names no code for "this account already has 2000 servicers / 20 departments".
# The sandbox answers such an item with 95010, a 95xxx code the reference leaves unassigned,
# and an errmsg that says which limit was hit. Clients should treat it as an opaque failure.
SERVICER_LIMIT_ERRCODE = 95010

# servicer/list status (kf-api.md §2.3): 0 receiving, 1 stopped; stop_type 0 stopped,
# 1 temporarily suspended (only meaningful with status 1).
SERVICER_RECEIVING = 0
SERVICER_STOPPED = 1

# --- session states and event codes (kf-api.md §1.5, §1.6, §2.4) ------------------------------

SERVICE_STATES = (0, 1, 2, 3, 4)
STATE_ENDED = 4
# target states reachable from each state through service_state/trans (kf-api.md §1.5).
# Ending a session (-> 4) from 0/1/2 is marked (verify) in the reference: it is allowed here
# because bots that handle a session by API must be able to close it when they are done, and
# the official table lets 3 end, so refusing 0/1/2 would strand sessions no human touched.
# 3 -> 3 is a transfer and must name another servicer; everything from 4 is refused.
ALLOWED_TRANSITIONS: dict[int, frozenset[int]] = {
    0: frozenset({1, 2, 3, 4}),
    1: frozenset({2, 3, 4}),
    2: frozenset({3, 4}),
    3: frozenset({3, 4}),
    4: frozenset(),
}

# Event-response codes for send_msg_on_event (kf-api.md §1.6): lifetime and message types.
CODE_WELCOME = "welcome"  # enter_session.welcome_code
CODE_QUEUE = "queue"  # trans -> 2
CODE_SERVICER = "servicer"  # trans -> 3, or a servicer picking the session from the pool
CODE_END = "end"  # trans -> 4
EVENT_CODE_TTL = {
    CODE_WELCOME: 20,
    CODE_QUEUE: 48 * 3600,
    CODE_SERVICER: 48 * 3600,
    CODE_END: 20,
}
EVENT_CODE_MSGTYPES = {
    CODE_WELCOME: ("text", "msgmenu"),
    CODE_QUEUE: ("text",),
    CODE_SERVICER: ("text",),
    CODE_END: ("text", "msgmenu"),
}
CODE_FOR_STATE = {2: CODE_QUEUE, 3: CODE_SERVICER, 4: CODE_END}


def check_transition(old: int, new: int, old_servicer: str, new_servicer: str | None) -> None:
    """95016 for a transition kf-api.md §1.5 does not allow (incl. 3 -> 3 to the same servicer)."""
    if new not in ALLOWED_TRANSITIONS[old]:
        raise WeComError(95016, f"service_state {old} cannot change to {new}")
    if old == 3 and new == 3 and new_servicer == old_servicer:
        raise WeComError(95016, "session is already with this servicer")


# --- messages you send (kf-api.md §2.6, §2.7) -------------------------------------------------

MAX_MSGID_BYTES = 32
MSGID_RE = re.compile(r"[0-9a-zA-Z_-]*")
MAX_TEXT_BYTES = 2048
MAX_URL_BYTES = 2048
LINK_TITLE_BYTES = 128  # longer titles are truncated, not refused
LINK_DESC_BYTES = 512  # likewise
MINIPROGRAM_TITLE_BYTES = 64  # likewise
MENU_MAX_ITEMS = 10
MENU_HEAD_TAIL_BYTES = 1024
# Menu items: type -> {field: max bytes}; every field is required and at least 1 byte.
MENU_ITEM_FIELDS: dict[str, dict[str, int]] = {
    "click": {"id": 64, "content": 128},
    "view": {"url": 2048, "content": 1024},
    "miniprogram": {"appid": 32, "pagepath": 1024, "content": 1024},
    "text": {"content": 256},
}
SEND_MSGTYPES = (
    "text",
    "image",
    "voice",
    "video",
    "file",
    "link",
    "miniprogram",
    "msgmenu",
    "location",
    "ca_link",
)
MEDIA_MSGTYPES = ("image", "voice", "video", "file")

# MediaCheck(media_id, media_type) raises 40007 unless the media exists, lives and has the type.
MediaCheck = Callable[[str, str], object]


def check_msgid(msgid: object) -> str | None:
    """The caller's msgid (None when not given); 40058 over 32 bytes or outside the alphabet."""
    if msgid is None or msgid == "":
        return None
    if not isinstance(msgid, str):
        raise WeComError(40058, "field msgid must be a string")
    if len(msgid.encode()) > MAX_MSGID_BYTES or not MSGID_RE.fullmatch(msgid):
        raise WeComError(40058, f"msgid must be at most {MAX_MSGID_BYTES} bytes of [0-9a-zA-Z_-]")
    return msgid


def check_message(body: dict[str, Any], msgtype: str, media_ok: MediaCheck) -> dict[str, Any]:
    """The ``msgtype`` object as delivered (long link/miniprogram titles truncated).

    ``msgtype`` must already be one of SEND_MSGTYPES. Raises the code WeCom uses for each
    rule of kf-api.md §2.6.
    """
    obj = body.get(msgtype)
    if not isinstance(obj, dict):
        raise WeComError(40058, f"field {msgtype} missing or not an object")
    out = dict(obj)
    if msgtype == "text":
        content = obj.get("content")
        if content is None or content == "":
            raise WeComError(44004)  # "empty content"
        if not isinstance(content, str):
            raise WeComError(40058, "field text.content must be a string")
        if len(content.encode()) > MAX_TEXT_BYTES:
            raise WeComError(45002, f"text.content exceeds {MAX_TEXT_BYTES} bytes")
    elif msgtype in MEDIA_MSGTYPES:
        media_ok(_required(obj, msgtype, "media_id"), msgtype)
    elif msgtype == "link":
        title = _required(obj, "link", "title")
        check_url(_required(obj, "link", "url"), "link.url")
        media_ok(_required(obj, "link", "thumb_media_id"), "image")
        out["title"] = truncate_bytes(title, LINK_TITLE_BYTES)
        desc = _optional(obj, "link", "desc")
        if desc is not None:
            out["desc"] = truncate_bytes(desc, LINK_DESC_BYTES)
    elif msgtype == "miniprogram":
        _required(obj, "miniprogram", "appid")
        _required(obj, "miniprogram", "pagepath")
        media_ok(_required(obj, "miniprogram", "thumb_media_id"), "image")
        title = _optional(obj, "miniprogram", "title")
        if title is not None:
            out["title"] = truncate_bytes(title, MINIPROGRAM_TITLE_BYTES)
    elif msgtype == "msgmenu":
        check_menu(obj)
    elif msgtype == "location":
        for field, bound in (("latitude", 90), ("longitude", 180)):
            value = obj.get(field)
            if not _is_number(value) or not -bound <= value <= bound:  # type: ignore[operator]
                raise WeComError(40058, f"location.{field} must be a number in -{bound}..{bound}")
        _optional(obj, "location", "name")
        _optional(obj, "location", "address")
    elif msgtype == "ca_link":
        check_url(_required(obj, "ca_link", "link_url"), "ca_link.link_url")
    return out


def check_menu(menu: dict[str, Any]) -> None:
    """msgmenu rules (kf-api.md §2.6): 95008 over 10 items, 95009 bad item type, else 40058."""
    for field in ("head_content", "tail_content"):
        value = _optional(menu, "msgmenu", field)
        if value is not None and len(value.encode()) > MENU_HEAD_TAIL_BYTES:
            raise WeComError(40058, f"msgmenu.{field} exceeds {MENU_HEAD_TAIL_BYTES} bytes")
    items = menu.get("list")
    if items is None:
        items = []
    if not isinstance(items, list):
        raise WeComError(40058, "field msgmenu.list must be an array")
    if len(items) > MENU_MAX_ITEMS:
        raise WeComError(95008, f"msgmenu.list has more than {MENU_MAX_ITEMS} items")
    if not items and not menu.get("head_content") and not menu.get("tail_content"):
        raise WeComError(40058, "msgmenu is empty")
    for n, item in enumerate(items):
        kind = item.get("type") if isinstance(item, dict) else None
        if kind not in MENU_ITEM_FIELDS:
            raise WeComError(95009, f"msgmenu.list[{n}].type must be one of click/view/...")
        obj = item.get(kind)
        where = f"msgmenu.list[{n}].{kind}"
        if not isinstance(obj, dict):
            raise WeComError(40058, f"field {where} missing or not an object")
        for field, limit in MENU_ITEM_FIELDS[kind].items():
            value = obj.get(field)
            if not isinstance(value, str) or not 1 <= len(value.encode()) <= limit:
                raise WeComError(40058, f"{where}.{field} must be 1..{limit} bytes")


def check_url(url: str, field: str) -> None:
    if len(url.encode()) > MAX_URL_BYTES:
        raise WeComError(40058, f"{field} exceeds {MAX_URL_BYTES} bytes")
    if not url.startswith(("http://", "https://")):
        raise WeComError(40058, f"{field} must start with http:// or https://")


def _required(obj: dict[str, Any], where: str, field: str) -> str:
    value = obj.get(field)
    if value is None or value == "":
        raise WeComError(40058, f"field {where}.{field} missing or unexpected empty string")
    if not isinstance(value, str):
        raise WeComError(40058, f"field {where}.{field} must be a string")
    return value


def _optional(obj: dict[str, Any], where: str, field: str) -> str | None:
    value = obj.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise WeComError(40058, f"field {where}.{field} must be a string")
    return value


# --- sync_msg (kf-api.md §2.5) ----------------------------------------------------------------

SYNC_MAX_LIMIT = 1000  # also the default
MAX_CURSOR_BYTES = 64
MAX_SYNC_TOKEN_BYTES = 128
SYNC_TOKEN_TTL = 600  # a callback Token is valid 10 minutes
VOICE_FORMATS = (0, 1)  # 0 AMR, 1 SILK

# --- customers (kf-api.md §2.8) ---------------------------------------------------------------

BATCHGET_MAX = 100
ENTER_CONTEXT_TTL = 48 * 3600  # enter_session_context covers the last 48 h
MAX_SCENE_PARAM_BYTES = 128  # add_contact_way scene_param, kf-api.md §2.2
UPGRADE_MEMBER = 1
UPGRADE_GROUPCHAT = 2

# --- statistics (kf-api.md §2.10) -------------------------------------------------------------

STATS_TZ_OFFSET = 8 * 3600  # days start at 00:00 Asia/Shanghai (UTC+8, no DST)
STATS_MAX_DAYS = 31  # closed interval
STATS_HISTORY_DAYS = 180
DAY = 24 * 3600


def stats_day(timestamp: int) -> int:
    """The 00:00 (UTC+8) that starts the day ``timestamp`` falls in."""
    return timestamp - (timestamp + STATS_TZ_OFFSET) % DAY


def check_stats_window(start: int, end: int, now: float) -> tuple[int, int]:
    """Both ends rounded down to midnight; 40058 naming the rule that a window breaks."""
    start, end = stats_day(start), stats_day(end)
    today = stats_day(int(now))
    if end < start:
        raise WeComError(40058, "end_time is earlier than start_time")
    if (end - start) // DAY + 1 > STATS_MAX_DAYS:
        raise WeComError(40058, f"time range exceeds {STATS_MAX_DAYS} days")
    if end >= today:
        raise WeComError(40058, "end_time must be yesterday or earlier")
    if start < today - STATS_HISTORY_DAYS * DAY:
        raise WeComError(40058, f"start_time is more than {STATS_HISTORY_DAYS} days ago")
    return start, end


# --- knowledge base (kf-api.md §2.11) ---------------------------------------------------------
# kf-api.md names no error codes for the knowledge base; every broken rule below is 40058
# "invalid Request Parameter" with an errmsg saying which, as WeCom does for parameter limits.

DEFAULT_GROUP_NAME = "默认分组"
MAX_GROUP_NAME_CHARS = 12
MAX_GROUPS = 100  # including the default group
MAX_INTENTS_PER_GROUP = 200
MAX_QUESTION_CHARS = 200
MAX_SIMILAR_QUESTIONS = 100
MAX_ANSWER_CHARS = 500
MAX_ANSWERS = 1  # "exactly 1 supported"
MAX_ATTACHMENTS = 4
# Required fields per attachment type; a link's picurl and desc may be left out (the
# reference lists the fields without saying which are required: verify).
ATTACHMENT_FIELDS: dict[str, tuple[str, ...]] = {
    "image": ("media_id",),
    "video": ("media_id",),
    "link": ("title", "url"),
    "miniprogram": ("title", "thumb_media_id", "appid", "pagepath"),
}
ATTACHMENT_OPTIONAL_FIELDS: dict[str, tuple[str, ...]] = {"link": ("picurl", "desc")}
KNOWLEDGE_LIST_DEFAULT = 500
KNOWLEDGE_LIST_MAX = 1000


def check_group_name(name: str) -> None:
    if len(name) > MAX_GROUP_NAME_CHARS or not name.strip():
        raise WeComError(40058, f"group name must be 1..{MAX_GROUP_NAME_CHARS} characters")


def check_text_content(value: object, where: str, max_chars: int) -> str:
    """``{"text": {"content": ...}}`` with 1..max_chars characters; returns the content."""
    text = value.get("text") if isinstance(value, dict) else None
    content = text.get("content") if isinstance(text, dict) else None
    if not isinstance(content, str) or not content.strip():
        raise WeComError(40058, f"field {where}.text.content missing or empty")
    if len(content) > max_chars:
        raise WeComError(40058, f"{where}.text.content exceeds {max_chars} characters")
    return content


def check_attachment(attachment: object, where: str, media_ok: MediaCheck) -> dict[str, Any]:
    """A knowledge answer attachment ``{"msgtype": T, T: {...}}`` (kf-api.md §2.11)."""
    kind = attachment.get("msgtype") if isinstance(attachment, dict) else None
    if kind not in ATTACHMENT_FIELDS:
        raise WeComError(40058, f"{where}.msgtype must be image, video, link or miniprogram")
    obj = attachment.get(kind)  # type: ignore[union-attr]
    if not isinstance(obj, dict):
        raise WeComError(40058, f"field {where}.{kind} missing or not an object")
    values = {field: _required(obj, f"{where}.{kind}", field) for field in ATTACHMENT_FIELDS[kind]}
    for field in ATTACHMENT_OPTIONAL_FIELDS.get(kind, ()):
        value = _optional(obj, f"{where}.{kind}", field)
        if value is not None:
            values[field] = value
    if kind in ("image", "video"):
        media_ok(values["media_id"], kind)
    elif kind == "miniprogram":
        media_ok(values["thumb_media_id"], "image")
    elif kind == "link":
        check_url(values["url"], f"{where}.link.url")
    return {"msgtype": kind, kind: values}
