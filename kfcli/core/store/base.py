"""The store interface (DESIGN.md §9): what `msg sync`, the receiver and `msg history` need,
independent of the engine behind it.

A store holds, per corp_id:

* every message and event pulled with `sync_msg`: the JSON text exactly as `msg sync -o jsonl`
  prints it, plus indexed columns (open_kfid, msgid, external_userid, servicer_userid, origin,
  msgtype, send_time) and `seq`, a store-wide sequence number that only grows;
* per account (open_kfid): the sync cursor, when it was last pulled and last announced by a
  callback, and a pending pull request (so a callback that arrives during another worker's
  pull is never dropped);
* the outbox: for each committed page, the seq range its committer still has to write out.
  A committer removes its entry once the lines are written; an entry left by a killed process
  is written by the next run of the same kind (see `kfcli.core.pull`);
* consumer positions (`msg history --consumer`) and the callbacks received.

Exactly once into the store: `commit_page` inserts a page's messages (unique by corp_id +
msgid, duplicates ignored) and moves the cursor from the value the puller started from, in one
transaction. Pullers of one account are kept apart by `lock()`.

The contract is a few small protocols, one per kind of caller: `CursorStore` (cursors and
pull requests), `OutboxStore`, `Locks` (the three together: `PullStore`, what a puller
needs), `PullStateStore` (the receiver's bookkeeping), `MessageStore` (reading messages out: by
seq, by msgid, by text, for export), `ConsumerStore` (consumer positions, replies, sends, the
reply window), `MediaStore` (the media archive) and `StoreAdmin` (probe, status, prune,
backup, schema, close). `Store` is their union, what `open_store` returns;
code that needs one part takes that part, so it can be handed anything that provides it.

Backends: `kfcli.core.store.sqlite` (embedded default) and `kfcli.core.store.postgres`
(shared between hosts). Each implements `Store` and keeps its SQL in its own module, its
schema as numbered steps that `kfcli.core.store.migrations` runs. Both are
safe to share between threads (SQLite: a connection per thread; PostgreSQL: a pool).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple, Protocol, TypeVar

from kfcli._about import STORE_SCHEMA
from kfcli.core.errors import ConfigError, KfError

#: The schema this kfcli writes. A store with a higher version was written by a newer kfcli
#: and is refused, never altered; a lower one is upgraded in place.
SCHEMA_VERSION = STORE_SCHEMA  # kept in kfcli._about, for `kfcli --version`

#: What each schema version added (`kfcli store migrate --dry-run` lists it), and the oldest
#: schema whose builds keep working on a store migrated to it. A step that only adds what
#: older builds never touch (a table of their own) leaves them working; a step whose data
#: older builds would not fill in does not: version 3's media archive was not filled in by
#: builds of version 2, whose images were then never archived. A version missing here counts
#: as one no older build can use.
SCHEMA_STEPS: dict[int, tuple[str, int]] = {
    1: ("messages, cursors, callbacks and consumer positions", 1),
    2: ("the searchable text of each message (msg search, msg history --grep)", 2),
    3: ("the media archive, and the replies and sends of msg send --batch", 3),
    4: ("the receiver's pull bookkeeping and the callbacks taken (tables pulls, "
        "seen_callbacks: builds of schema 3 never use them)", 3),
    5: ("customers' nicknames from customer/batchget (table nicknames: builds of schema 4 "
        "never use it)", 4),
    6: ("kfcli's own sends in the archive (origin 100) and an index of each conversation's "
        "turns (msg inbox); builds of schema 5 keep working (what they send meanwhile counts "
        "in the reply window but is not archived)", 5),
    7: ("a send's message kept with it until archived (sent.body: a batch archives its sends "
        "together; builds of schema 6 archive each at once)", 5),
}


def compatible_from(version: int) -> int:
    """The oldest schema whose builds can keep using a store of schema `version`."""
    return max((SCHEMA_STEPS.get(k, ("", k))[1] for k in range(1, version + 1)), default=0)


class StoreUnwritable(ConfigError):
    """The store cannot be written (a read-only file or database): a configuration error
    (exit 3) for commands that write it, but a send is never held back for it: what was
    sent is kept and recorded on a later run (`kfcli.core.sends`)."""


class SchemaTooNew(ConfigError):
    """The store was migrated past what this build can use (exit 3): a configuration
    error, never an outage to ride out: a follower stops at once rather than wait."""


def usable_schema(meta: dict[str, str], where: str) -> bool:
    """From a store's meta (schema_version, compatible_from, migrated_by): False for a store
    of this build's schema or older; True for a newer one this build can still use (its
    compatible_from); SchemaTooNew (exit 3) for any other."""
    version = int(meta.get("schema_version", 0))
    if version <= SCHEMA_VERSION:
        return False
    if int(meta.get("compatible_from", version)) <= SCHEMA_VERSION:
        return True
    raise newer_schema(where, version, meta.get("migrated_by"))


def newer_schema(where: str, version: int, written_by: str | None) -> KfError:
    """A store migrated past what this build can use: refused, never altered (exit 3)."""
    from kfcli import __version__

    by = f"migrated by a newer kfcli: {written_by}" if written_by else "written by a newer kfcli"
    return SchemaTooNew(
        f"the store {where} has schema version {version} ({by}); this kfcli {__version__} "
        f"writes schema {SCHEMA_VERSION} and cannot use it: it stopped and left the store "
        "untouched",
        hint="upgrade kfcli on this host to the build that migrated the store (pip install "
        "-U kfcli); to upgrade hosts one by one, see `kfcli store migrate --help`")


class Incoming(NamedTuple):
    """One message from a sync_msg page, ready to be stored (a tuple: pages hold a thousand
    of them, and building them is on the hot path of `msg sync`)."""

    msgid: str
    external_userid: str
    servicer_userid: str
    origin: int
    msgtype: str
    send_time: int
    text: str  # the message's JSON text, one line
    search: str | None = None  # its searchable text (search_text); None: worked out on commit
    media_id: str = ""  # image, voice, video and file messages: what the archive fetches

    @classmethod
    def from_api(cls, doc: dict[str, Any], text: str | None = None) -> Incoming:
        get = doc.get
        msgtype = get("msgtype") or ""
        text = json_line(doc, text)
        external, servicer = get("external_userid"), get("servicer_userid")
        if msgtype == "event" and (not external or not servicer):
            # Events carry the customer and servicer inside `event` (kf-api.md §3.1).
            event = get("event")
            if isinstance(event, dict):
                external = external or event.get("external_userid")
                servicer = servicer or event.get("servicer_userid")
        origin, send_time = get("origin"), get("send_time")
        return cls(
            str(get("msgid") or ""),
            external if type(external) is str else str(external or ""),
            servicer if type(servicer) is str else str(servicer or ""),
            origin if type(origin) is int else _int(origin),
            msgtype if type(msgtype) is str else str(msgtype),
            send_time if type(send_time) is int else _int(send_time),
            text,
            search_text(doc),
            media_id_of(doc),
        )

    def searchable(self) -> str:
        """The searchable text: given, or worked out from the JSON text."""
        if self.search is not None:
            return self.search
        try:
            doc = json.loads(self.text)
        except (ValueError, RecursionError):
            return ""
        return search_text(doc) if isinstance(doc, dict) else ""


def json_line(doc: dict[str, Any], text: str | None = None) -> str:
    """The message's JSON text on one line: `text` as received (see `Incoming.from_api`),
    else `doc` encoded."""
    if text is None:
        return _dumps(doc)
    if "\n" in text:  # pretty-printed by the server: one message stays one line
        return _dumps(json.loads(text))
    return text


#: Message types whose `media_id` the archive fetches (kf-api.md §3.2).
MEDIA_TYPES = ("image", "voice", "video", "file")


def media_id_of(doc: dict[str, Any]) -> str:
    """The media_id of an image, voice, video or file message; "" for any other."""
    msgtype = doc.get("msgtype")
    if msgtype not in MEDIA_TYPES:
        return ""
    body = doc.get(msgtype)
    media_id = body.get("media_id") if isinstance(body, dict) else None
    return media_id if isinstance(media_id, str) else ""


def search_text(doc: dict[str, Any]) -> str:
    """What `msg search` looks in: `search_pieces` lower-cased (case-insensitive for Latin
    script; CJK has no case), one line per piece. Empty for messages with nothing to read
    (images, most events)."""
    if doc.get("msgtype") == "text":  # most messages: their content is all there is to read
        body = doc.get("text")
        if type(body) is dict and body.keys() <= _TEXT_KEYS:
            content = body.get("content")
            return content.lower() if isinstance(content, str) and content.strip() else ""
    return "\n".join(search_pieces(doc)).lower()


#: The fields of a text message (kf-api.md §3.2): search_pieces reads only `content` of them.
_TEXT_KEYS = frozenset(("content", "menu_id"))


def search_pieces(doc: dict[str, Any]) -> list[str]:
    """The text a person wrote or reads in the message: text content, menu head/items/tail,
    link/miniprogram/news titles and descriptions, location names, an event's scene."""
    msgtype = doc.get("msgtype")
    body = doc.get(msgtype) if isinstance(msgtype, str) else None
    pieces: list[str] = []

    def add(*values: Any) -> None:
        for value in values:
            if isinstance(value, str) and value.strip():
                pieces.append(value)

    if isinstance(body, dict):
        add(body.get("content"), body.get("title"), body.get("desc"),
            body.get("description"), body.get("name"), body.get("address"),
            body.get("head_content"), body.get("tail_content"))
        items = body.get("list") or body.get("articles")
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict):
                add(item.get("title"), item.get("description"))
                for kind in ("click", "view", "miniprogram", "text"):
                    sub = item.get(kind)
                    if isinstance(sub, dict):
                        add(sub.get("content"))
        if msgtype == "event":
            # Events are searchable by what they are about: the scene a customer came from.
            add(body.get("scene"), body.get("scene_param"))
    return pieces


