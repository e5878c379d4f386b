"""Operating the store (issue 22): `store backup` while a writer runs and `store restore`,
`store migrate [--dry-run]` and what `kfcli --version` says, a store migrated by a newer
build (usable or refused, at start and at the next write), the write-ahead log's size."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path

import pytest

from tests.cli.conftest import AVATAR, Proc
from tests.cli.test_store import sqlite_url


def image(sandbox, open_kfid: str, data: bytes, customer: str = "wmPhoto") -> str:
    doc = sandbox.post("/sandbox/customer_message", {
        "open_kfid": open_kfid, "external_userid": customer, "msgtype": "image",
        "media_base64": base64.b64encode(data).decode()})
    assert doc["errcode"] == 0, doc
    return doc["msgid"]


def history(kf, open_kfid: str, env: dict) -> list[dict]:
    r = kf("msg", "history", open_kfid, "--limit", "100000", "-o", "jsonl", env=env)
    assert r.code == 0, r.err
    return [json.loads(line) for line in r.out.splitlines()]


def rows(path: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


@pytest.mark.process
def test_backup_while_a_follower_writes_then_restore(kf, sandbox, spawn, tmp_path):
    live = tmp_path / "live" / "store.db"
    env = {**sandbox.env, "KFCLI_STORE": sqlite_url(live)}
    open_kfid = sandbox.account()
    for n in range(5):
        sandbox.say(open_kfid, f"before {n}", external_userid="wmA")
    photo = AVATAR.read_bytes()
    first_photo = image(sandbox, open_kfid, photo)
    # A writer that keeps running through the backup, and a consumer position to keep.
    follower = spawn("msg", "sync", open_kfid, "--follow", "--interval", "0.1", "-o", "jsonl",
                     env=env)
    follower.records_until(lambda r: len(r) == 6)
    assert kf("msg", "history", open_kfid, "--consumer", "bot", "--since", "0", "--limit", "3",
              env=env).code == 0
    for n in range(20):
        sandbox.say(open_kfid, f"during {n}", external_userid="wmB")
    backup = tmp_path / "backups" / "kf.db"
    r = kf("store", "backup", str(backup), "-o", "json", env=env)
    assert r.code == 0, r.err
    doc = r.json()
    assert doc["path"] == str(backup) and doc["media_files"] == 1
    assert doc["media_bytes"] == len(photo) and doc["missing_media"] == 0
    assert 6 <= doc["messages"] <= 26
    for n in range(3):  # the follower goes on after the backup
        sandbox.say(open_kfid, f"after {n}", external_userid="wmC")
    follower.records_until(lambda r: len(r) == 23)

    # The backup is a store of its own (KFCLI_STORE), its media beside it, nothing partial.
    assert sorted(p.name for p in backup.parent.iterdir()) == ["kf.db", "kf.db.media"]
    assert oct(backup.stat().st_mode & 0o777) == "0o600"
    benv = {**sandbox.env, "KFCLI_STORE": sqlite_url(backup)}
    kept = history(kf, open_kfid, benv)
    source = history(kf, open_kfid, env)
    assert len(kept) == doc["messages"]
    assert kept == source[:len(kept)]  # a consistent prefix of what the store holds
    out = tmp_path / "photo.bin"
    assert kf("msg", "media", first_photo, "-O", str(out), env=benv).code == 0
    assert out.read_bytes() == photo
    positions = kf("store", "status", "-o", "json", env=benv).json()["consumers"]
    assert [(c["name"], c["open_kfid"]) for c in positions] == [("bot", open_kfid)]

    # Never over an existing file.
    r = kf("store", "backup", str(backup), env=env)
    assert r.code == 2 and "already exists" in r.err

    # Restore refuses while a process has the store open, and without --yes.
    r = kf("store", "restore", str(backup), "--yes", env=env)
    assert r.code == 3 and "in use by another process" in r.err, r.err
    follower.stop()
    r = kf("store", "restore", str(backup), env=env)
    assert r.code == 2 and "--yes" in r.err
    assert len(history(kf, open_kfid, env)) == 29  # untouched
    r = kf("store", "restore", str(backup), "--yes", "-o", "json", env=env)
    assert r.code == 0, r.err
    assert r.json()["messages"] == doc["messages"]
    assert history(kf, open_kfid, env) == kept
    assert kf("store", "status", "-o", "json", env=env).json()["consumers"] == positions
    out.unlink()
    assert kf("msg", "media", first_photo, "-O", str(out), env=env).code == 0
    assert out.read_bytes() == photo

    # Restoring into a store that does not exist yet makes it, media included.
    fresh = tmp_path / "fresh" / "other.db"
    fenv = {**sandbox.env, "KFCLI_STORE": sqlite_url(fresh)}
    assert kf("store", "restore", str(backup), env=fenv).code == 0
    assert history(kf, open_kfid, fenv) == kept
    assert (fresh.parent / "other.db.media").is_dir()


def test_backup_and_restore_refuse_postgresql_with_the_way_to_do_it(kf, tmp_path):
    env = {"KFCLI_STORE": "postgresql://u:pw@127.0.0.1:1/db", "KFCLI_CORP_ID": "ww1"}
    r = kf("store", "restore", str(tmp_path / "x.db"), "--yes", env=env)
    assert r.code == 3 and "no backup at" in r.err
    (tmp_path / "x.db").write_bytes(b"")
    r = kf("store", "restore", str(tmp_path / "x.db"), "--yes", env=env)
    assert r.code == 3 and "pg_restore" in r.err and "pw" not in r.err
    r = kf("store", "backup", "relative.db", env=env)
    assert r.code == 2


def test_backup_of_postgresql_points_at_pg_dump(kf, pg_url, tmp_path):
    env = {"KFCLI_STORE": pg_url, "KFCLI_CORP_ID": "ww1"}
    r = kf("store", "backup", str(tmp_path / "b.db"), env=env)
    assert r.code == 3 and "pg_dump" in r.err and "media_parts" in r.err
    assert not (tmp_path / "b.db").exists()


def test_wal_is_checkpointed_at_the_configured_size(kf, sandbox, tmp_path):
    live = tmp_path / "store.db"
    env = {**sandbox.env, "KFCLI_STORE": sqlite_url(live), "KFCLI_SQLITE_WAL_MB": "1"}
    open_kfid = sandbox.account()
    sandbox.post("/sandbox/seed_messages", {"open_kfid": open_kfid, "count": 3000})
    from kfcli.core.store.sqlite import SqliteStore

    store = SqliteStore(live, wal_mb=1)  # a reader holding the store open, as a follower does
    try:
        assert kf("msg", "sync", open_kfid, "--limit", "100", env=env).code == 0
        wal = Path(f"{live}-wal")
        assert wal.stat().st_size <= 2 * 1024 * 1024
    finally:
        store.close()
    r = kf("store", "status", env={**env, "KFCLI_SQLITE_WAL_MB": "none"})
    assert r.code == 3 and "KFCLI_SQLITE_WAL_MB" in r.err


# ---------------------------------------------------------------------- schema versions


def test_version_names_the_schema_and_the_commit(kf):
    from kfcli import __version__
    from kfcli._about import STORE_SCHEMA, commit
    from kfcli.core.store import SCHEMA_VERSION

    assert STORE_SCHEMA == SCHEMA_VERSION
    out = kf("--version").out
    assert out.startswith(f"kfcli {__version__} (store schema {SCHEMA_VERSION}")
    if commit():
        assert f", commit {commit()})" in out


def _age(path: Path, *, version: int, compatible: int | None, by: str = "kfcli 9.9") -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
        conn.execute("DELETE FROM meta WHERE key IN ('compatible_from', 'migrated_by')")
        if compatible is not None:
            conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                             [("compatible_from", str(compatible)), ("migrated_by", by)])
    conn.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request, tmp_path):
    if request.param == "sqlite":
        yield sqlite_url(tmp_path / "s.db")
    else:
        from tests import pgutil

        with pgutil.fresh_database(migrated=False) as url:
            yield url


def _set_meta(url: str, **values: str | None) -> None:
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite://"))
        marks = "?"
    else:
        import psycopg

        conn = psycopg.connect(url, autocommit=False)
        marks = "%s"
    with conn:
        for key, value in values.items():
            conn.execute(f"DELETE FROM meta WHERE key = {marks}", (key,))
            if value is not None:
                conn.execute(f"INSERT INTO meta (key, value) VALUES ({marks}, {marks})",
                             (key, value))
    conn.close()


def test_migrate_dry_run_then_migrate(kf, sandbox, any_store):
    from kfcli.core.store import SCHEMA_VERSION
    from kfcli.core.store.base import SCHEMA_STEPS

    env = {**sandbox.env, "KFCLI_STORE": any_store}
    open_kfid = sandbox.account()
    sandbox.say(open_kfid, "hi")
    assert kf("msg", "sync", open_kfid, env=env).code == 0
    r = kf("store", "migrate", "--dry-run", "-o", "json", env=env)
    assert r.code == 0 and r.json()["steps"] == [] and r.json()["migrated"] is False
    # As a store left by the previous build: schema one lower, nothing recorded.
    _set_meta(any_store, schema_version=str(SCHEMA_VERSION - 1), compatible_from=None,
              migrated_by=None)
    r = kf("store", "migrate", "--dry-run", env=env)
    assert r.code == 0, r.err
    assert "would migrate the store" in r.err and f"from schema {SCHEMA_VERSION - 1} to " \
        f"{SCHEMA_VERSION}" in r.err
    assert SCHEMA_STEPS[SCHEMA_VERSION][0] in r.err
    r = kf("store", "migrate", "--dry-run", "-o", "json", env=env)
    assert r.json()["schema_version"] == SCHEMA_VERSION - 1  # a dry run changed nothing
    r = kf("store", "migrate", "-o", "json", env=env)
    assert r.code == 0 and r.json()["migrated"] is True
    assert r.json()["schema_version"] == SCHEMA_VERSION
    assert kf("store", "migrate", "-o", "json", env=env).json()["migrated"] is False
    assert len(history(kf, open_kfid, env)) == 1


@pytest.mark.process
def test_a_store_migrated_by_a_newer_build(kf, sandbox, any_store, spawn):
    """Usable when the newer build says this one still can (compatible_from); otherwise
    refused at start, and by a running process at its next write, with what to do."""
    from kfcli.core.store import SCHEMA_VERSION

    env = {**sandbox.env, "KFCLI_STORE": any_store}
    open_kfid = sandbox.account()
    sandbox.say(open_kfid, "one")
    assert kf("msg", "sync", open_kfid, env=env).code == 0
    newer = str(SCHEMA_VERSION + 1)
    _set_meta(any_store, schema_version=newer, compatible_from=str(SCHEMA_VERSION),
              migrated_by="kfcli 9.9 (store schema 9)")
    sandbox.say(open_kfid, "two")
    r = kf("msg", "sync", open_kfid, "-o", "jsonl", env=env)
    assert r.code == 0, r.err
    assert len(r.out.splitlines()) == 1
    r = kf("store", "migrate", "-o", "json", env=env)
    assert r.code == 0 and r.json()["schema_version"] == SCHEMA_VERSION + 1

    # A follower running when the store is migrated past what it can use stops at its next
    # write, storing nothing.
    follower = spawn("msg", "sync", open_kfid, "--follow", "--interval", "0.1", "-o", "jsonl",
                     env=env)
    sandbox.say(open_kfid, "three")
    follower.records_until(lambda r: len(r) == 1)
    _set_meta(any_store, compatible_from=newer)
    sandbox.say(open_kfid, "four")
    assert follower.popen.wait(timeout=60) == 3
    r = kf("msg", "sync", open_kfid, env=env)
    assert r.code == 3
    assert (f"has schema version {newer} (migrated by a newer kfcli: kfcli 9.9 (store schema "
            "9))") in r.err
    assert "upgrade kfcli on this host" in r.err and "Traceback" not in r.err
    _set_meta(any_store, schema_version=str(SCHEMA_VERSION), compatible_from=None)
    assert [m["text"]["content"] for m in history(kf, open_kfid, env)] == [
        "one", "two", "three"]


# ---------------------------------------------------------------------- rolling upgrade

ROOT = Path(__file__).resolve().parents[2]


def _schema_at(commit: str) -> int | None:
    import re
    import subprocess

    for path, pattern in (("kfcli/_about.py", r"^STORE_SCHEMA = (\d+)"),
                          ("kfcli/core/store/base.py", r"^SCHEMA_VERSION = (\d+)")):
        shown = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:{path}"],
                               capture_output=True, text=True)
        found = re.search(pattern, shown.stdout, re.M) if shown.returncode == 0 else None
        if found:
            return int(found.group(1))
    return None


def previous_build(tmp_path: Path) -> tuple[Path, int]:
    """The source tree of the last commit before the current schema (the build hosts ran
    before this one), extracted from git; skips outside a git checkout."""
    import shutil
    import subprocess
    import sys

    from kfcli.core.store import SCHEMA_VERSION

    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout of kfcli (the previous build comes from its history)")
    log = subprocess.run(["git", "-C", str(ROOT), "log", "--format=%H", "--", "kfcli/_about.py",
                          "kfcli/core/store/base.py"], capture_output=True, text=True)
    newest_current = None
    for commit in log.stdout.split():
        version = _schema_at(commit)
        if version == SCHEMA_VERSION:
            newest_current = commit  # walking back: ends at the commit that bumped it
        elif version is not None and version < SCHEMA_VERSION:
            break
    else:
        pytest.skip("no earlier schema in this checkout's history")
    if newest_current is None or version < 3:
        pytest.skip("the previous schema predates the media archive")
    tree = tmp_path / "previous-build"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", f"{newest_current}^", "kfcli"],
                             capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    # Its own virtualenv: the old tree, then this one's dependencies (a .pth of plain
    # directories: this environment's own kfcli, an editable install's import hook, is not
    # carried over).
    venv = tmp_path / "previous-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path("
                           "'purelib'))"], capture_output=True, text=True, check=True)
    deps = [p for p in sys.path if p.endswith("site-packages")]
    Path(site.stdout.strip(), "previous-build.pth").write_text(
        "\n".join([str(tree), *deps]) + "\n")
    return python, version


class OldHost(Proc):
    """A background kfcli of the previous build."""

    def __init__(self, python: Path, args: list[str], env: dict[str, str]) -> None:
        from tests.cli import conftest

        saved = conftest.KFCLI[:]
        conftest.KFCLI[:] = [str(python), "-P", "-m", "kfcli"]
        try:
            super().__init__(args, env)
        finally:
            conftest.KFCLI[:] = saved


@pytest.mark.process
def test_rolling_upgrade_across_a_schema_change_loses_no_media(kf, sandbox, spawn, tmp_path,
                                                                pg_empty_url):
    """Two hosts on one PostgreSQL store: one still on the previous build (its source tree
    from git history, run with this environment's dependencies) keeps pulling while the other
    migrates the store to this build's schema; every image either stores is archived, and
    the previous build, restarted, refuses the store at once and cleanly."""
    import os
    import subprocess

    from kfcli.core.store import SCHEMA_VERSION

    python, old_schema = previous_build(tmp_path)
    env = {**sandbox.env, "KFCLI_STORE": pg_empty_url}
    old_env = {k: v for k, v in {**os.environ, **env}.items() if k != "PYTHONPATH"}
    open_kfid = sandbox.account()
    photo = AVATAR.read_bytes()
    first = image(sandbox, open_kfid, photo, customer="wmOld")

    def old_host(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(python), "-P", "-m", "kfcli", *args], env=old_env, text=True,
                              capture_output=True, timeout=120)

    version = old_host("--version").stdout
    assert version.startswith("kfcli ") and f"store schema {SCHEMA_VERSION}" not in version
    # The previous build creates the store and keeps following (leaving the media to the
    # archive's other fetchers: --no-media).
    follower = OldHost(python, ["msg", "sync", open_kfid, "--follow", "--interval", "0.1",
                                "--no-media", "-o", "jsonl"], old_env)
    try:
        follower.records_until(lambda r: len(r) == 1)
        r = kf("store", "migrate", "--dry-run", "-o", "json", env=env)
        assert r.code == 0, r.err
        plan = r.json()
        assert plan["schema_version"] == old_schema and plan["target"] == SCHEMA_VERSION
        assert plan["older_builds_keep_working"] is True
        assert kf("store", "migrate", env=env).code == 0

        # After the migration, the previous build goes on storing images.
        later = [image(sandbox, open_kfid, photo, customer=f"wmAfter{n}") for n in range(3)]
        stored = follower.records_until(lambda r: len(r) == 3)
        assert [m["msgid"] for m in stored] == later
        # This build pulls too (its own command, the same store): nothing twice.
        sandbox.say(open_kfid, "new host", external_userid="wmNew")
        r = kf("msg", "sync", open_kfid, "-o", "jsonl", env=env)
        assert r.code == 0, r.err
    finally:
        follower.stop()
    r = kf("store", "media", "--retry", "-o", "json", env=env)
    assert r.code == 0, r.err
    assert {k: r.json()[k] for k in ("archived", "pending", "failed")} == {
        "archived": 4, "pending": 0, "failed": 0}
    for msgid in (first, *later):
        out = tmp_path / f"{msgid}.png"
        assert kf("msg", "media", msgid, "-O", str(out), env=env).code == 0
        assert out.read_bytes() == photo
    msgids = [m["msgid"] for m in history(kf, open_kfid, env)]
    assert len(msgids) == len(set(msgids)) == 5

    again = old_host("msg", "sync", open_kfid)
    assert "Traceback" not in again.stderr
    from kfcli.core.store.base import compatible_from

    if compatible_from(SCHEMA_VERSION) <= old_schema:
        # This schema only added what the previous build never touches: it goes on working.
        assert again.returncode == 0, again.stderr
        return
    # Restarted, the previous build refuses the migrated store at once, saying why.
    assert again.returncode == 3, again.stderr
    assert f"schema version {SCHEMA_VERSION}" in again.stderr
