"""The shared store: one PostgreSQL database, any number of processes on any number of hosts.

Imported only for a `postgresql://` (or `postgres://`) store URL; needs psycopg 3 and
psycopg_pool (`pip install 'kfcli[postgres]'`). Everything else libpq reads is honoured:
PGPASSWORD, ~/.pgpass, PGSSLMODE, a service file...

* Connections come from a small `psycopg_pool.ConnectionPool` (autocommit; explicit
  transactions where several statements must commit together). A connection that broke, for
  instance across a PostgreSQL restart, is noticed by the pool's check and replaced. A forked
  child makes its own pool and never touches its parent's connections.
* Named locks are session advisory locks, each on a connection of its own (not the pool's, so
  lock holders can never starve the pool), released when that connection ends: a killed
  process releases its locks.
* `commit_page` is one transaction that locks the account row (`FOR UPDATE`), so pages of one
  account commit one after the other, and inserts the page with one statement. Commits of one
  corp take a transaction advisory lock before inserting, so `seq` is handed out in commit
  order, as with SQLite's single writer: a reader that saw seq N never sees a smaller one
  appear later.
* The schema is created on first use and upgraded in place under a transaction advisory lock,
  so processes starting at once do not collide; a schema from a newer kfcli is left untouched.

Failures map to kfcli's errors (DESIGN.md §5): an unreachable server, a timeout or a
connection lost mid-operation is a `NetworkError` (exit 6; a failed pull is simply repeated,
WeCom keeps the messages); a refused login, a missing database or missing rights is a
`ConfigError` (exit 3). The password never appears in any of them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from kfcli.core.errors import ConfigError, KfError, NetworkError
from kfcli.core.redact import redact, register_secret
from kfcli.core.store import display_url
from kfcli.core.store.base import (
    MEDIA_CHUNK,
    MEDIA_TYPES,
    AccountStatus,
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
    like_escape,
    media_id_of,
    one_row,
    search_query,
    search_text,
    sent_document,
    session_state,
    usable_schema,
)
from kfcli.core.store.migrations import Migrator, Operation, check_steps

CONNECT_TIMEOUT = 5  # seconds, for each connection attempt (libpq's connect_timeout)
POOL_MIN = 1
POOL_MAX = 8
POOL_TIMEOUT = 15.0  # seconds to wait for a pooled connection before giving up
PROBE_AFTER = 2.0  # seconds without a pooled connection before checking the server directly
LOCK_POLL = 0.05  # seconds between two attempts at a taken lock
FETCH = 1000  # rows per round trip when streaming messages
#: The latest time WeCom is known to have reached for an account: its newest message's
#: send_time, kfcli's own sends (origin 100, this host's clock) left out.
_CLOCK = ("SELECT send_time FROM messages WHERE corp_id = %s AND open_kfid = %s AND "
          "origin <> 100 ORDER BY send_time DESC LIMIT 1")
EVENT_SCAN = 200_000  # event_customer looks for a code among this many of the newest messages

# Keys of the transaction advisory locks kfcli takes itself (named locks use
# hashtextextended(name, 0), a different function of the name).
_SCHEMA_LOCK = "kfcli store schema"
_COMMIT_LOCK = "kfcli store commit "  # + corp_id
_MEDIA_LOCK = "kfcli store media"

_MEDIA_COLUMNS = ("md.seq, m.msgid, m.open_kfid, m.msgtype, m.send_time, md.media_id, "
                  "md.state, md.attempts, md.next_try, md.error, md.sha256, md.size, "
                  "md.content_type, md.filename, md.archived_at")



def _backfill_search_text(conn: psycopg.Connection) -> None:
    """Version 2: the searchable text of the messages stored so far."""
    _backfill(conn, "", "UPDATE messages SET search_text = %s WHERE seq = %s",
              lambda doc: _text(search_text(doc)))


def _backfill_media(conn: psycopg.Connection) -> None:
    """Version 3: a pending archive entry for each media message stored so far."""
    _backfill(conn, "AND msgtype = ANY(%s)", "INSERT INTO media (media_id, seq, corp_id) "
              "VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
              lambda doc: _text(media_id_of(doc)), columns="corp_id, ",
              args=(list(MEDIA_TYPES),))


class _NoExtension(Exception):
    def __init__(self, extension: Extension, cause: psycopg.Error) -> None:
        super().__init__(extension.name)
        self.extension = extension
        self.cause = cause


@dataclass(frozen=True)
class Extension:
    """A migration step's CREATE EXTENSION, in a savepoint: when the server cannot create
    it, that failure is the one reported (a ConfigError naming the extension)."""

    name: str
    needed_for: str

    def __call__(self, conn: psycopg.Connection) -> None:
        try:
            with conn.transaction():
                conn.execute(f"CREATE EXTENSION IF NOT EXISTS {self.name}")
        except psycopg.Error as exc:
            raise _NoExtension(self, exc) from None


#: What msg send --batch delivered (schema version 3).
_SENT = (
    """CREATE TABLE IF NOT EXISTS sent (
        corp_id text NOT NULL,
        open_kfid text NOT NULL,
        external_userid text NOT NULL,
        msgid text NOT NULL,
        sent_at double precision NOT NULL,
        after_seq bigint NOT NULL DEFAULT 0,
        PRIMARY KEY (corp_id, open_kfid, msgid))""",
    """CREATE INDEX IF NOT EXISTS sent_customer
        ON sent (corp_id, open_kfid, external_userid, after_seq)""",
)

#: Step N brings a store of schema N-1 to N (kfcli.core.store.migrations runs them).
MIGRATIONS: dict[int, tuple[Operation[psycopg.Connection], ...]] = {
    1: (
        "CREATE TABLE IF NOT EXISTS meta (key text PRIMARY KEY, value text NOT NULL)",
        """CREATE TABLE IF NOT EXISTS messages (
            seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            corp_id text NOT NULL,
            open_kfid text NOT NULL,
            msgid text NOT NULL,
            external_userid text NOT NULL DEFAULT '',
            servicer_userid text NOT NULL DEFAULT '',
            origin bigint NOT NULL DEFAULT 0,
            msgtype text NOT NULL DEFAULT '',
            send_time bigint NOT NULL DEFAULT 0,
            stored_at double precision NOT NULL,
            body text NOT NULL,
            UNIQUE (corp_id, msgid))""",
        "CREATE INDEX IF NOT EXISTS messages_account ON messages (corp_id, open_kfid, seq)",
        """CREATE INDEX IF NOT EXISTS messages_customer
            ON messages (corp_id, open_kfid, external_userid, seq)""",
        "CREATE INDEX IF NOT EXISTS messages_time ON messages (corp_id, open_kfid, send_time)",
        """CREATE TABLE IF NOT EXISTS accounts (
            corp_id text NOT NULL,
            open_kfid text NOT NULL,
            cursor text,
            cursor_at double precision,
            last_pull_at double precision,
            last_callback_at double precision,
            requested boolean NOT NULL DEFAULT false,
            request_token text,
            PRIMARY KEY (corp_id, open_kfid))""",
        """CREATE TABLE IF NOT EXISTS outbox (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            corp_id text NOT NULL,
            open_kfid text NOT NULL,
            owner text NOT NULL,
            first_seq bigint NOT NULL,
            last_seq bigint NOT NULL,
            emit_from bigint NOT NULL DEFAULT 0,
            created_at double precision NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS outbox_account ON outbox (corp_id, open_kfid, owner)",
        """CREATE TABLE IF NOT EXISTS callbacks (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            corp_id text NOT NULL,
            open_kfid text NOT NULL,
            received_at double precision NOT NULL,
            create_time bigint,
            fields text NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS callbacks_account ON callbacks (corp_id, open_kfid, id)",
        """CREATE TABLE IF NOT EXISTS consumers (
            corp_id text NOT NULL,
            name text NOT NULL,
            open_kfid text NOT NULL,
            position bigint NOT NULL,
            updated_at double precision NOT NULL,
            PRIMARY KEY (corp_id, name, open_kfid))""",
    ),
    # Search: the searchable text of each message (filled in for those stored so far) and a
    # pg_trgm GIN index on it, which serves LIKE '%…%' for queries of three characters up.
    2: (
        "ALTER TABLE messages ADD COLUMN IF NOT EXISTS search_text text NOT NULL DEFAULT ''",
        _backfill_search_text,
        Extension("pg_trgm", "search"),
        """CREATE INDEX IF NOT EXISTS messages_search
            ON messages USING gin (search_text gin_trgm_ops)""",
    ),
    # The media archive: a row per media message (its state: pending, archived or failed),
    # and the bytes, content-addressed, in parts of MEDIA_PART bytes, so every host sees
    # them and none is ever held whole in memory.
    3: (
        # Replies: what `msg send --batch` answered, and where each consumer started, for
        # `msg history --consumer NAME --ack replies`.
        """CREATE TABLE IF NOT EXISTS replies (
            corp_id text NOT NULL,
            open_kfid text NOT NULL,
            msgid text NOT NULL,
            status text NOT NULL,
            acked_at double precision NOT NULL,
            PRIMARY KEY (corp_id, open_kfid, msgid))""",
        """ALTER TABLE consumers ADD COLUMN IF NOT EXISTS first_position bigint NOT NULL
            DEFAULT 0""",
        *_SENT,
        """CREATE TABLE IF NOT EXISTS media (
            seq bigint PRIMARY KEY REFERENCES messages (seq) ON DELETE CASCADE,
            corp_id text NOT NULL,
            media_id text NOT NULL,
            state text NOT NULL DEFAULT 'pending',
            attempts integer NOT NULL DEFAULT 0,
            next_try double precision NOT NULL DEFAULT 0,
            error text,
            sha256 text,
            size bigint,
            content_type text,
            filename text,
            archived_at double precision)""",
        """CREATE INDEX IF NOT EXISTS media_due ON media (corp_id, next_try)
            WHERE state = 'pending'""",
        "CREATE INDEX IF NOT EXISTS media_sha ON media (sha256)",
        """CREATE TABLE IF NOT EXISTS media_parts (
            sha256 text NOT NULL,
            part integer NOT NULL,
            data bytea NOT NULL,
            PRIMARY KEY (sha256, part))""",
        _backfill_media,
        # (search: one- and two-character queries; statements added below)
        # A query of one or two characters holds no trigram: pg_trgm cannot serve it. This
        # GIN expression index holds every one- and two-character substring of search_text
        # (GIN keeps each key once per row), so `kfcli_short_grams(search_text) @> ARRAY[q]`
        # is exactly "q is a substring" for such a q. PL/pgSQL walks the characters once
        # (substr(t, i, 2) would be quadratic in UTF-8). The index holds what this body
        # returned: never change it in place (a new body is a new function and index).
        """CREATE OR REPLACE FUNCTION kfcli_short_grams(t text) RETURNS text[]
            LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
        DECLARE
            c text;
            prev text;
            grams text[] := '{}';
        BEGIN
            FOREACH c IN ARRAY string_to_array(t, NULL) LOOP
                grams := grams || c;
                IF prev IS NOT NULL THEN
                    grams := grams || (prev || c);
                END IF;
                prev := c;
            END LOOP;
            RETURN grams;
        END $$""",
        """CREATE INDEX IF NOT EXISTS messages_search_short
            ON messages USING gin (kfcli_short_grams(search_text))""",
    ),
    # The receiver's operations: when each account was last pulled on WeCom's clock and its
    # latest gap, and the callbacks taken within the freshness window, by signature.
    # (A table of its own rather than new columns of `accounts`: ALTER TABLE would lock a
    # table that running processes of the previous version use.)
    4: (
        """CREATE TABLE IF NOT EXISTS pulls (
            corp_id text NOT NULL,
            open_kfid text NOT NULL,
            wecom_pulled_at double precision,
            gap_since double precision,
            gap_until double precision,
            PRIMARY KEY (corp_id, open_kfid))""",
        """CREATE TABLE IF NOT EXISTS seen_callbacks (
            signature text PRIMARY KEY,
            seen_at double precision NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS seen_callbacks_at ON seen_callbacks (seen_at)",
        # What msg send --batch delivered, for stores of builds of schema 3 that did not
        # have it yet (its statements in step 3).
        *_SENT,
    ),
    # Customers' nicknames from customer/batchget, and when each was fetched
    # (kfcli.core.names).
    5: (
        """CREATE TABLE IF NOT EXISTS nicknames (
            corp_id text NOT NULL,
            external_userid text NOT NULL,
            nickname text NOT NULL,
            fetched_at double precision NOT NULL,
            PRIMARY KEY (corp_id, external_userid))""",
    ),
    # Whole conversations: kfcli's sends are stored as messages (origin 100); each
    # conversation's turns (the reply window, msg inbox) are read from this index.
    6: (
        """CREATE INDEX IF NOT EXISTS messages_turns
            ON messages (corp_id, open_kfid, external_userid, origin, seq)""",
    ),
    # A send's message waiting to be archived (SQLite defers; here always NULL: the same
    # schema on both).
    7: (
        "ALTER TABLE sent ADD COLUMN IF NOT EXISTS body text",
        "CREATE INDEX IF NOT EXISTS sent_unarchived ON sent (corp_id) WHERE body IS NOT NULL",
    ),
}
check_steps(MIGRATIONS)

