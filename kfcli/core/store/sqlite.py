"""The embedded store: one SQLite file (WAL), any number of processes on one host.

Writes are `BEGIN IMMEDIATE` transactions (one writer at a time, others wait up to
`BUSY_TIMEOUT`); readers never block writers. Named locks (one puller per account) are file
locks in `<store>.locks/`, released by the kernel when their holder dies. The file and its
WAL are created 0600 in a 0700 directory. `synchronous=NORMAL`: a killed process never loses
a committed transaction (only a power cut can take back the last ones, never corrupting).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sqlite3
import stat
import threading
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, BinaryIO, cast

from kfcli.core import jsontext
from kfcli.core.errors import ConfigError, KfError
from kfcli.core.store.base import (
    MEDIA_CHUNK,
    MEDIA_TYPES,
    AccountStatus,
    Backup,
    Committed,
    ConsumerStatus,
    CursorMoved,
    ExportTuple,
    Incoming,
    Lock,
    MediaItem,
    MediaMissing,
    MediaSummary,
    OutboxEntry,
    Pruned,
    PullState,
    ReplyWindow,
    Row,
    Store,
    StoreUnwritable,
    Waiting,
    Watch,
    callback_row,
    derived,
    file_digest,
    media_id_of,
    search_query,
    search_text,
    sent_document,
    session_state,
    usable_schema,
)
from kfcli.core.store.migrations import Migrator, Operation, check_steps

BUSY_TIMEOUT = 60.0

#: The write-ahead log is folded back into the store (checkpointed) once it holds this much,
#: and cut back to it afterwards. Large: `msg sync` ingests fastest with few checkpoints.
#: Small disks set `sqlite_wal_mb` (KFCLI_SQLITE_WAL_MB) lower: every checkpoint costs a
#: write of the pages changed since the last one, so ingest slows a little.
WAL_MB = 64

#: The named lock that `backup` holds while it copies media files and `prune` while it
#: removes unused ones: a file the backup's snapshot names is never removed under it.
MEDIA_FILES_LOCK = "store-media-files"


def media_dir_of(path: Path) -> Path:
    """Where a store file keeps its archived media: `media/` beside `store.db`; `NAME.media/`
    beside a store file of any other name (two stores in one directory never share files)."""
    return path.parent / ("media" if path.name == "store.db" else path.name + ".media")

# Version 1: messages, cursors, the outbox, callbacks and consumer positions.
SCHEMA = [
    """CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
    # Accounts and corps are numbered here, and messages and their indexes carry the numbers:
    # index entries are a third of the size, which is most of the cost of storing a page.
    """CREATE TABLE IF NOT EXISTS corps (
        id INTEGER PRIMARY KEY,
        corp_id TEXT NOT NULL UNIQUE)""",
    """CREATE TABLE IF NOT EXISTS accounts (
        id INTEGER PRIMARY KEY,
        corp_id TEXT NOT NULL,
        open_kfid TEXT NOT NULL,
        cursor TEXT,
        cursor_at REAL,
        last_pull_at REAL,
        last_callback_at REAL,
        requested INTEGER NOT NULL DEFAULT 0,
        request_token TEXT,
        UNIQUE (corp_id, open_kfid))""",
    """CREATE TABLE IF NOT EXISTS messages (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        corp INTEGER NOT NULL,
        account INTEGER NOT NULL,
        msgid TEXT NOT NULL,
        external_userid TEXT NOT NULL DEFAULT '',
        servicer_userid TEXT NOT NULL DEFAULT '',
        origin INTEGER NOT NULL DEFAULT 0,
        msgtype TEXT NOT NULL DEFAULT '',
        send_time INTEGER NOT NULL DEFAULT 0,
        stored_at REAL NOT NULL,
        body TEXT NOT NULL)""",
    # Unique by corp + msgid. Every SQLite index entry ends with the rowid (seq), so
    # (account) orders an account's messages by seq, and so on.
    "CREATE UNIQUE INDEX IF NOT EXISTS messages_msgid ON messages (msgid, corp)",
    "CREATE INDEX IF NOT EXISTS messages_account ON messages (account)",
    "CREATE INDEX IF NOT EXISTS messages_customer ON messages (account, external_userid)",
    "CREATE INDEX IF NOT EXISTS messages_time ON messages (account, send_time)",
    """CREATE TABLE IF NOT EXISTS outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        corp_id TEXT NOT NULL,
        open_kfid TEXT NOT NULL,
        owner TEXT NOT NULL,
        first_seq INTEGER NOT NULL,
        last_seq INTEGER NOT NULL,
        emit_from INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS outbox_account ON outbox (corp_id, open_kfid, owner)",
    """CREATE TABLE IF NOT EXISTS callbacks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        corp_id TEXT NOT NULL,
        open_kfid TEXT NOT NULL,
        received_at REAL NOT NULL,
        create_time INTEGER,
        fields TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS callbacks_account ON callbacks (corp_id, open_kfid, id)",
    """CREATE TABLE IF NOT EXISTS consumers (
        corp_id TEXT NOT NULL,
        name TEXT NOT NULL,
        open_kfid TEXT NOT NULL,
        position INTEGER NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (corp_id, name, open_kfid))""",
]

# The receiver's operations (schema version 4): when each account was last pulled on WeCom's
# clock and its latest gap (more than WeCom's retention between two pulls), and the callbacks
# taken within the freshness window, by signature (replays and WeCom's retries are answered
# without being taken again, by every process).
# (A table of its own rather than new columns of `accounts`: no hot table is altered while
# older processes still use it.)
OPERATIONS_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS pulls (
        corp_id TEXT NOT NULL,
        open_kfid TEXT NOT NULL,
        wecom_pulled_at REAL,
        gap_since REAL,
        gap_until REAL,
        PRIMARY KEY (corp_id, open_kfid))""",
    """CREATE TABLE IF NOT EXISTS seen_callbacks (
        signature TEXT PRIMARY KEY,
        seen_at REAL NOT NULL) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS seen_callbacks_at ON seen_callbacks (seen_at)",
]

# Search (schema version 2): an FTS5 index with the trigram tokenizer over messages.search,
# an external-content table (the text is kept once, in messages) kept in step by
# commit_page (a page's rows and their index entries commit in the same transaction) and by
# a trigger on delete (`prune`). Trigrams give
# substring matching for any script (Chinese needs no word segmentation) from three
# characters up. Shorter queries use the same index: messages.search ends with PAD, so every
# one- or two-character substring begins some trigram, and the trigrams beginning with the
# query are read from the index's vocabulary (messages_fts_vocab, a range of terms) and
# OR-ed together. Only a query beginning more than MAX_TERMS distinct trigrams (a common
# Latin letter) scans the messages the other filters select instead.
SEARCH_SCHEMA = [
    """CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5(
        search, content='messages', content_rowid='seq', tokenize='trigram',
        detail='none')""",
    """CREATE TRIGGER IF NOT EXISTS messages_fts_delete AFTER DELETE ON messages
        WHEN old.search <> '' BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, search)
        VALUES ('delete', old.seq, old.search);
        END""",
    "CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts_vocab USING fts5vocab(messages_fts, row)",
]

# The media archive (schema version 3): an entry per media message, keyed by the message's
# seq and removed with it (trigger), and the bytes in content-addressed files beside the
# store (`media_dir`): `media/ab/ab12…` (the sha256 of the content), 0600 in 0700
# directories. A file is linked into place, complete and synced, before any entry names it.
MEDIA_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS media (
        seq INTEGER PRIMARY KEY,
        corp INTEGER NOT NULL,
        media_id TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_try REAL NOT NULL DEFAULT 0,
        error TEXT,
        sha256 TEXT,
        size INTEGER,
        content_type TEXT,
        filename TEXT,
        archived_at REAL)""",
    "CREATE INDEX IF NOT EXISTS media_due ON media (corp, next_try) WHERE state = 'pending'",
    "CREATE INDEX IF NOT EXISTS media_sha ON media (sha256) WHERE sha256 IS NOT NULL",
    f"""CREATE TRIGGER IF NOT EXISTS media_delete AFTER DELETE ON messages
        WHEN old.msgtype IN ({", ".join(repr(t) for t in MEDIA_TYPES)}) BEGIN
        DELETE FROM media WHERE seq = old.seq;
        END""",
]

# Replies (schema version 3): the customer messages `msg send --batch` answered (or was told
# to leave unanswered), so that `msg history --consumer NAME --ack replies` resumes from the
# oldest one a dead bot never answered.
REPLIES_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS replies (
        corp_id TEXT NOT NULL,
        open_kfid TEXT NOT NULL,
        msgid TEXT NOT NULL,
        status TEXT NOT NULL,
        acked_at REAL NOT NULL,
        PRIMARY KEY (corp_id, open_kfid, msgid))""",
]

# What msg send --batch delivered (schema version 3; builds of schema 3 before the reply
# window check did not have it, and version 4 adds it to their stores).
SENT_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS sent (
        corp_id TEXT NOT NULL,
        open_kfid TEXT NOT NULL,
        external_userid TEXT NOT NULL,
        msgid TEXT NOT NULL,
        sent_at REAL NOT NULL,
        after_seq INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (corp_id, open_kfid, msgid))""",
    "CREATE INDEX IF NOT EXISTS sent_customer ON sent (corp_id, open_kfid, external_userid, "
    "after_seq)",
]


# Customers' nicknames (schema version 5): what customer/batchget answered, and when, so
# that the views ask WeCom at most once a day per customer (kfcli.core.names).
NAMES_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS nicknames (
        corp_id TEXT NOT NULL,
        external_userid TEXT NOT NULL,
        nickname TEXT NOT NULL,
        fetched_at REAL NOT NULL,
        PRIMARY KEY (corp_id, external_userid))""",
]


def _add_column(conn: sqlite3.Connection, table: str, column: str) -> None:
    """ALTER TABLE … ADD COLUMN, unless the table has the column already: PostgreSQL's
    ADD COLUMN IF NOT EXISTS, which SQLite lacks."""
    name = column.split()[0]
    if name not in {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}:
        conn.execute(f"ALTER TABLE {table} ADD COLUMN {column}")


