"""The one describer of a message: who said it, and what, for every view of the archive.

The terminal transcript of `msg history` / `msg sync`, their TSV rows, `msg search`, and
`msg export` (CSV text column, HTML page) all word a message here, so an event, a file or a
menu reads the same everywhere. `describe()` is plain text (the text itself, newlines kept,
or one line saying what arrived) — never markup: callers escape it for their medium (TSV
escapes line breaks, CSV defuses formulas, HTML escapes, the terminal strips controls).

Who a message is from comes from `kfcli.core.origins`: a new origin value (kfcli's own sends)
is named and placed on the company's side there, and every view follows.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from kfcli.core.origins import CUSTOMER, SERVICER, origin_of
from kfcli.core.sync import Message

if TYPE_CHECKING:
    from kfcli.core.store.base import MediaItem

#: A menu's head is cut to this many characters in a one-line description.
MENU_HEAD = 40

#: kfcli.core.store.base.MEDIA_TYPES (not imported: the store is heavy to import).
MEDIA_TYPES = ("image", "voice", "video", "file")


def who(message: Message) -> str:
    """`customer`, the servicer's userid, or `system` (events and system messages); another
    origin on the company's side reads as its userid or its name."""
    if message.origin == SERVICER:
        return message.servicer_userid or "servicer"
    if message.origin == CUSTOMER:
        return "customer"
    origin = origin_of(message.origin)
    if origin.side == "company":
        return message.servicer_userid or origin.name
    return "system"


def origin_name(message: Message) -> str:
    """customer, system, servicer (or the name of another origin kfcli knows)."""
    return origin_of(message.origin).name


def side(message: Message) -> str:
    """Where the message goes in a conversation: "customer", "company" or "system" (a line
    in the middle: events, and anything WeCom marks as the system's)."""
    if message.msgtype == "event":
        return "system"
    return origin_of(message.origin).side


def kind(message: Message) -> str:
    """The type column of TSV rows: the event's type for events, else the msgtype."""
    return message.event_type or message.msgtype


def file_name(message: Message, media: MediaItem | None = None) -> str | None:
    """A file message's name: from the message when it has one, else the archive's (the
    name WeCom gave when the file was downloaded)."""
    if message.msgtype != "file":
        return None
    body = message.body
    name = body.get("filename") or body.get("file_name") or body.get("name") or \
        (media.filename if media is not None else None)
    return str(name) if name else None


def describe(message: Message, media: MediaItem | None = None) -> str:
    """What the message says: its text, or `[image]`, `[file NAME]`, `[menu: head / item
    / item]`, `[link: title]`, "entered from scene spring_sale", "transferred to user001"…

    With the message's archive entry (`media`), media say how big they are when archived
    (`[image 1.2 MB]`, `[file 合同.pdf 4.9 KB]`), or that they are not (`[image, not
    archived: …]`)."""
    body = message.body
    msgtype = message.msgtype
    if msgtype == "text":
        menu = f" [menu {body['menu_id']}]" if body.get("menu_id") else ""
        return str(body.get("content", "")) + menu
    if msgtype in MEDIA_TYPES:
        name = file_name(message, media)
        head = f"{msgtype} {name}" if name else msgtype
        return f"[{head}{media_note(media)}]"
    if msgtype == "event":
        event = message.raw.get("event")
        return describe_event(event) if isinstance(event, dict) else "[event]"
    if msgtype == "msgmenu":
        return _menu(body)
    if msgtype == "location":
        where = " ".join(str(body.get(k) or "") for k in ("name", "address")).strip()
        return f"[location: {where}]"
    shape = _SHAPES.get(msgtype)
    if shape is None:
        return f"[{msgtype}]"
    label, fields = shape
    words = " ".join(str(body.get(f) or "") for f in fields).strip()
    if msgtype == "channels_shop_product" and isinstance(body.get("sales_price"), int):
        words = f"{body.get('title') or ''} ¥{body['sales_price'] / 100:.2f}".strip()
    if msgtype == "merged_msg":
        items = body.get("item")
        words += f" ({len(items) if isinstance(items, list) else 0} items)"
    return f"[{label}: {words}]" if words else f"[{label}]"


#: Other message types: the label and the body fields that say what arrived.
_SHAPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "link": ("link", ("title",)),
    "miniprogram": ("miniprogram", ("title",)),
    "business_card": ("business card", ("userid",)),
    "channels_shop_product": ("product", ("title",)),
    "channels_shop_order": ("order", ("order_id", "price_wording")),
    "merged_msg": ("chat record", ("title",)),
    "channels": ("channels", ("nickname", "title")),
}


def media_note(media: MediaItem | None) -> str:
    """How a media message's archive entry reads after its type: " 1.2 MB" when archived,
    ", not archived yet" while pending, ", not archived: REASON" when it failed."""
    if media is None:
        return ""
    if media.state == "archived":
        return f" {size_text(media.size or 0)}"
    if media.state == "failed":
        return f", not archived: {media.error or 'unknown reason'}"
    return ", not archived yet"