_SET_META = ("INSERT INTO meta (key, value) VALUES (%s, %s) "
             "ON CONFLICT (key) DO UPDATE SET value = excluded.value")

_ENSURE_ACCOUNT = ("INSERT INTO accounts (corp_id, open_kfid) VALUES (%s, %s) "
                   "ON CONFLICT (corp_id, open_kfid) DO NOTHING")

# One statement for the whole page; ORDER BY n hands out seqs in page order, and ON CONFLICT
# skips what is stored already (and a msgid repeated within the page, after its first time).
_INSERT_PAGE = """
    INSERT INTO messages (corp_id, open_kfid, msgid, external_userid, servicer_userid, origin,
                          msgtype, send_time, stored_at, body, search_text)
    SELECT %s, %s, m.msgid, m.external_userid, m.servicer_userid, m.origin, m.msgtype,
           m.send_time, %s, m.body, m.search_text
    FROM unnest(%b::text[], %b::text[], %b::text[], %b::bigint[], %b::text[], %b::bigint[],
                %b::text[], %b::text[])
         WITH ORDINALITY AS m(msgid, external_userid, servicer_userid, origin, msgtype,
                              send_time, body, search_text, n)
    ORDER BY m.n
    ON CONFLICT (corp_id, msgid) DO NOTHING
    RETURNING seq, msgid"""

# cursor_at moves only when the cursor does (the right-hand sides see the old row).
_MOVE_CURSOR = """
    UPDATE accounts SET cursor = %(cursor)s, last_pull_at = %(now)s,
        cursor_at = CASE WHEN cursor IS NOT DISTINCT FROM %(cursor)s THEN cursor_at
                         ELSE %(now)s END
    WHERE corp_id = %(corp_id)s AND open_kfid = %(open_kfid)s"""

# Two takers at once: the second waits for the first's row lock, then finds requested false.
_TAKE_REQUEST = """
    WITH old AS (SELECT corp_id, open_kfid, request_token FROM accounts
                 WHERE corp_id = %s AND open_kfid = %s AND requested FOR UPDATE)
    UPDATE accounts a SET requested = false, request_token = NULL FROM old
    WHERE a.corp_id = old.corp_id AND a.open_kfid = old.open_kfid
    RETURNING old.request_token"""

# Same columns, order and meaning as SQLite's; COLLATE "C" sorts like SQLite (by code point)
# whatever the database's collation.
_STATUS = """
    SELECT k.open_kfid, COALESCE(m.n, 0), m.oldest, m.newest, a.cursor, a.cursor_at,
           a.last_pull_at, a.last_callback_at, COALESCE(o.n, 0)
    FROM (SELECT open_kfid FROM accounts WHERE corp_id = %(corp_id)s
          UNION SELECT DISTINCT open_kfid FROM messages WHERE corp_id = %(corp_id)s) k
    LEFT JOIN accounts a ON a.corp_id = %(corp_id)s AND a.open_kfid = k.open_kfid
    LEFT JOIN (SELECT open_kfid, COUNT(*) n, MIN(send_time) oldest, MAX(send_time) newest
               FROM messages WHERE corp_id = %(corp_id)s GROUP BY open_kfid) m
           ON m.open_kfid = k.open_kfid
    LEFT JOIN (SELECT open_kfid, COUNT(*) n FROM outbox WHERE corp_id = %(corp_id)s
               GROUP BY open_kfid) o ON o.open_kfid = k.open_kfid
    ORDER BY k.open_kfid COLLATE "C"
"""

_PASSWORD_PARAM = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


# ---------------------------------------------------------------------------- process state

# Guards making a pool; a fresh one in a forked child (the parent's may have been held by
# another thread at the time of the fork).
_pool_lock = threading.Lock()
# The parents' pools a forked child inherited: kept referenced so that nothing in the child
# ever finalizes them (their connections belong to the parent).
_inherited: list[Any] = []


