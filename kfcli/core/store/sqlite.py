"""The embedded store: one SQLite file (WAL), any number of processes on one host.

Writes are `BEGIN IMMEDIATE` transactions (one writer at a time, others wait up to
`BUSY_TIMEOUT`); readers never block writers. Named locks (one puller per account) are file
locks in `<store>.locks/`, released by the kernel when their holder dies. The file and its
WAL are created 0600 in a 0700 directory. `synchronous=NORMAL`: a killed process never loses
a committed transaction (only a power cut can take back the last ones, never corrupting).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kfcli.core.errors import ConfigError, KfError
from kfcli.core.store.base import (
    SCHEMA_VERSION,
    AccountStatus,
    Committed,
    ConsumerStatus,
    CursorMoved,
    Incoming,
    Lock,
    OutboxEntry,
    Pruned,
    Row,
    Store,
    callback_row,
    search_query,
    search_text,
)

BUSY_TIMEOUT = 60.0

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
        body TEXT NOT NULL,
        search TEXT NOT NULL DEFAULT '')""",
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

PAD = "\n\n"
MAX_TERMS = 2000


def _padded(text: str) -> str:
    return text + PAD if text else ""

#: Queries shorter than this (in characters) are not in the trigram index: scanned instead.
TRIGRAM = 3


class _FileLock(Lock):
    def __init__(self, lock: Any) -> None:
        self._lock = lock

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None