def like_escape(text: str) -> str:
    """`text` as a LIKE pattern matching itself (escape character: backslash)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_query(text: str) -> str:
    """The query as it is compared with search_text: lower-cased, surrounding whitespace
    dropped. ValueError when nothing is left."""
    query = text.strip().lower()
    if not query:
        raise ValueError("empty search text")
    return query


def _dumps(doc: Any) -> str:
    from kfcli.core import jsontext

    return jsontext.dumps(doc)


def callback_row(callback: dict[str, Any]) -> tuple[int | None, str]:
    """What a store keeps of a callback: its CreateTime (WeCom's clock) and its fields as
    JSON, without the Token (a short-lived credential, kept only with the pull request)."""
    fields = {k: v for k, v in callback.items() if k not in ("Token", "type")}
    try:
        created = int(callback.get("CreateTime"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        created = None
    return created, json.dumps(fields, ensure_ascii=False)


def derived(rows: Iterable[tuple[Any, ...]], compute: Callable[[dict[str, Any]], Any]
            ) -> list[tuple[Any, ...]]:
    """What a schema upgrade fills in for messages stored before it: for each row (keys…,
    the message's JSON text), `(compute(message), keys…)` when the text is a JSON object
    and `compute` gives something."""
    found = []
    for *keys, body in rows:
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):
            continue
        value = compute(doc) if isinstance(doc, dict) else None
        if value:
            found.append((value, *keys))
    return found


def file_digest(file: BinaryIO) -> tuple[str, int]:
    """(sha256 hex digest, size) of a file's whole content, read MEDIA_CHUNK at a time."""
    import hashlib

    digest = hashlib.sha256()
    size = 0
    file.seek(0)
    while True:
        chunk = file.read(MEDIA_CHUNK)
        if not chunk:
            return digest.hexdigest(), size
        digest.update(chunk)
        size += len(chunk)


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


@dataclass(frozen=True)
class Row:
    """A stored message: its sequence number and its JSON text."""

    seq: int
    text: str


@dataclass(frozen=True)
class Committed:
    """What `commit_page` stored: the rows new to the store (page order) and, when they are
    to be written out by the committer, its outbox entry."""

    rows: list[Row]
    outbox_id: int | None


@dataclass(frozen=True)
class Pruned:
    """What `prune` removed (or, with dry_run, would remove)."""

    before: int  # send_time bound (unix seconds): messages sent earlier were removed
    messages: dict[str, int]  # per open_kfid
    callbacks: int
    kept_pending: int  # older messages kept because an outbox entry still has to write them
    media: int = 0  # archived media removed (files, or PostgreSQL blobs), no longer used
    media_bytes: int = 0

    @property
    def total(self) -> int:
        return sum(self.messages.values())

    def as_dict(self) -> dict[str, Any]:
        return {"before": self.before, "messages": self.total, "accounts": self.messages,
                "callbacks": self.callbacks, "kept_pending": self.kept_pending,
                "media": self.media, "media_bytes": self.media_bytes}


@dataclass(frozen=True)
class MediaItem:
    """A media message as the archive knows it.

    `state`: "pending" (to be fetched; `attempts` failed so far, the next try not before
    `next_try`), "archived" (`sha256`, `size`, `content_type`, `filename` describe the bytes
    kept) or "failed" (WeCom no longer has it, or never will: `error` says why)."""

    seq: int
    msgid: str
    open_kfid: str
    msgtype: str
    send_time: int
    media_id: str
    state: str
    attempts: int = 0
    next_try: float = 0.0
    error: str | None = None
    sha256: str | None = None
    size: int | None = None
    content_type: str | None = None
    filename: str | None = None
    archived_at: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"msgid": self.msgid, "open_kfid": self.open_kfid, "msgtype": self.msgtype,
                "send_time": self.send_time, "media_id": self.media_id, "state": self.state,
                "attempts": self.attempts, "error": self.error, "sha256": self.sha256,
                "size": self.size, "content_type": self.content_type,
                "filename": self.filename, "archived_at": self.archived_at}


@dataclass(frozen=True)
class MediaSummary:
    """How many media messages of a corp are in each state, and the bytes archived."""

    archived: int = 0
    pending: int = 0
    failed: int = 0
    bytes: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"archived": self.archived, "pending": self.pending, "failed": self.failed,
                "bytes": self.bytes}


