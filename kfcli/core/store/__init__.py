"""The message store (DESIGN.md §9), chosen by URL:

* default: SQLite at `<user state dir>/store.db` (embedded, nothing to install);
* `sqlite:///ABSOLUTE/PATH` or a plain path: another SQLite file;
* `postgresql://user:password@host:port/dbname` (or `postgres://`): shared between hosts,
  with psycopg 3 from the optional extra `kfcli[postgres]`, imported only for such a URL.

The URL comes from `KFCLI_STORE` or the profile setting `store`. A password in it is a secret:
`display_url()` masks it, and `open_store` registers it with `kfcli.core.redact`.

    from kfcli.core.store import open_store
    with open_store() as store:
        for row in store.messages(corp_id, "wk…", customer="wm…"):
            print(row.text)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from kfcli.core.errors import ConfigError

if TYPE_CHECKING:
    from kfcli.core.config import Settings
from kfcli.core.store.base import (
    SCHEMA_VERSION,
    AccountStatus,
    Backup,
    Committed,
    ConsumerStatus,
    ConsumerStore,
    CursorMoved,
    CursorStore,
    Incoming,
    Lock,
    Locks,
    MediaStore,
    MessageStore,
    OutboxEntry,
    OutboxStore,
    Pruned,
    PullStateStore,
    PullStore,
    Row,
    Store,
    StoreAdmin,
    StorePart,
)

__all__ = [
    "SCHEMA_VERSION",
    "AccountStatus",
    "Backup",
    "Committed",
    "ConsumerStatus",
    "ConsumerStore",
    "CursorMoved",
    "CursorStore",
    "Incoming",
    "Lock",
    "Locks",
    "MediaStore",
    "MessageStore",
    "OutboxEntry",
    "OutboxStore",
    "Pruned",
    "PullStateStore",
    "PullStore",
    "Row",
    "Store",
    "StoreAdmin",
    "StorePart",
    "default_url",
    "display_url",
    "open_store",
]

ENV_VAR = "KFCLI_STORE"
PG_SCHEMES = ("postgresql", "postgres")


def default_path() -> Path:
    from kfcli.core import paths

    return paths.state_dir() / "store.db"


def default_url() -> str:
    from kfcli.core import paths

    return paths.default_store_url()


def display_url(url: str) -> str:
    """The URL with its password masked (`****`): safe for output, logs and errors."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return _mask_userinfo(url)
    if not password:
        return url
    netloc = parts.netloc
    user, _, host = netloc.rpartition("@")
    name = user.split(":", 1)[0]
    return parts._replace(netloc=f"{name}:****@{host}").geturl()