def _after_fork_in_child() -> None:
    global _pool_lock
    _pool_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _RedactLog(logging.Filter):
    """psycopg_pool logs connection failures; they pass through `redact` like kfcli's own."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to logging's own error handling
            return True
        record.msg, record.args = _PASSWORD_PARAM.sub(r"\1****", redact(message)), None
        return True


def _quiet_psycopg_logs() -> None:
    # NullHandler: without any logging configured, the pool's warnings during an outage would
    # reach stderr through logging's last resort; an application that configures logging
    # still gets them (redacted).
    for name in ("psycopg", "psycopg.pool"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactLog) for f in logger.filters):
            logger.addFilter(_RedactLog())
    base = logging.getLogger("psycopg")
    if not any(isinstance(h, logging.NullHandler) for h in base.handlers):
        base.addHandler(logging.NullHandler())


_quiet_psycopg_logs()


# ---------------------------------------------------------------------------- locks


class _AdvisoryLock(Lock):
    """A session advisory lock on a connection of its own. Released by `release()`, or by
    PostgreSQL when the connection ends (its process died, the server restarted)."""

    def __init__(self, conn: psycopg.Connection, key: str) -> None:
        self._conn: psycopg.Connection | None = conn
        self._key = key
        self._pid = os.getpid()
        self._guard = threading.Lock()

    def held(self) -> bool:
        # A session lock lasts as long as its session: the connection answering means the
        # lock is still ours; a server restart ended both.
        with self._guard:
            conn = self._conn
            if conn is None or self._pid != os.getpid():
                return False
            try:
                conn.execute("SELECT 1")
            except psycopg.Error:
                return False
            return True

    def release(self) -> None:
        with self._guard:
            conn, self._conn = self._conn, None
        if conn is None or self._pid != os.getpid():  # a forked child: the parent's lock
            return
        try:
            # Unlock explicitly: once close() returns, the server may still take a moment to
            # end the session, and the next taker must not find the lock still held.
            conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (self._key,))
        except psycopg.Error:
            pass  # the connection broke: the server ended the session, and the lock with it
        finally:
            conn.close()


# ---------------------------------------------------------------------------- the store


class PostgresStore(Store):
    """The store in one PostgreSQL database. Thread-safe (a connection pool); a forked child
    makes its own pool on first use."""

    backend = "postgresql"

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.display_url = display_url(url)
        self._url = url
        self._encoding: str | None = None  # server_encoding, see _server_encoding
        self._secrets = self._register_secrets(url)
        try:
            params = conninfo_to_dict(url)
        except psycopg.Error as exc:
            raise ConfigError(f"store URL {self.display_url!r} is malformed "
                              f"({self._clean(str(exc))})",
                              hint="postgresql://USER@HOST:5432/DBNAME (the password in "
                              "PGPASSWORD or ~/.pgpass, or in the URL)") from None
        host = (params.get("host") or params.get("hostaddr") or os.environ.get("PGHOST")
                or os.environ.get("PGHOSTADDR") or "localhost")
        port = params.get("port") or os.environ.get("PGPORT") or "5432"
        self._target = f"{host}:{port}"
        self._kwargs: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in params and not os.environ.get("PGCONNECT_TIMEOUT"):
            self._kwargs["connect_timeout"] = CONNECT_TIMEOUT
        if "application_name" not in params and not os.environ.get("PGAPPNAME"):
            self._kwargs["application_name"] = "kfcli"
        self._pid = os.getpid()
        self._pool: ConnectionPool | None = None
        # A connection of our own first: its failure says why (a pool only times out).
        conn = self._connect()
        try:
            if migrate:
                self._migrate(conn)
            else:
                self._usable(self._meta(conn, exists=False))
        finally:
            conn.close()
        self._get_pool()

    def __repr__(self) -> str:
        return f"<PostgresStore {self.display_url}>"

    # ------------------------------------------------------------------ connections

    @staticmethod
    def _register_secrets(url: str) -> list[str]:
        from urllib.parse import unquote

        found: list[str] = []
        try:
            raw = urlsplit(url).password
        except ValueError:
            raw = None
        for value in (raw, unquote(raw) if raw else None, os.environ.get("PGPASSWORD")):
            if value and value not in found:
                found.append(value)
                register_secret(value)
        try:
            password = str(conninfo_to_dict(url).get("password") or "")
        except psycopg.Error:
            password = None
        if password and password not in found:
            found.append(password)
            register_secret(password)
        return sorted(found, key=len, reverse=True)

    def _clean(self, text: str) -> str:
        """An error text safe to show: no URL with its password, no password at all, one
        line."""
        text = text.replace(self._url, self.display_url)
        for secret in self._secrets:
            text = text.replace(secret, "****")
        text = _PASSWORD_PARAM.sub(r"\1****", redact(text))
        # libpq puts its sentences on separate lines; keep them apart on one.
        lines = [" ".join(line.split()) for line in text.splitlines() if line.strip()]
        return "; ".join(line.rstrip(".;") for line in lines)

    def _error(self, exc: BaseException) -> KfError:
        text = self._clean(str(exc))
        lowered = text.lower()
        sqlstate = getattr(exc, "sqlstate", None) or ""
        if (sqlstate.startswith("28") or "authentication failed" in lowered
                or "no password supplied" in lowered or "pg_hba.conf" in lowered
                or ("role" in lowered and "does not exist" in lowered)):
            return ConfigError(f"PostgreSQL at {self._target} refused the login ({text})",
                               hint="check the user and the password: in the store URL, "
                               "PGPASSWORD or ~/.pgpass")
        if sqlstate == "3D000" or ("database" in lowered and "does not exist" in lowered):
            return ConfigError(f"the database of the store {self.display_url} does not exist "
                               f"({text})", hint="create it (createdb DBNAME) or fix the "
                               "database name in the store URL")
        if sqlstate == "42501" or "permission denied" in lowered:
            return ConfigError(f"PostgreSQL denied access to the store {self.display_url} "
                               f"({text})", hint="grant the user the rights it needs (it "
                               "creates its tables on first use: GRANT CREATE ON SCHEMA "
                               "public TO USER), or use another user")
        if sqlstate == "25006":
            return StoreUnwritable(f"the store {self.display_url} is on a read-only server "
                               f"({text})", hint="point the store URL at the primary server")
        if sqlstate in ("40P01", "40001"):  # a deadlock or a serialization failure
            return KfError(f"the PostgreSQL store at {self._target} gave up a transaction "
                           f"that met another ({text})", hint="a passing conflict between "
                           "processes: trying again is safe")
        if isinstance(exc, psycopg.OperationalError):
            return NetworkError(f"cannot reach the PostgreSQL store at {self._target} ({text})",
                                hint="check that PostgreSQL runs there and accepts "
                                "connections; what was not stored is pulled again on the "
                                "next run")
        return KfError(f"PostgreSQL store {self.display_url}: {text}")

    def _connect(self) -> psycopg.Connection:
        """A connection of its own, outside the pool."""
        try:
            return psycopg.connect(self._url, **self._kwargs)
        except psycopg.Error as exc:
            raise self._error(exc) from None

    def _new_pool(self) -> ConnectionPool:
        pool: ConnectionPool = ConnectionPool(
            self._url, kwargs=dict(self._kwargs), min_size=POOL_MIN, max_size=POOL_MAX,
            check=ConnectionPool.check_connection, timeout=POOL_TIMEOUT, name="kfcli-store",
            open=False)
        pool.open(wait=False)
        return pool

    def _get_pool(self) -> ConnectionPool:
        pool = self._pool
        if pool is not None and self._pid == os.getpid():
            return pool
        with _pool_lock:
            if self._pid != os.getpid():  # a forked child: never use the parent's pool
                if self._pool is not None:
                    _inherited.append(self._pool)
                self._pool = None
                self._pid = os.getpid()
            if self._pool is None:
                self._pool = self._new_pool()
            return self._pool

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        """A pooled connection; psycopg's failures in the block become kfcli errors."""
        pool = self._get_pool()
        try:
            conn = self._getconn(pool)
            try:
                yield conn
            finally:
                pool.putconn(conn)  # a broken one is discarded, and replaced in the background
        except psycopg.Error as exc:
            raise self._error(exc) from None

    def _getconn(self, pool: ConnectionPool) -> psycopg.Connection:
        deadline = time.monotonic() + POOL_TIMEOUT
        while True:
            try:
                return pool.getconn(timeout=max(0.01, min(PROBE_AFTER,
                                                          deadline - time.monotonic())))
            except PoolTimeout:
                pass
            # Nothing yet: a pool only retries, so ask the server with a connection of our
            # own, which fails at once, saying why, when it is down (else: the pool is busy).
            self._connect().close()
            if time.monotonic() >= deadline - 0.01:
                raise NetworkError(f"no connection to the PostgreSQL store at {self._target} "
                                   f"became free within {POOL_TIMEOUT:.0f} s", hint="try "
                                   "again; check that PostgreSQL accepts enough connections")

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection]:
        with self._connection() as conn, conn.transaction():
            yield conn

    def _stream(self, sql: str, args: Sequence[Any], name: str
                ) -> Iterator[tuple[Any, ...]]:
        """The rows of a query through a server-side cursor `name`: memory stays flat however
        many match. It lives in a transaction, rolled back when the caller stops early."""
        with self._connection() as conn, conn.transaction(), conn.cursor(name=name) as cur:
            cur.execute(sql, args)
            while True:
                batch = cur.fetchmany(FETCH)
                if not batch:
                    return
                yield from batch

    def _read(self, sql: str, args: Sequence[Any] | dict[str, Any] = ()
              ) -> list[tuple[Any, ...]]:
        with self._connection() as conn:
            return conn.execute(sql, args).fetchall()

    # ------------------------------------------------------------------ schema

    def _version(self, conn: psycopg.Connection) -> int:
        row = conn.execute("SELECT to_regclass('meta') IS NOT NULL").fetchone()
        if not row or not row[0]:
            return 0
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        try:
            return int(row[0]) if row else 0
        except ValueError:
            assert row is not None
            raise ConfigError(f"the store {self.display_url} is not a kfcli store (its meta "
                              f"table says schema_version {row[0]!r}); it was left untouched",
                              hint="use another database for the store") from None

    def _meta(self, conn: psycopg.Connection, *, exists: bool = True) -> dict[str, str]:
        if not exists and not self._version(conn):
            return {}
        return dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('schema_version', "
                                 "'compatible_from', 'migrated_by')").fetchall())

    def _usable(self, meta: dict[str, str]) -> bool:
        return usable_schema(meta, self.display_url)

    def schema_notes(self) -> dict[str, str]:
        with self._connection() as conn:
            meta = self._meta(conn, exists=False)
        return {k: v for k, v in meta.items() if k != "schema_version"}

    def migrate(self) -> tuple[int, int]:
        with self._connection() as conn:
            return self._migrate(conn)

    def _migrate(self, conn: psycopg.Connection) -> tuple[int, int]:
        try:
            return _Schema(self, conn).run()
        except psycopg.Error as exc:
            raise self._error(exc) from None
        except _NoExtension as exc:
            name = exc.extension.name
            raise ConfigError(
                f"the store {self.display_url} needs the PostgreSQL extension {name} "
                f"({exc.extension.needed_for}), which could not be created "
                f"({self._clean(str(exc.cause))})",
                hint="install PostgreSQL's contrib package on the server and run "
                f"`CREATE EXTENSION {name};` in the database as a superuser (or a user "
                "allowed to), then run kfcli again") from None

    def schema_version(self) -> int:
        with self._connection() as conn:
            return self._version(conn)

    def close(self) -> None:
        with _pool_lock:
            pool, self._pool = self._pool, None
            mine = self._pid == os.getpid()
        if pool is None:
            return
        if mine:
            pool.close(timeout=5.0)
        else:
            _inherited.append(pool)

    # ------------------------------------------------------------------ locks

    def lock(self, name: str, *, wait: float = 0.0) -> Lock | None:
        conn = self._connect()
        deadline = time.monotonic() + max(wait, 0.0)
        try:
            while True:
                row = conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))",
                                   (name,)).fetchone()
                if row and row[0]:
                    return _AdvisoryLock(conn, name)
                left = deadline - time.monotonic()
                if left <= 0:
                    conn.close()
                    return None
                time.sleep(min(LOCK_POLL, left))
        except psycopg.Error as exc:
            conn.close()
            raise self._error(exc) from None
        except BaseException:
            conn.close()
            raise

    # ------------------------------------------------------------------ pulling

    def cursor(self, corp_id: str, open_kfid: str) -> str | None:
        rows = self._read("SELECT cursor FROM accounts WHERE corp_id = %s AND open_kfid = %s",
                          (corp_id, open_kfid))
        return rows[0][0] if rows else None

    def commit_page(self, corp_id: str, open_kfid: str, *, expected: str | None,
                    cursor: str, messages: Sequence[Incoming], owner: str | None,
                    emit_from: int = 0) -> Committed:
        now = time.time()
        page = [(_text(m.msgid), _text(m.external_userid), _text(m.servicer_userid), m.origin,
                 _text(m.msgtype), m.send_time, _text(m.text), _text(m.searchable()))
                for m in messages]
        with self._transaction() as conn:
            # A store migrated under this process to a schema it cannot use: stop before
            # storing anything it would store incompletely (once per page: one small read).
            self._usable(self._meta(conn))
            conn.execute(_ENSURE_ACCOUNT, (corp_id, open_kfid))
            row = conn.execute("SELECT cursor FROM accounts WHERE corp_id = %s AND "
                               "open_kfid = %s FOR UPDATE", (corp_id, open_kfid)).fetchone()
            if (row[0] if row else None) != expected:
                raise CursorMoved(open_kfid)
            fresh: list[tuple[Row, int]] = []
            if page:
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))",
                             (_COMMIT_LOCK + corp_id,))
                columns = [list(column) for column in zip(*page, strict=True)]
                seqs = {msgid: seq for seq, msgid in conn.execute(
                    _INSERT_PAGE, (corp_id, open_kfid, now, *columns)).fetchall()}
                media = []
                for m, (msgid, _e, _s, _o, _t, send_time, text, _q) in zip(messages, page,
                                                                          strict=True):
                    seq = seqs.pop(msgid, None)  # pop: a msgid repeated in a page counts once
                    if seq is not None:
                        fresh.append((Row(seq, text), send_time))
                        if m.media_id:
                            media.append((seq, corp_id, _text(m.media_id)))
                if media:  # to be archived: noted with the message, so never forgotten
                    with conn.cursor() as cur:
                        cur.executemany("INSERT INTO media (seq, corp_id, media_id) VALUES "
                                        "(%s, %s, %s) ON CONFLICT DO NOTHING", media)
            new = [r for r, send_time in fresh if send_time >= emit_from]
            if fresh:  # followers and consumers on any host wake at the commit
                conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, corp_id))
            conn.execute(_MOVE_CURSOR, {"cursor": cursor, "now": now, "corp_id": corp_id,
                                        "open_kfid": open_kfid})
            outbox_id = None
            if owner is not None and new:
                outbox_id = one_row(conn.execute(
                    "INSERT INTO outbox (corp_id, open_kfid, owner, first_seq, last_seq, "
                    "emit_from, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                    (corp_id, open_kfid, owner, new[0].seq, new[-1].seq, emit_from, now),
                ).fetchone())[0]
        return Committed(new, outbox_id)

    def set_cursor(self, corp_id: str, open_kfid: str, cursor: str | None) -> None:
        with self._connection() as conn:
            conn.execute(
                "INSERT INTO accounts (corp_id, open_kfid, cursor, cursor_at) VALUES "
                "(%s, %s, %s, %s) ON CONFLICT (corp_id, open_kfid) DO UPDATE SET cursor = "
                "excluded.cursor, cursor_at = excluded.cursor_at",
                (corp_id, open_kfid, cursor, time.time()))

    def request_pull(self, corp_id: str, open_kfid: str, *, token: str | None,
                     callback: dict[str, Any] | None = None,
                     signature: str | None = None) -> bool:
        now = time.time()
        with self._transaction() as conn:
            if signature is not None and not conn.execute(
                    "INSERT INTO seen_callbacks (signature, seen_at) VALUES (%s, %s) "
                    "ON CONFLICT (signature) DO NOTHING", (signature, now)).rowcount:
                return False
            conn.execute(
                "INSERT INTO accounts (corp_id, open_kfid, requested, request_token, "
                "last_callback_at) VALUES (%s, %s, true, %s, %s) ON CONFLICT (corp_id, "
                "open_kfid) DO UPDATE SET requested = true, request_token = "
                "COALESCE(excluded.request_token, accounts.request_token), last_callback_at = "
                "COALESCE(excluded.last_callback_at, accounts.last_callback_at)",
                (corp_id, open_kfid, token, now if callback is not None else None))
            if callback is not None:
                created, fields = callback_row(callback)
                conn.execute("INSERT INTO callbacks (corp_id, open_kfid, received_at, "
                             "create_time, fields) VALUES (%s, %s, %s, %s, %s)",
                             (corp_id, open_kfid, now, created, _text(fields)))
        return True

    def take_request(self, corp_id: str, open_kfid: str) -> tuple[bool, str | None]:
        rows = self._read(_TAKE_REQUEST, (corp_id, open_kfid))
        return (True, rows[0][0]) if rows else (False, None)

    def has_request(self, corp_id: str, open_kfid: str) -> bool:
        rows = self._read("SELECT requested FROM accounts WHERE corp_id = %s AND "
                          "open_kfid = %s", (corp_id, open_kfid))
        return bool(rows and rows[0][0])

    def first_callback_time(self, corp_id: str, open_kfid: str) -> int | None:
        rows = self._read("SELECT MIN(create_time) FROM callbacks WHERE corp_id = %s AND "
                          "open_kfid = %s", (corp_id, open_kfid))
        return int(rows[0][0]) if rows and rows[0][0] is not None else None

    def accounts(self, corp_id: str) -> list[str]:
        return [r[0] for r in self._read(
            "SELECT open_kfid FROM accounts WHERE corp_id = %s AND (cursor IS NOT NULL OR "
            "requested) "
            "ORDER BY open_kfid COLLATE \"C\"", (corp_id,))]

    # ------------------------------------------------------------------ outbox

    def outbox(self, corp_id: str, open_kfid: str, *, owner_prefix: str) -> list[OutboxEntry]:
        rows = self._read(
            "SELECT id, open_kfid, owner, first_seq, last_seq, emit_from FROM outbox WHERE "
            "corp_id = %s AND open_kfid = %s AND starts_with(owner, %s) ORDER BY id",
            (corp_id, open_kfid, owner_prefix))
        return [OutboxEntry(*r) for r in rows]

    def outbox_rows(self, corp_id: str, entry: OutboxEntry) -> list[Row]:
        rows = self._read(
            "SELECT seq, body FROM messages WHERE corp_id = %s AND open_kfid = %s AND seq "
            "BETWEEN %s AND %s AND send_time >= %s ORDER BY seq",
            (corp_id, entry.open_kfid, entry.first_seq, entry.last_seq, entry.emit_from))
        return [Row(*r) for r in rows]

    def outbox_done(self, ids: Collection[int]) -> None:
        if not ids:
            return
        with self._connection() as conn:
            conn.execute("DELETE FROM outbox WHERE id = ANY(%s::bigint[])", (list(ids),))

    def outbox_progress(self, entry_id: int, first_seq: int) -> None:
        with self._transaction() as conn:
            conn.execute("UPDATE outbox SET first_seq = %s WHERE id = %s", (first_seq, entry_id))

    def outbox_of(self, corp_id: str, owner: str) -> list[OutboxEntry]:
        rows = self._read("SELECT id, open_kfid, owner, first_seq, last_seq, emit_from FROM "
                          "outbox WHERE corp_id = %s AND owner = %s ORDER BY id",
                          (corp_id, owner))
        return [OutboxEntry(*r) for r in rows]

    def outbox_owners(self, corp_id: str, owner_prefix: str) -> list[str]:
        return [r[0] for r in self._read(
            "SELECT DISTINCT owner FROM outbox WHERE corp_id = %s AND starts_with(owner, %s)",
            (corp_id, owner_prefix))]

    def adopt_outbox(self, corp_id: str, owner: str, new_owner: str) -> int:
        with self._transaction() as conn:
            return conn.execute("UPDATE outbox SET owner = %s WHERE corp_id = %s AND "
                                "owner = %s", (new_owner, corp_id, owner)).rowcount

    def outbox_pending(self, corp_id: str) -> int:
        rows = self._read("SELECT COALESCE(SUM(last_seq - first_seq + 1), 0) FROM outbox "
                          "WHERE corp_id = %s", (corp_id,))
        return int(rows[0][0]) if rows else 0

    # ------------------------------------------------------------------ operations

    def pull_states(self, corp_id: str, open_kfid: str | None = None) -> list[PullState]:
        sql = ("SELECT a.open_kfid, a.requested, a.last_pull_at, a.last_callback_at, "
               "p.wecom_pulled_at, p.gap_since, p.gap_until FROM accounts a LEFT JOIN pulls p "
               "ON p.corp_id = a.corp_id AND p.open_kfid = a.open_kfid WHERE a.corp_id = %s")
        args: list[Any] = [corp_id]
        if open_kfid is not None:
            sql += " AND a.open_kfid = %s"
            args.append(open_kfid)
        rows = self._read(sql + ' ORDER BY a.open_kfid COLLATE "C"', args)
        return [PullState(r[0], bool(r[1]), *r[2:]) for r in rows]

    def note_pulled(self, corp_id: str, open_kfid: str, wecom_time: float) -> None:
        with self._transaction() as conn:
            conn.execute("INSERT INTO pulls (corp_id, open_kfid, wecom_pulled_at) VALUES "
                         "(%s, %s, %s) ON CONFLICT (corp_id, open_kfid) DO UPDATE SET "
                         "wecom_pulled_at = GREATEST(COALESCE(pulls.wecom_pulled_at, 0), "
                         "excluded.wecom_pulled_at)", (corp_id, open_kfid, wecom_time))

    def note_gap(self, corp_id: str, open_kfid: str, since: float, until: float) -> None:
        with self._transaction() as conn:
            conn.execute("INSERT INTO pulls (corp_id, open_kfid, gap_since, gap_until) VALUES "
                         "(%s, %s, %s, %s) ON CONFLICT (corp_id, open_kfid) DO UPDATE SET "
                         "gap_since = excluded.gap_since, gap_until = excluded.gap_until",
                         (corp_id, open_kfid, since, until))

    def clock_skew(self, corp_id: str) -> float | None:
        rows = self._read("SELECT create_time - received_at FROM callbacks WHERE corp_id = %s "
                          "AND create_time IS NOT NULL ORDER BY id DESC LIMIT 1", (corp_id,))
        return float(rows[0][0]) if rows else None

    def forget_signatures(self, before: float) -> int:
        with self._transaction() as conn:
            return conn.execute("DELETE FROM seen_callbacks WHERE seen_at < %s",
                                (before,)).rowcount

    def probe(self) -> None:
        with self._transaction() as conn:
            conn.execute("INSERT INTO meta (key, value) VALUES ('probe', %s) ON CONFLICT (key) "
                         "DO UPDATE SET value = excluded.value", (str(time.time()),))

    # ------------------------------------------------------------------ reading

    @staticmethod
    def _filters(corp_id: str, open_kfid: str | None, customer: str | None,
                 since: int | None, until: int | None) -> tuple[list[str], list[Any]]:
        """The WHERE clauses `messages` and `search` share, and their arguments."""
        where: list[str] = ["corp_id = %s"]
        args: list[Any] = [corp_id]
        if open_kfid is not None:
            where.append("open_kfid = %s")
            args.append(open_kfid)
        if customer is not None:
            where.append("external_userid = %s")
            args.append(customer)
        if since is not None:
            where.append("send_time >= %s")
            args.append(since)
        if until is not None:
            where.append("send_time < %s")
            args.append(until)
        return where, args

    def watch(self, corp_id: str) -> Watch:
        return _Listener(self, corp_id)

    def messages(self, corp_id: str, open_kfid: str | None = None, *,
                 customer: str | None = None, since: int | None = None,
                 until: int | None = None, after_seq: int = 0, limit: int | None = None,
                 newest: bool = False) -> Iterator[Row]:
        where, args = self._filters(corp_id, open_kfid, customer, since, until)
        where.append("seq > %s")
        args.append(after_seq)
        sql = f"SELECT seq, body FROM messages WHERE {' AND '.join(where)}"
        if limit is not None and int(limit) >= 0:  # SQLite reads a negative LIMIT as none
            order = "DESC" if newest else "ASC"
            sql = (f"SELECT seq, body FROM ({sql} ORDER BY seq {order} LIMIT {int(limit)}) t "
                   "ORDER BY seq")
        else:
            sql += " ORDER BY seq"
        # A server-side cursor: memory stays flat however many rows match. It lives in a
        # transaction, rolled back when the caller stops early.
        for seq, body in self._stream(sql, args, "kfcli_messages"):
            yield Row(seq, body)

    def search(self, corp_id: str, text: str, *, open_kfid: str | None = None,
               customer: str | None = None, since: int | None = None,
               until: int | None = None, limit: int | None = None,
               oldest_first: bool = False) -> Iterator[Row]:
        query = _text(search_query(text))
        where, args = self._filters(corp_id, open_kfid, customer, since, until)
        order = "ASC" if oldest_first else "DESC"
        tail = f" LIMIT {int(limit)}" if limit is not None and int(limit) >= 0 else ""
        if len(query) >= 3:  # the trigram index serves the LIKE
            where.append("search_text LIKE %s")
            args.append("%" + like_escape(query) + "%")
        else:
            # strpos, not LIKE: pg_trgm would offer to serve a LIKE without a trigram by
            # reading its whole index (seconds on a million messages). The index of
            # kfcli_short_grams (schema 3) finds the rows; not on a SQL_ASCII database,
            # whose characters are bytes to PostgreSQL: a scan there.
            where.append("strpos(search_text, %s) > 0")
            args.append(query)
            if self._server_encoding() != "SQL_ASCII":
                where.append("kfcli_short_grams(search_text) @> ARRAY[%s::text]")
                args.append(query)
        # The matches come from the index first (MATERIALIZED: the planner must not walk
        # the whole table newest first, hoping to meet `limit` matches early).
        sql = (f"WITH hits AS MATERIALIZED (SELECT seq, send_time, body FROM messages "
               f"WHERE {' AND '.join(where)}) SELECT seq, body FROM hits ORDER BY "
               f"send_time {order}, seq {order}{tail}")
        for seq, body in self._stream(sql, args, "kfcli_search"):
            yield Row(seq, body)

    def _server_encoding(self) -> str:
        """The database's encoding (it never changes): asked once."""
        if self._encoding is None:
            value = self._read("SHOW server_encoding")[0][0]
            # (text arrives as bytes from a SQL_ASCII database)
            self._encoding = value.decode() if isinstance(value, bytes) else str(value)
        return self._encoding

    def last_seq(self, corp_id: str, open_kfid: str | None = None) -> int:
        if open_kfid is None:
            rows = self._read("SELECT MAX(seq) FROM messages WHERE corp_id = %s", (corp_id,))
        else:
            rows = self._read("SELECT MAX(seq) FROM messages WHERE corp_id = %s AND "
                              "open_kfid = %s", (corp_id, open_kfid))
        return rows[0][0] or 0

    def seq_before(self, corp_id: str, open_kfid: str, send_time: int) -> int:
        rows = self._read("SELECT MAX(seq) FROM messages WHERE corp_id = %s AND "
                          "open_kfid = %s AND send_time < %s", (corp_id, open_kfid, send_time))
        return rows[0][0] or 0

    # ------------------------------------------------------------------ consumers

    def consumer_position(self, corp_id: str, name: str, open_kfid: str) -> int | None:
        rows = self._read("SELECT position FROM consumers WHERE corp_id = %s AND name = %s "
                          "AND open_kfid = %s", (corp_id, name, open_kfid))
        return rows[0][0] if rows else None

    def set_consumer_position(self, corp_id: str, name: str, open_kfid: str,
                              seq: int) -> None:
        with self._connection() as conn:
            conn.execute(
                "INSERT INTO consumers (corp_id, name, open_kfid, position, updated_at, "
                "first_position) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (corp_id, name, "
                "open_kfid) DO UPDATE SET position = GREATEST(consumers.position, "
                "excluded.position), updated_at = excluded.updated_at",
                (corp_id, name, open_kfid, seq, time.time(), seq))

    # ------------------------------------------------------------------ replies

    def ack_replies(self, corp_id: str, open_kfid: str, msgids: Collection[str], *,
                    status: str = "replied") -> None:
        if not msgids:
            return
        now = time.time()
        with self._connection() as conn, conn.cursor() as cur:
            cur.executemany("INSERT INTO replies (corp_id, open_kfid, msgid, status, acked_at) "
                            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                            [(corp_id, open_kfid, _text(m), status, now) for m in msgids])

    def nicknames(self, corp_id: str, external_userids: Collection[str]
                  ) -> dict[str, tuple[str, float]]:
        if not external_userids:
            return {}
        rows = self._read("SELECT external_userid, nickname, fetched_at FROM nicknames WHERE "
                          "corp_id = %s AND external_userid = ANY(%s::text[])",
                          (corp_id, [_text(i) for i in external_userids]))
        return {r[0]: (r[1], r[2]) for r in rows}

    def save_nicknames(self, corp_id: str, names: Mapping[str, str], fetched_at: float
                       ) -> None:
        with self._connection() as conn:
            conn.cursor().executemany(
                "INSERT INTO nicknames (corp_id, external_userid, nickname, fetched_at) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (corp_id, external_userid) DO UPDATE "
                "SET nickname = EXCLUDED.nickname, fetched_at = EXCLUDED.fetched_at",
                [(corp_id, _text(uid), _text(name), fetched_at) for uid, name in names.items()])

    def record_sent(self, corp_id: str, open_kfid: str, customer: str, msgid: str,
                    message: dict[str, Any] | None = None, *,
                    sent_at: float | None = None, answered: Collection[str] = (),
                    later: bool = False) -> None:
        # Archived at once, `later` or not: a row costs PostgreSQL's commit little more
        # than the sent row alone (SQLite defers, see SqliteStore.archive_sends).
        now = time.time()
        args = {"corp_id": corp_id, "open_kfid": open_kfid, "customer": _text(customer),
                "msgid": _text(msgid), "now": now}
        with self._transaction() as conn:
            if answered:
                with conn.cursor() as cur:
                    cur.executemany("INSERT INTO replies (corp_id, open_kfid, msgid, status, "
                                    "acked_at) VALUES (%s, %s, %s, 'replied', %s) "
                                    "ON CONFLICT DO NOTHING",
                                    [(corp_id, open_kfid, _text(m), now) for m in answered])
            # after_seq: see SqliteStore.record_sent.
            conn.execute("INSERT INTO sent (corp_id, open_kfid, external_userid, msgid, sent_at, "
                         "after_seq) VALUES (%(corp_id)s, %(open_kfid)s, %(customer)s, "
                         "%(msgid)s, %(now)s, COALESCE((SELECT MAX(seq) FROM messages WHERE "
                         "corp_id = %(corp_id)s AND open_kfid = %(open_kfid)s AND "
                         "external_userid = %(customer)s AND origin = 3), 0)) "
                         "ON CONFLICT DO NOTHING", args)
            if message is None:
                return
            conn.execute(_ENSURE_ACCOUNT, (corp_id, open_kfid))
            # Seqs are handed out in commit order, as by commit_page (consumers never skip).
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_COMMIT_LOCK + corp_id,))
            # Never before the conversation's previous message (see SqliteStore.record_sent).
            clock = conn.execute("SELECT send_time FROM messages WHERE corp_id = %s AND "
                                 "open_kfid = %s AND external_userid = %s ORDER BY seq DESC "
                                 "LIMIT 1", (corp_id, open_kfid, _text(customer))).fetchone()
            doc = sent_document(open_kfid, customer, msgid, message,
                                max(int(sent_at or now), int(clock[0] if clock else 0)))
            m = Incoming.from_api(doc)
            row = conn.execute(
                "INSERT INTO messages (corp_id, open_kfid, msgid, external_userid, "
                "servicer_userid, origin, msgtype, send_time, stored_at, body, search_text) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (corp_id, msgid) DO NOTHING RETURNING seq",
                (corp_id, open_kfid, _text(m.msgid), _text(m.external_userid),
                 _text(m.servicer_userid), m.origin, _text(m.msgtype), m.send_time, now,
                 _text(m.text), _text(m.searchable()))).fetchone()
            if row is None:
                return
            if m.media_id:  # what was sent is archived like what was received
                conn.execute("INSERT INTO media (seq, corp_id, media_id) VALUES (%s, %s, %s) "
                             "ON CONFLICT DO NOTHING", (row[0], corp_id, _text(m.media_id)))
            conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, corp_id))

    def archive_sends(self, corp_id: str) -> int:
        return 0  # every send is archived as it is recorded

    def was_sent(self, corp_id: str, open_kfid: str, msgid: str) -> bool:
        return bool(self._read("SELECT 1 FROM sent WHERE corp_id = %s AND open_kfid = %s AND "
                               "msgid = %s", (corp_id, open_kfid, _text(msgid))))

    def reply_window(self, corp_id: str, open_kfid: str, customer: str, *,
                     clock: int | None = None, state: bool = True) -> ReplyWindow | None:
        rows = self._read("SELECT seq, send_time, msgid FROM messages WHERE corp_id = %s AND "
                          "open_kfid = %s AND external_userid = %s AND origin = 3 "
                          "ORDER BY seq DESC LIMIT 1", (corp_id, open_kfid, _text(customer)))
        if not rows:
            return None
        return self._window(corp_id, open_kfid, customer, *rows[0], clock=clock, state=state)

    def _window(self, corp_id: str, open_kfid: str, customer: str, last_seq: int, last: int,
                last_msgid: str, *, sent: int | None = None,
                clock: int | None = None, state: bool = True) -> ReplyWindow:
        args = {"corp_id": corp_id, "open_kfid": open_kfid, "customer": _text(customer),
                "last_seq": last_seq}
        if sent is None:
            sent = self._read("SELECT COUNT(*) FROM sent WHERE corp_id = %(corp_id)s AND "
                              "open_kfid = %(open_kfid)s AND external_userid = %(customer)s "
                              "AND after_seq >= %(last_seq)s", args)[0][0]
        if clock is None:
            clock = self.clock(corp_id, open_kfid)
        if not state:
            return ReplyWindow(int(last), int(sent), last_msgid, int(clock))
        events = self._read("SELECT seq, body FROM messages WHERE corp_id = %(corp_id)s AND "
                            "open_kfid = %(open_kfid)s AND external_userid = %(customer)s "
                            "AND origin = 4 ORDER BY seq DESC LIMIT 20", args)
        return ReplyWindow(int(last), int(sent), last_msgid, int(clock),
                           session_state(events, last_seq))

    def clock(self, corp_id: str, open_kfid: str) -> int:
        rows = self._read(_CLOCK, (corp_id, open_kfid))
        return int(rows[0][0]) if rows else 0

    def event_customer(self, corp_id: str, code: str) -> tuple[str, str] | None:
        # Codes live 20 s to 48 h: the latest events are enough (a scan of the newest ones).
        rows = self._read(
            "SELECT open_kfid, external_userid FROM messages WHERE seq > (SELECT "
            "COALESCE(MAX(seq), 0) - %s FROM messages) AND corp_id = %s AND origin = 4 AND "
            "strpos(body, %s) > 0 ORDER BY seq DESC LIMIT 1",
            (EVENT_SCAN, corp_id, _text(f'"{code}"')))
        return (rows[0][0], rows[0][1]) if rows and rows[0][1] else None

    def waiting(self, corp_id: str, open_kfid: str | None = None) -> list[Waiting]:
        # Each conversation's last customer message, found by walking the customers of each
        # account through messages_turns (one index seek per customer: a loose index scan,
        # not a scan of every message), then the answered ones left out.
        accounts, args = "corp_id = %s", [corp_id]
        if open_kfid is not None:
            accounts, args = "corp_id = %s AND open_kfid = %s", [corp_id, open_kfid]
        rows = self._read(
            f"""WITH RECURSIVE
                acct(corp_id, open_kfid) AS (
                    SELECT corp_id, open_kfid FROM accounts WHERE {accounts}),
                cust(corp_id, open_kfid, external_userid) AS (
                    SELECT corp_id, open_kfid,
                           (SELECT MIN(external_userid) FROM messages
                            WHERE corp_id = acct.corp_id AND open_kfid = acct.open_kfid)
                    FROM acct
                    UNION ALL
                    SELECT corp_id, open_kfid,
                           (SELECT MIN(external_userid) FROM messages
                            WHERE corp_id = cust.corp_id AND open_kfid = cust.open_kfid
                              AND external_userid > cust.external_userid)
                    FROM cust WHERE external_userid IS NOT NULL),
                t(corp_id, open_kfid, external_userid, seq) AS (
                    SELECT corp_id, open_kfid, external_userid,
                           (SELECT MAX(seq) FROM messages WHERE corp_id = cust.corp_id
                              AND open_kfid = cust.open_kfid
                              AND external_userid = cust.external_userid AND origin = 3)
                    FROM cust WHERE external_userid IS NOT NULL)
                SELECT t.open_kfid, t.external_userid, t.seq, m.send_time, m.msgid
                FROM t JOIN messages m ON m.seq = t.seq
                WHERE NOT EXISTS (SELECT 1 FROM messages r WHERE r.corp_id = t.corp_id
                                  AND r.open_kfid = t.open_kfid
                                  AND r.external_userid = t.external_userid
                                  AND r.origin IN (5, 100) AND r.seq > t.seq)
                  AND NOT EXISTS (SELECT 1 FROM sent s WHERE s.corp_id = t.corp_id
                                  AND s.open_kfid = t.open_kfid
                                  AND s.external_userid = t.external_userid
                                  AND s.after_seq >= t.seq)""", args)
        clocks: dict[str, int] = {}
        found = []
        for kfid, customer, seq, send_time, msgid in rows:
            if kfid not in clocks:
                clocks[kfid] = self.clock(corp_id, kfid)
            window = self._window(corp_id, kfid, customer, seq, send_time, msgid, sent=0,
                                  clock=clocks[kfid])
            found.append(Waiting(kfid, customer, msgid, int(send_time), window, int(seq)))
        return found

    def unanswered(self, corp_id: str, name: str, open_kfid: str, *, upto: int,
                   since: int) -> int | None:
        rows = self._read(
            """SELECT MIN(m.seq) FROM messages m
               WHERE m.corp_id = %(corp_id)s AND m.open_kfid = %(open_kfid)s AND m.origin = 3
                 AND m.seq <= %(upto)s AND m.send_time >= %(since)s
                 AND m.seq > COALESCE((SELECT first_position FROM consumers
                                       WHERE corp_id = %(corp_id)s AND name = %(name)s
                                       AND open_kfid = %(open_kfid)s), 0)
                 AND NOT EXISTS (SELECT 1 FROM replies r WHERE r.corp_id = %(corp_id)s
                                 AND r.open_kfid = %(open_kfid)s AND r.msgid = m.msgid)""",
            {"corp_id": corp_id, "open_kfid": open_kfid, "name": name, "upto": upto,
             "since": since})
        return int(rows[0][0]) if rows and rows[0][0] is not None else None

    # ------------------------------------------------------------------ retention

    def prune(self, corp_id: str, before: int, *, dry_run: bool = False) -> Pruned:
        # A message inside the seq range of a pending outbox entry is still to be written by
        # its committer's next run: kept, whatever its age.
        pending = ("EXISTS (SELECT 1 FROM outbox o WHERE o.corp_id = m.corp_id AND "
                   "o.open_kfid = m.open_kfid AND m.seq BETWEEN o.first_seq AND o.last_seq)")
        old = "m.corp_id = %(corp_id)s AND m.send_time < %(before)s"
        callbacks = ("FROM callbacks WHERE corp_id = %(corp_id)s AND received_at < "
                     "%(before)s AND open_kfid IN (SELECT open_kfid FROM accounts WHERE "
                     "corp_id = %(corp_id)s AND cursor IS NOT NULL)")
        params = {"corp_id": corp_id, "before": before}
        if dry_run:
            gone = f"SELECT m.open_kfid FROM messages m WHERE {old} AND NOT {pending}"
        else:
            gone = (f"DELETE FROM messages m WHERE {old} AND NOT {pending} "
                    "RETURNING m.open_kfid")
        with self._transaction() as conn:
            rows = conn.execute(f"WITH gone AS ({gone}) SELECT open_kfid, COUNT(*) FROM gone "
                                'GROUP BY open_kfid ORDER BY open_kfid COLLATE "C"',
                                params).fetchall()
            kept = one_row(conn.execute(f"SELECT COUNT(*) FROM messages m WHERE {old} AND "
                                        f"{pending}", params).fetchone())[0]
            if dry_run:
                n_callbacks = one_row(conn.execute(f"SELECT COUNT(*) {callbacks}",
                                           params).fetchone())[0]
            else:
                n_callbacks = conn.execute(f"DELETE {callbacks}", params).rowcount
            if dry_run:  # the contents only pruned messages refer to
                gone_seqs = f"SELECT m.seq FROM messages m WHERE {old} AND NOT {pending}"
                files, size = one_row(conn.execute(
                    f"SELECT COUNT(*), COALESCE(SUM(size), 0) FROM (SELECT sha256, MAX(size) "
                    f"size FROM media WHERE seq IN ({gone_seqs}) AND sha256 IS NOT NULL AND "
                    f"sha256 NOT IN (SELECT sha256 FROM media WHERE sha256 IS NOT NULL AND "
                    f"seq NOT IN ({gone_seqs})) GROUP BY sha256) t", params).fetchone())
        if not dry_run:
            files, size = self._prune_media(corp_id)
        return Pruned(before, {k: int(n) for k, n in rows}, int(n_callbacks), int(kept),
                      int(files), int(size))

    # ------------------------------------------------------------------ media archive

    def media_due(self, corp_id: str, *, open_kfid: str | None = None, after_seq: int = 0,
                  limit: int = 100, force: bool = False, lease: float = 300.0
                  ) -> list[MediaItem]:
        now = time.time()
        where = ["md.corp_id = %(corp_id)s", "md.seq > %(after)s"]
        if force:
            where.append("md.state IN ('pending', 'failed')")
        else:
            where.append("md.state = 'pending' AND md.next_try <= %(now)s")
        if open_kfid is not None:
            where.append("m.open_kfid = %(open_kfid)s")
        # SKIP LOCKED: workers claiming at once share the work instead of waiting.
        sql = (f"WITH due AS (SELECT md.seq FROM media md JOIN messages m ON m.seq = md.seq "
               f"WHERE {' AND '.join(where)} ORDER BY md.seq LIMIT %(limit)s "
               "FOR UPDATE OF md SKIP LOCKED) "
               "UPDATE media SET next_try = %(until)s FROM due WHERE media.seq = due.seq "
               "RETURNING media.seq")
        args = {"corp_id": corp_id, "after": after_seq, "now": now, "open_kfid": open_kfid,
                "limit": int(limit), "until": now + lease}
        with self._transaction() as conn:
            seqs = [r[0] for r in conn.execute(sql, args).fetchall()]
        items = self.media_items(corp_id, seqs)
        return [items[seq] for seq in sorted(items)]

    def new_media_file(self) -> BinaryIO:
        import tempfile

        try:
            return tempfile.TemporaryFile(prefix="kfcli-media-")
        except OSError as exc:
            raise ConfigError(f"cannot make a temporary file for media ({exc.strerror})",
                              hint="check TMPDIR's permissions and free space") from None

    def media_archived(self, corp_id: str, seq: int, file: BinaryIO, *, content_type: str,
                       filename: str) -> MediaItem:
        with file:
            sha, size = file_digest(file)
            with self._transaction() as conn:
                # Shared with other archivers, exclusive for a prune: parts found present
                # here are not removed before this entry refers to them.
                conn.execute("SELECT pg_advisory_xact_lock_shared(hashtext(%s))",
                             (_MEDIA_LOCK,))
                have = one_row(conn.execute("SELECT count(*) FROM media_parts WHERE sha256 = %s",
                                    (sha,)).fetchone())[0]
                if have != max(1, -(-size // MEDIA_CHUNK)):  # an empty file: one empty part
                    file.seek(0)
                    part = 0
                    while True:
                        chunk = file.read(MEDIA_CHUNK)
                        if not chunk and part:
                            break
                        conn.execute("INSERT INTO media_parts (sha256, part, data) VALUES "
                                     "(%s, %s, %s) ON CONFLICT DO NOTHING", (sha, part, chunk))
                        part += 1
                        if not chunk:
                            break
                conn.execute("UPDATE media SET state = 'archived', sha256 = %s, size = %s, "
                             "content_type = %s, filename = %s, archived_at = %s, error = NULL, "
                             "next_try = 0 WHERE seq = %s AND corp_id = %s",
                             (sha, size, _text(content_type), _text(filename), time.time(),
                              seq, corp_id))
        return self.media_items(corp_id, [seq])[seq]

    def media_failed(self, corp_id: str, seq: int, error: str, *,
                     retry_at: float | None) -> None:
        with self._connection() as conn:
            conn.execute("UPDATE media SET attempts = attempts + 1, error = %s, state = %s, "
                         "next_try = %s WHERE seq = %s AND corp_id = %s AND state <> "
                         "'archived'", (_text(error), "pending" if retry_at is not None
                                        else "failed", retry_at or 0, seq, corp_id))

    def media_reset(self, corp_id: str, seqs: Collection[int], *,
                    lost: str | None = None) -> None:
        if lost is None:
            sql = ("UPDATE media SET next_try = 0 WHERE seq = ANY(%s::bigint[]) AND "
                   "corp_id = %s AND state = 'pending'")
            args: tuple[Any, ...] = (list(seqs), corp_id)
        else:
            sql = ("UPDATE media SET state = 'pending', next_try = 0, error = %s, sha256 = NULL, "
                   "size = NULL, content_type = NULL, filename = NULL, archived_at = NULL "
                   "WHERE seq = ANY(%s::bigint[]) AND corp_id = %s")
            args = (_text(lost), list(seqs), corp_id)
        with self._connection() as conn:
            conn.execute(sql, args)

    def media_items(self, corp_id: str, seqs: Collection[int]) -> dict[int, MediaItem]:
        if not seqs:
            return {}
        rows = self._read(f"SELECT {_MEDIA_COLUMNS} FROM media md JOIN messages m ON m.seq = "
                          "md.seq WHERE md.seq = ANY(%s::bigint[]) AND md.corp_id = %s",
                          (list(seqs), corp_id))
        return {r[0]: _media_item(r) for r in rows}

    def media_by_msgid(self, corp_id: str, msgids: Collection[str]) -> dict[str, MediaItem]:
        if not msgids:
            return {}
        rows = self._read(f"SELECT {_MEDIA_COLUMNS} FROM media md JOIN messages m ON m.seq = "
                          "md.seq WHERE m.msgid = ANY(%s::text[]) AND m.corp_id = %s "
                          "AND md.corp_id = %s", (list(msgids), corp_id, corp_id))
        return {r[1]: _media_item(r) for r in rows}

    def message(self, corp_id: str, msgid: str) -> tuple[Row, MediaItem | None] | None:
        rows = self._read("SELECT seq, body FROM messages WHERE corp_id = %s AND msgid = %s",
                          (corp_id, msgid))
        if not rows:
            return None
        row = Row(*rows[0])
        return row, self.media_items(corp_id, [row.seq]).get(row.seq)

    def media_content(self, item: MediaItem) -> Iterator[bytes]:
        if item.state != "archived" or not item.sha256:
            raise KfError(f"the media of message {item.msgid} is not archived")
        parts = max(1, -(-(item.size or 0) // MEDIA_CHUNK))
        for part in range(parts):  # a round trip per part: one part in memory at a time
            rows = self._read("SELECT data FROM media_parts WHERE sha256 = %s AND part = %s",
                              (item.sha256, part))
            if not rows:
                raise MediaMissing(f"the archived copy of the {item.msgtype} of message "
                                   f"{item.msgid} is incomplete in the store (part {part} of "
                                   f"{parts} is missing)")
            yield bytes(rows[0][0])

    def media_summary(self, corp_id: str, open_kfid: str | None = None) -> MediaSummary:
        sql = ("SELECT md.state, COUNT(*), COALESCE(SUM(md.size), 0) FROM media md "
               "JOIN messages m ON m.seq = md.seq WHERE md.corp_id = %s")
        args: list[Any] = [corp_id]
        if open_kfid is not None:
            sql += " AND m.open_kfid = %s"
            args.append(open_kfid)
        counts = {state: (int(n), int(size)) for state, n, size in
                  self._read(sql + " GROUP BY md.state", args)}
        return MediaSummary(archived=counts.get("archived", (0, 0))[0],
                            pending=counts.get("pending", (0, 0))[0],
                            failed=counts.get("failed", (0, 0))[0],
                            bytes=counts.get("archived", (0, 0))[1])

    def _prune_media(self, corp_id: str) -> tuple[int, int]:
        """Remove the parts no entry refers to (of any corp: contents are shared)."""
        with self._transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_MEDIA_LOCK,))
            row = one_row(conn.execute(
                "WITH gone AS (DELETE FROM media_parts p WHERE NOT EXISTS (SELECT 1 FROM media "
                "md WHERE md.sha256 = p.sha256) RETURNING p.sha256, length(p.data) n) "
                "SELECT COUNT(DISTINCT sha256), COALESCE(SUM(n), 0) FROM gone").fetchone())
        return int(row[0]), int(row[1])

    # ------------------------------------------------------------------ operators

    def consumers(self, corp_id: str) -> list[ConsumerStatus]:
        rows = self._read(
            "SELECT c.name, c.open_kfid, c.position, (SELECT COUNT(*) FROM messages m "
            "WHERE m.corp_id = c.corp_id AND m.open_kfid = c.open_kfid AND m.seq > "
            "c.position), c.updated_at FROM consumers c WHERE c.corp_id = %s "
            'ORDER BY c.name COLLATE "C", c.open_kfid COLLATE "C"', (corp_id,))
        return [ConsumerStatus(r[0], r[1], int(r[2]), int(r[3]), float(r[4])) for r in rows]

    def status(self, corp_id: str) -> list[AccountStatus]:
        return [AccountStatus(*r) for r in self._read(_STATUS, {"corp_id": corp_id})]

    # ------------------------------------------------------------------ export

    def export_rows(self, corp_id: str, open_kfid: str | None = None, *,
                    customer: str | None = None, since: int | None = None,
                    until: int | None = None) -> Iterator[ExportTuple]:
        """Tuples in ExportRow's order: PostgreSQL's json operators pick plain text messages
        apart (see _EXPORT), so Python parses only the others."""
        where, args = self._filters(corp_id, open_kfid, customer, since, until)
        sql = _EXPORT.replace("{where}", " AND ".join(where))
        # A server-side cursor, as in messages(): memory stays flat.
        yield from self._stream(sql, args, "kfcli_export")



class _Schema(Migrator[psycopg.Connection]):
    """The migration runner's PostgreSQL side: one connection, and a transaction under an
    advisory lock (processes starting at once: one migrates, the others wait and find it
    done)."""

    def __init__(self, store: PostgresStore, conn: psycopg.Connection) -> None:
        super().__init__(MIGRATIONS, store.display_url)
        self.store = store
        self.conn = conn

    def connection(self) -> AbstractContextManager[psycopg.Connection]:
        return nullcontext(self.conn)

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection]:
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_SCHEMA_LOCK,))
            yield self.conn

    def version(self, conn: psycopg.Connection) -> int:
        return self.store._version(conn)

    def meta(self, conn: psycopg.Connection) -> dict[str, str]:
        return self.store._meta(conn)

    def set_meta(self, conn: psycopg.Connection, key: str, value: str) -> None:
        conn.execute(_SET_META, (key, value))

    def execute(self, conn: psycopg.Connection, statement: str) -> None:
        conn.execute(statement)