def sent_document(open_kfid: str, customer: str, msgid: str, message: dict[str, Any],
                  send_time: int) -> dict[str, Any]:
    """A message kfcli sent, as the store keeps it: the envelope of a `sync_msg` message
    (msgid, open_kfid, external_userid, send_time, origin 100: `kfcli.core.origins.KFCLI`)
    around the object as sent (`{"msgtype": T, T: {…}}`)."""
    from kfcli.core.origins import KFCLI

    msgtype = str(message.get("msgtype") or "")
    return {"msgid": msgid, "open_kfid": open_kfid, "external_userid": customer,
            "send_time": int(send_time), "origin": KFCLI, "msgtype": msgtype,
            msgtype: message.get(msgtype)}


#: Media parts are read and written this many bytes at a time.
MEDIA_CHUNK = 1 << 20


#: WeCom's reply window: after a customer's message, at most WINDOW_SENDS messages within
#: WINDOW_SECONDS (kf-api.md §1.5; errcodes 95001, 95002).
WINDOW_SECONDS = 48 * 3600
WINDOW_SENDS = 5


#: Session states (kf-api.md §1.5) in which WeCom refuses send_msg (95018).
CLOSED_STATES = {2: "queued for a servicer", 3: "with a servicer", 4: "ended"}


@dataclass(frozen=True)
class ReplyWindow:
    """A customer's reply window as the store knows it: their last stored message (its
    send_time, WeCom's clock, and msgid), how many sends were recorded since (by any
    command, process or host), `clock`: the latest time WeCom is known to have reached (the
    newest send_time stored for the account: WeCom's clock, never this host's), and the
    session state where the store's events tell it (None: not known, or open)."""

    last_message: int
    sent: int
    last_msgid: str = ""
    clock: int = 0
    state: int | None = None

    def closes(self) -> int:
        return self.last_message + WINDOW_SECONDS

    def now(self, local: float, skew: float = 0.0) -> float:
        """WeCom's time now, estimated: this host's clock corrected by `skew`, never before
        what the store has seen WeCom reach."""
        return max(local + skew, float(self.clock), float(self.last_message))

    def refusal(self, now: float) -> tuple[int, str] | None:
        """(the errcode WeCom would answer, why) when a send now would break the window."""
        now = max(now, float(self.clock))
        if now >= self.closes():
            hours = int((now - self.last_message) // 3600)
            return 95002, (f"the customer's last message was {hours} h ago; WeCom allows "
                           "replies for 48 h")
        if self.sent >= WINDOW_SENDS:
            return 95001, (f"{self.sent} messages were sent since the customer's last "
                           f"message; WeCom allows {WINDOW_SENDS}")
        return None

    def left(self, now: float) -> int:
        """Sends left now (0 once the window closed)."""
        now = max(now, float(self.clock))
        return 0 if now >= self.closes() else max(0, WINDOW_SENDS - self.sent)

    def describe(self, now: float) -> str:
        """"reply window: 3 of 5 left, closes in 41 h" (or that it is closed, or that the
        session is in a state where WeCom refuses sends)."""
        now = max(now, float(self.clock))
        if self.state in CLOSED_STATES:
            return (f"reply window: session {CLOSED_STATES[self.state]} (state {self.state}): "
                    "WeCom refuses sends (95018) until the customer writes again" if
                    self.state == 4 else
                    f"reply window: session {CLOSED_STATES[self.state]} (state "
                    f"{self.state}): WeCom refuses sends from kfcli (95018)")
        if now >= self.closes():
            return (f"reply window: closed (the customer's last message was "
                    f"{int((now - self.last_message) // 3600)} h ago)")
        left = max(0, WINDOW_SENDS - self.sent)
        hours = max(1, int((self.closes() - now + 3599) // 3600))
        return f"reply window: {left} of {WINDOW_SENDS} left, closes in {hours} h"


def session_state(events: Iterable[tuple[int, str]], last_customer_seq: int) -> int | None:
    """The session state the store's events tell, from a customer's latest events (seq and
    JSON text, newest first): a servicer picked, was transferred or re-opened the session
    (session_status_change 1, 2, 4: state 3) or ended it (3: state 4, until the customer
    writes again). None: no such event, or the customer wrote after the session ended."""
    for seq, text in events:
        try:
            event = json.loads(text).get("event") or {}
        except (ValueError, AttributeError):
            continue
        if not isinstance(event, dict) or event.get("event_type") != "session_status_change":
            continue
        change = event.get("change_type")
        if change in (1, 2, 4):
            return 3
        if change == 3:
            return None if last_customer_seq > seq else 4
        return None
    return None


@dataclass(frozen=True)
class Waiting:
    """A conversation waiting for an answer (`msg inbox`): the customer's last message (its
    msgid and send_time, WeCom's clock) is followed by no send and no servicer message."""

    open_kfid: str
    external_userid: str
    msgid: str
    send_time: int
    window: ReplyWindow
    seq: int = 0  # the message's place in the store (ties of send_time: the store's order)


@dataclass(frozen=True)
class OutboxEntry:
    id: int
    open_kfid: str
    owner: str
    first_seq: int
    last_seq: int
    emit_from: int  # rows with an older send_time are stored only, never written out


@dataclass(frozen=True)
class AccountStatus:
    open_kfid: str
    messages: int
    oldest: int | None  # send_time
    newest: int | None
    cursor: str | None
    cursor_at: float | None  # when the cursor last moved (local clock of the puller)
    last_pull_at: float | None
    last_callback_at: float | None
    pending_outbox: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "open_kfid": self.open_kfid, "messages": self.messages, "oldest": self.oldest,
            "newest": self.newest, "has_cursor": self.cursor is not None,
            "cursor_at": self.cursor_at, "last_pull_at": self.last_pull_at,
            "last_callback_at": self.last_callback_at, "pending_outbox": self.pending_outbox,
        }


@dataclass(frozen=True)
class PullState:
    open_kfid: str
    requested: bool
    last_pull_at: float | None  # local clock of the puller
    last_callback_at: float | None
    wecom_pulled_at: float | None  # WeCom's clock, estimated (see Store.note_pulled)
    gap_since: float | None  # the latest gap (WeCom's clock): last pull before it ...
    gap_until: float | None  # ... and when the account was resumed

    def gap(self) -> dict[str, Any] | None:
        if self.gap_since is None or self.gap_until is None:
            return None
        return {"since": int(self.gap_since), "until": int(self.gap_until),
                "seconds": int(self.gap_until - self.gap_since)}


#: WeCom keeps messages for sync_msg this long (kf-api.md §2.5): an account not pulled for
#: longer may have lost messages.
RETENTION = 3 * 24 * 3600


@dataclass(frozen=True)
class ConsumerStatus:
    name: str
    open_kfid: str
    position: int  # the seq of the last message it wrote
    behind: int  # messages of the account stored after it
    updated_at: float

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "open_kfid": self.open_kfid, "position": self.position,
                "behind": self.behind, "updated_at": self.updated_at}


class MediaMissing(KfError):
    """An archived copy is gone from the store (a file removed by hand, say)."""

    exit_code = 4
    kind = "not_found"


class CursorMoved(Exception):
    """The account's cursor is no longer the one this pull started from: another puller got
    there first (it can only happen when a lock was lost, e.g. a dropped database
    connection). The page was not committed; the pull stops."""


class Lock(ABC):
    """A held lock; `release()` is idempotent. Also a context manager."""

    @abstractmethod
    def release(self) -> None: ...

    def held(self) -> bool:
        """Whether the lock is still held. A lock can be lost without `release()` only where
        the store ends it with a connection (PostgreSQL, across a server restart): a holder
        that rode out an outage asks, and takes it again."""
        return True

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


PG_BACKUP_HINT = (
    "pg_dump --format=custom --file=kfcli.dump 'postgresql://USER@HOST/DB' dumps the whole "
    "database in one consistent snapshot while receivers write (every table: messages, "
    "cursors, consumer positions, replies, sends, and the media archive's bytes in "
    "media_parts); restore it into an empty database with pg_restore --dbname=... kfcli.dump")


@dataclass(frozen=True)
class Backup:
    """What `Store.backup` copied."""

    path: Path
    schema_version: int
    messages: int
    media_files: int
    media_bytes: int
    missing_media: int  # archived files gone from the source (pruned meanwhile)

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "schema_version": self.schema_version,
                "messages": self.messages, "media_files": self.media_files,
                "media_bytes": self.media_bytes, "missing_media": self.missing_media}


