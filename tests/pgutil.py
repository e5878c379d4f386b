"""PostgreSQL for the tests: a server from the libpq environment (PGHOST, PGPORT, PGUSER,
PGPASSWORD, as `pg_virtualenv` sets them), a fresh database per test, and the throwaway
cluster's restart.

Several pytest-xdist workers share the server. Each test's database is a copy of a template
the first worker migrates (`CREATE DATABASE … TEMPLATE`: no migration per test). A test holds
a shared lock on the server while it runs (`server_in_use`, an autouse fixture in
tests/conftest.py); `restart_server` takes it exclusively, so no other worker's test sees the
restart.

Without a reachable server the PostgreSQL tests are skipped with a message saying how to run
them; with KFCLI_REQUIRE_POSTGRES=1 (CI) they fail instead.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest

SKIP_MESSAGE = ("PostgreSQL tests need a server: run the suite under `pg_virtualenv` "
                "(see README)")
REQUIRE_VAR = "KFCLI_REQUIRE_POSTGRES"

_checked: tuple[bool, str] | None = None


def required() -> bool:
    return os.environ.get(REQUIRE_VAR, "") not in ("", "0")


def _check() -> tuple[bool, str]:
    """(reachable, why not), asked of the server once per test session."""
    global _checked
    if _checked is None:
        if not os.environ.get("PGHOST"):
            _checked = (False, "PGHOST is not set")
        else:
            try:
                with admin():
                    pass
            except Exception as exc:  # psycopg missing, or the server refused: say which
                _checked = (False, f"{type(exc).__name__}: {exc}".strip())
            else:
                _checked = (True, "")
    return _checked


def need_server() -> None:
    """Skip the calling test without a server (fail under KFCLI_REQUIRE_POSTGRES=1)."""
    ok, why = _check()
    if ok:
        return
    if required():
        pytest.fail(f"{REQUIRE_VAR}=1 but no PostgreSQL server is reachable ({why})",
                    pytrace=False)
    pytest.skip(SKIP_MESSAGE)


@contextmanager
def admin():
    """An autocommit connection to the server's maintenance database."""
    import psycopg

    conn = psycopg.connect(dbname=os.environ.get("PGDATABASE") or "postgres",
                           autocommit=True, connect_timeout=10)
    try:
        yield conn
    finally:
        conn.close()


def url(dbname: str, *, password: str | None = None) -> str:
    """A postgresql:// URL for `dbname` on the environment's server. The password is in the
    URL (so tests see it masked); pass `password=""` to leave it to PGPASSWORD."""
    user = os.environ.get("PGUSER") or ""
    if password is None:
        password = os.environ.get("PGPASSWORD") or ""
    userinfo = quote(user, safe="")
    if password:
        userinfo += ":" + quote(password, safe="")
    host = os.environ.get("PGHOST") or "localhost"
    port = os.environ.get("PGPORT") or "5432"
    if host.startswith("/"):  # a Unix socket directory
        return f"postgresql://{userinfo}@/{dbname}?host={quote(host, safe='')}&port={port}"
    if ":" in host:
        host = f"[{host}]"
    return f"postgresql://{userinfo}@{host}:{port}/{dbname}"


def _lock_path(what: str) -> Path:
    """A lock file shared by every worker of the suite that uses this server."""
    import tempfile

    # PG_CLUSTER_CONF_ROOT: `pg_virtualenv -t`'s own directory, so that suites on clusters
    # that took turns on one port never share a lock.
    key = ":".join(os.environ.get(name, "") for name in ("PGHOST", "PGPORT",
                                                          "PG_CLUSTER_CONF_ROOT"))
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"kfcli-tests-pg-{digest}.{what}.lock"


_in_use: int | None = None  # the open lock file while a test holds the server


@contextmanager
def server_in_use() -> Iterator[None]:
    """Hold the server (shared with the other workers' tests) for as long as a test runs."""
    global _in_use
    if not os.environ.get("PGHOST") or os.name != "posix":
        yield
        return
    import fcntl

    fd = os.open(_lock_path("use"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        _in_use = fd
        yield
    finally:
        _in_use = None
        os.close(fd)  # releases the lock


def _template() -> str:
    """The migrated template database, made once per server and store schema (its name
    carries a digest of the PostgreSQL store's source, so a changed schema gets a new one)."""
    source = Path(__file__).resolve().parents[1] / "kfcli" / "core" / "store" / "postgres.py"
    name = "kfcli_tpl_" + hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    from filelock import FileLock

    with FileLock(str(_lock_path("template"))), admin() as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return name
        building = name + "_new"
        conn.execute(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{building}"')
        from kfcli.core.store import open_store

        open_store(url(building)).close()  # creates the tables; closes every connection
        conn.execute(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
    return name


@contextmanager
def fresh_database(*, migrated: bool = True) -> Iterator[str]:
    """A new database (its URL): a copy of the migrated template (an empty one with
    `migrated=False`), dropped afterwards even if connections remain."""
    need_server()
    name = "kfcli_t_" + secrets.token_hex(6)
    template = f' TEMPLATE "{_template()}"' if migrated else ""
    with admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"{template}')
    try:
        yield url(name)
    finally:
        with admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _cluster() -> tuple[str, str]:
    """(pg_ctlcluster, version) of the throwaway cluster `pg_virtualenv` made (a Debian
    cluster named `regress` of version PGVERSION; PG_CLUSTER_CONF_ROOT is set when it lives in
    a temporary directory). Skips (fails under KFCLI_REQUIRE_POSTGRES=1) when the server is
    not such a cluster: a developer's own server is never stopped or restarted."""
    version = os.environ.get("PGVERSION", "")
    tool = shutil.which("pg_ctlcluster")
    port = ""
    if version and tool and shutil.which("pg_conftool"):
        found = subprocess.run(["pg_conftool", "-s", version, "regress", "show", "port"],
                               capture_output=True, text=True, check=False)
        port = found.stdout.strip() if found.returncode == 0 else ""
    if not tool or not port or port != os.environ.get("PGPORT"):
        why = "the server is not a pg_virtualenv cluster (PGVERSION, pg_ctlcluster)"
        if required():
            pytest.fail(f"cannot restart PostgreSQL: {why}", pytrace=False)
        pytest.skip(f"cannot restart PostgreSQL: {why}")
    return tool, version


def _ctl(action: str) -> None:
    tool, version = _cluster()
    args = [tool, version, "regress", action] + (["-m", "fast"] if action != "start" else [])
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:  # say why (another cluster named regress running at once…)
        pytest.fail(f"pg_ctlcluster {version} regress {action} failed ({done.returncode}): "
                    f"{(done.stderr or done.stdout).strip()}", pytrace=False)


@contextmanager
def _alone() -> Iterator[None]:
    """The server to this test alone: wait for the other workers' tests to leave it."""
    if _in_use is None:
        yield
        return
    import fcntl

    fcntl.flock(_in_use, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(_in_use, fcntl.LOCK_SH)


def restart_server() -> None:
    """Restart the throwaway cluster (see `_cluster`), no other worker's test running."""
    _cluster()
    with _alone():
        _ctl("restart")


@contextmanager
def server_stopped() -> Iterator[None]:
    """The throwaway cluster (see `_cluster`) stopped for the block and started again after
    it, whatever happens in it; no other worker's test runs meanwhile."""
    _cluster()  # skips before anything is stopped
    with _alone():
        _ctl("stop")
        try:
            yield
        finally:
            _ctl("start")
