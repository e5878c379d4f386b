"""`kfcli store status / reset-cursor` and the `store` setting, driven as users do."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import pytest

from kfcli.core.store.base import SCHEMA_VERSION
from tests.conftest import on_pty

K1 = "wkStoreAccount000000000000000001"
K2 = "wkStoreAccount000000000000000002"
T0 = 1_760_000_000
PG_PASSWORD = "supersecretpw"
PG_URL = f"postgresql://u:{PG_PASSWORD}@127.0.0.1:1/db"


def sqlite_url(path: Path) -> str:
    return "sqlite:///" + str(path).lstrip("/")


@pytest.fixture
def store(tmp_path: Path) -> dict:
    """A SQLite store of the test's own, named through KFCLI_STORE."""
    path = tmp_path / "store.db"
    return {"path": path, "url": sqlite_url(path), "env": {"KFCLI_STORE": sqlite_url(path)}}


def message(open_kfid: str, n: int, send_time: int, customer: str = "wmCustomer1") -> dict:
    return {"msgid": f"msg-{open_kfid[-1]}-{n}", "open_kfid": open_kfid,
            "external_userid": customer, "send_time": send_time, "origin": 3,
            "msgtype": "text", "text": {"content": f"hello {n}"}}


def fill(url: str, corp_id: str, open_kfid: str, docs: list[dict], cursor: str) -> None:
    from kfcli.core.store import Incoming, open_store

    with open_store(url) as st:
        st.commit_page(corp_id, open_kfid, expected=st.cursor(corp_id, open_kfid),
                       cursor=cursor, messages=[Incoming.from_api(d) for d in docs],
                       owner=None)


def cursor_of(url: str, corp_id: str, open_kfid: str) -> str | None:
    from kfcli.core.store import open_store

    with open_store(url) as st:
        return st.cursor(corp_id, open_kfid)