class Watch(ABC):
    """Wakes a reader when another process (or host) commits messages to the store: a
    follower or consumer answers at once instead of polling hard (`MessageStore.watch`).
    One thread's; `wait` may wake without news (the caller looks, finds nothing, waits
    again), never misses a commit that came after it was opened."""

    @abstractmethod
    def wait(self, timeout: float) -> bool:
        """Block until a commit is seen (True) or `timeout` seconds pass (False). A
        failure of the store counts as news: the caller looks and meets the failure."""

    @abstractmethod
    def close(self) -> None: ...


class StorePart(Protocol):
    """What every part of the store contract says: which store it is."""

    #: "sqlite" or "postgresql".
    backend: str
    #: Where it is, with any password masked: safe to show.
    display_url: str


class Locks(StorePart, Protocol):
    """Named locks across processes (and hosts, for a shared store)."""

    @abstractmethod
    def lock(self, name: str, *, wait: float = 0.0) -> Lock | None:
        """Take the named lock across processes (and hosts, for a shared store). Waits up to
        `wait` seconds; None when it stays taken. Released when the holder dies."""


class CursorStore(StorePart, Protocol):
    """Pulling pages in: the cursor of each account, moved with each committed page, its
    pending pull request and the callbacks that announced it."""

    @abstractmethod
    def cursor(self, corp_id: str, open_kfid: str) -> str | None:
        """The saved cursor; None when the account was never pulled into this store."""

    @abstractmethod
    def commit_page(self, corp_id: str, open_kfid: str, *, expected: str | None,
                    cursor: str, messages: Sequence[Incoming], owner: str | None,
                    emit_from: int = 0) -> Committed:
        """In one transaction: insert the messages not yet stored, move the cursor from
        `expected` to `cursor` (CursorMoved when it is not `expected` any more), and, when
        `owner` is given and something new has `send_time >= emit_from`, add an outbox entry
        for it. Returns the new rows in page order."""

    @abstractmethod
    def set_cursor(self, corp_id: str, open_kfid: str, cursor: str | None) -> None:
        """Set (or, with None, forget) the cursor: a manual reset, or a migrated cursor."""

    @abstractmethod
    def request_pull(self, corp_id: str, open_kfid: str, *, token: str | None,
                     callback: dict[str, Any] | None = None,
                     signature: str | None = None) -> bool:
        """Note that the account has news (from a callback, whose fields are recorded, or a
        start-up catch-up); whoever holds its pull lock pulls again. With the callback's
        `signature`: False, and nothing noted, when a callback with that signature was
        taken before (WeCom's retry, or a replay), by any process or host."""

    @abstractmethod
    def take_request(self, corp_id: str, open_kfid: str) -> tuple[bool, str | None]:
        """Clear the account's pending request: (whether there was one, its latest Token)."""

    @abstractmethod
    def has_request(self, corp_id: str, open_kfid: str) -> bool: ...

    @abstractmethod
    def first_callback_time(self, corp_id: str, open_kfid: str) -> int | None:
        """The CreateTime (WeCom's clock) of the earliest callback recorded for the account."""

    @abstractmethod
    def accounts(self, corp_id: str) -> list[str]:
        """Accounts that have a cursor or a pending pull request (catch-up on start)."""



