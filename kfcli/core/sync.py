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
from kfcli.core.origins import SERVICER, origin_of

if TYPE_CHECKING:
    from kfcli.core.client import KfClient
    from kfcli.core.models import SyncPage

#: A server that keeps answering "empty, but has_more" is stopped after this many pages.
MAX_EMPTY_PAGES = 100


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
        """The customer's external_userid, the servicer's userid (for another origin on the
        company's side, its name when it has no userid), or `system`."""
        side = origin_of(self.origin)
        if side.side == "company":
            return self.servicer_userid or ("" if self.origin == SERVICER else side.name)
        return self.external_userid if side.side == "customer" else "system"

    def summary(self) -> str:
        """What the message says, as every view words it (`kfcli.core.transcript.describe`)."""
        from kfcli.core.transcript import describe

        return describe(self)


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
