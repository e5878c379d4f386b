"""`kfcli doctor`: one line per check, the exit code of the first failure, no secret shown."""

from __future__ import annotations

import json
import socket

import pytest

from kfcli.core.store.base import SCHEMA_VERSION

CHECKS = ["config", "config_permissions", "cache_permissions", "state_permissions",
          "credentials", "reachability", "token", "callback", "store"]


def statuses(r) -> dict[str, str]:
    doc = json.loads(r.out)
    assert isinstance(doc, list)
    for item in doc:
        assert set(item) == {"check", "status", "detail", "hint"}, item
        assert item["status"] in ("ok", "failed", "skipped"), item
    assert [c["check"] for c in doc] == CHECKS
    return {c["check"]: c["status"] for c in doc}


def detail(r, check: str) -> dict:
    return next(c for c in json.loads(r.out) if c["check"] == check)


def callback_env(sandbox) -> dict[str, str]:
    return {"KFCLI_TOKEN": sandbox.creds["token"], "KFCLI_AES_KEY": sandbox.creds["aes_key"]}


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def assert_no_secrets(r, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in r.text, secret


def test_everything_ok_against_the_sandbox(kf, sandbox, home):
    assert kf("account", "list").code == 0  # a token in the cache: cache_permissions has files
    r = kf("doctor", "-o", "json", env=callback_env(sandbox))
    assert r.code == 0, r.err
    assert statuses(r) == {"config": "ok", "config_permissions": "skipped",
                           "cache_permissions": "ok", "state_permissions": "skipped",
                           "credentials": "ok", "reachability": "ok", "token": "ok",
                           "callback": "ok", "store": "skipped"}
    assert "HTTP 404" in detail(r, "reachability")["detail"]  # any HTTP answer is reachable
    assert "32-byte" in detail(r, "callback")["detail"]
    token = json.loads((next((home / "cache").rglob("*.json"))).read_text())["access_token"]
    assert_no_secrets(r, sandbox.creds["secret"], token, sandbox.creds["token"],
                      sandbox.creds["aes_key"])
    assert "****" in detail(r, "credentials")["detail"]


def test_human_output_is_one_line_per_check(kf, sandbox):
    r = kf("doctor")
    assert r.code == 0, r.err
    lines = [line.split("\t") for line in r.out.splitlines()]
    assert [f[0] for f in lines] == CHECKS
    assert all(len(f) == 4 and f[1] in ("ok", "failed", "skipped") for f in lines)
    assert dict((f[0], f[1]) for f in lines)["callback"] == "skipped"  # nothing configured
    assert "checks passed" in r.err


def test_with_the_embedded_sandbox(run):
    r = run("--sandbox", "doctor", "--json")
    assert r.code == 0, r.err
    got = statuses(r)
    assert got["credentials"] == got["reachability"] == got["token"] == got["callback"] == "ok"
    assert "sandbox" in detail(r, "config")["detail"]


def test_nothing_configured_is_a_credentials_failure(run, sandbox):
    r = run("doctor", "-o", "json", env={"KFCLI_BASE_URL": sandbox.base_url})
    assert r.code == 3
    got = statuses(r)
    assert got["credentials"] == "failed" and got["token"] == "skipped"
    assert got["reachability"] == "ok"
    assert "kfcli config set corp_id" in detail(r, "credentials")["hint"]
    err = json.loads(r.err)["error"]
    assert err["type"] == "doctor" and "first: credentials" in err["message"]
    r = run("doctor", env={"KFCLI_BASE_URL": sandbox.base_url})
    assert r.code == 3 and r.err.startswith("error: 1 of 9 checks failed")
    assert "Traceback" not in r.err


def test_corrupt_config_is_reported_with_its_path_and_left_alone(run, home):
    path = home / "config" / "config.json"
    path.parent.mkdir(mode=0o700, parents=True)
    path.write_text("{not json")
    path.chmod(0o600)
    r = run("doctor", "-o", "json")
    assert r.code == 3
    got = statuses(r)
    assert got["config"] == "failed" and str(path) in detail(r, "config")["detail"]
    assert got["credentials"] == got["reachability"] == got["token"] == "skipped"
    assert path.read_text() == "{not json"


def test_unknown_profile(run, sandbox):
    r = run("-p", "nope", "doctor", "-o", "json", env=sandbox.env)
    assert r.code == 3
    assert statuses(r)["config"] == "failed" and "nope" in detail(r, "config")["detail"]


def test_loose_permissions_fail_with_a_chmod_hint(kf, sandbox, home):
    kf("config", "set", "corp_id", sandbox.creds["corp_id"])
    kf("account", "list")
    config = home / "config" / "config.json"
    config.chmod(0o644)
    config.parent.chmod(0o755)
    cached = next((home / "cache").rglob("*.json"))
    cached.chmod(0o640)
    r = kf("doctor", "-o", "json")
    assert r.code == 3
    got = statuses(r)
    assert got["config_permissions"] == "failed" and got["cache_permissions"] == "failed"
    hint = detail(r, "config_permissions")["hint"]
    assert f"chmod 700 {config.parent}" in hint and f"chmod 600 {config}" in hint
    assert "0644" in detail(r, "config_permissions")["detail"]
    assert f"chmod 600 {cached}" in detail(r, "cache_permissions")["hint"]
    assert got["token"] == "ok"  # the rest still runs


def test_a_symlinked_config_is_judged_by_its_target(run, sandbox, home, tmp_path):
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir(mode=0o700)
    target = dotfiles / "kfcli.json"
    target.write_text(json.dumps({"current": "default", "profiles": {"default": {}}}))
    target.chmod(0o600)
    (home / "config").mkdir(parents=True, mode=0o700)
    (home / "config" / "config.json").symlink_to(target)
    r = run("doctor", "-o", "json", env=sandbox.env)
    assert r.code == 0, r.err
    assert statuses(r)["config_permissions"] == "ok"
    assert str(dotfiles) in detail(r, "config_permissions")["detail"]
    target.chmod(0o644)
    r = run("doctor", "-o", "json", env=sandbox.env)
    assert r.code == 3 and f"chmod 600 {target}" in detail(r, "config_permissions")["hint"]


def test_sync_state_permissions(kf, sandbox, home):
    open_kfid = sandbox.account()
    sandbox.say(open_kfid, "hi")
    assert kf("msg", "sync", open_kfid).code == 0
    r = kf("doctor", "-o", "json")
    assert r.code == 0, r.err
    assert statuses(r)["store"] == "ok"  # msg sync filled the default store
    # The journal a killed `msg sync` leaves behind (applied by the next run) is state too.
    runs = home / "state" / "kfcli" / "runs"
    journal = runs / "0123456789abcdef01234567" / "4242-deadbeef.journal"
    journal.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    journal.write_text("1\n")
    journal.chmod(0o600)
    r = kf("doctor", "-o", "json")
    assert r.code == 0, r.err
    assert statuses(r)["state_permissions"] == "ok"
    journal.chmod(0o644)
    r = kf("doctor", "-o", "json")
    assert r.code == 3 and statuses(r)["state_permissions"] == "failed"
    assert f"chmod 600 {journal}" in detail(r, "state_permissions")["hint"]


def test_unreachable_base_url_exits_6_and_skips_the_token(run):
    env = {"KFCLI_BASE_URL": closed_port_url(), "KFCLI_CORP_ID": "ww1",
           "KFCLI_SECRET": "doctor-secret-unreachable"}
    r = run("doctor", "-o", "json", env=env)
    assert r.code == 6
    got = statuses(r)
    assert got["reachability"] == "failed" and got["token"] == "skipped"
    assert "HTTPS_PROXY" in detail(r, "reachability")["hint"]
    assert_no_secrets(r, "doctor-secret-unreachable")


def test_the_first_failure_decides_the_exit_code(run, home):
    """Permissions (3) come before reachability (6)."""
    path = home / "config" / "config.json"
    path.parent.mkdir(mode=0o700, parents=True)
    path.write_text(json.dumps({"current": "default", "profiles": {"default": {
        "corp_id": "ww1", "secret": "doctor-secret-order", "base_url": closed_port_url()}}}))
    path.chmod(0o644)
    r = run("doctor", "-o", "json")
    got = statuses(r)
    assert got["config_permissions"] == "failed" and got["reachability"] == "failed"
    assert r.code == 3
    assert_no_secrets(r, "doctor-secret-order")


def test_wrong_secret_fails_the_token_check_with_exit_3(kf, sandbox):
    r = kf("--debug", "doctor", "-o", "json", env={"KFCLI_SECRET": "wrong-secret-for-doctor-1"})
    assert r.code == 3
    got = statuses(r)
    assert got["token"] == "failed" and got["credentials"] == "ok"
    assert "40001" in detail(r, "token")["detail"]
    assert_no_secrets(r, "wrong-secret-for-doctor-1", sandbox.creds["secret"])


def test_invalid_base_url(run):
    r = run("doctor", "-o", "json", env={"KFCLI_BASE_URL": "ftp://example.com",
                                          "KFCLI_CORP_ID": "ww1", "KFCLI_SECRET": "s" * 20})
    assert r.code == 3
    # Caught with the configuration, before anything tries to reach it.
    assert statuses(r)["config"] == "failed"
    assert "KFCLI_BASE_URL" in detail(r, "config")["detail"]
    assert statuses(r)["reachability"] == "skipped"


@pytest.mark.parametrize(("token", "aes_key", "needle"), [
    ("tok-with-dash", None, "1-32 characters"),
    ("t" * 33, None, "1-32 characters"),
    (None, "a" * 42, "exactly 43"),
    (None, "a" * 42 + "=", "exactly 43"),
    (None, "a" * 42 + "é", "exactly 43"),
    ("onlytoken", "", "aes_key not configured"),
])
def test_bad_callback_settings(kf, sandbox, token, aes_key, needle):
    env = callback_env(sandbox)
    if token is not None:
        env["KFCLI_TOKEN"] = token
    if aes_key is not None:
        env["KFCLI_AES_KEY"] = aes_key
    r = kf("doctor", "-o", "json", env=env)
    assert r.code == 3, r.err
    assert statuses(r)["callback"] == "failed"
    item = detail(r, "callback")
    assert needle in item["detail"] and item["hint"]
    for value in (token, aes_key):
        if value and len(value) >= 6:
            assert value not in r.text


def test_help_documents_the_exit_codes(run):
    r = run("doctor", "--help")
    assert r.code == 0
    text = " ".join(r.out.split())
    assert "Exit status" in text and "3 for configuration" in text and "6 when the base" in text


def test_nothing_configured_and_unreachable_reports_the_credentials_first(run, home):
    r = run("doctor", "-o", "json", env={"KFCLI_BASE_URL": closed_port_url()})
    assert r.code == 3  # credentials (3) come before reachability (6)
    got = statuses(r)
    assert got["credentials"] == got["reachability"] == "failed"
    assert got["token"] == "skipped" and got["callback"] == "skipped"
    assert not list((home / "cache").rglob("*.json"))  # no gettoken was attempted


# ---------------------------------------------------------------------- the message store


def sqlite_url(path) -> str:
    return "sqlite:///" + str(path).lstrip("/")


def test_store_is_skipped_and_not_created_until_first_use(kf, home, tmp_path):
    r = kf("doctor", "-o", "json")
    assert r.code == 0, r.err
    assert statuses(r)["store"] == "skipped"
    assert "first `kfcli msg sync` creates it" in detail(r, "store")["detail"]
    assert not (home / "state" / "kfcli" / "store.db").exists()
    elsewhere = tmp_path / "elsewhere" / "store.db"
    r = kf("doctor", "-o", "json", env={"KFCLI_STORE": sqlite_url(elsewhere)})
    assert statuses(r)["store"] == "skipped" and not elsewhere.parent.exists()


def made(path) -> None:
    """A store made at `path`, as a writer (msg sync, a receiver) makes it: reads never do."""
    from kfcli.core.store import open_store

    open_store(sqlite_url(path)).close()


def test_store_ok_shows_the_schema_version_and_file_mode(kf, home):
    made(home / "state" / "kfcli" / "store.db")  # the default store
    r = kf("doctor", "-o", "json")
    assert r.code == 0, r.err
    assert statuses(r)["store"] == "ok"
    text = detail(r, "store")["detail"]
    assert "sqlite" in text and "(default)" in text and f"schema version {SCHEMA_VERSION}" in text
    assert "0600" in text


def test_store_readable_by_others_fails_with_a_chmod_hint(kf, home):
    path = home / "state" / "kfcli" / "store.db"
    made(path)
    path.chmod(0o644)
    r = kf("doctor", "-o", "json")
    assert r.code == 3
    assert statuses(r)["store"] == "failed"
    assert detail(r, "store")["hint"] == f"chmod 600 {path}"
    assert "0644" in detail(r, "store")["detail"]
    assert path.stat().st_mode & 0o777 == 0o644  # doctor reports, never changes modes


def test_store_written_by_a_newer_kfcli_is_refused_and_left_alone(kf, tmp_path):
    import sqlite3

    path = tmp_path / "newer.db"
    env = {"KFCLI_STORE": sqlite_url(path)}
    made(path)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
        conn.execute("DELETE FROM meta WHERE key = 'compatible_from'")
    conn.close()
    r = kf("doctor", "-o", "json", env=env)
    assert r.code == 3
    assert statuses(r)["store"] == "failed"
    assert "newer kfcli" in detail(r, "store")["detail"]
    assert "upgrade kfcli" in detail(r, "store")["hint"]
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'"
                            ).fetchone() == ("99",)
    conn.close()