class OutboxStore(StorePart, Protocol):
    """The outbox: for each committed page, the rows its committer still has to write out;
    a dead committer's entries are written by the next of its kind."""

    @abstractmethod
    def outbox(self, corp_id: str, open_kfid: str, *, owner_prefix: str) -> list[OutboxEntry]:
        """Entries of owners starting with `owner_prefix`, oldest first."""

    @abstractmethod
    def outbox_rows(self, corp_id: str, entry: OutboxEntry) -> list[Row]:
        """The rows an entry stands for, in seq order."""

    @abstractmethod
    def outbox_done(self, ids: Collection[int]) -> None: ...

    @abstractmethod
    def outbox_progress(self, entry_id: int, first_seq: int) -> None:
        """Rows before `first_seq` of the entry are written out: a process that dies now
        leaves only the rest to write again."""

    @abstractmethod
    def outbox_of(self, corp_id: str, owner: str) -> list[OutboxEntry]:
        """The entries of exactly this owner, every account, oldest first."""

    @abstractmethod
    def outbox_owners(self, corp_id: str, owner_prefix: str) -> list[str]:
        """The owners starting with `owner_prefix` that have entries."""

    @abstractmethod
    def adopt_outbox(self, corp_id: str, owner: str, new_owner: str) -> int:
        """Hand every entry of `owner` (a process that died) to `new_owner`; how many."""

    @abstractmethod
    def outbox_pending(self, corp_id: str) -> int:
        """Messages (about: stored-only history is counted) waiting in the outbox."""