def _backfill(conn: psycopg.Connection, where: str, statement: str,
              compute: Callable[[dict[str, Any]], Any], *, columns: str = "",
              args: tuple[Any, ...] = ()) -> None:
    """Run `statement` with `(compute(message), seq, columns…)` for every stored message
    (narrowed by `where`) for which `compute` gives something, 5,000 at a time."""
    last = 0
    while True:
        rows = conn.execute(f"SELECT seq, {columns}body FROM messages WHERE seq > %s {where} "
                            "ORDER BY seq LIMIT 5000", (last, *args)).fetchall()
        if not rows:
            return
        last = rows[-1][0]
        values = derived(rows, compute)
        if values:
            with conn.cursor() as cur:
                cur.executemany(statement, values)


def _media_item(row: tuple[Any, ...]) -> MediaItem:
    (seq, msgid, open_kfid, msgtype, send_time, media_id, state, attempts, next_try, error,
     sha, size, content_type, filename, archived_at) = row
    return MediaItem(int(seq), msgid, open_kfid, msgtype, int(send_time), media_id, state,
                     int(attempts), float(next_try), error, sha,
                     None if size is None else int(size), content_type, filename,
                     None if archived_at is None else float(archived_at))


def _text(value: str) -> str:
    # PostgreSQL text cannot hold NUL (SQLite's can); WeCom never sends one, but a page must
    # never become impossible to store.
    return value.replace("\x00", "\ufffd") if "\x00" in value else value




