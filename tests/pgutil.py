"""PostgreSQL for the tests: a server from the libpq environment (PGHOST, PGPORT, PGUSER,
PGPASSWORD, as `pg_virtualenv` sets them), a fresh database per test, and the throwaway
cluster's restart.

Without a reachable server the PostgreSQL tests are skipped with a message saying how to run
them; with KFCLI_REQUIRE_POSTGRES=1 (CI) they fail instead.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new empty database (its URL), dropped afterwards even if connections remain."""
    need_server()
    name = "kfcli_t_" + secrets.token_hex(6)
    with admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url(name)
    finally:
        with admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def restart_server() -> None:
    """Restart the throwaway cluster `pg_virtualenv` made (a Debian cluster named `regress`
    of version PGVERSION; PG_CLUSTER_CONF_ROOT is set when it lives in a temporary
    directory). Skips (fails under KFCLI_REQUIRE_POSTGRES=1) when the server is not such a
    cluster: a developer's own server is never restarted."""
    version = os.environ.get("PGVERSION", "")
    tool = shutil.which("pg_ctlcluster")
    port = ""
    if version and tool and shutil.which("pg_conftool"):
        found = subprocess.run(["pg_conftool", "-s", version, "regress", "show", "port"],
                               capture_output=True, text=True, check=False)
        port = found.stdout.strip() if found.returncode == 0 else ""
    if not port or port != os.environ.get("PGPORT"):
        why = "the server is not a pg_virtualenv cluster (PGVERSION, pg_ctlcluster)"
        if required():
            pytest.fail(f"cannot restart PostgreSQL: {why}", pytrace=False)
        pytest.skip(f"cannot restart PostgreSQL: {why}")
    done = subprocess.run([tool, version, "regress", "restart", "-m", "fast"],
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:  # say why (another cluster named regress running at once…)
        pytest.fail(f"pg_ctlcluster {version} regress restart failed ({done.returncode}): "
                    f"{(done.stderr or done.stdout).strip()}", pytrace=False)