class PullStateStore(StorePart, Protocol):
    """The receiver's bookkeeping: when each account was pulled (and its gaps), WeCom's clock
    against the receivers', and the callbacks taken (replays are refused)."""

    @abstractmethod
    def pull_states(self, corp_id: str, open_kfid: str | None = None) -> list[PullState]:
        """Every account's pull bookkeeping, or one's (cheap: no message is counted)."""

    @abstractmethod
    def note_pulled(self, corp_id: str, open_kfid: str, wecom_time: float) -> None:
        """A pull of the account completed at `wecom_time` (WeCom's clock, estimated)."""

    @abstractmethod
    def note_gap(self, corp_id: str, open_kfid: str, since: float, until: float) -> None:
        """The account was resumed at `until` after its last pull at `since` (WeCom's clock),
        more than WeCom keeps messages: shown by `store status` until the next gap."""

    @abstractmethod
    def clock_skew(self, corp_id: str) -> float | None:
        """WeCom's clock minus this store's receivers' clocks, from the latest callback
        recorded (its CreateTime against when it was received); None before any."""

    @abstractmethod
    def forget_signatures(self, before: float) -> int:
        """Forget callbacks taken before `before` (local clock): outside the freshness window
        a replay is refused by its timestamp anyway."""


class PullStore(CursorStore, OutboxStore, Locks, Protocol):
    """What a puller needs (kfcli.core.pull): cursors, the outbox and the pull locks."""


class MessageStore(StorePart, Protocol):
    """Reading messages out: in seq order, by msgid, by searchable text, for export."""

    @abstractmethod
    def watch(self, corp_id: str) -> Watch:
        """A `Watch` on the corp's new messages (SQLite: the database's change counter, one
        host; PostgreSQL: LISTEN/NOTIFY, any host)."""

    @abstractmethod
    def messages(self, corp_id: str, open_kfid: str | None = None, *,
                 customer: str | None = None, since: int | None = None,
                 until: int | None = None, after_seq: int = 0, limit: int | None = None,
                 newest: bool = False) -> Iterator[Row]:
        """Stored messages in seq order (`send_time` in [since, until), seq > after_seq).
        `newest`: the last `limit` of them (still returned oldest first)."""

    @abstractmethod
    def search(self, corp_id: str, text: str, *, open_kfid: str | None = None,
               customer: str | None = None, since: int | None = None,
               until: int | None = None, limit: int | None = None,
               oldest_first: bool = False) -> Iterator[Row]:
        """Messages whose searchable text contains `text` (case-insensitive; substring, so
        Chinese needs no segmentation), newest first (or oldest first), at most `limit`.
        Queries of three characters or more use the index (SQLite FTS5 trigram, PostgreSQL
        pg_trgm); shorter ones scan the messages the other filters select."""

    @abstractmethod
    def last_seq(self, corp_id: str, open_kfid: str | None = None) -> int:
        """The highest seq stored for the account (0 when none)."""

    @abstractmethod
    def seq_before(self, corp_id: str, open_kfid: str, send_time: int) -> int:
        """The highest seq of a message sent before `send_time` (0 when none)."""

    @abstractmethod
    def message(self, corp_id: str, msgid: str) -> tuple[Row, MediaItem | None] | None:
        """A stored message by msgid, with its media entry; None when it is not stored."""

    def export_rows(self, corp_id: str, open_kfid: str | None = None, *,
                    customer: str | None = None, since: int | None = None,
                    until: int | None = None) -> Iterator[ExportTuple]:
        """The messages `messages()` selects, in seq order, as `msg export --format csv`
        reads them (see ExportRow). This default hands every message over as its JSON text;
        a backend whose database reads JSON picks plain text messages apart in SQL instead,
        so that a million-message export parses almost no JSON in Python."""
        for row in self.messages(corp_id, open_kfid, customer=customer, since=since,
                                 until=until):
            yield ExportRow(row.text)