def _add_search_text(conn: sqlite3.Connection) -> None:
    """Version 2: the searchable text of each message, filled in for those stored so far."""
    _add_column(conn, "messages", "search TEXT NOT NULL DEFAULT ''")
    last = 0
    while True:
        rows = conn.execute("SELECT seq, body FROM messages WHERE seq > ? ORDER BY seq "
                            "LIMIT 5000", (last,)).fetchall()
        if not rows:
            return
        last = rows[-1][0]
        conn.executemany("UPDATE messages SET search = ? WHERE seq = ?",
                         derived(rows, lambda doc: _padded(search_text(doc))))


def _index_search_text(conn: sqlite3.Connection) -> None:
    """Version 2: the messages stored so far into the search index."""
    conn.execute("INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')")


def _add_first_position(conn: sqlite3.Connection) -> None:
    """Version 3: where each consumer started (consumers of older stores: at 0)."""
    _add_column(conn, "consumers", "first_position INTEGER NOT NULL DEFAULT 0")


def _add_media(conn: sqlite3.Connection) -> None:
    """Version 3: a pending archive entry for each media message stored so far (those sent
    more than three days ago will find that WeCom no longer has them)."""
    marks = ", ".join("?" * len(MEDIA_TYPES))
    rows = conn.execute(f"SELECT seq, corp, body FROM messages WHERE msgtype IN ({marks})",
                        MEDIA_TYPES).fetchall()
    conn.executemany("INSERT OR IGNORE INTO media (media_id, seq, corp) VALUES (?, ?, ?)",
                     derived(rows, media_id_of))


# Whole conversations (schema version 5): kfcli's sends are stored as messages (origin 100);
# each conversation's turns (a customer's latest message, the sends and servicer messages
# after it: the reply window, msg inbox) are read from this index.
TURNS_SCHEMA = [
    "CREATE INDEX IF NOT EXISTS messages_turns ON messages (account, external_userid, origin)",
]


def _add_sent_body(conn: sqlite3.Connection) -> None:
    """Version 7: a send's message waits in `sent.body` until it is archived (a batch
    archives its sends together: one transaction for many)."""
    _add_column(conn, "sent", "body TEXT")
    conn.execute("CREATE INDEX IF NOT EXISTS sent_unarchived ON sent (corp_id) "
                 "WHERE body IS NOT NULL")

#: Step N brings a store of schema N-1 to N (kfcli.core.store.migrations runs them).
MIGRATIONS: dict[int, tuple[Operation[sqlite3.Connection], ...]] = {
    1: (*SCHEMA,),
    2: (_add_search_text, *SEARCH_SCHEMA, _index_search_text),
    3: (_add_first_position, *MEDIA_SCHEMA, *REPLIES_SCHEMA, *SENT_SCHEMA, _add_media),
    4: (*OPERATIONS_SCHEMA, *SENT_SCHEMA),
    5: (*NAMES_SCHEMA,),
    6: (*TURNS_SCHEMA,),
    7: (_add_sent_body,),
}
check_steps(MIGRATIONS)


_MEDIA_COLUMNS = ("md.seq, m.msgid, a.open_kfid, m.msgtype, m.send_time, md.media_id, "
                  "md.state, md.attempts, md.next_try, md.error, md.sha256, md.size, "
                  "md.content_type, md.filename, md.archived_at")
_MEDIA_FROM = ("media md JOIN messages m ON m.seq = md.seq "
               "JOIN accounts a ON a.id = m.account")

PAD = "\n\n"
MAX_TERMS = 2000

_HEX2 = re.compile("[0-9a-f]{2}")
_SHA256 = re.compile("[0-9a-f]{64}")