# The messages of an export (Store.export_rows): plain text messages (ExportRow) picked apart
# from their JSON, the others' text. msgid, external_userid, servicer_userid and msgtype come
# from their columns (commit_page stores them as Incoming.from_api derives them from the
# JSON, which is what the CSV shows); origin and send_time from their columns when the JSON
# writes the same integers (the json type keeps numbers as written: 3.0 or 1e9 are floats to
# Python, and go to Python). The json type, like Python, reads the last of a key given twice.
# Only text that casts is cast: NaN and Infinity (which Python writes and reads) are not
# JSON to PostgreSQL, and it refuses to return an escaped NUL or a lone surrogate (any \uD...
# escape is left to Python, to keep the test simple). A body that is not JSON at all fails
# the export here as it would in Python.
_EXPORT = r"""
SELECT CASE WHEN plain THEN NULL ELSE body END,
    CASE WHEN plain THEN send_time END,
    CASE WHEN plain THEN doc ->> 'open_kfid' END,
    CASE WHEN plain THEN external_userid END,
    CASE WHEN plain AND origin = 5 THEN servicer_userid END,
    CASE WHEN plain THEN origin END,
    CASE WHEN plain THEN msgid END,
    CASE WHEN plain THEN doc -> 'text' ->> 'content' END
FROM (
    SELECT seq, body, send_time, external_userid, servicer_userid, origin, msgid, doc,
        COALESCE(json_typeof(doc -> 'text' -> 'content') = 'string'
            AND doc -> 'text' -> 'menu_id' IS NULL
            AND json_typeof(doc -> 'origin') = 'number' AND doc ->> 'origin' = origin::text
            AND json_typeof(doc -> 'send_time') = 'number'
            AND doc ->> 'send_time' = send_time::text
            AND json_typeof(doc -> 'open_kfid') = 'string', false) AS plain
    FROM (
        SELECT seq, body, send_time, external_userid, servicer_userid, origin, msgid,
            CASE WHEN msgtype = 'text' AND origin IN (3, 5) AND left(body, 1) = '{'
                AND body !~ '\\u(0000|[dD])|NaN|Infinity' THEN body::json END AS doc
        FROM messages WHERE {where}
        ORDER BY seq OFFSET 0) AS m
    OFFSET 0) AS t
ORDER BY seq"""


#: The channel commit_page notifies (payload: the corp_id) when it stores new messages.
NOTIFY_CHANNEL = "kfcli_messages"


class _Listener(Watch):
    """PostgreSQL's watch: LISTEN on a connection of its own (outside the pool); commits
    that store messages NOTIFY the channel with their corp_id, from any host."""

    def __init__(self, store: PostgresStore, corp_id: str) -> None:
        self.store = store
        self.corp_id = corp_id
        self.conn: psycopg.Connection | None = None
        try:  # listening from now: a commit after this is news even before the first wait
            self._listen()
        except (psycopg.Error, KfError):
            self.close()

    def _listen(self) -> None:
        self.conn = self.store._connect()
        self.conn.autocommit = True
        self.conn.execute(f"LISTEN {NOTIFY_CHANNEL}")

    def wait(self, timeout: float) -> bool:
        try:
            if self.conn is None:
                self._listen()
                return True  # listening again: anything committed meanwhile, look at it
            notes = self.conn.notifies(timeout=timeout)
            return any(note.payload == self.corp_id for note in notes)
        except (psycopg.Error, KfError):
            self.close()
            return True  # the caller looks, and meets what is wrong

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(psycopg.Error):
                self.conn.close()
            self.conn = None