class ConsumerStore(StorePart, Protocol):
    """Consumers (`msg history --consumer`) and replies: durable positions, the customer
    messages `msg send --batch` answered, the sends it recorded, and the reply window."""

    @abstractmethod
    def consumer_position(self, corp_id: str, name: str, open_kfid: str) -> int | None: ...

    @abstractmethod
    def set_consumer_position(self, corp_id: str, name: str, open_kfid: str,
                              seq: int) -> None:
        """Move the position forward to `seq` (never backwards)."""

    @abstractmethod
    def consumers(self, corp_id: str) -> list[ConsumerStatus]:
        """Every `msg history --consumer` position of the corp, by name and account."""

    @abstractmethod
    def ack_replies(self, corp_id: str, open_kfid: str, msgids: Collection[str], *,
                    status: str = "replied") -> None:
        """Record that these customer messages were answered ("replied") or deliberately
        left unanswered ("no_reply")."""

    @abstractmethod
    def unanswered(self, corp_id: str, name: str, open_kfid: str, *, upto: int,
                   since: int) -> int | None:
        """The seq of the oldest customer message (origin 3) of the account with no recorded
        reply, among those stored after consumer `name` started (its first position) and up
        to `upto`, sent at or after `since`; None when all are answered."""

    @abstractmethod
    def record_sent(self, corp_id: str, open_kfid: str, customer: str, msgid: str,
                    message: dict[str, Any] | None = None, *,
                    sent_at: float | None = None, answered: Collection[str] = (),
                    later: bool = False) -> None:
        """Note a message kfcli delivered (or found delivered): it counts in the reply
        window. With `message` (`{"msgtype": T, T: {…}}`, as sent) it is also stored with
        its conversation (origin 100, `kfcli.core.origins.KFCLI`: history, search, export,
        consumers and inbox show it), its send_time on WeCom's clock as the store knows it
        (`sent_at`, this host's clock, never before the account's newest message), and
        followers and consumers wake as for any commit. `answered`: the customer messages it
        answers, acknowledged ("replied", as `ack_replies`) in the same transaction.
        `later=True`: the message is kept with the send (durably) and archived by
        `archive_sends`, many in one transaction (a batch's sends: on SQLite a message's
        row, indexes and search entry are most of a send's cost); it counts in the window
        at once. Recording the same msgid again changes nothing."""

    @abstractmethod
    def archive_sends(self, corp_id: str) -> int:
        """Archive the sends recorded with `later=True` (by any process) as messages of their
        conversations, in one transaction: how many."""

    @abstractmethod
    def was_sent(self, corp_id: str, open_kfid: str, msgid: str) -> bool: ...

    @abstractmethod
    def event_customer(self, corp_id: str, code: str) -> tuple[str, str] | None:
        """(open_kfid, external_userid) of the stored event that gave out `code` (a
        welcome_code or msg_code, for `send_msg_on_event`); None when none is stored."""

    @abstractmethod
    def waiting(self, corp_id: str, open_kfid: str | None = None) -> list[Waiting]:
        """The conversations whose customer's last message has no later send (recorded by
        any kfcli) and no later servicer message, of one account or of every one."""

    @abstractmethod
    def reply_window(self, corp_id: str, open_kfid: str, customer: str, *,
                     clock: int | None = None, state: bool = True) -> ReplyWindow | None:
        """What the store knows of WeCom's reply window for the customer: their last stored
        message and the sends recorded since; None when no message of theirs is stored.
        `clock`: the account's `clock()` when the caller knows it (not asked again);
        `state=False` leaves the session state out (one query less)."""

    @abstractmethod
    def clock(self, corp_id: str, open_kfid: str) -> int:
        """The latest time WeCom is known to have reached for the account: the newest
        send_time of its messages from WeCom (kfcli's sends left out); 0 without any."""


class MediaStore(StorePart, Protocol):
    """The media archive (kfcli.core.archive fetches; the store keeps).

    `commit_page` adds a pending entry for each new image, voice, video or file message in
    the page's transaction, so none is forgotten whatever happens next. The bytes are
    content-addressed (sha256): stored once however many messages carry them."""

    @abstractmethod
    def media_due(self, corp_id: str, *, open_kfid: str | None = None, after_seq: int = 0,
                  limit: int = 100, force: bool = False, lease: float = 300.0
                  ) -> list[MediaItem]:
        """Claim up to `limit` media entries to fetch, in seq order after `after_seq`: pending
        ones whose next try is due (with `force`: every pending and failed one). Claimed
        entries are not due again for `lease` seconds, so two workers do not fetch the same
        one at once."""

    @abstractmethod
    def new_media_file(self) -> BinaryIO:
        """A temporary file (binary, read/write) to download media into; hand it to
        `media_archived`, or close it to throw it away."""

    @abstractmethod
    def media_archived(self, corp_id: str, seq: int, file: BinaryIO, *, content_type: str,
                       filename: str) -> MediaItem:
        """Keep the bytes downloaded into `file` (from `new_media_file`) as the media of
        message `seq`, and mark it archived. Closes `file`."""

    @abstractmethod
    def media_failed(self, corp_id: str, seq: int, error: str, *,
                     retry_at: float | None) -> None:
        """Note a failed fetch: tried again from `retry_at` (local clock), or never (None)."""

    @abstractmethod
    def media_reset(self, corp_id: str, seqs: Collection[int], *,
                    lost: str | None = None) -> None:
        """Make these entries due now: claims given back by an interrupted archiver; with
        `lost` (the reason, noted as the error), archived entries whose copy went missing,
        to be fetched again while WeCom still has them."""

    @abstractmethod
    def media_items(self, corp_id: str, seqs: Collection[int]) -> dict[int, MediaItem]:
        """The archive's entries of these messages (by seq); messages without media have
        none."""

    @abstractmethod
    def media_by_msgid(self, corp_id: str, msgids: Collection[str]) -> dict[str, MediaItem]:
        """The archive's entries of these messages (by msgid; an export reads messages
        without their seqs), in one query per few hundred."""

    @abstractmethod
    def media_content(self, item: MediaItem) -> Iterator[bytes]:
        """The archived bytes of `item`, MEDIA_CHUNK at a time; MediaMissing when the copy
        is gone (a file removed by hand)."""

    @abstractmethod
    def media_summary(self, corp_id: str, open_kfid: str | None = None) -> MediaSummary: ...