def size_text(size: int) -> str:
    """1.2 MB, 845 KB, 12 B (powers of 1024, as file managers show them)."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KB", "MB", "GB"):
        value /= 1024
        if value < 1024 or unit == "GB":
            break
    return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"


def _menu(body: dict[str, Any]) -> str:
    head = str(body.get("head_content") or "").replace("\n", " ").strip()
    if len(head) > MENU_HEAD:
        head = head[:MENU_HEAD - 1] + "…"
    items = []
    for item in body.get("list") or []:
        if not isinstance(item, dict):
            continue
        inner = item.get(item.get("type", "")) if isinstance(item.get("type"), str) else None
        if isinstance(inner, dict) and inner.get("content"):
            items.append(str(inner["content"]).replace("\n", " "))
    parts = [p for p in (head, *items) if p]
    return "[menu: " + " / ".join(parts) + "]" if parts else "[menu]"


#: Why WeCom did not deliver a message (msg_send_fail's fail_type, kf-api.md §3.3).
FAIL_TYPES = {1: "account deleted", 2: "app closed", 4: "session expired (48 h)",
              5: "session closed", 6: "over the 5-message limit",
              7: "Channels account not bound", 8: "corp not verified",
              9: "Channels not bound and corp not verified", 10: "the customer refuses",
              11: "no member has logged in to the WeCom app",
              12: "message type forbidden by the KF component", 13: "security restriction"}


def describe_event(event: dict[str, Any]) -> str:
    """An event in a few words, the same in every view."""
    kind = event.get("event_type", "")
    if kind == "enter_session":
        scene = event.get("scene") or ""
        text = f"entered from scene {scene}" if scene else "entered the session"
        if event.get("scene_param"):
            text += f" ({event['scene_param']})"
        if event.get("welcome_code"):
            text += ", with a welcome_code"
        return text
    if kind == "session_status_change":
        new = event.get("new_servicer_userid") or ""
        change = event.get("change_type")
        if change == 1:
            return f"picked from the queue by {new}" if new else "picked from the queue"
        if change == 2:
            return f"transferred to {new}" if new else "transferred"
        if change == 3:
            return "session ended"
        if change == 4:
            return f"session re-opened by {new}" if new else "session re-opened"
        return f"session changed (change_type {change})"
    if kind == "msg_send_fail":
        fail = event.get("fail_type")
        why = FAIL_TYPES.get(fail) if isinstance(fail, int) else None
        return f"message {event.get('fail_msgid', '')} was not delivered: " \
               f"{why or 'unknown reason'} (fail_type {fail})"
    if kind == "servicer_status_change":
        statuses: dict[Any, Any] = {1: "receiving", 2: "stopped"}
        status = statuses.get(event.get("status"), event.get("status"))
        if event.get("status") == 2 and event.get("stop_type") == 1:
            status = "suspended"
        return f"servicer {event.get('servicer_userid', '')} is now {status}"
    if kind == "user_recall_msg":
        return f"recalled message {event.get('recall_msgid', '')}"
    if kind == "servicer_recall_msg":
        return f"{event.get('servicer_userid') or 'servicer'} recalled message " \
               f"{event.get('recall_msgid', '')}"
    if kind == "reject_customer_msg_switch_change":
        does = "rejects" if event.get("reject_switch") else "accepts again"
        return f"servicer {event.get('servicer_userid', '')} {does} this customer's messages"
    return f"[event {kind}]"


def iso(ts: int) -> str:
    """ISO 8601 local time with its UTC offset: 2026-12-02T14:09:57+08:00."""
    t = time.localtime(ts)
    off = t.tm_gmtoff or 0
    sign = "+" if off >= 0 else "-"
    off = abs(off)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + \
        f"{sign}{off // 3600:02d}:{off % 3600 // 60:02d}"


#: The columns of a message's row in TSV and tables (`msg sync`, `msg history`, `msg
#: search`), in order, and those shown only when chosen with --columns (or -o wide).
ROW_COLUMNS = ("time", "open_kfid", "external_userid", "origin", "sender", "type", "text",
               "msgid")
ROW_EXTRA = ("from", "send_time", "servicer_userid", "media_id")
#: In a table too wide for the terminal, these give way first, in this order (ids are never
#: cut; the text stays).
ROW_OPTIONAL = ("msgid", "type", "origin", "sender", "open_kfid")


def row(message: Message, media: MediaItem | None = None, *,
        text: str | None = None) -> dict[str, Any]:
    """A message as a row of TSV or a table: every column of ROW_COLUMNS and ROW_EXTRA.
    `open_kfid` and `external_userid` are there for events too (WeCom puts them inside
    `event`); `text` replaces what `describe()` says (search shows the matching piece)."""
    ts = message.send_time
    return {
        "time": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "",
        "open_kfid": message.open_kfid,
        "external_userid": message.external_userid,
        "origin": origin_name(message),
        "sender": message.sender,
        "type": kind(message),
        "text": describe(message, media) if text is None else text,
        "msgid": message.msgid,
        "from": who(message),
        "send_time": ts,
        "servicer_userid": message.servicer_userid,
        "media_id": str(message.body.get("media_id") or ""),
    }
