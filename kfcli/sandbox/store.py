"""SQLite state of the simulated corp: schema, connections, transactions, meta and clock.

Several processes may serve the same database file at once (every ``kfcli --sandbox``
command embeds its own server on the shared file in the user data dir), so:

* the file is in WAL mode with a busy timeout, and every write is one ``BEGIN IMMEDIATE``
  transaction (`Store.write`), which serialises writers across processes instead of failing
  or losing an update;
* everything that must agree across processes lives in the database, never in memory:
  credentials, access tokens, the simulator clock's offset, callback settings.

Each server thread gets its own connection (sqlite3 connections are not shared between
threads). Handlers get at the database only through `Store`.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from . import ids, rules

SCHEMA_VERSION = 2

# Tables for the whole simulated API, including areas whose handlers come later, so that a
# database created today keeps working when they arrive. New tables may be appended with
# IF NOT EXISTS; changes to existing ones go through _MIGRATIONS below.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS access_tokens (
    token      TEXT PRIMARY KEY,
    issued_at  REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS media (
    media_id     TEXT PRIMARY KEY,
    type         TEXT NOT NULL,            -- image | voice | video | file
    filename     TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size         INTEGER NOT NULL,
    data         BLOB NOT NULL,
    created_at   INTEGER NOT NULL          -- simulator clock; usable for rules.MEDIA_TTL
);
CREATE TABLE IF NOT EXISTS accounts (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,   -- creation order for account/list
    open_kfid  TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    media_id   TEXT NOT NULL,
    avatar     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    deleted_at INTEGER                              -- deleted accounts answer 95004
);
CREATE TABLE IF NOT EXISTS contact_ways (
    enc_scene  TEXT PRIMARY KEY,           -- the opaque value in the link's query
    open_kfid  TEXT NOT NULL,
    scene      TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS servicers (
    open_kfid     TEXT NOT NULL,
    userid        TEXT,                    -- exactly one of userid / department_id is set
    department_id INTEGER,
    status        INTEGER NOT NULL DEFAULT 0,   -- servicer/list: 0 receiving, 1 stopped
    stop_type     INTEGER NOT NULL DEFAULT 0,   -- 0 stopped, 1 suspended
    added_at      INTEGER NOT NULL,
    UNIQUE (open_kfid, userid),
    UNIQUE (open_kfid, department_id)
);
CREATE TABLE IF NOT EXISTS customers (
    external_userid TEXT PRIMARY KEY,
    nickname        TEXT NOT NULL,
    avatar          TEXT NOT NULL,
    gender          INTEGER NOT NULL,
    unionid         TEXT NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    open_kfid       TEXT NOT NULL,
    external_userid TEXT NOT NULL,
    service_state   INTEGER NOT NULL DEFAULT 4,   -- kf-api.md §1.5; 4 = ended / not started
    servicer_userid TEXT NOT NULL DEFAULT '',
    window_start    INTEGER,           -- latest customer message: opens the 48 h window
    window_sent     INTEGER NOT NULL DEFAULT 0,   -- messages sent since window_start (<= 5)
    scene           TEXT,              -- latest enter_session context (customer/batchget)
    scene_param     TEXT,
    entered_at      INTEGER,
    upgrade         TEXT,              -- JSON of a pending upgrade_service recommendation
    enter_channels  TEXT,              -- JSON of enter_session's wechat_channels, if any
    active_at       INTEGER,           -- last (re)opening: the session ends 48 h after it
    PRIMARY KEY (open_kfid, external_userid)
);
CREATE TABLE IF NOT EXISTS messages (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,   -- sync_msg cursors point into this
    msgid           TEXT NOT NULL UNIQUE,
    open_kfid       TEXT NOT NULL,
    external_userid TEXT,
    send_time       INTEGER NOT NULL,
    origin          INTEGER NOT NULL,  -- 3 customer, 4 system event, 5 servicer (§3.1)
    servicer_userid TEXT,
    msgtype         TEXT NOT NULL,
    body            TEXT NOT NULL      -- JSON of the object named after msgtype
);
CREATE INDEX IF NOT EXISTS messages_by_account ON messages (open_kfid, seq);
CREATE TABLE IF NOT EXISTS sent_messages (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    open_kfid       TEXT NOT NULL,
    msgid           TEXT NOT NULL,
    external_userid TEXT,
    api             TEXT NOT NULL,     -- send_msg | send_msg_on_event
    body            TEXT NOT NULL,     -- the request body as delivered, msgid filled in
    sent_at         INTEGER NOT NULL,
    UNIQUE (open_kfid, msgid)          -- msgid is unique per account (kf-api.md §2.6)
);
CREATE TABLE IF NOT EXISTS event_codes (
    code            TEXT PRIMARY KEY,  -- welcome_code / msg_code for send_msg_on_event
    kind            TEXT NOT NULL,
    open_kfid       TEXT NOT NULL,
    external_userid TEXT NOT NULL,
    service_state   INTEGER,           -- state the code was issued in (§1.6)
    expires_at      INTEGER NOT NULL,
    used_at         INTEGER
);
CREATE TABLE IF NOT EXISTS sync_tokens (
    token      TEXT PRIMARY KEY,       -- Token from a kf_msg_or_event callback
    open_kfid  TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS knowledge_groups (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,   -- list order and list cursors
    group_id   TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL UNIQUE,
    is_default INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS knowledge_intents (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    intent_id         TEXT NOT NULL UNIQUE,
    group_id          TEXT NOT NULL,
    question          TEXT NOT NULL UNIQUE,   -- unique across groups (kf-api.md §2.11)
    similar_questions TEXT NOT NULL,          -- JSON {"items": [...]}
    answers           TEXT NOT NULL           -- JSON as list_intent shows it (media by name)
);
CREATE INDEX IF NOT EXISTS knowledge_intents_by_group ON knowledge_intents (group_id, seq);
"""