def local(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def one_error_line(r) -> None:
    """Exactly one `error:` line (a `hint:` may follow), and never a traceback."""
    lines = r.err.splitlines()
    assert [line for line in lines if line.startswith("error:")] == lines[:1], r.err
    assert all(line.startswith(("error:", "hint:")) for line in lines), r.err
    assert "Traceback" not in r.err


@pytest.fixture
def filled(sandbox, store) -> dict:
    corp_id = sandbox.creds["corp_id"]
    fill(store["url"], corp_id, K1, [message(K1, n, T0 + 60 * n) for n in range(3)], "cur-1")
    fill(store["url"], corp_id, K2, [message(K2, 0, T0 + 7)], "cur-2")
    from kfcli.core.store import open_store

    with open_store(store["url"]) as st:
        st.request_pull(corp_id, K1, token="ENCtoken", callback={
            "CreateTime": T0 + 200, "Token": "ENCtoken", "OpenKfId": K1})
    return {**store, "corp_id": corp_id}


# ---------------------------------------------------------------------- status


def created(store: dict) -> dict:
    """The store made, as a writer (msg sync, a receiver) makes it: reads never do."""
    from kfcli.core.store import open_store

    open_store(store["url"]).close()
    return store


def test_status_on_an_empty_store(kf, store):
    r = kf("store", "status", env=store["env"])
    assert r.code == 3 and f"no message store at {store['path']} (from KFCLI_STORE)" in r.err
    assert not store["path"].exists()  # a read never creates one
    created(store)
    r = kf("store", "status", env=store["env"])
    assert r.code == 0, r.err
    assert r.out == ""  # TSV when piped: no rows
    assert r.err.startswith(f"store: sqlite {store['url']} (env), schema version {SCHEMA_VERSION}")
    doc = kf("store", "status", "-o", "json", env=store["env"]).json()
    assert doc["accounts"] == [] and doc["backend"] == "sqlite"
    assert doc["url"] == store["url"] and doc["schema_version"] == SCHEMA_VERSION
    assert stat.S_IMODE(store["path"].stat().st_mode) == 0o600


def test_status_after_messages_were_stored(kf, filled):
    r = kf("store", "status", env=filled["env"])
    assert r.code == 0, r.err
    rows = [line.split("\t") for line in r.out.splitlines()]
    assert [row[0] for row in rows] == [K1, K2]
    k1 = rows[0]
    assert k1[1:4] == ["3", local(T0), local(T0 + 120)]
    assert k1[4].endswith(" ago")  # cursor age
    assert k1[5] != "never" and k1[6] != "never"  # last pull, last callback
    assert k1[7] == "0"
    assert rows[1][6] == "never"  # K2 never announced by a callback

    r = kf("store", "status", "--account", K2, env=filled["env"])
    assert [line.split("\t")[0] for line in r.out.splitlines()] == [K2]
    r = kf("store", "status", "--account", "wkNeverSeen", env=filled["env"])
    row = r.out.rstrip("\n").split("\t")
    assert row[:2] == ["wkNeverSeen", "0"] and row[4] == "never pulled"


def test_status_json_shape(kf, filled):
    r = kf("store", "status", "--json", env=filled["env"])
    assert r.code == 0, r.err
    doc = r.json()
    assert set(doc) == {"backend", "url", "schema_version", "corp_id", "accounts",
                        "consumers", "media"}
    assert doc["media"] == {"archived": 0, "pending": 0, "failed": 0, "bytes": 0}
    assert doc["corp_id"] == filled["corp_id"]
    first = doc["accounts"][0]
    assert set(first) == {"open_kfid", "messages", "oldest", "newest", "has_cursor",
                          "cursor_at", "last_pull_at", "last_callback_at", "pending_outbox",
                          "gap"}
    assert first["open_kfid"] == K1 and first["messages"] == 3 and first["gap"] is None
    assert (first["oldest"], first["newest"]) == (T0, T0 + 120)
    assert first["has_cursor"] is True
    for key in ("cursor_at", "last_pull_at", "last_callback_at"):
        assert isinstance(first[key], (int, float)) and abs(first[key] - time.time()) < 600
    assert doc["accounts"][1]["last_callback_at"] is None
    assert "cur-1" not in r.text  # the cursor itself is WeCom's opaque value: not shown


@pytest.mark.process
def test_status_table_never_cuts_an_id(filled, sandbox):
    screen = on_pty(["store", "status"], {**sandbox.env, **filled["env"], "COLUMNS": "70"})
    assert K1 in screen and K2 in screen
    assert "never" in screen and "store: sqlite" in screen


def test_status_with_the_embedded_sandbox(run, store):
    r = run("--sandbox", "store", "status", "-o", "json", env=created(store)["env"])
    assert r.code == 0, r.err
    assert r.json()["corp_id"].startswith("ww")


def test_status_needs_a_corp_id(run, store):
    r = run("store", "status", env=store["env"])
    assert r.code == 3 and "corp_id" in r.err
    one_error_line(r)


# ---------------------------------------------------------------------- reset-cursor


def test_reset_cursor_with_yes(kf, filled):
    r = kf("store", "reset-cursor", K1, "--yes", env=filled["env"])
    assert r.code == 0, r.err
    assert "3 days" in r.err and "not written out again" in r.err
    assert cursor_of(filled["url"], filled["corp_id"], K1) is None
    assert cursor_of(filled["url"], filled["corp_id"], K2) == "cur-2"
    doc = kf("store", "status", "-o", "json", env=filled["env"]).json()
    k1 = doc["accounts"][0]
    assert k1["has_cursor"] is False and k1["messages"] == 3  # messages stay
    row = kf("store", "status", env=filled["env"]).out.splitlines()[0].split("\t")
    assert row[4] == "reset"
    # a second reset has nothing left to forget
    assert kf("store", "reset-cursor", K1, "--yes", env=filled["env"]).code == 4


def test_reset_cursor_json(kf, filled):
    r = kf("store", "reset-cursor", K2, "--yes", "-o", "json", env=filled["env"])
    assert r.code == 0, r.err
    assert r.json() == {"open_kfid": K2, "corp_id": filled["corp_id"], "cursor_reset": True}


def test_reset_cursor_without_yes_and_no_terminal_changes_nothing(kf, filled):
    r = kf("store", "reset-cursor", K1, env=filled["env"])
    assert r.code == 2 and "--yes" in r.err
    one_error_line(r)
    assert cursor_of(filled["url"], filled["corp_id"], K1) == "cur-1"


def test_reset_cursor_of_an_account_never_pulled(kf, filled):
    r = kf("store", "reset-cursor", "wkNeverPulled", "--yes", env=filled["env"])
    assert r.code == 4
    assert "wkNeverPulled" in r.err and "no cursor" in r.err
    one_error_line(r)
    r = kf("store", "reset-cursor", "wkNeverPulled", "--yes", "-o", "json", env=filled["env"])
    assert r.code == 4 and json.loads(r.err)["error"]["type"] == "not_found"


def test_reset_cursor_checks_the_open_kfid(kf, store):
    r = kf("store", "reset-cursor", "x" * 65, "--yes", env=store["env"])
    assert r.code == 2
    one_error_line(r)


# ---------------------------------------------------------------------- bad stores


@pytest.mark.parametrize("value", [
    "mysql://kfcli@db.internal/kfcli",           # unknown scheme
    "postgresql://kfcli@db.internal:port/kfcli",  # malformed port
    "postgresql://kfcli@db.internal:99999/kfcli",  # port out of range
    "store.db",                                   # a relative path
    "sqlite://relative/store.db",                 # a SQLite URL that is not absolute
    "",
])
def test_a_bad_store_url_exits_3_in_one_line(kf, value, home):
    for args in (["store", "status"], ["store", "reset-cursor", K1, "--yes"]):
        r = kf(*args, env={"KFCLI_STORE": value})
        assert r.code == 3, (args, r.err)
        one_error_line(r)
        assert r.out == ""
    assert not (home / "state" / "kfcli" / "store.db").exists()


def test_a_file_that_is_not_a_database_is_left_untouched(kf, tmp_path):
    path = tmp_path / "notes.db"
    content = b"these are my notes, not a database\n" * 200
    path.write_bytes(content)
    for args in (["store", "status"], ["store", "reset-cursor", K1, "--yes"]):
        r = kf(*args, env={"KFCLI_STORE": sqlite_url(path)})
        assert r.code == 3, r.err
        one_error_line(r)
        assert "not a kfcli store" in r.err and "untouched" in r.err
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("notes")) == \
        ["notes.db"]


