"""Messages as a person reads them in a conversation: who said it, when, and what.

Shared by the terminal transcript of `msg history` / `msg sync` and by `msg export` (CSV text
column, HTML page). `describe()` is one line of plain text (or the text itself, newlines
kept) — never markup: callers escape it for their medium.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from kfcli.core.sync import Message, summarize, summarize_event

if TYPE_CHECKING:
    from kfcli.core.store.base import MediaItem

#: A menu's head is cut to this many characters in a one-line description.
MENU_HEAD = 40


def who(message: Message) -> str:
    """`customer`, the servicer's userid, or `system` (events and system messages)."""
    if message.origin == 5:
        return message.servicer_userid or "servicer"
    if message.origin == 3:
        return "customer"
    return "system"


def origin_name(message: Message) -> str:
    return {3: "customer", 4: "system", 5: "servicer"}.get(message.origin, str(message.origin))


def describe(message: Message, media: MediaItem | None = None) -> str:
    """What the message says: its text, or `[image]`, `[file NAME]`, `[menu: head / item
    / item]`, `[link: title]`, "entered from scene spring_sale", "transferred to user001"…

    With the message's archive entry (`media`), media say how big they are when archived
    (`[image 1.2 MB]`), or that they are not (`[image, not archived: …]`)."""
    body = message.body
    kind = message.msgtype
    if kind in ("image", "voice", "video", "file"):
        name = None
        if kind == "file":
            name = body.get("filename") or body.get("file_name") or body.get("name") or \
                (media.filename if media is not None else None)
        head = f"{kind} {name}" if name else kind
        return f"[{head}{media_note(media)}]"
    if kind == "link":
        return f"[link: {body.get('title', '')}]"
    if kind == "miniprogram":
        return f"[miniprogram: {body.get('title', '')}]"
    if kind == "location":
        where = " ".join(str(body.get(k) or "") for k in ("name", "address")).strip()
        return f"[location: {where}]"
    if kind == "msgmenu":
        return _menu(body)
    if kind == "event":
        event = message.raw.get("event")
        return describe_event(event) if isinstance(event, dict) else "[event]"
    return summarize(kind, body, message.raw.get("event"))


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


def describe_event(event: dict[str, Any]) -> str:
    kind = event.get("event_type", "")
    if kind == "enter_session":
        scene = event.get("scene") or ""
        text = f"entered from scene {scene}" if scene else "entered the session"
        if event.get("scene_param"):
            text += f" ({event['scene_param']})"
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
    if kind == "msg_send_fail":
        return f"message {event.get('fail_msgid', '')} was not delivered " \
               f"(fail_type {event.get('fail_type')})"
    return summarize_event(event)


def iso(ts: int) -> str:
    """ISO 8601 local time with its UTC offset: 2026-12-02T14:09:57+08:00."""
    t = time.localtime(ts)
    off = t.tm_gmtoff or 0
    sign = "+" if off >= 0 else "-"
    off = abs(off)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + \
        f"{sign}{off // 3600:02d}:{off % 3600 // 60:02d}"