_Admin = TypeVar("_Admin", bound="StoreAdmin")


class StoreAdmin(Locks, Protocol):
    """Operating the store: probe, status, prune, backup, schema, close."""

    @abstractmethod
    def probe(self) -> None:
        """A small write: raises KfError (naming the cause) when the store cannot be written."""

    @abstractmethod
    def status(self, corp_id: str) -> list[AccountStatus]: ...

    @abstractmethod
    def prune(self, corp_id: str, before: int, *, dry_run: bool = False) -> Pruned:
        """Remove the corp's messages sent before `before` and callbacks received before it.
        Never removes a message a pending outbox entry still has to write, nor outbox
        entries, nor the callbacks of an account never pulled (they decide what its first
        pull writes out); consumer positions stay where they are."""

    def _prune_media(self, corp_id: str) -> tuple[int, int]:
        """After a prune: remove archived bytes no message refers to any more; returns (how
        many files or blobs, how many bytes)."""
        return 0, 0

    @abstractmethod
    def schema_version(self) -> int: ...

    @abstractmethod
    def schema_notes(self) -> dict[str, str]:
        """What the last migration recorded: `compatible_from` (the oldest schema whose
        builds keep working on this store) and `migrated_by` (the build that migrated it);
        empty for a store migrated before either was recorded."""

    @abstractmethod
    def migrate(self) -> tuple[int, int]:
        """Upgrade the store to SCHEMA_VERSION (schema version before, after). Opening a
        store does this by itself unless it is opened with `migrate=False`; a store of a
        newer schema that this build can still use (its `compatible_from`) is left as is."""

    def backup(self, dest: str | Path) -> Backup:
        """Copy the store, consistent while others write, to the new SQLite store `dest`
        (its media beside it). Only an SQLite store can; others raise ConfigError."""
        from kfcli.core.errors import ConfigError

        raise ConfigError(
            f"kfcli store backup copies an SQLite store; {self.display_url} is a PostgreSQL "
            "store: back it up with pg_dump", hint=PG_BACKUP_HINT)

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self: _Admin) -> _Admin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class NameStore(StorePart, Protocol):
    """Customers' nicknames (customer/batchget), cached so that the views ask WeCom at most
    once a day per customer (kfcli.core.names)."""

    @abstractmethod
    def nicknames(self, corp_id: str, external_userids: Collection[str]
                  ) -> dict[str, tuple[str, float]]:
        """The cached nickname and when it was fetched (unix seconds) of each of these
        customers the cache holds ("" where WeCom gave none)."""

    @abstractmethod
    def save_nicknames(self, corp_id: str, names: Mapping[str, str], fetched_at: float
                       ) -> None:
        """Keep these nicknames (external_userid -> nickname), fetched at `fetched_at`."""


class Store(PullStore, PullStateStore, MessageStore, ConsumerStore, MediaStore, NameStore,
            StoreAdmin, Protocol):
    """One store: every part of the contract, for callers that need several (`open_store`
    returns one). Callers that need one part take it (`PullStore`, `PullStateStore`,
    `MessageStore`, `ConsumerStore`, `MediaStore`, `NameStore`, `StoreAdmin`). Thread-safe; a forked
    child reconnects on first use. The backends subclass it:
    `kfcli.core.store.sqlite.SqliteStore` and `kfcli.core.store.postgres.PostgresStore`."""


class ExportRow(NamedTuple):
    """A stored message as `Store.export_rows` yields it: either its JSON text (`text`, the
    other fields None), or, for a plain text message, the fields a CSV row shows, read from
    the JSON by the database (`text` None).

    Plain means: msgtype "text"; origin 3 (customer) or 5 (servicer), a JSON integer;
    `text.content` a string and no `text.menu_id` (a menu reply reads differently);
    send_time a JSON integer; msgid, open_kfid and external_userid strings, and
    servicer_userid a string when the origin is 5. Any message may come as text: readers
    take both forms. Backends may yield plain tuples in this order (no object per row)."""

    text: str | None
    send_time: int | None = None
    open_kfid: str | None = None
    external_userid: str | None = None
    servicer_userid: str | None = None  # origin 5 only
    origin: int | None = None
    msgid: str | None = None
    content: str | None = None


def one_row(row: tuple[Any, ...] | None) -> tuple[Any, ...]:
    """The row of a query that always has one (an aggregate; INSERT … RETURNING)."""
    if row is None:
        raise RuntimeError("the database returned no row where one is certain")
    return row


#: What `Store.export_rows` yields: an ExportRow, or a plain tuple in its order.
ExportTuple = tuple[str | None, int | None, str | None, str | None, str | None, int | None,
                    str | None, str | None]