def test_a_foreign_sqlite_database_is_left_untouched(kf, tmp_path):
    import sqlite3

    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE recipes (name TEXT)")
    conn.close()
    content = path.read_bytes()
    r = kf("store", "status", env={"KFCLI_STORE": sqlite_url(path)})
    assert r.code == 3
    assert path.read_bytes() == content


@pytest.mark.parametrize("debug", [[], ["--debug"]])
def test_a_postgres_password_is_never_shown(kf, debug):
    for args in (["store", "status"], ["store", "status", "-o", "json"],
                 ["store", "reset-cursor", K1, "--yes"], ["auth", "status"], ["doctor"]):
        r = kf(*debug, *args, env={"KFCLI_STORE": PG_URL}, timeout=120)
        assert PG_PASSWORD not in r.text, args


@pytest.mark.parametrize("debug", [[], ["--debug"]])
def test_an_unreachable_postgres_exits_6(kf, debug):
    r = kf(*debug, "store", "status", env={"KFCLI_STORE": PG_URL}, timeout=120)
    assert r.code == 6, r.err
    assert PG_PASSWORD not in r.text
    if not debug:
        one_error_line(r)
    assert "Traceback" not in r.err


# ---------------------------------------------------------------------- the `store` setting


def test_store_setting_set_get_show_list_and_used(kf, run, home, tmp_path):
    path = tmp_path / "profile-store.db"
    assert run("config", "set", "store", sqlite_url(path)).code == 0
    assert run("config", "get", "store").out == sqlite_url(path) + "\n"
    assert run("config", "show", "-o", "json").json()["store"] == sqlite_url(path)
    assert run("config", "list", "-o", "json").json()[0]["store"] == sqlite_url(path)
    doc = kf("auth", "status", "-o", "json").json()
    assert doc["settings"]["store"] == {"value": sqlite_url(path), "source": "profile"}
    r = kf("store", "status", "-o", "json")  # the profile's store is the one looked for
    assert r.code == 3 and str(path) in r.err and "profile's `store` setting" in r.err
    assert not path.exists()
    created({"url": sqlite_url(path)})
    r = kf("store", "status", "-o", "json")  # and opened
    assert r.code == 0, r.err
    assert r.json()["url"] == sqlite_url(path)
    # KFCLI_STORE wins over the profile
    other = sqlite_url(tmp_path / "env-store.db")
    doc = kf("auth", "status", "-o", "json", env={"KFCLI_STORE": other}).json()
    assert doc["settings"]["store"] == {"value": other, "source": "env"}


def test_store_setting_default_is_the_sqlite_file_in_the_state_dir(kf, home):
    doc = kf("auth", "status", "-o", "json").json()
    default = sqlite_url(home / "state" / "kfcli" / "store.db")
    assert doc["settings"]["store"] == {"value": default, "source": "default"}
    r = kf("store", "status", "-o", "json")
    assert r.code == 3 and str(home / "state" / "kfcli" / "store.db") in r.err
    assert "(the default)" in r.err