# version -> statements that bring a database from version-1 to version.
_MIGRATIONS: dict[int, list[str]] = {
    2: [
        "ALTER TABLE sessions ADD COLUMN enter_channels TEXT",
        "ALTER TABLE sessions ADD COLUMN active_at INTEGER",
        "UPDATE sessions SET active_at = window_start",
    ],
}

BUSY_TIMEOUT_SECONDS = 30.0


class Store:
    """One simulated corp's database, shared by the threads of a server."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        _create_private_file(self.path)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: set[sqlite3.Connection] = set()
        conn = self.conn()
        _enable_wal(conn)
        # executescript() manages its own transaction; IMMEDIATE queues concurrent creators.
        conn.executescript("BEGIN IMMEDIATE;" + _SCHEMA + "COMMIT;")
        with self.write() as db:
            self._migrate(db)
            self._ensure_corp(db)

    # --- connections ----------------------------------------------------------------------

    def conn(self) -> sqlite3.Connection:
        """This thread's connection (autocommit mode; transactions are explicit)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT_SECONDS,
                isolation_level=None,
                check_same_thread=False,  # only so that close() can reach stragglers
            )
            conn.execute("PRAGMA synchronous=NORMAL")  # safe in WAL mode, much faster
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
            with self._lock:
                self._connections.add(conn)
        return conn

    def release_thread_connection(self) -> None:
        """Close the calling thread's connection (a server thread is about to end)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            self._local.conn = None
            with self._lock:
                self._connections.discard(conn)
            conn.close()

    def close(self) -> None:
        with self._lock:
            conns, self._connections = self._connections, set()
        for conn in conns:
            with suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()

    # --- transactions ---------------------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[Tx]:
        """A write transaction, taken with BEGIN IMMEDIATE so concurrent writers queue up."""
        with write_transaction(self.conn()) as tx:
            yield tx

    @contextmanager
    def read(self) -> Iterator[Tx]:
        """A read transaction: every query inside sees one consistent snapshot."""
        conn = self.conn()
        conn.execute("BEGIN")
        try:
            yield Tx(conn)
        finally:
            conn.execute("COMMIT")

    def query(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        """One read statement outside a transaction."""
        return Tx(self.conn()).all(sql, params)

    # --- meta, credentials, clock ---------------------------------------------------------

    def meta(self, key: str, default: str | None = None) -> str | None:
        row = self.conn().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def credentials(self) -> dict[str, str]:
        rows = self.query(
            "SELECT key, value FROM meta WHERE key IN ('corp_id', 'secret', 'token', 'aes_key')"
        )
        values = {row["key"]: row["value"] for row in rows}
        return {key: values[key] for key in ("corp_id", "secret", "token", "aes_key")}

    def now(self) -> float:
        """The simulator's clock: wall time plus the offset moved by /sandbox/clock."""
        return time.time() + float(self.meta("clock_offset", "0") or 0)

    # --- setup ----------------------------------------------------------------------------

    @staticmethod
    def _migrate(db: Tx) -> None:
        version = int(db.meta("schema_version") or SCHEMA_VERSION)
        for target in sorted(v for v in _MIGRATIONS if v > version):
            for statement in _MIGRATIONS[target]:
                db.execute(statement)
            version = target
        db.set_meta("schema_version", str(max(version, SCHEMA_VERSION)))

    @staticmethod
    def _ensure_corp(db: Tx) -> None:
        # The knowledge base's default group always exists (kf-api.md §2.11).
        if db.one("SELECT 1 FROM knowledge_groups WHERE is_default = 1") is None:
            db.execute(
                "INSERT INTO knowledge_groups (group_id, name, is_default) VALUES (?, ?, 1)",
                (ids.knowledge_id(), rules.DEFAULT_GROUP_NAME),
            )
        if db.meta("corp_id") is not None:
            return
        db.set_meta("corp_id", ids.corp_id())
        db.set_meta("secret", ids.app_secret())
        db.set_meta("token", ids.callback_token())
        db.set_meta("aes_key", ids.encoding_aes_key())
        db.set_meta("clock_offset", "0")
        db.set_meta("created_at", str(int(time.time())))


class Tx:
    """A thin view of a connection inside a transaction, with row-as-dict helpers."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: tuple | dict = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def executemany(self, sql: str, rows: object) -> sqlite3.Cursor:
        return self.conn.executemany(sql, rows)  # type: ignore[arg-type]

    def one(self, sql: str, params: tuple | dict = ()) -> sqlite3.Row | None:
        return self.conn.execute(sql, params).fetchone()

    def all(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        return self.conn.execute(sql, params).fetchall()

    def scalar(self, sql: str, params: tuple | dict = ()) -> object:
        row = self.conn.execute(sql, params).fetchone()
        return row[0] if row else None

    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )


def _enable_wal(conn: sqlite3.Connection) -> None:
    """Put the file in WAL mode, which lets readers proceed while another process writes.

    WAL is a property of the file, so only the first opener changes it. The change needs an
    exclusive lock and SQLite does not apply the busy timeout to it: when several processes
    create the database at the same moment, the losers see "database is locked" at once,
    so retry until the winner is done.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _create_private_file(path: Path) -> None:
    """Create the database file 0600 (and its directory 0700) before SQLite opens it."""
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    os.close(fd)
    # SQLite gives the -wal and -shm files the main file's permissions.


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[Tx]:
    """BEGIN IMMEDIATE … COMMIT on `conn`, rolled back if the body raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield Tx(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