def _copy_media(shas: Sequence[str], source: Path, dest: Path, *, under: Path
                ) -> tuple[int, int, list[str]]:
    """Copy the content-addressed files `shas` from one media directory to another (0600
    files in 0700 directories, each complete and synced before its name appears; a file
    already there is the same content and is kept). (files copied, bytes, shas missing)."""
    import shutil

    from kfcli.core.files import ensure_private_dir

    files = size = 0
    missing: list[str] = []
    for sha in shas:
        if not _SHA256.fullmatch(sha):
            continue
        target = dest / sha[:2] / sha
        if target.exists():
            continue
        try:
            reader = open(source / sha[:2] / sha, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            missing.append(sha)
            continue
        with reader:
            directory = ensure_private_dir(target.parent, under=under)
            tmp = directory / f".{sha}.partial-{os.getpid()}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0),
                         0o600)
            try:
                with os.fdopen(fd, "wb") as writer:
                    shutil.copyfileobj(reader, writer, MEDIA_CHUNK)
                    writer.flush()
                    os.fsync(writer.fileno())
                    size += writer.tell()
                os.replace(tmp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                raise
        files += 1
    return files, size, missing


def _older(path: Path, than: float) -> bool:
    try:
        return path.lstat().st_mtime < than
    except OSError:
        return False


def _padded(text: str) -> str:
    return text + PAD if text else ""

#: The latest time WeCom is known to have reached for an account: its newest message's
#: send_time, kfcli's own sends (origin 100, this host's clock) left out.
_CLOCK = ("SELECT send_time FROM messages WHERE account = ? AND origin <> 100 "
          "ORDER BY send_time DESC LIMIT 1")

#: event_customer looks for a code among this many of the newest messages.
EVENT_SCAN = 200_000

#: Queries shorter than this (in characters) are not in the trigram index: scanned instead.
TRIGRAM = 3


class _FileLock(Lock):
    def __init__(self, lock: Any) -> None:
        self._lock = lock

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None


#: Below this much free space on the store's disk the receiver says it is not ready.
PROBE_FREE = 1024 * 1024


def _free_bytes(directory: Path) -> int | None:
    try:
        st = os.statvfs(directory)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


#: Connections kept open for reuse while no thread holds them.
MAX_IDLE = 8


class _Loan:
    """A thread's hold on a connection: when the thread ends, its thread-local storage (and
    so this object) is released, and the connection goes back to the store."""

    __slots__ = ("conn", "store")

    def __init__(self, store: SqliteStore, conn: sqlite3.Connection) -> None:
        self.store = store
        self.conn = conn

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter exit anything may be gone
            self.store._give_back(self.conn)


class SqliteStore(Store):
    """The store in one SQLite file. Thread-safe: each thread uses its own connection,
    borrowed from a small pool and given back when the thread ends."""

    backend = "sqlite"

    def __init__(self, path: Path, *, migrate: bool = True, wal_mb: float | None = None
                 ) -> None:
        self.path = Path(path)
        wal = float(wal_mb) if wal_mb else WAL_MB
        self._wal_pages = max(1, int(wal * 256))  # pages of 4 KiB
        self._wal_bytes = max(4096, int(wal * 1024 * 1024))
        self.display_url = "sqlite:///" + str(self.path).lstrip("/")
        self._local = threading.local()
        self._pid = os.getpid()
        #: Connections no thread holds, handed to the next thread that needs one (see _conn).
        self._idle: list[sqlite3.Connection] = []
        #: Every open connection, held or idle.
        self._open: set[sqlite3.Connection] = set()
        #: close() was called: connections given back from now on are closed, not kept.
        self._closing = False
        self._numbers: dict[tuple[str, str], tuple[int, int]] = {}
        # Reentrant: a thread-local swapped out under it frees loans, which give back here.
        self._guard = threading.RLock()
        self._create_file()
        self._probe()
        if not os.access(self.path, os.W_OK) or not os.access(self.path.parent, os.W_OK):
            # Checked up front: a store found read-only halfway through a pull would fail
            # after WeCom was asked (the pull is repeated, but the user deserves it now).
            raise StoreUnwritable(f"cannot write to the store {self.path} (read-only)",
                              hint="check the file's and its directory's permissions")
        if migrate:
            self._migrate()

    # ------------------------------------------------------------------ connections

    def _create_file(self) -> None:
        from kfcli.core.files import ensure_private_dir

        if self.path.is_dir():
            raise ConfigError(f"the store {self.path} is a directory; a SQLite store is a file",
                              hint="point KFCLI_STORE at a file, e.g. "
                              f"sqlite:///{str(self.path / 'store.db').lstrip('/')}")
        try:
            if not self.path.parent.exists():
                ensure_private_dir(self.path.parent)
            if not self.path.exists():
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0),
                             0o600)
                os.close(fd)
        except OSError as exc:
            raise ConfigError(f"cannot create the store {self.path}: {exc.strerror}",
                              hint="check the directory's permissions, or set KFCLI_STORE "
                              "to another place") from None

    def _conn(self) -> sqlite3.Connection:
        """The calling thread's connection. A thread borrows one (an idle one, or a new one)
        on first use and gives it back when the thread ends: a server that runs each request
        on a new thread (the receiver's embedded server) reuses a few connections instead of
        opening one per request and keeping it open forever. At most MAX_IDLE stay open
        unused; the rest are closed as their threads end."""
        if self._pid != os.getpid():  # a forked child: never use the parent's connections
            with self._guard:
                if self._pid != os.getpid():
                    self._local = threading.local()
                    self._idle = []
                    self._open = set()
                    self._pid = os.getpid()
        loan = getattr(self._local, "loan", None)
        if loan is not None:
            lent: sqlite3.Connection = loan.conn
            return lent
        with self._guard:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            try:
                conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT,
                                       isolation_level=None, check_same_thread=False)
                _wal(conn)
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute(f"PRAGMA wal_autocheckpoint={self._wal_pages}")
                conn.execute(f"PRAGMA journal_size_limit={self._wal_bytes}")
            except sqlite3.Error as exc:
                raise self._error(exc) from None
            with self._guard:
                self._open.add(conn)
                self._closing = False  # used again after close(): pooling as before
        self._local.loan = _Loan(self, conn)
        return conn

    def _give_back(self, conn: sqlite3.Connection) -> None:
        """A thread that held `conn` ended (its _Loan was collected)."""
        if self._pid != os.getpid():
            return  # the parent's connection, in a forked child: never touched
        with self._guard:
            if self._pid != os.getpid() or conn not in self._open:
                return  # closed meanwhile, or the parent's connection in a forked child
            if conn.in_transaction or self._closing:  # a transaction left open; or closed
                self._open.discard(conn)
            elif len(self._idle) < MAX_IDLE:
                self._idle.append(conn)
                return
            else:
                self._open.discard(conn)
        with contextlib.suppress(sqlite3.Error):
            conn.close()

    def _error(self, exc: sqlite3.Error) -> KfError:
        text = str(exc)
        if "not a database" in text or "malformed" in text:
            return ConfigError(f"the store {self.path} is not a kfcli store ({text}); it was "
                               "left untouched", hint="move it away, or set KFCLI_STORE to "
                               "another file")
        if "readonly" in text or "read-only" in text or "unable to open" in text:
            return StoreUnwritable(f"cannot write to the store {self.path} ({text})",
                               hint="check the file's and its directory's permissions")
        if "disk is full" in text or "disk I/O error" in text:
            return KfError(f"the store {self.path} cannot be written: {text}",
                           hint="free space on its disk; kfcli resumes by itself")
        if "locked" in text or "busy" in text:
            return KfError(f"the store {self.path} stayed locked for {BUSY_TIMEOUT:.0f} s "
                           f"({text})", hint="another process holds a long write transaction")
        return KfError(f"store {self.path}: {text}")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE: the write lock is taken up front, so two
        writers never deadlock upgrading read locks)."""
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self._failed(conn, exc) from None
        try:
            yield conn
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise self._failed(conn, exc) from None
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise self._failed(conn, exc) from None

    def _failed(self, conn: sqlite3.Connection, exc: sqlite3.Error) -> KfError:
        """The error for a failed write. A connection that met a read-only file is dropped
        (SQLite keeps such a connection read-only even after the file is writable again):
        the next write opens a fresh one, so the store recovers by itself."""
        text = str(exc)
        if "readonly" in text or "read-only" in text:
            with self._guard:
                self._open.discard(conn)
            if getattr(self._local, "loan", None) is not None:
                self._local.loan = None  # its connection is no longer ours: not given back
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                conn.close()
        return self._error(exc)

    def _stream(self, sql: str, args: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        """The rows of a query, a thousand at a time: memory stays flat however many."""
        try:
            cur = self._conn().execute(sql, args)
            while True:
                batch = cur.fetchmany(1000)
                if not batch:
                    return
                yield from batch
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._conn().execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    def _probe(self) -> None:
        """Look before touching: a database of something else, or a store of a newer kfcli,
        is refused without a single byte changed (even switching to WAL writes the file)."""
        if not self.path.stat().st_size:
            return
        try:
            from urllib.parse import quote

            # A URI, so the path is quoted: '?', '#' or '%' in it must not change its meaning.
            conn = sqlite3.connect(f"file:{quote(str(self.path))}?mode=ro", uri=True,
                                   timeout=BUSY_TIMEOUT)
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        try:
            names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            version, meta = 0, {}
            if "meta" in names:
                meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
                version = int(meta.get("schema_version", 0))
        except (sqlite3.Error, ValueError) as exc:
            raise self._error(sqlite3.DatabaseError(f"not a database: {exc}")) from None
        finally:
            conn.close()
        if version == 0 and any(not n.startswith("sqlite_") for n in names):
            raise ConfigError(f"{self.path} is an SQLite database of something else, not a "
                              "kfcli store; it was left untouched",
                              hint="set KFCLI_STORE to a new file, or move this one away")
        self._usable(meta)

    def _usable(self, meta: dict[str, str]) -> bool:
        return usable_schema(meta, str(self.path))

    def _meta(self, conn: sqlite3.Connection) -> dict[str, str]:
        return dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('schema_version', "
                                 "'compatible_from', 'migrated_by')").fetchall())

    def schema_notes(self) -> dict[str, str]:
        try:
            if not self._version():
                return {}
            meta = self._meta(self._conn())
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        return {k: v for k, v in meta.items() if k != "schema_version"}

    def migrate(self) -> tuple[int, int]:
        return self._migrate()

    def _migrate(self) -> tuple[int, int]:
        try:
            return _Schema(self).run()
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    def _version(self) -> int:
        conn = self._conn()
        has_meta = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                                "name = 'meta'").fetchone()
        if not has_meta:
            return 0
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row else 0

    def schema_version(self) -> int:
        try:
            return self._version()
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    def close(self) -> None:
        """Close the idle connections and the caller's. A connection another thread holds
        is closed when that thread gives it back (closing it under the thread crashes the
        sqlite3 module): close() is safe while other threads still use the store."""
        with self._guard:
            conns, self._idle = self._idle, []
            for conn in conns:
                self._open.discard(conn)
            self._closing = True
        if self._pid == os.getpid():
            for conn in conns:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
        # The caller's own connection goes back now (and, closing, is closed); other
        # threads' stay theirs until they end.
        if getattr(self._local, "loan", None) is not None:
            self._local.loan = None

    def connections(self) -> int:
        """How many connections are open (held by threads or idle): a bounded number."""
        with self._guard:
            return len(self._open)

    # ------------------------------------------------------------------ locks

    def lock(self, name: str, *, wait: float = 0.0) -> Lock | None:
        import filelock

        from kfcli.core.files import ensure_private_dir

        directory = ensure_private_dir(self.path.parent / (self.path.name + ".locks"))
        digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:32]
        lock = filelock.FileLock(str(directory / f"{digest}.lock"), mode=0o600,
                                 thread_local=False)
        try:
            lock.acquire(timeout=wait, poll_interval=0.05)
        except filelock.Timeout:
            return None
        return _FileLock(lock)

    # ------------------------------------------------------------------ pulling

    def cursor(self, corp_id: str, open_kfid: str) -> str | None:
        rows = self._read("SELECT cursor FROM accounts WHERE corp_id = ? AND open_kfid = ?",
                          (corp_id, open_kfid))
        return rows[0][0] if rows else None

    def _ids(self, conn: sqlite3.Connection, corp_id: str, open_kfid: str, *,
              create: bool) -> tuple[int, int] | None:
        """(corp number, account number); created (inside the caller's write transaction)
        when `create`, else None for an account never seen."""
        key = (corp_id, open_kfid)
        ids = self._numbers.get(key)
        if ids is not None:
            return ids
        if create:
            conn.execute("INSERT OR IGNORE INTO corps (corp_id) VALUES (?)", (corp_id,))
            conn.execute("INSERT OR IGNORE INTO accounts (corp_id, open_kfid) VALUES (?, ?)",
                         key)
        row = conn.execute("SELECT c.id, a.id FROM accounts a JOIN corps c ON c.corp_id = "
                           "a.corp_id WHERE a.corp_id = ? AND a.open_kfid = ?", key).fetchone()
        if row is None:
            return None
        self._numbers[key] = (row[0], row[1])  # numbers never change once given
        return self._numbers[key]

    def _account(self, corp_id: str, open_kfid: str) -> int | None:
        try:
            ids = self._ids(self._conn(), corp_id, open_kfid, create=False)
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        return ids[1] if ids else None

    def commit_page(self, corp_id: str, open_kfid: str, *, expected: str | None,
                    cursor: str, messages: Sequence[Incoming], owner: str | None,
                    emit_from: int = 0) -> Committed:
        now = time.time()
        with self._write() as conn:
            # A store migrated under this process to a schema it cannot use: stop before
            # storing anything it would store incompletely (once per page: one small read).
            self._usable(self._meta(conn))
            row = conn.execute("SELECT cursor FROM accounts WHERE corp_id = ? AND "
                               "open_kfid = ?", (corp_id, open_kfid)).fetchone()
            if (row[0] if row else None) != expected:
                raise CursorMoved(open_kfid)
            fresh: list[tuple[Row, Incoming]] = []
            ids = self._ids(conn, corp_id, open_kfid, create=True)
            assert ids is not None  # created
            corp, account = ids
            if messages:
                seq_row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = "
                                       "'messages'").fetchone()
                before = seq_row[0] if seq_row else 0
                changes = conn.total_changes
                head = (corp, account, now)
                conn.executemany(
                    "INSERT OR IGNORE INTO messages (corp, account, stored_at, msgid, "
                    "external_userid, servicer_userid, origin, msgtype, send_time, body, "
                    "search) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [head + m[:7] + (_padded(m.searchable()),) for m in messages])
                inserted = conn.total_changes - changes
                if inserted:
                    # The page's index entries, in the same transaction, in one statement (a
                    # trigger per row measured three times slower for a 1,000-message page).
                    conn.execute("INSERT INTO messages_fts (rowid, search) SELECT seq, search "
                                 "FROM messages WHERE seq > ? AND search <> ''", (before,))
                if inserted == len(messages):  # all new: seqs follow one another, page order
                    fresh = [(Row(before + i + 1, m.text), m) for i, m in enumerate(messages)]
                elif inserted:
                    seqs = dict(conn.execute("SELECT msgid, seq FROM messages WHERE seq > ?",
                                             (before,)).fetchall())
                    for m in messages:
                        seq = seqs.pop(m.msgid, None)  # pop: a msgid repeated in a page once
                        if seq is not None:
                            fresh.append((Row(seq, m.text), m))
                media = [(r.seq, corp, m.media_id) for r, m in fresh if m.media_id]
                if media:  # to be archived: noted with the message, so never forgotten
                    conn.executemany("INSERT OR IGNORE INTO media (seq, corp, media_id) "
                                     "VALUES (?, ?, ?)", media)
            new = [r for r, m in fresh if m.send_time >= emit_from]
            conn.execute(
                "INSERT INTO accounts (corp_id, open_kfid, cursor, cursor_at, last_pull_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (corp_id, open_kfid) DO UPDATE SET "
                "cursor = excluded.cursor, last_pull_at = excluded.last_pull_at, cursor_at = "
                "CASE WHEN cursor IS excluded.cursor THEN cursor_at ELSE excluded.cursor_at END",
                (corp_id, open_kfid, cursor, now, now))
            outbox_id = None
            if owner is not None and new:
                cur = conn.execute(
                    "INSERT INTO outbox (corp_id, open_kfid, owner, first_seq, last_seq, "
                    "emit_from, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (corp_id, open_kfid, owner, new[0].seq, new[-1].seq, emit_from, now))
                outbox_id = cur.lastrowid
        return Committed(new, outbox_id)

    def set_cursor(self, corp_id: str, open_kfid: str, cursor: str | None) -> None:
        now = time.time()
        with self._write() as conn:
            conn.execute(
                "INSERT INTO accounts (corp_id, open_kfid, cursor, cursor_at) VALUES "
                "(?, ?, ?, ?) ON CONFLICT (corp_id, open_kfid) DO UPDATE SET cursor = "
                "excluded.cursor, cursor_at = excluded.cursor_at", (corp_id, open_kfid, cursor,
                                                                    now))

    def request_pull(self, corp_id: str, open_kfid: str, *, token: str | None,
                     callback: dict[str, Any] | None = None,
                     signature: str | None = None) -> bool:
        now = time.time()
        with self._write() as conn:
            if signature is not None and not conn.execute(
                    "INSERT OR IGNORE INTO seen_callbacks (signature, seen_at) VALUES (?, ?)",
                    (signature, now)).rowcount:
                return False
            conn.execute(
                "INSERT INTO accounts (corp_id, open_kfid, requested, request_token, "
                "last_callback_at) VALUES (?, ?, 1, ?, ?) ON CONFLICT (corp_id, open_kfid) DO "
                "UPDATE SET requested = 1, request_token = COALESCE(excluded.request_token, "
                "request_token), last_callback_at = COALESCE(excluded.last_callback_at, "
                "last_callback_at)",
                (corp_id, open_kfid, token, now if callback is not None else None))
            if callback is not None:
                created, fields = callback_row(callback)
                conn.execute("INSERT INTO callbacks (corp_id, open_kfid, received_at, "
                             "create_time, fields) VALUES (?, ?, ?, ?, ?)",
                             (corp_id, open_kfid, now, created, fields))
        return True

    def take_request(self, corp_id: str, open_kfid: str) -> tuple[bool, str | None]:
        with self._write() as conn:
            row = conn.execute("SELECT requested, request_token FROM accounts WHERE "
                               "corp_id = ? AND open_kfid = ?", (corp_id, open_kfid)).fetchone()
            if not row or not row[0]:
                return False, None
            conn.execute("UPDATE accounts SET requested = 0, request_token = NULL WHERE "
                         "corp_id = ? AND open_kfid = ?", (corp_id, open_kfid))
            return True, row[1]

    def has_request(self, corp_id: str, open_kfid: str) -> bool:
        rows = self._read("SELECT requested FROM accounts WHERE corp_id = ? AND open_kfid = ?",
                          (corp_id, open_kfid))
        return bool(rows and rows[0][0])

    def first_callback_time(self, corp_id: str, open_kfid: str) -> int | None:
        rows = self._read("SELECT MIN(create_time) FROM callbacks WHERE corp_id = ? AND "
                          "open_kfid = ?", (corp_id, open_kfid))
        return rows[0][0] if rows else None

    def accounts(self, corp_id: str) -> list[str]:
        return [r[0] for r in self._read("SELECT open_kfid FROM accounts WHERE corp_id = ? AND "
                                         "(cursor IS NOT NULL OR requested = 1) "
                                         "ORDER BY open_kfid", (corp_id,))]

    # ------------------------------------------------------------------ outbox

    def outbox(self, corp_id: str, open_kfid: str, *, owner_prefix: str) -> list[OutboxEntry]:
        rows = self._read(
            "SELECT id, open_kfid, owner, first_seq, last_seq, emit_from FROM outbox WHERE "
            "corp_id = ? AND open_kfid = ? AND substr(owner, 1, ?) = ? ORDER BY id",
            (corp_id, open_kfid, len(owner_prefix), owner_prefix))
        return [OutboxEntry(*r) for r in rows]

    def outbox_rows(self, corp_id: str, entry: OutboxEntry) -> list[Row]:
        account = self._account(corp_id, entry.open_kfid)
        rows = self._read(
            "SELECT seq, body FROM messages WHERE account = ? AND seq BETWEEN ? AND ? AND "
            "send_time >= ? ORDER BY seq",
            (account, entry.first_seq, entry.last_seq, entry.emit_from))
        return [Row(*r) for r in rows]

    def outbox_done(self, ids: Collection[int]) -> None:
        if not ids:
            return
        with self._write() as conn:
            conn.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])

    def outbox_progress(self, entry_id: int, first_seq: int) -> None:
        with self._write() as conn:
            conn.execute("UPDATE outbox SET first_seq = ? WHERE id = ?", (first_seq, entry_id))

    def outbox_of(self, corp_id: str, owner: str) -> list[OutboxEntry]:
        rows = self._read("SELECT id, open_kfid, owner, first_seq, last_seq, emit_from FROM "
                          "outbox WHERE corp_id = ? AND owner = ? ORDER BY id", (corp_id, owner))
        return [OutboxEntry(*r) for r in rows]

    def outbox_owners(self, corp_id: str, owner_prefix: str) -> list[str]:
        return [r[0] for r in self._read(
            "SELECT DISTINCT owner FROM outbox WHERE corp_id = ? AND substr(owner, 1, ?) = ?",
            (corp_id, len(owner_prefix), owner_prefix))]

    def adopt_outbox(self, corp_id: str, owner: str, new_owner: str) -> int:
        with self._write() as conn:
            return conn.execute("UPDATE outbox SET owner = ? WHERE corp_id = ? AND owner = ?",
                                (new_owner, corp_id, owner)).rowcount

    def outbox_pending(self, corp_id: str) -> int:
        rows = self._read("SELECT COALESCE(SUM(last_seq - first_seq + 1), 0) FROM outbox "
                          "WHERE corp_id = ?", (corp_id,))
        return int(rows[0][0]) if rows else 0

    # ------------------------------------------------------------------ operations

    def pull_states(self, corp_id: str, open_kfid: str | None = None) -> list[PullState]:
        sql = ("SELECT a.open_kfid, a.requested, a.last_pull_at, a.last_callback_at, "
               "p.wecom_pulled_at, p.gap_since, p.gap_until FROM accounts a LEFT JOIN pulls p "
               "ON p.corp_id = a.corp_id AND p.open_kfid = a.open_kfid WHERE a.corp_id = ?")
        args: list[Any] = [corp_id]
        if open_kfid is not None:
            sql += " AND a.open_kfid = ?"
            args.append(open_kfid)
        rows = self._read(sql + " ORDER BY a.open_kfid", args)
        return [PullState(r[0], bool(r[1]), *r[2:]) for r in rows]

    def note_pulled(self, corp_id: str, open_kfid: str, wecom_time: float) -> None:
        with self._write() as conn:
            conn.execute("INSERT INTO pulls (corp_id, open_kfid, wecom_pulled_at) VALUES "
                         "(?, ?, ?) ON CONFLICT (corp_id, open_kfid) DO UPDATE SET "
                         "wecom_pulled_at = MAX(COALESCE(wecom_pulled_at, 0), "
                         "excluded.wecom_pulled_at)", (corp_id, open_kfid, wecom_time))

    def note_gap(self, corp_id: str, open_kfid: str, since: float, until: float) -> None:
        with self._write() as conn:
            conn.execute("INSERT INTO pulls (corp_id, open_kfid, gap_since, gap_until) VALUES "
                         "(?, ?, ?, ?) ON CONFLICT (corp_id, open_kfid) DO UPDATE SET "
                         "gap_since = excluded.gap_since, gap_until = excluded.gap_until",
                         (corp_id, open_kfid, since, until))

    def clock_skew(self, corp_id: str) -> float | None:
        rows = self._read("SELECT create_time - received_at FROM callbacks WHERE corp_id = ? "
                          "AND create_time IS NOT NULL ORDER BY id DESC LIMIT 1", (corp_id,))
        return float(rows[0][0]) if rows else None

    def forget_signatures(self, before: float) -> int:
        with self._write() as conn:
            return conn.execute("DELETE FROM seen_callbacks WHERE seen_at < ?",
                                (before,)).rowcount

    def probe(self) -> None:
        free = _free_bytes(self.path.parent)
        if free is not None and free < PROBE_FREE:
            raise KfError(f"the disk of the store {self.path} is full ({free} bytes free)",
                          hint="free some space; the receiver takes callbacks again by itself")
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('probe', ?)",
                         (str(time.time()),))

    # ------------------------------------------------------------------ reading

    def _filters(self, corp_id: str, open_kfid: str | None, customer: str | None,
                 since: int | None, until: int | None,
                 prefix: str = "") -> tuple[list[str], list[Any]] | None:
        """The WHERE clauses `messages` and `search` share (columns of the messages table
        named with `prefix`), and their arguments; None for an account never seen."""
        where: list[str] = []
        args: list[Any] = []
        if open_kfid is not None:
            account = self._account(corp_id, open_kfid)
            if account is None:
                return None
            where.append(f"{prefix}account = ?")
            args.append(account)
        else:
            where.append(f"{prefix}corp = (SELECT id FROM corps WHERE corp_id = ?)")
            args.append(corp_id)
        if customer is not None:
            where.append(f"{prefix}external_userid = ?")
            args.append(customer)
        if since is not None:
            where.append(f"{prefix}send_time >= ?")
            args.append(since)
        if until is not None:
            where.append(f"{prefix}send_time < ?")
            args.append(until)
        return where, args

    def watch(self, corp_id: str) -> Watch:
        return _ChangeCounter(self)

    def messages(self, corp_id: str, open_kfid: str | None = None, *,
                 customer: str | None = None, since: int | None = None,
                 until: int | None = None, after_seq: int = 0, limit: int | None = None,
                 newest: bool = False) -> Iterator[Row]:
        filters = self._filters(corp_id, open_kfid, customer, since, until)
        if filters is None:
            return
        where, args = ["seq > ?", *filters[0]], [after_seq, *filters[1]]
        sql = f"SELECT seq, body FROM messages WHERE {' AND '.join(where)}"
        if limit is not None:
            order = "DESC" if newest else "ASC"
            sql = f"SELECT * FROM ({sql} ORDER BY seq {order} LIMIT {int(limit)}) ORDER BY seq"
        else:
            sql += " ORDER BY seq"
        for seq, body in self._stream(sql, args):
            yield Row(seq, body)

    def search(self, corp_id: str, text: str, *, open_kfid: str | None = None,
               customer: str | None = None, since: int | None = None,
               until: int | None = None, limit: int | None = None,
               oldest_first: bool = False) -> Iterator[Row]:
        query = search_query(text)
        direction = "ASC" if oldest_first else "DESC"  # by send time (WeCom's clock), then seq
        where: list[str] = []
        args: list[Any] = []
        match = None
        if len(query) >= TRIGRAM:
            # detail='none' keeps the index small but has no positions (no phrase queries):
            # the index finds the rows holding every trigram of the query, instr checks
            # they hold the query itself.
            grams = dict.fromkeys(query[i:i + TRIGRAM] for i in range(len(query) - 2))
            match = " AND ".join('"' + g.replace('"', '""') + '"' for g in grams)
        elif "\n" not in query:
            terms = [r[0] for r in self._read(
                "SELECT term FROM messages_fts_vocab WHERE term >= ? AND term < ? LIMIT ?",
                (query, query + "\U0010ffff", MAX_TERMS + 1))]
            if not terms:
                return
            if len(terms) <= MAX_TERMS:
                match = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
        if match is not None:
            # Driven by the index (FTS5 hands out rowids = seqs); instr has the last word.
            source = "messages_fts f CROSS JOIN messages m ON m.seq = f.rowid"
            where.append("messages_fts MATCH ?")
            args.append(match)
            where.append("instr(m.search, ?) > 0")
            args.append(query)
        else:
            source = "messages m"
            where.append("instr(m.search, ?) > 0")
            args.append(query)
        filters = self._filters(corp_id, open_kfid, customer, since, until, prefix="m.")
        if filters is None:
            return
        where += filters[0]
        args += filters[1]
        sql = (f"SELECT m.seq, m.body FROM {source} WHERE {' AND '.join(where)} "
               f"ORDER BY m.send_time {direction}, m.seq {direction}")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        for seq, body in self._stream(sql, args):
            yield Row(seq, body)

    def last_seq(self, corp_id: str, open_kfid: str | None = None) -> int:
        if open_kfid is None:
            rows = self._read("SELECT MAX(seq) FROM messages WHERE corp = (SELECT id FROM "
                              "corps WHERE corp_id = ?)", (corp_id,))
        else:
            rows = self._read("SELECT MAX(seq) FROM messages WHERE account = ?",
                              (self._account(corp_id, open_kfid),))
        return rows[0][0] or 0

    def seq_before(self, corp_id: str, open_kfid: str, send_time: int) -> int:
        rows = self._read("SELECT MAX(seq) FROM messages WHERE account = ? AND send_time < ?",
                          (self._account(corp_id, open_kfid), send_time))
        return rows[0][0] or 0

    # ------------------------------------------------------------------ consumers

    def consumer_position(self, corp_id: str, name: str, open_kfid: str) -> int | None:
        rows = self._read("SELECT position FROM consumers WHERE corp_id = ? AND name = ? AND "
                          "open_kfid = ?", (corp_id, name, open_kfid))
        return rows[0][0] if rows else None

    def set_consumer_position(self, corp_id: str, name: str, open_kfid: str,
                              seq: int) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO consumers (corp_id, name, open_kfid, position, updated_at, "
                "first_position) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (corp_id, name, "
                "open_kfid) DO UPDATE SET position = MAX(position, excluded.position), "
                "updated_at = excluded.updated_at",
                (corp_id, name, open_kfid, seq, time.time(), seq))

    # ------------------------------------------------------------------ replies

    def ack_replies(self, corp_id: str, open_kfid: str, msgids: Collection[str], *,
                    status: str = "replied") -> None:
        if not msgids:
            return
        now = time.time()
        with self._write() as conn:
            conn.executemany("INSERT OR IGNORE INTO replies (corp_id, open_kfid, msgid, "
                             "status, acked_at) VALUES (?, ?, ?, ?, ?)",
                             [(corp_id, open_kfid, m, status, now) for m in msgids])

    def record_sent(self, corp_id: str, open_kfid: str, customer: str, msgid: str,
                    message: dict[str, Any] | None = None, *,
                    sent_at: float | None = None, answered: Collection[str] = (),
                    later: bool = False) -> None:
        now = time.time()
        with self._write() as conn:
            if answered:
                conn.executemany("INSERT OR IGNORE INTO replies (corp_id, open_kfid, msgid, "
                                 "status, acked_at) VALUES (?, ?, ?, 'replied', ?)",
                                 [(corp_id, open_kfid, m, now) for m in answered])
            ids = self._ids(conn, corp_id, open_kfid, create=True)
            assert ids is not None  # created
            corp, account = ids
            text = None
            if message is not None:
                # Never before the conversation's previous message: every view's order by
                # time is the order of the conversation.
                clock = conn.execute("SELECT send_time FROM messages WHERE account = ? AND "
                                     "external_userid = ? ORDER BY seq DESC LIMIT 1",
                                     (account, customer)).fetchone()
                text = jsontext.dumps(sent_document(open_kfid, customer, msgid, message, max(
                    int(sent_at or now), int(clock[0] if clock else 0))))
            # after_seq: the customer's last stored message when it was sent, so that the
            # window counts it by order, never by comparing this machine's clock with WeCom's.
            # body: the message, until it is archived (`later`: by archive_sends).
            conn.execute("INSERT OR IGNORE INTO sent (corp_id, open_kfid, external_userid, "
                         "msgid, sent_at, after_seq, body) VALUES (?, ?, ?, ?, ?, COALESCE(("
                         "SELECT MAX(seq) FROM messages WHERE account = ? AND external_userid "
                         "= ? AND origin = 3), 0), ?)",
                         (corp_id, open_kfid, customer, msgid, now, account, customer,
                          text if later else None))
            if text is not None and not later:
                self._archive_send(conn, corp, account, now, text)

    def _archive_send(self, conn: sqlite3.Connection, corp: int, account: int, now: float,
                      text: str) -> None:
        """Store one send (its JSON text) as a message of its conversation, searchable, its
        media to be archived."""
        m = Incoming.from_api(json.loads(text), text)
        search = _padded(m.searchable())
        cur = conn.execute(
            "INSERT OR IGNORE INTO messages (corp, account, stored_at, msgid, "
            "external_userid, servicer_userid, origin, msgtype, send_time, body, search) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (corp, account, now, *m[:7], search))
        if not cur.rowcount:
            return
        seq = cur.lastrowid
        if search:
            conn.execute("INSERT INTO messages_fts (rowid, search) VALUES (?, ?)",
                         (seq, search))
        if m.media_id:  # what was sent is archived like what was received
            conn.execute("INSERT OR IGNORE INTO media (seq, corp, media_id) VALUES "
                         "(?, ?, ?)", (seq, corp, m.media_id))

    def archive_sends(self, corp_id: str) -> int:
        now = time.time()
        with self._write() as conn:
            rows = conn.execute("SELECT rowid, open_kfid, body FROM sent WHERE corp_id = ? AND "
                                "body IS NOT NULL ORDER BY rowid", (corp_id,)).fetchall()
            if not rows:
                return 0
            before = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM messages").fetchone()[0]
            page = []
            for _rowid, open_kfid, text in rows:
                ids = self._ids(conn, corp_id, open_kfid, create=True)
                assert ids is not None  # created
                m = Incoming.from_api(json.loads(text), text)
                page.append((*ids, now, *m[:7], _padded(m.searchable()), m.media_id))
            # As commit_page: the rows in one statement, their search entries in another.
            conn.executemany(
                "INSERT OR IGNORE INTO messages (corp, account, stored_at, msgid, "
                "external_userid, servicer_userid, origin, msgtype, send_time, body, search) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [p[:-1] for p in page])
            conn.execute("INSERT INTO messages_fts (rowid, search) SELECT seq, search FROM "
                         "messages WHERE seq > ? AND search <> ''", (before,))
            media = [(p[3], p[-1]) for p in page if p[-1]]  # (msgid, media_id)
            if media:  # what was sent is archived like what was received
                conn.executemany("INSERT OR IGNORE INTO media (seq, corp, media_id) SELECT "
                                 "seq, corp, ? FROM messages WHERE seq > ? AND msgid = ?",
                                 [(media_id, before, msgid) for msgid, media_id in media])
            conn.executemany("UPDATE sent SET body = NULL WHERE rowid = ?",
                             [(r[0],) for r in rows])
        return len(rows)

    def nicknames(self, corp_id: str, external_userids: Collection[str]
                  ) -> dict[str, tuple[str, float]]:
        ids = list(external_userids)
        found: dict[str, tuple[str, float]] = {}
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            rows = self._read("SELECT external_userid, nickname, fetched_at FROM nicknames "
                              f"WHERE corp_id = ? AND external_userid IN "
                              f"({', '.join('?' * len(part))})", (corp_id, *part))
            found.update((r[0], (r[1], r[2])) for r in rows)
        return found

    def save_nicknames(self, corp_id: str, names: Mapping[str, str], fetched_at: float
                       ) -> None:
        with self._write() as conn:
            conn.executemany("INSERT OR REPLACE INTO nicknames (corp_id, external_userid, "
                             "nickname, fetched_at) VALUES (?, ?, ?, ?)",
                             [(corp_id, uid, name, fetched_at) for uid, name in names.items()])

    def was_sent(self, corp_id: str, open_kfid: str, msgid: str) -> bool:
        return bool(self._read("SELECT 1 FROM sent WHERE corp_id = ? AND open_kfid = ? AND "
                               "msgid = ?", (corp_id, open_kfid, msgid)))

    def reply_window(self, corp_id: str, open_kfid: str, customer: str, *,
                     clock: int | None = None, state: bool = True) -> ReplyWindow | None:
        account = self._account(corp_id, open_kfid)
        if account is None:
            return None
        rows = self._read("SELECT seq, send_time, msgid FROM messages WHERE account = ? "
                          "AND external_userid = ? AND origin = 3 ORDER BY seq DESC LIMIT 1",
                          (account, customer))
        if not rows:
            return None
        return self._window(corp_id, open_kfid, account, customer, *rows[0], clock=clock,
                            state=state)

    def _window(self, corp_id: str, open_kfid: str, account: int, customer: str,
                last_seq: int, last: int, last_msgid: str, *, sent: int | None = None,
                clock: int | None = None, state: bool = True) -> ReplyWindow:
        if sent is None:
            sent = self._read("SELECT COUNT(*) FROM sent WHERE corp_id = ? AND open_kfid = ? "
                              "AND external_userid = ? AND after_seq >= ?",
                              (corp_id, open_kfid, customer, last_seq))[0][0]
        if clock is None:
            clock = self._clock(account)
        if not state:
            return ReplyWindow(last, sent, last_msgid, int(clock))
        events = self._read("SELECT seq, body FROM messages WHERE account = ? AND "
                            "external_userid = ? AND origin = 4 ORDER BY seq DESC LIMIT 20",
                            (account, customer))
        return ReplyWindow(last, sent, last_msgid, int(clock),
                           session_state(events, last_seq))

    def clock(self, corp_id: str, open_kfid: str) -> int:
        account = self._account(corp_id, open_kfid)
        return 0 if account is None else self._clock(account)

    def _clock(self, account: int) -> int:
        rows = self._read(_CLOCK, (account,))
        return int(rows[0][0]) if rows else 0

    def event_customer(self, corp_id: str, code: str) -> tuple[str, str] | None:
        # Codes live 20 s to 48 h: the latest events are enough (a scan of the newest ones).
        rows = self._read(
            "SELECT a.open_kfid, m.external_userid FROM messages m JOIN accounts a ON a.id = "
            "m.account WHERE m.seq > (SELECT COALESCE(MAX(seq), 0) - ? FROM messages) AND "
            "m.corp = (SELECT id FROM corps WHERE corp_id = ?) AND m.origin = 4 AND "
            "instr(m.body, ?) > 0 ORDER BY m.seq DESC LIMIT 1",
            (EVENT_SCAN, corp_id, f'"{code}"'))
        return (rows[0][0], rows[0][1]) if rows and rows[0][1] else None

    def waiting(self, corp_id: str, open_kfid: str | None = None) -> list[Waiting]:
        # Each conversation's last customer message, found by walking the customers of each
        # account through messages_turns (one index seek per customer: a loose index scan,
        # not a scan of every message), then the answered ones left out.
        accounts, args = "corp_id = ?", [corp_id]
        if open_kfid is not None:
            accounts, args = "corp_id = ? AND open_kfid = ?", [corp_id, open_kfid]
        rows = self._read(
            f"""WITH RECURSIVE
                acct(id) AS (SELECT id FROM accounts WHERE {accounts}),
                cust(account, external_userid) AS (
                    SELECT id, (SELECT MIN(external_userid) FROM messages
                                WHERE account = acct.id) FROM acct
                    UNION ALL
                    SELECT account, (SELECT MIN(external_userid) FROM messages
                                     WHERE account = cust.account
                                       AND external_userid > cust.external_userid)
                    FROM cust WHERE external_userid IS NOT NULL),
                t(account, external_userid, seq) AS (
                    SELECT account, external_userid,
                           (SELECT MAX(seq) FROM messages WHERE account = cust.account
                              AND external_userid = cust.external_userid AND origin = 3)
                    FROM cust WHERE external_userid IS NOT NULL)
                SELECT t.account, a.open_kfid, t.external_userid, t.seq, m.send_time, m.msgid
                FROM t JOIN messages m ON m.seq = t.seq JOIN accounts a ON a.id = t.account
                WHERE NOT EXISTS (SELECT 1 FROM messages r WHERE r.account = t.account
                                  AND r.external_userid = t.external_userid
                                  AND r.origin IN (5, 100) AND r.seq > t.seq)
                  AND NOT EXISTS (SELECT 1 FROM sent s WHERE s.corp_id = ?
                                  AND s.open_kfid = a.open_kfid
                                  AND s.external_userid = t.external_userid
                                  AND s.after_seq >= t.seq)""", [*args, corp_id])
        clocks: dict[int, int] = {}
        found = []
        for account, kfid, customer, seq, send_time, msgid in rows:
            if account not in clocks:
                clocks[account] = self._clock(account)
            window = self._window(corp_id, kfid, account, customer, seq, send_time, msgid,
                                  sent=0, clock=clocks[account])
            found.append(Waiting(kfid, customer, msgid, send_time, window, seq))
        return found

    def unanswered(self, corp_id: str, name: str, open_kfid: str, *, upto: int,
                   since: int) -> int | None:
        account = self._account(corp_id, open_kfid)
        if account is None:
            return None
        rows = self._read(
            """SELECT MIN(m.seq) FROM messages m
               WHERE m.account = ? AND m.origin = 3 AND m.seq <= ? AND m.send_time >= ?
                 AND m.seq > COALESCE((SELECT first_position FROM consumers WHERE corp_id = ?
                                       AND name = ? AND open_kfid = ?), 0)
                 AND NOT EXISTS (SELECT 1 FROM replies r WHERE r.corp_id = ?
                                 AND r.open_kfid = ? AND r.msgid = m.msgid)""",
            (account, upto, since, corp_id, name, open_kfid, corp_id, open_kfid))
        return rows[0][0] if rows else None

    # ------------------------------------------------------------------ retention

    def prune(self, corp_id: str, before: int, *, dry_run: bool = False) -> Pruned:
        # A message inside the seq range of a pending outbox entry is still to be written
        # by its committer's next run: kept, whatever its age.
        pending = ("EXISTS (SELECT 1 FROM outbox o WHERE o.corp_id = a.corp_id AND "
                   "o.open_kfid = a.open_kfid AND m.seq BETWEEN o.first_seq AND o.last_seq)")
        old = ("FROM messages m JOIN accounts a ON a.id = m.account WHERE a.corp_id = ? AND "
               "m.send_time < ?")
        callbacks = ("FROM callbacks WHERE corp_id = ? AND received_at < ? AND open_kfid IN "
                     "(SELECT open_kfid FROM accounts WHERE corp_id = ? AND cursor IS NOT "
                     "NULL)")
        with self._write() as conn:
            counts = dict(conn.execute(
                f"SELECT a.open_kfid, COUNT(*) {old} AND NOT {pending} GROUP BY a.open_kfid "
                "ORDER BY a.open_kfid", (corp_id, before)).fetchall())
            kept = conn.execute(f"SELECT COUNT(*) {old} AND {pending}",
                                (corp_id, before)).fetchone()[0]
            n_callbacks = conn.execute(f"SELECT COUNT(*) {callbacks}",
                                       (corp_id, before, corp_id)).fetchone()[0]
            if dry_run:
                # The contents that only pruned messages refer to.
                gone = f"SELECT m.seq {old} AND NOT {pending}"
                files, size = conn.execute(
                    f"SELECT COUNT(*), COALESCE(SUM(size), 0) FROM (SELECT sha256, MAX(size) "
                    f"size FROM media WHERE seq IN ({gone}) AND sha256 IS NOT NULL AND "
                    f"sha256 NOT IN (SELECT sha256 FROM media WHERE sha256 IS NOT NULL AND "
                    f"seq NOT IN ({gone})) GROUP BY sha256)",
                    (corp_id, before, corp_id, before)).fetchone()
            else:
                conn.execute(f"DELETE FROM messages WHERE seq IN (SELECT m.seq {old} AND NOT "
                             f"{pending})", (corp_id, before))
                conn.execute(f"DELETE {callbacks}", (corp_id, before, corp_id))
        if not dry_run:
            with self._media_files():
                files, size = self._prune_media(corp_id)
        return Pruned(before, counts, n_callbacks, kept, files, size)

    # ------------------------------------------------------------------ media archive

    @property
    def media_dir(self) -> Path:
        """Where the archived media are (`media_dir_of`)."""
        return media_dir_of(self.path)

    def _media_path(self, sha256: str) -> Path:
        return self.media_dir / sha256[:2] / sha256

    def media_due(self, corp_id: str, *, open_kfid: str | None = None, after_seq: int = 0,
                  limit: int = 100, force: bool = False, lease: float = 300.0
                  ) -> list[MediaItem]:
        now = time.time()
        where = ["md.corp = (SELECT id FROM corps WHERE corp_id = ?)", "md.seq > ?"]
        args: list[Any] = [corp_id, after_seq]
        if force:
            where.append("md.state IN ('pending', 'failed')")
        else:
            where.append("md.state = 'pending' AND md.next_try <= ?")
            args.append(now)
        if open_kfid is not None:
            where.append("a.open_kfid = ?")
            args.append(open_kfid)
        sql = f"SELECT {_MEDIA_COLUMNS} FROM {_MEDIA_FROM} WHERE {' AND '.join(where)} " \
              "ORDER BY md.seq LIMIT ?"
        # Looked at first without the write lock: most pulls bring no media.
        if not self._read(sql, (*args, 1)):
            return []
        with self._write() as conn:
            rows = conn.execute(sql, (*args, int(limit))).fetchall()
            conn.executemany("UPDATE media SET next_try = ? WHERE seq = ?",
                             [(now + lease, r[0]) for r in rows])
        return [MediaItem(*r) for r in rows]

    def new_media_file(self) -> BinaryIO:
        import tempfile

        from kfcli.core.files import ensure_private_dir

        try:
            directory = ensure_private_dir(self.media_dir / "tmp", under=self.path.parent)
            # Deleted on close: only a link made by media_archived outlives it.
            # A file object (NamedTemporaryFile's wrapper delegates to one).
            return cast(BinaryIO, tempfile.NamedTemporaryFile(dir=directory, prefix="fetch-"))
        except OSError as exc:
            raise ConfigError(f"cannot write media into {self.media_dir} ({exc.strerror})",
                              hint="check the directory's permissions and free space") from None

    def media_archived(self, corp_id: str, seq: int, file: BinaryIO, *, content_type: str,
                       filename: str) -> MediaItem:
        from kfcli.core.files import ensure_private_dir

        try:
            with file:
                sha, size = file_digest(file)
                file.flush()
                os.fsync(file.fileno())
                target = self._media_path(sha)
                # Linked into place under the store's write lock, as a prune removes
                # unreferenced files under it: a file is never removed between being found
                # present here and being referred to below.
                with self._write() as conn:
                    ensure_private_dir(target.parent, under=self.path.parent)
                    with contextlib.suppress(FileExistsError):  # archived before: the same
                        os.link(file.name, target)
                    conn.execute(
                        "UPDATE media SET state = 'archived', sha256 = ?, size = ?, "
                        "content_type = ?, filename = ?, archived_at = ?, error = NULL, "
                        "next_try = 0 WHERE seq = ?",
                        (sha, size, content_type, filename, time.time(), seq))
        except OSError as exc:
            raise ConfigError(f"cannot write media into {self.media_dir} ({exc.strerror})",
                              hint="check the directory's permissions and free space") from None
        items = self.media_items(corp_id, [seq])
        return items[seq]

    def media_failed(self, corp_id: str, seq: int, error: str, *,
                     retry_at: float | None) -> None:
        with self._write() as conn:
            conn.execute("UPDATE media SET attempts = attempts + 1, error = ?, state = ?, "
                         "next_try = ? WHERE seq = ? AND state <> 'archived'",
                         (error, "pending" if retry_at is not None else "failed",
                          retry_at or 0, seq))

    def media_reset(self, corp_id: str, seqs: Collection[int], *,
                    lost: str | None = None) -> None:
        if lost is None:
            sql = "UPDATE media SET next_try = 0 WHERE seq = ? AND state = 'pending'"
            rows: list[tuple[Any, ...]] = [(seq,) for seq in seqs]
        else:
            sql = ("UPDATE media SET state = 'pending', next_try = 0, error = ?, sha256 = NULL, "
                   "size = NULL, content_type = NULL, filename = NULL, archived_at = NULL "
                   "WHERE seq = ?")
            rows = [(lost, seq) for seq in seqs]
        with self._write() as conn:
            conn.executemany(sql, rows)

    def media_items(self, corp_id: str, seqs: Collection[int]) -> dict[int, MediaItem]:
        seqs = list(seqs)
        found: dict[int, MediaItem] = {}
        for i in range(0, len(seqs), 500):
            part = seqs[i:i + 500]
            rows = self._read(f"SELECT {_MEDIA_COLUMNS} FROM {_MEDIA_FROM} WHERE md.seq IN "
                              f"({', '.join('?' * len(part))}) AND a.corp_id = ?",
                              (*part, corp_id))
            found.update((r[0], MediaItem(*r)) for r in rows)
        return found

    def media_by_msgid(self, corp_id: str, msgids: Collection[str]) -> dict[str, MediaItem]:
        msgids = list(msgids)
        found: dict[str, MediaItem] = {}
        for i in range(0, len(msgids), 500):
            part = msgids[i:i + 500]
            # From the messages' (msgid, corp) index to the media by seq: CROSS JOIN keeps
            # SQLite from scanning the media table for each batch.
            rows = self._read(f"SELECT {_MEDIA_COLUMNS} FROM messages m CROSS JOIN media md "
                              "ON md.seq = m.seq JOIN accounts a ON a.id = m.account "
                              f"WHERE m.msgid IN ({', '.join('?' * len(part))}) AND m.corp = "
                              "(SELECT id FROM corps WHERE corp_id = ?)", (*part, corp_id))
            found.update((r[1], MediaItem(*r)) for r in rows)
        return found

    def message(self, corp_id: str, msgid: str) -> tuple[Row, MediaItem | None] | None:
        rows = self._read("SELECT seq, body FROM messages WHERE msgid = ? AND corp = "
                          "(SELECT id FROM corps WHERE corp_id = ?)", (msgid, corp_id))
        if not rows:
            return None
        row = Row(*rows[0])
        return row, self.media_items(corp_id, [row.seq]).get(row.seq)

    def media_content(self, item: MediaItem) -> Iterator[bytes]:
        if item.state != "archived" or not item.sha256:
            raise KfError(f"the media of message {item.msgid} is not archived")
        path = self._media_path(item.sha256)
        try:
            file = open(path, "rb")  # noqa: SIM115 - closed below, also when not read to the end
        except FileNotFoundError:
            raise MediaMissing(f"the archived copy of the {item.msgtype} of message "
                               f"{item.msgid} is missing ({path})") from None
        except OSError as exc:
            raise ConfigError(f"the archived media of message {item.msgid} cannot be read "
                              f"from {path} ({exc.strerror})",
                              hint="check the permissions of the media directory") from None
        with file:
            while True:
                chunk = file.read(MEDIA_CHUNK)
                if not chunk:
                    return
                yield chunk

    def media_summary(self, corp_id: str, open_kfid: str | None = None) -> MediaSummary:
        where, args = "a.corp_id = ?", [corp_id]
        if open_kfid is not None:
            where += " AND a.open_kfid = ?"
            args.append(open_kfid)
        rows = self._read(f"SELECT md.state, COUNT(*), COALESCE(SUM(md.size), 0) FROM "
                          f"{_MEDIA_FROM} WHERE {where} GROUP BY md.state", args)
        counts = {state: (n, size) for state, n, size in rows}
        return MediaSummary(archived=counts.get("archived", (0, 0))[0],
                            pending=counts.get("pending", (0, 0))[0],
                            failed=counts.get("failed", (0, 0))[0],
                            bytes=counts.get("archived", (0, 0))[1])

    def _prune_media(self, corp_id: str) -> tuple[int, int]:
        """Remove the files no entry refers to (of any corp: the files are shared), and
        downloads left by killed processes (tmp/fetch-* older than an hour). Only what kfcli
        itself writes is ever touched: files named by a sha256 in the directory named by its
        first two digits, and fetch-* files in tmp/; anything else in the directory stays."""
        from kfcli.core.files import check_private_dir

        removed = size = 0
        if os.path.lexists(self.media_dir):  # a planted symlink: prune nobody else's files
            check_private_dir(self.media_dir)
        if not self.media_dir.is_dir():
            return 0, 0
        with self._write() as conn:
            used = {r[0] for r in conn.execute("SELECT DISTINCT sha256 FROM media WHERE "
                                               "sha256 IS NOT NULL")}
            stale = time.time() - 3600
            for sub in sorted(self.media_dir.iterdir()):
                if sub.is_symlink() or not sub.is_dir():
                    continue
                if sub.name == "tmp":
                    doomed = [p for p in sub.glob("fetch-*") if _older(p, stale)]
                elif _HEX2.fullmatch(sub.name):
                    doomed = [p for p in sub.iterdir() if _SHA256.fullmatch(p.name)
                              and p.name.startswith(sub.name) and p.name not in used]
                else:
                    continue
                for path in doomed:
                    try:
                        info = path.lstat()
                        if not stat.S_ISREG(info.st_mode):
                            continue
                        path.unlink()
                    except OSError:
                        continue
                    if sub.name != "tmp":
                        removed += 1
                        size += info.st_size
        return removed, size

    @contextmanager
    def _media_files(self) -> Iterator[None]:
        """Held while media files are copied (backup) or removed (prune)."""
        lock = self.lock(MEDIA_FILES_LOCK, wait=BUSY_TIMEOUT)
        if lock is None:
            raise KfError(f"the media files of {self.path} stayed locked for "
                          f"{BUSY_TIMEOUT:.0f} s", hint="a store backup or prune is running")
        with lock:
            yield

    # ------------------------------------------------------------------ backup and restore

    def backup(self, dest: str | Path) -> Backup:
        """One snapshot of the store (SQLite's online backup API, in one step: writers go on
        meanwhile) written to `dest`, which must not exist, and the media files it names
        copied beside it (`media_dir_of(dest)`). `dest` appears only once complete."""
        from kfcli.core.errors import UsageError
        from kfcli.core.files import ensure_private_dir

        dest = Path(dest)
        media = media_dir_of(dest)
        for path in (dest, media):
            if os.path.lexists(path):
                raise UsageError(f"{path} already exists: a backup never overwrites anything",
                                 hint="name a new file, or move the old backup away")
        if dest.resolve() == self.path.resolve():
            raise UsageError(f"{dest} is the store itself")
        if not dest.parent.exists():  # made private; an existing directory is left as it is
            ensure_private_dir(dest.parent)
        tmp = dest.parent / f".{dest.name}.partial-{os.getpid()}"
        try:
            with self._media_files():
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL |
                                 getattr(os, "O_NOFOLLOW", 0), 0o600))
                out = sqlite3.connect(str(tmp), isolation_level=None)
                try:
                    self._conn().backup(out)  # one step: one consistent snapshot
                    shas = [r[0] for r in out.execute(
                        "SELECT DISTINCT sha256 FROM media WHERE state = 'archived' AND "
                        "sha256 IS NOT NULL")]
                    files, size, missing = _copy_media(shas, self.media_dir, media,
                                                       under=dest.parent)
                    if missing:  # pruned while the snapshot was taken: fetched again if kept
                        out.executemany(
                            "UPDATE media SET state = 'pending', next_try = 0, sha256 = NULL, "
                            "size = NULL, archived_at = NULL, error = 'missing from the "
                            "store when the backup was taken' WHERE sha256 = ?",
                            [(sha,) for sha in missing])
                    messages = out.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
                    version = int(out.execute("SELECT value FROM meta WHERE key = "
                                              "'schema_version'").fetchone()[0])
                    out.execute("INSERT OR REPLACE INTO meta (key, value) VALUES "
                                "('backup_taken_at', ?)", (str(time.time()),))
                    out.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                finally:
                    out.close()
                with open(tmp, "rb") as f:
                    os.fsync(f.fileno())
                os.link(tmp, dest)  # never over a file that appeared meanwhile
        except BaseException as exc:
            import shutil

            shutil.rmtree(media, ignore_errors=True)  # made by this backup: DEST never was
            if isinstance(exc, sqlite3.Error):
                raise self._error(exc) from None
            if isinstance(exc, OSError):
                raise ConfigError(f"cannot write the backup {dest}: {exc.strerror}",
                                  hint="check the directory's permissions and free space"
                                  ) from None
            raise
        finally:
            for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
                with contextlib.suppress(OSError):
                    leftover.unlink()
        return Backup(dest, version, messages, files, size, len(missing))

    def restore(self, src: Path) -> Backup:
        """Replace this store's contents with the backup `src` (a store file that `backup`
        wrote, or any kfcli SQLite store), and add its media files to this store's. Refused
        (KfError, exit 3) while another process has the store open: stop receivers,
        followers and consumers first."""
        src = Path(src)
        source = SqliteStore(src, migrate=False)  # refuses what is not a usable kfcli store
        try:
            if src.resolve() == self.path.resolve():
                from kfcli.core.errors import UsageError

                raise UsageError(f"{src} is the store itself")
            self.close()
            conn = sqlite3.connect(str(self.path), isolation_level=None, timeout=0)
            try:
                # Exclusive for the whole restore: no other process may have the store open
                # (its numbering of accounts would no longer match), nor open it meanwhile.
                conn.execute("PRAGMA locking_mode=EXCLUSIVE")
                try:
                    conn.execute("BEGIN EXCLUSIVE")
                    conn.execute("COMMIT")
                except sqlite3.OperationalError:
                    raise ConfigError(f"the store {self.path} is in use by another process; "
                                      "nothing was restored", hint="stop every receiver, msg "
                                      "sync, follower and consumer using it, then restore "
                                      "again") from None
                snap = source._conn()
                shas = [r[0] for r in snap.execute(
                    "SELECT DISTINCT sha256 FROM media WHERE state = 'archived' AND "
                    "sha256 IS NOT NULL")]
                files, size, missing = _copy_media(shas, source.media_dir, self.media_dir,
                                                   under=self.path.parent)
                snap.backup(conn)
                messages = conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
                conn.execute("DELETE FROM meta WHERE key = 'backup_taken_at'")
            except sqlite3.Error as exc:
                raise self._error(exc) from None
            except OSError as exc:
                raise ConfigError(f"cannot restore into {self.path}: {exc.strerror}",
                                  hint="check permissions and free space") from None
            finally:
                conn.close()
        finally:
            source.close()
        self._numbers.clear()
        self._migrate()
        return Backup(self.path, self.schema_version(), messages, files, size, len(missing))

    # ------------------------------------------------------------------ operators

    def consumers(self, corp_id: str) -> list[ConsumerStatus]:
        rows = self._read(
            """SELECT c.name, c.open_kfid, c.position,
                      (SELECT COUNT(*) FROM messages m WHERE m.account = a.id
                       AND m.seq > c.position), c.updated_at
               FROM consumers c LEFT JOIN accounts a
                    ON a.corp_id = c.corp_id AND a.open_kfid = c.open_kfid
               WHERE c.corp_id = ? ORDER BY c.name, c.open_kfid""", (corp_id,))
        return [ConsumerStatus(*r) for r in rows]

    def status(self, corp_id: str) -> list[AccountStatus]:
        rows = self._read(
            """SELECT a.open_kfid, COALESCE(m.n, 0), m.oldest, m.newest, a.cursor, a.cursor_at,
                      a.last_pull_at, a.last_callback_at, COALESCE(o.n, 0)
               FROM accounts a
               LEFT JOIN (SELECT account, COUNT(*) n, MIN(send_time) oldest,
                                 MAX(send_time) newest FROM messages GROUP BY account) m
                      ON m.account = a.id
               LEFT JOIN (SELECT open_kfid, COUNT(*) n FROM outbox WHERE corp_id = ?1
                          GROUP BY open_kfid) o ON o.open_kfid = a.open_kfid
               WHERE a.corp_id = ?1
               ORDER BY a.open_kfid""", (corp_id,))
        return [AccountStatus(*r) for r in rows]

    # ------------------------------------------------------------------ export

    def export_rows(self, corp_id: str, open_kfid: str | None = None, *,
                    customer: str | None = None, since: int | None = None,
                    until: int | None = None) -> Iterator[ExportTuple]:
        """Tuples in ExportRow's order: SQLite's JSON functions pick plain text messages
        apart (see _PLAIN), so Python parses only the others."""
        where: list[str] = []
        args: list[Any] = []
        if open_kfid is not None:
            account = self._account(corp_id, open_kfid)
            if account is None:
                return
            where.append("account = ?")
            args.append(account)
        else:
            where.append("corp = (SELECT id FROM corps WHERE corp_id = ?)")
            args.append(corp_id)
        for clause, value in (("external_userid = ?", customer), ("send_time >= ?", since),
                              ("send_time < ?", until)):
            if value is not None:
                where.append(clause)
                args.append(value)
        # The subquery decides once per row whether the message is plain (its `plain` is its
        # origin, else 0); OFFSET 0 keeps SQLite from flattening it into the outer query,
        # which would repeat the test for every column. It runs as a co-routine, handing
        # rows over one at a time in seq order (no outer ORDER BY: that would sort them all
        # in a temporary B-tree).
        sql = (f"SELECT CASE WHEN plain THEN NULL ELSE body END, {_PLAIN_FIELDS} FROM "
               "(SELECT body, send_time, external_userid, servicer_userid, msgid, "
               f"{_PLAIN} AS plain FROM messages WHERE {' AND '.join(where)} "
               "ORDER BY seq LIMIT -1 OFFSET 0)")
        yield from self._stream(sql, args)



class _Schema(Migrator[sqlite3.Connection]):
    """The migration runner's SQLite side: the calling thread's connection, and BEGIN
    IMMEDIATE (one writer at a time: others wait, then find the store migrated)."""

    def __init__(self, store: SqliteStore) -> None:
        super().__init__(MIGRATIONS, str(store.path))
        self.store = store

    def connection(self) -> AbstractContextManager[sqlite3.Connection]:
        return nullcontext(self.store._conn())

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return self.store._write()

    def version(self, conn: sqlite3.Connection) -> int:
        return self.store._version()

    def meta(self, conn: sqlite3.Connection) -> dict[str, str]:
        return self.store._meta(conn)

    def set_meta(self, conn: sqlite3.Connection, key: str, value: str) -> None:
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def execute(self, conn: sqlite3.Connection, statement: str) -> None:
        conn.execute(statement)

# A plain text message (ExportRow). msgid, external_userid, servicer_userid and msgtype are
# read from their columns: commit_page stores them as Incoming.from_api derives them from
# the JSON, which is what the CSV shows (str(value or "")). The rest is tested on SQLite's
# parse of the body: json_valid parses it, the json functions after it on the same text
# reuse that parse; each call still costs about a fifth of a parse, so there are few. What
# Python reads differently is left to Python, whole: text SQLite's parser refuses (NaN,
# Infinity), an escaped NUL (SQLite's text would end there) or surrogate (never returned
# intact; any \uD... escape, to keep the test simple), numbers written 3.0 or 1e9 (floats to
# Python; an integer's column holds its value). One difference is left: of a key given
# twice, SQLite reads the first, Python the last; kfcli stores what json.dumps or WeCom
# wrote, where keys are unique.
_PLAIN = r"""CASE WHEN msgtype = 'text' AND origin IN (3, 5) AND json_valid(body)
        AND body NOT GLOB '*\u[dD]*' AND body NOT GLOB '*\u0000*'
        AND json_type(body, '$.text.content') = 'text'
        AND json_type(body, '$.text.menu_id') IS NULL
        AND json_type(body, '$.origin') = 'integer'
        AND json_type(body, '$.send_time') = 'integer'
        AND json_type(body, '$.open_kfid') = 'text'
    THEN origin ELSE 0 END"""

# The fields of a plain text message, NULL for the others; servicer_userid only where it is
# shown (origin 5).
_PLAIN_FIELDS = """CASE WHEN plain THEN send_time END,
    CASE WHEN plain THEN body ->> '$.open_kfid' END,
    CASE WHEN plain THEN external_userid END,
    CASE WHEN plain = 5 THEN servicer_userid END,
    nullif(plain, 0),
    CASE WHEN plain THEN msgid END,
    CASE WHEN plain THEN body ->> '$.text.content' END"""




def _busy(exc: sqlite3.Error) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED (by its code where Python gives it: 3.11+)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return bool(code & 0xFF in (5, 6))  # SQLITE_BUSY, SQLITE_LOCKED (and extended codes)
    return "locked" in str(exc) or "busy" in str(exc)


def _wal(conn: sqlite3.Connection) -> None:
    """Switch a connection's database to WAL. A brand-new store opened by several processes
    at once (gunicorn's workers starting) races for the switch, which needs the database to
    itself: SQLite answers SQLITE_BUSY at once rather than through the busy timeout, so the
    switch is tried again until it is done or BUSY_TIMEOUT has passed."""
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if not _busy(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class _ChangeCounter(Watch):
    """SQLite's watch: `PRAGMA data_version` on a connection of its own changes when any
    other connection (of any process on this host) commits. Reading it costs no disk I/O
    beyond the WAL index in shared memory, so it is looked at every POLL seconds."""

    #: How often the counter is read while waiting.
    POLL = 0.02

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.conn: sqlite3.Connection | None = None
        self.version: int | None = None
        try:  # from now: a commit after this is news even before the first wait
            self.version = self._read()
        except sqlite3.Error:
            self.close()

    def _read(self) -> int:
        if self.conn is None:
            from urllib.parse import quote

            self.conn = sqlite3.connect(f"file:{quote(str(self.store.path))}?mode=ro",
                                        uri=True, isolation_level=None,
                                        check_same_thread=False, timeout=BUSY_TIMEOUT)
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        try:
            if self.version is None:
                self.version = self._read()
            while True:
                version = self._read()
                if version != self.version:
                    self.version = version
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                time.sleep(min(self.POLL, left))
        except sqlite3.Error:
            self.close()
            return True  # the caller looks, and meets what is wrong

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        self.version = None