def _mask_userinfo(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    userinfo, _, host = rest.rpartition("@")
    return f"{scheme}://{userinfo.split(':', 1)[0]}:****@{host}"


def parse(url: str) -> tuple[str, str]:
    """(backend, location): the SQLite path, or the PostgreSQL URL. ConfigError (exit 3)
    for anything else, naming the URL with its password masked."""
    from kfcli.core.redact import register_secret

    shown = display_url(url)
    if not url.strip():
        raise ConfigError(f"{ENV_VAR}/store is empty", hint=_URL_HINT)
    if "://" not in url:
        if url.startswith("~") or os.path.isabs(url):
            return "sqlite", str(Path(url).expanduser())
        raise ConfigError(f"store {shown!r} is not a URL or an absolute path", hint=_URL_HINT)
    try:
        parts = urlsplit(url)
        password = parts.password
        port = parts.port  # ValueError for a port that is not a number in 0-65535
    except ValueError as exc:
        raise ConfigError(f"store URL {shown!r} is malformed ({exc})", hint=_URL_HINT) from None
    register_secret(password)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        path = unquote(parts.path)
        if path.startswith("//"):  # sqlite:////abs/path (SQLAlchemy's form) is /abs/path
            path = "/" + path.lstrip("/")
        if parts.query or parts.fragment:
            raise ConfigError(f"store URL {shown!r}: SQLite URLs take no options (?…); a "
                              "'?' or '#' in the path is written %3F / %23", hint=_URL_HINT)
        if parts.netloc or not path or path == "/":
            raise ConfigError(f"store URL {shown!r}: a SQLite URL is sqlite:///ABSOLUTE/PATH",
                              hint=_URL_HINT)
        return "sqlite", path
    if scheme in PG_SCHEMES:
        if not parts.hostname and not parts.path.strip("/") and "host=" not in parts.query:
            raise ConfigError(f"store URL {shown!r} names no host or database", hint=_URL_HINT)
        del port
        return "postgresql", url
    raise ConfigError(f"store URL {shown!r}: unknown scheme {parts.scheme!r} (use sqlite:/// "
                      "or postgresql://)", hint=_URL_HINT)


_URL_HINT = ("set KFCLI_STORE (or `kfcli config set store`) to sqlite:///PATH or "
             "postgresql://user@host:5432/dbname; unset it for the default SQLite store")


def resolve_url(settings: Settings | None = None) -> tuple[str, str]:
    """(url, source): KFCLI_STORE > profile setting `store` > the default."""
    value = os.environ.get(ENV_VAR)
    if value is not None:
        return value, "env"
    if settings is not None:
        setting = settings.values.get("store")
        if setting is not None and setting.value:
            return setting.value, setting.source
    return default_url(), "default"


#: An SQLite store's write-ahead log is checkpointed once it holds this many MB (default 64;
#: lower on a small disk, at some cost to `msg sync`'s ingest rate).
WAL_ENV_VAR = "KFCLI_SQLITE_WAL_MB"


def wal_mb() -> float | None:
    """KFCLI_SQLITE_WAL_MB (ConfigError, exit 3, when it is not a number of MB from 1)."""
    value = os.environ.get(WAL_ENV_VAR, "").strip()
    if not value:
        return None
    try:
        mb = float(value)
    except ValueError:
        mb = 0.0
    if not 1 <= mb <= 1024 * 1024:
        raise ConfigError(f"{WAL_ENV_VAR}={value!r} is not a size in MB (1 or more)",
                          hint=f"e.g. {WAL_ENV_VAR}=4 checkpoints the write-ahead log every "
                          "4 MB; unset it for the default (64)")
    return mb


def open_store(url: str | None = None, *, settings: Settings | None = None,
               migrate: bool = True, create: bool = True,
               source: str | None = None) -> Store:
    """Open (and on first use create or upgrade) the store at `url` (default: resolved from
    KFCLI_STORE, the profile, then the default SQLite file). `migrate=False` opens it as it
    is (`kfcli store migrate --dry-run`): only `schema_version`, `schema_notes` and
    `migrate` are meant for a store opened so. `create=False` (what only reads): where no
    store exists yet (no SQLite file; a PostgreSQL database without kfcli's tables),
    StoreMissing (exit 3) naming where it looked (and `source`, where a given `url` came
    from: "env", "profile" or "default"), and nothing is created."""
    if url is None:
        url, source = resolve_url(settings)
    backend, location = parse(url)
    if backend == "sqlite":
        from kfcli.core.store.sqlite import SqliteStore

        if not create and not os.path.lexists(location):
            raise _missing(location, source)
        return SqliteStore(Path(location), migrate=migrate, wal_mb=wal_mb())
    try:
        from kfcli.core.store.postgres import PostgresStore
    except ImportError as exc:
        if "psycopg" not in str(exc):
            raise
        raise ConfigError("a postgresql:// store needs psycopg, which is not installed",
                          hint="pip install 'kfcli[postgres]'") from None
    if create:
        return PostgresStore(location, migrate=migrate)
    store = PostgresStore(location, migrate=False)
    try:
        if not store.schema_version():
            raise _missing(display_url(location), source)
        if migrate:
            store.migrate()
    except BaseException:
        store.close()
        raise
    return store


def _missing(where: str, source: str | None) -> ConfigError:
    from kfcli.core.errors import StoreMissing

    came = {"env": f" (from {ENV_VAR})", "default": " (the default)",
            "profile": " (the profile's `store` setting)"}.get(source or "", "")
    return StoreMissing(f"no message store at {where}{came}; nothing was created",
                        hint=f"check {ENV_VAR} and the profile's `store` setting; `kfcli msg "
                        "sync OPEN_KFID` (or a receiver) creates the store with the first "
                        "messages it pulls")