@pytest.mark.parametrize("kind", ["not_a_database", "foreign_sqlite"])
def test_store_that_is_not_a_kfcli_store_is_left_untouched(kf, tmp_path, kind):
    import sqlite3

    path = tmp_path / "theirs.db"
    if kind == "not_a_database":
        path.write_bytes(b"plain text, not SQLite\n" * 100)
    else:
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE recipes (name TEXT)")
        conn.close()
    before = path.read_bytes()
    r = kf("doctor", "-o", "json", env={"KFCLI_STORE": sqlite_url(path)})
    assert r.code == 3
    assert statuses(r)["store"] == "failed"
    item = detail(r, "store")
    assert "not a kfcli store" in item["detail"] and "untouched" in item["detail"]
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("theirs")] == ["theirs.db"]


def test_store_with_a_bad_url_fails_with_exit_3(kf):
    r = kf("doctor", "-o", "json", env={"KFCLI_STORE": "mysql://db/kfcli"})
    assert r.code == 3
    assert statuses(r)["store"] == "failed"
    assert "unknown scheme" in detail(r, "store")["detail"]
    assert "KFCLI_STORE" in detail(r, "store")["hint"]


def test_store_is_checked_even_when_the_config_is_broken(run, home):
    path = home / "config" / "config.json"
    path.parent.mkdir(mode=0o700, parents=True)
    path.write_text("{not json")
    r = run("doctor", "-o", "json", env={"KFCLI_STORE": "relative.db"})
    got = statuses(r)
    assert got["config"] == "failed" and got["store"] == "failed"
    assert r.code == 3


def test_store_on_postgres_shows_the_schema_version_without_the_password(kf, pg_url):
    from urllib.parse import urlsplit

    r = kf("doctor", "-o", "json", env={"KFCLI_STORE": pg_url})
    assert r.code == 0, r.err
    assert statuses(r)["store"] == "ok"
    text = detail(r, "store")["detail"]
    assert text.startswith("postgresql ") and "schema version" in text
    password = urlsplit(pg_url).password
    if password:
        assert password not in r.text and "****" in text