class SqliteStore(Store):
    """The store in one SQLite file. Thread-safe: one connection per thread."""

    backend = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.display_url = "sqlite:///" + str(self.path).lstrip("/")
        self._local = threading.local()
        self._pid = os.getpid()
        self._all: list[sqlite3.Connection] = []
        self._numbers: dict[tuple[str, str], tuple[int, int]] = {}
        self._guard = threading.Lock()
        self._create_file()
        self._probe()
        if not os.access(self.path, os.W_OK) or not os.access(self.path.parent, os.W_OK):
            # Checked up front: a store found read-only halfway through a pull would fail
            # after WeCom was asked (the pull is repeated, but the user deserves it now).
            raise ConfigError(f"cannot write to the store {self.path} (read-only)",
                              hint="check the file's and its directory's permissions")
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
        if self._pid != os.getpid():  # a forked child: never use the parent's connections
            with self._guard:
                if self._pid != os.getpid():
                    self._local = threading.local()
                    self._all = []
                    self._pid = os.getpid()
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT,
                                       isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA wal_autocheckpoint=16384")
            except sqlite3.Error as exc:
                raise self._error(exc) from None
            self._local.conn = conn
            with self._guard:
                self._all.append(conn)
        return conn

    def _error(self, exc: sqlite3.Error) -> KfError:
        text = str(exc)
        if "not a database" in text or "malformed" in text:
            return ConfigError(f"the store {self.path} is not a kfcli store ({text}); it was "
                               "left untouched", hint="move it away, or set KFCLI_STORE to "
                               "another file")
        if "readonly" in text or "read-only" in text or "unable to open" in text:
            return ConfigError(f"cannot write to the store {self.path} ({text})",
                               hint="check the file's and its directory's permissions")
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
            raise self._error(exc) from None
        try:
            yield conn
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise self._error(exc) from None
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise self._error(exc) from None

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
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
            version = 0
            if "meta" in names:
                row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'"
                                   ).fetchone()
                version = int(row[0]) if row else 0
        except (sqlite3.Error, ValueError) as exc:
            raise self._error(sqlite3.DatabaseError(f"not a database: {exc}")) from None
        finally:
            conn.close()
        if version == 0 and any(not n.startswith("sqlite_") for n in names):
            raise ConfigError(f"{self.path} is an SQLite database of something else, not a "
                              "kfcli store; it was left untouched",
                              hint="set KFCLI_STORE to a new file, or move this one away")
        if version > SCHEMA_VERSION:
            raise self._newer(version)

    def _newer(self, version: int) -> ConfigError:
        return ConfigError(f"the store {self.path} has schema version {version}, written by a "
                           f"newer kfcli (this one knows {SCHEMA_VERSION}); it was left "
                           "untouched", hint="upgrade kfcli (pip install -U kfcli)")

    def _migrate(self) -> None:
        try:
            version = self._version()
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise self._newer(version)
        try:
            with self._write() as conn:
                if self._version() >= SCHEMA_VERSION:  # another process got there first
                    return

                old = self._version()
                for statement in SCHEMA:
                    conn.execute(statement)
                if 1 <= old < 2:  # version 2: search
                    self._add_search_text(conn)
                for statement in SEARCH_SCHEMA:
                    conn.execute(statement)
                if 1 <= old < 2:
                    conn.execute("INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')")
                conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES "
                             "('schema_version', ?)", (str(SCHEMA_VERSION),))
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    @staticmethod
    def _add_search_text(conn: sqlite3.Connection) -> None:
        """Version 1 -> 2: the search column, filled in for the messages stored so far."""
        import json

        conn.execute("ALTER TABLE messages ADD COLUMN search TEXT NOT NULL DEFAULT ''")
        last = 0
        while True:
            rows = conn.execute("SELECT seq, body FROM messages WHERE seq > ? ORDER BY seq "
                                "LIMIT 5000", (last,)).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            updates = []
            for seq, body in rows:
                try:
                    doc = json.loads(body)
                except (ValueError, RecursionError):
                    continue
                text = search_text(doc) if isinstance(doc, dict) else ""
                if text:
                    updates.append((_padded(text), seq))
            conn.executemany("UPDATE messages SET search = ? WHERE seq = ?", updates)

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
        with self._guard:
            conns, self._all = self._all, []
        if self._pid == os.getpid():
            for conn in conns:
                conn.close()
        self._local = threading.local()

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
            row = conn.execute("SELECT cursor FROM accounts WHERE corp_id = ? AND "
                               "open_kfid = ?", (corp_id, open_kfid)).fetchone()
            if (row[0] if row else None) != expected:
                raise CursorMoved(open_kfid)
            fresh: list[tuple[Row, Incoming]] = []
            corp, account = self._ids(conn, corp_id, open_kfid, create=True)
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
                     callback: dict[str, Any] | None = None) -> None:
        now = time.time()
        with self._write() as conn:
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

    # ------------------------------------------------------------------ reading

    def messages(self, corp_id: str, open_kfid: str | None = None, *,
                 customer: str | None = None, since: int | None = None,
                 until: int | None = None, after_seq: int = 0, limit: int | None = None,
                 newest: bool = False) -> Iterator[Row]:
        where: list[str] = ["seq > ?"]
        args: list[Any] = [after_seq]
        if open_kfid is not None:
            account = self._account(corp_id, open_kfid)
            if account is None:
                return
            where.append("account = ?")
            args.append(account)
        else:
            where.append("corp = (SELECT id FROM corps WHERE corp_id = ?)")
            args.append(corp_id)
        if customer is not None:
            where.append("external_userid = ?")
            args.append(customer)
        if since is not None:
            where.append("send_time >= ?")
            args.append(since)
        if until is not None:
            where.append("send_time < ?")
            args.append(until)
        sql = f"SELECT seq, body FROM messages WHERE {' AND '.join(where)}"
        if limit is not None:
            order = "DESC" if newest else "ASC"
            sql = f"SELECT * FROM ({sql} ORDER BY seq {order} LIMIT {int(limit)}) ORDER BY seq"
        else:
            sql += " ORDER BY seq"
        try:
            cur = self._conn().execute(sql, args)
            while True:
                batch = cur.fetchmany(1000)
                if not batch:
                    return
                for seq, body in batch:
                    yield Row(seq, body)
        except sqlite3.Error as exc:
            raise self._error(exc) from None

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
        if open_kfid is not None:
            account = self._account(corp_id, open_kfid)
            if account is None:
                return
            where.append("m.account = ?")
            args.append(account)
        else:
            where.append("m.corp = (SELECT id FROM corps WHERE corp_id = ?)")
            args.append(corp_id)
        if customer is not None:
            where.append("m.external_userid = ?")
            args.append(customer)
        if since is not None:
            where.append("m.send_time >= ?")
            args.append(since)
        if until is not None:
            where.append("m.send_time < ?")
            args.append(until)
        sql = (f"SELECT m.seq, m.body FROM {source} WHERE {' AND '.join(where)} "
               f"ORDER BY m.send_time {direction}, m.seq {direction}")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        try:
            cur = self._conn().execute(sql, args)
            while True:
                batch = cur.fetchmany(1000)
                if not batch:
                    return
                for seq, body in batch:
                    yield Row(seq, body)
        except sqlite3.Error as exc:
            raise self._error(exc) from None

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
                "INSERT INTO consumers (corp_id, name, open_kfid, position, updated_at) VALUES "
                "(?, ?, ?, ?, ?) ON CONFLICT (corp_id, name, open_kfid) DO UPDATE SET "
                "position = MAX(position, excluded.position), updated_at = excluded.updated_at",
                (corp_id, name, open_kfid, seq, time.time()))

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
            if not dry_run:
                conn.execute(f"DELETE FROM messages WHERE seq IN (SELECT m.seq {old} AND NOT "
                             f"{pending})", (corp_id, before))
                conn.execute(f"DELETE {callbacks}", (corp_id, before, corp_id))
        media = 0 if dry_run else self._prune_media(corp_id)
        return Pruned(before, counts, n_callbacks, kept, media)

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