def test_store_url_with_a_password_from_stdin_is_masked_everywhere(kf, run, home):
    url = f"postgresql://kfcli:{PG_PASSWORD}@db.internal:5432/kfcli"
    shown = "postgresql://kfcli:****@db.internal:5432/kfcli"
    r = run("config", "set", "store", input=url + "\n")
    assert r.code == 0, r.err
    assert shown in r.err and PG_PASSWORD not in r.text
    path = home / "config" / "config.json"
    assert json.loads(path.read_text())["profiles"]["default"]["store"] == url
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert run("config", "get", "store").out == shown + "\n"
    for args in (["config", "show"], ["config", "show", "-o", "json"], ["config", "list"],
                 ["config", "get", "store", "-o", "json"]):
        r = run(*args)
        assert r.code == 0 and PG_PASSWORD not in r.text and "****" in r.out, args
    for args in (["auth", "status"], ["auth", "status", "-o", "json"]):
        r = kf(*args)
        assert r.code == 0 and PG_PASSWORD not in r.text and shown in r.out, args
    assert kf("auth", "status", "-o", "json").json()["settings"]["store"]["source"] == "profile"


def test_config_set_store_refuses_a_password_in_an_argument(run, home):
    r = run("config", "set", "store", f"postgresql://kfcli:{PG_PASSWORD}@db.internal/kfcli")
    assert r.code == 2
    one_error_line(r)
    assert "never taken as an argument" in r.err and "PGPASSWORD" in r.err
    assert PG_PASSWORD not in r.text
    assert not (home / "config" / "config.json").exists()
    # without a password it is an ordinary argument
    r = run("config", "set", "store", "postgresql://kfcli@db.internal:5432/kfcli")
    assert r.code == 0, r.err


@pytest.mark.parametrize("value", ["mysql://db/kfcli", "relative/store.db",
                                   "postgresql://kfcli@db:port/kfcli"])
def test_config_set_store_checks_the_url(run, home, value):
    r = run("config", "set", "store", value)
    assert r.code == 2, r.err
    one_error_line(r)
    assert not (home / "config" / "config.json").exists()


def test_status_and_reset_cursor_on_postgres(kf, sandbox, pg_url):
    from urllib.parse import urlsplit

    password = urlsplit(pg_url).password
    env = {"KFCLI_STORE": pg_url}
    corp_id = sandbox.creds["corp_id"]
    fill(pg_url, corp_id, K1, [message(K1, n, T0 + n) for n in range(3)], "cur-1")
    r = kf("store", "status", "-o", "json", env=env)
    assert r.code == 0, r.err
    doc = r.json()
    assert doc["backend"] == "postgresql" and doc["schema_version"] >= 1
    assert [(a["open_kfid"], a["messages"], a["has_cursor"]) for a in doc["accounts"]] == \
        [(K1, 3, True)]
    r = kf("store", "status", env=env)
    assert r.code == 0 and r.err.startswith("store: postgresql ")
    assert r.out.split("\t")[:2] == [K1, "3"]
    assert kf("store", "reset-cursor", K1, "--yes", env=env).code == 0
    assert cursor_of(pg_url, corp_id, K1) is None
    assert kf("store", "reset-cursor", K1, "--yes", env=env).code == 4
    if password:
        for args in (["store", "status"], ["store", "status", "-o", "json"], ["auth", "status"]):
            r = kf("--debug", *args, env=env)
            assert password not in r.text and "****" in r.text, args


@pytest.mark.process
def test_reset_cursor_waits_for_a_running_pull(filled, sandbox):
    """A pull holding the account's lock finishes before the cursor is forgotten."""
    import os
    import subprocess
    import sys

    from kfcli.core.pull import lock_name
    from kfcli.core.store import open_store

    with open_store(filled["url"]) as st:
        held = st.lock(lock_name(filled["corp_id"], K1))
        assert held is not None
        proc = subprocess.Popen([sys.executable, "-m", "kfcli", "store", "reset-cursor", K1,
                                 "--yes"], env={**os.environ, **sandbox.env, **filled["env"]},
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stderr.readline().startswith("waiting: another process is pulling")
            assert st.cursor(filled["corp_id"], K1) == "cur-1"  # not while the pull runs
        finally:
            held.release()
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
        assert st.cursor(filled["corp_id"], K1) is None
