"""Pulling messages with `sync_msg` without losing or duplicating any (kf-api.md §2.5, §4.3).

Two pieces:

* `MessageStream`: an iterator over every message from a cursor on. It pages while
  `has_more == 1` (even when a page is empty) and exposes `cursor`, the position that covers
  exactly the messages already yielded once a page is finished.
* `SyncState`: the per-profile cursor file that kfcli kept before the message store
  (`kfcli.core.store`). `msg sync` now keeps cursors in the store and reads such a file only
  once, to move its cursor there (`kfcli.cli.msg.stream`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kfcli.core import paths
from kfcli.core.errors import KfError

if TYPE_CHECKING:
    from kfcli.core.client import KfClient
    from kfcli.core.models import SyncPage

#: A server that keeps answering "empty, but has_more" is stopped after this many pages.
MAX_EMPTY_PAGES = 100

ORIGINS = {3: "customer", 4: "system", 5: "servicer"}


@dataclass(frozen=True)
class Message:
    """One synced message, typed where kfcli knows the shape, raw everywhere (`raw`)."""

    raw: dict[str, Any] = field(repr=False)
    msgid: str
    msgtype: str
    origin: int
    send_time: int
    open_kfid: str
    external_userid: str
    servicer_userid: str
    event_type: str
    #: The message's place in the store (0 when it did not come from one): a consumer's
    #: position counts in these.
    seq: int = field(default=0, compare=False)

    @classmethod
    def from_row(cls, row: Any) -> Message:
        """A stored message (`kfcli.core.store.Row`)."""
        import dataclasses
        import json

        return dataclasses.replace(cls.from_api(json.loads(row.text)), seq=row.seq)

    @classmethod
    def from_api(cls, doc: dict[str, Any]) -> Message:
        event = doc.get("event") if doc.get("msgtype") == "event" else None
        event = event if isinstance(event, dict) else {}
        # Events carry open_kfid/external_userid inside `event`, not at the top (kf-api §3.1).
        return cls(
            raw=doc,
            msgid=str(doc.get("msgid", "")),
            msgtype=str(doc.get("msgtype", "")),
            origin=int(doc.get("origin", 0) or 0),
            send_time=int(doc.get("send_time", 0) or 0),
            open_kfid=str(doc.get("open_kfid") or event.get("open_kfid") or ""),
            external_userid=str(doc.get("external_userid") or event.get("external_userid")
                                or ""),
            servicer_userid=str(doc.get("servicer_userid") or event.get("servicer_userid")
                                or ""),
            event_type=str(event.get("event_type", "")),
        )

    @property
    def body(self) -> dict[str, Any]:
        value = self.raw.get(self.msgtype)
        return value if isinstance(value, dict) else {}

    @property
    def sender(self) -> str:
        if self.origin == 5:
            return self.servicer_userid
        if self.origin == 3:
            return self.external_userid
        return "system"

    def summary(self) -> str:
        """One line for humans: text content, or what kind of thing arrived."""
        return summarize(self.msgtype, self.body, self.raw.get("event"))


def summarize(msgtype: str, body: dict[str, Any], event: Any = None) -> str:
    if msgtype == "text":
        menu = f" [menu {body['menu_id']}]" if body.get("menu_id") else ""
        return str(body.get("content", "")) + menu
    if msgtype in ("image", "voice", "video", "file"):
        return f"[{msgtype}] {body.get('media_id', '')}"
    if msgtype == "location":
        return f"[location] {body.get('name', '')} {body.get('address', '')} " \
               f"({body.get('latitude')}, {body.get('longitude')})"
    if msgtype == "link":
        return f"[link] {body.get('title', '')} {body.get('url', '')}"
    if msgtype == "business_card":
        return f"[business card] {body.get('userid', '')}"
    if msgtype == "miniprogram":
        return f"[miniprogram] {body.get('title', '')} {body.get('appid', '')}"
    if msgtype == "msgmenu":
        return f"[menu] {body.get('head_content', '')} ({len(body.get('list', []))} items)"
    if msgtype == "channels_shop_product":
        return f"[product] {body.get('title', '')} {body.get('sales_price', '')}"
    if msgtype == "channels_shop_order":
        return f"[order] {body.get('order_id', '')} {body.get('price_wording', '')}"
    if msgtype == "merged_msg":
        return f"[chat record] {body.get('title', '')} ({len(body.get('item', []))} items)"
    if msgtype == "channels":
        return f"[channels] {body.get('nickname', '')} {body.get('title', '')}"
    if msgtype == "event" and isinstance(event, dict):
        return summarize_event(event)
    return f"[{msgtype}]"


def summarize_event(event: dict[str, Any]) -> str:
    kind = event.get("event_type", "")
    if kind == "enter_session":
        code = " (welcome_code)" if event.get("welcome_code") else ""
        return f"entered the session: scene {event.get('scene', '')!r} " \
               f"{event.get('scene_param', '')!r}{code}"
    if kind == "msg_send_fail":
        return f"message {event.get('fail_msgid', '')} failed: fail_type {event.get('fail_type')}"
    if kind == "servicer_status_change":
        statuses: dict[Any, Any] = {1: "receiving", 2: "stopped"}
        status = statuses.get(event.get("status"), event.get("status"))
        if event.get("status") == 2 and event.get("stop_type") == 1:
            status = "suspended"
        return f"servicer {event.get('servicer_userid', '')} is now {status}"
    if kind == "session_status_change":
        changes: dict[Any, Any] = {1: "picked from the pool", 2: "transferred", 3: "ended",
                                   4: "re-opened"}
        change = changes.get(event.get("change_type"), event.get("change_type"))
        return f"session {change}"
    if kind in ("user_recall_msg", "servicer_recall_msg"):
        return f"recalled message {event.get('recall_msgid', '')}"
    if kind == "reject_customer_msg_switch_change":
        return "servicer " + ("rejects" if event.get("reject_switch") else "accepts again") + \
            " this customer's messages"
    return f"[event {kind}]"


class MessageStream:
    """Every message from `cursor` on, page by page.

    `cursor` is updated when a page has been fully consumed, so saving it after handling the
    messages yielded so far never skips one. `has_more` tells whether the server said more
    messages are waiting.

        stream = client.sync_messages("wk…", cursor=saved)
        for message in stream:
            handle(message)
        save(stream.cursor)
    """

    def __init__(self, client: KfClient, open_kfid: str, *, cursor: str | None = None,
                 token: str | None = None, limit: int = 1000, voice_format: int | None = None,
                 all_pages: bool = True, keep_text: bool = False) -> None:
        self.client = client
        self.open_kfid = open_kfid
        self.cursor = cursor or ""
        self.token = token
        self.limit = limit
        self.voice_format = voice_format
        self.all_pages = all_pages
        self.keep_text = keep_text
        self.has_more = True
        self.pages_read = 0

    def pages(self) -> Iterator[SyncPage]:
        """Raw pages. Handle a page, then ask for the next: `cursor` advances in between."""
        empty_in_a_row = 0
        while True:
            page = self.client.sync_msg(self.open_kfid, cursor=self.cursor or None,
                                        token=self.token, limit=self.limit,
                                        voice_format=self.voice_format,
                                        keep_text=self.keep_text)
            self.pages_read += 1
            yield page
            self.has_more = page.has_more
            if page.next_cursor:
                self.cursor = page.next_cursor
            # Loop on has_more, never on emptiness: a page may be empty with has_more 1.
            if not page.has_more or not self.all_pages:
                return
            empty_in_a_row = 0 if page.msg_list else empty_in_a_row + 1
            if empty_in_a_row >= MAX_EMPTY_PAGES:
                raise KfError(f"sync_msg answered {MAX_EMPTY_PAGES} empty pages in a row with "
                              "has_more=1; stopping (the cursor is saved)")

    def __iter__(self) -> Iterator[Message]:
        for page in self.pages():
            for doc in page.msg_list:
                yield Message.from_api(doc)


class SyncState:
    """The cursor file of one (profile, corp, open_kfid) that kfcli kept before the store."""

    def __init__(self, profile: str, corp_id: str, open_kfid: str, *,
                 directory: Path | None = None) -> None:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{profile}-{corp_id}")
        base = (directory or paths.state_dir() / "sync") / safe
        name = "".join(c if c.isalnum() or c in "-_" else "_" for c in open_kfid)
        self.path = base / f"{name}.json"
        self.cursor = ""

    def load(self) -> SyncState:
        try:
            doc = json.loads(self.path.read_bytes())
            self.cursor = str(doc.get("cursor", ""))
        except FileNotFoundError:
            pass
        except (OSError, ValueError, AttributeError) as exc:
            from kfcli.core.errors import ConfigError

            raise ConfigError(f"sync state {self.path} is unreadable ({exc}); it was left "
                              "untouched") from None
        return self


_DECODER = json.JSONDecoder()
_WS = " \t\n\r"


def split_page(text: str) -> dict[str, Any]:
    """Parse a sync_msg answer, keeping each message's own JSON text as WeCom sent it.

    Returns the object with `msg_list` parsed as usual plus `msg_texts`, the text of each
    element as sent (terminal-active characters escaped, see `kfcli.core.jsontext`), so JSON
    output can pass messages through without re-encoding them. One pass with the standard
    decoder's `raw_decode`.
    """
    from kfcli.core import jsontext

    text = jsontext.escape(text)  # one pass per page; the kept texts are then terminal-safe
    doc: dict[str, Any] = {}
    texts: list[str] = []
    i = _skip(text, 0)
    if text[i:i + 1] != "{":
        raise ValueError("not a JSON object")
    i = _skip(text, i + 1)
    while text[i] != "}":
        if text[i] != '"':
            raise ValueError(f"expected a key at {i}")
        key, i = _DECODER.raw_decode(text, i)  # the key: a JSON string
        i = _skip(text, i)
        if text[i] != ":":
            raise ValueError(f"expected ':' at {i}")
        i = _skip(text, i + 1)
        if key == "msg_list" and text[i] == "[":
            items = []
            i = _skip(text, i + 1)
            while text[i] != "]":
                value, end = _DECODER.raw_decode(text, i)
                items.append(value)
                texts.append(text[i:end])
                i = _skip(text, end)
                if text[i] == ",":
                    i = _skip(text, i + 1)
            doc[key] = items
            i += 1
        else:
            doc[key], i = _DECODER.raw_decode(text, i)
        i = _skip(text, i)
        if text[i] == ",":
            i = _skip(text, i + 1)
    doc["msg_texts"] = texts
    return doc


def _skip(text: str, i: int) -> int:
    while text[i] in _WS:
        i += 1
    return i
