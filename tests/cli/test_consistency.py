"""The same rule the same way everywhere: options that exclude each other, usage errors as
JSON when JSON was asked for, and the sandbox's own message store."""

from __future__ import annotations

import json

import pytest


@pytest.mark.parametrize("args, message", [
    (["account", "list", "--all", "--limit", "1"], "give --all or --limit, not both"),
    (["account", "list", "--all", "--offset", "5"], "give --all or --offset, not both"),
    (["knowledge", "group", "list", "--all", "--limit", "3"], "give --all or --limit, not both"),
    (["knowledge", "intent", "list", "--limit", "3", "--all"],
     "give --all or --limit, not both"),
    (["msg", "search", "hello", "--limit", "3", "--all"], "give --limit or --all, not both"),
    (["msg", "sync", "wkAbC123", "--cursor", "c", "--all"], "give --cursor or --all, not both"),
    (["account", "add", "--name", "A", "--avatar", "x.png", "--media-id", "m"],
     "give --avatar or --media-id, not both"),
])
def test_exclusive_options_are_refused_alike(kf, sandbox, args, message):
    before = sandbox.stats()
    r = kf(*args)
    assert r.code == 2 and r.out == "", r.err
    assert r.err == f"error: {message}\n", r.err
    assert sandbox.stats() == before


def test_account_list_limit_and_offset_still_page(kf, sandbox):
    for name in ("A", "B", "C"):
        sandbox.account(name)
    r = kf("account", "list", "--limit", "1", "--offset", "1", "-o", "json")
    assert r.code == 0 and [a["name"] for a in r.json()] == ["B"]
    assert len(kf("account", "list", "--all", "-o", "json").json()) == 3


@pytest.mark.parametrize("args", [
    ["account", "list", "--limit", "abc", "-o", "json"],
    ["account", "list", "--nosuch", "--json"],
    ["acount", "list", "-o", "json"],
    ["-o", "json", "account", "list", "--limit", "abc"],
    ["account", "list", "--limit", "0", "-ojson"],
    ["account", "list", "--all", "--limit", "1", "--output=json"],
])
def test_usage_errors_are_json_under_json_output(run, args):
    r = run(*args)
    assert r.code == 2 and r.out == ""
    doc = json.loads(r.err)
    assert doc["error"]["type"] in ("usage", "validation") and doc["error"]["message"]


def test_usage_errors_stay_text_otherwise(run):
    r = run("account", "list", "--limit", "abc")
    assert r.code == 2 and r.err.startswith("error: Invalid value for '--limit'")


def test_sandbox_runs_use_a_store_of_their_own(run, home, tmp_path):
    # `store status` only reads: it names the store it looked for (exit 3, none there yet).
    r = run("store", "status", env={"KFCLI_CORP_ID": "ww0123456789abcdef"})
    assert r.code == 3 and "/state/kfcli/store.db (the default)" in r.err, r.err
    assert run("config", "set", "store", f"sqlite:///{tmp_path}/prod.db").code == 0
    r = run("--sandbox", "store", "status")
    assert r.code == 3 and "/data/kfcli/sandbox-store.db" in r.err, r.err
    # named for this invocation: used
    r = run("--sandbox", "store", "status",
            env={"KFCLI_STORE": f"sqlite:///{tmp_path}/rehearsal.db"})
    assert r.code == 3 and "/rehearsal.db (from KFCLI_STORE)" in r.err, r.err
    r = run("--sandbox", "auth", "status", "-o", "json")
    store = r.json()["settings"]["store"]
    assert store["source"] == "sandbox" and "sandbox-store.db" in store["value"]
