"""`--sandbox` (embedded simulator) and the `kfcli sandbox` commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def test_embedded_sandbox_keeps_state_between_commands(run, home, avatar):
    r = run("--sandbox", "account", "add", "--name", "Support", "--avatar", str(avatar))
    assert r.code == 0, r.err
    open_kfid = r.out.strip()
    r = run("--sandbox", "account", "list", "-o", "json")
    assert [(a["open_kfid"], a["name"]) for a in r.json()] == [(open_kfid, "Support")]
    assert (home / "data" / "kfcli" / "sandbox.db").exists()
    r = run("account", "list", env={"KFCLI_SANDBOX": "1"})
    assert r.out.startswith(open_kfid)
    r = run("--sandbox", "sandbox", "say", open_kfid, "hello", "-o", "json")
    assert r.code == 0, r.err
    assert r.json()["external_userid"].startswith("wm")
    assert run("sandbox", "reset", "--yes").code == 0
    assert run("--sandbox", "account", "list", "-o", "json").json() == []


def test_embedded_sandbox_ignores_profiles(run, home):
    run("config", "set", "base_url", "http://127.0.0.1:9")
    assert run("--sandbox", "account", "list").code == 0


@pytest.mark.process
def test_serve_prints_credentials_first(home, tmp_path):
    from tests.conftest import run_in_process

    proc = subprocess.Popen(
        [sys.executable, "-m", "kfcli", "sandbox", "serve", "--port", "0", "--db",
         str(tmp_path / "s.db")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy(),
    )
    try:
        first = json.loads(proc.stdout.readline())
        assert set(first) == {"base_url", "corp_id", "secret", "token", "aes_key"}
        env = {**os.environ, "KFCLI_BASE_URL": first["base_url"],
               "KFCLI_CORP_ID": first["corp_id"], "KFCLI_SECRET": first["secret"]}

        def kfcli(*args):  # the clients need no process of their own
            return run_in_process(*args, env=env)

        assert kfcli("account", "list").code == 0
        r = kfcli("sandbox", "fault", "errcode", "--errcode", "95017", "-o", "json")
        assert r.code == 0, r.err
        r = kfcli("account", "list")
        assert r.code == 3 and "95017" in r.err
        r = kfcli("sandbox", "stats", "-o", "json")
        assert json.loads(r.out)["/cgi-bin/kf/account/list"] == 2
        assert kfcli("sandbox", "fault", "bogus").code == 2
        assert kfcli("sandbox", "fault", "errcode").code == 2
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()


def test_control_commands_refuse_the_real_wecom(run, home):
    r = run("sandbox", "say", "wk1", "hi", env={"KFCLI_CORP_ID": "a", "KFCLI_SECRET": "b"})
    assert r.code == 2 and "--sandbox" in r.err


def test_seed_and_config_unset(run, home, avatar):
    open_kfid = run("--sandbox", "account", "add", "--name", "S", "--avatar",
                    str(avatar)).out.strip()
    r = run("--sandbox", "sandbox", "seed", open_kfid, "--count", "250", "-o", "json")
    assert r.code == 0 and r.json()["count"] == 250
    assert len(run("--sandbox", "msg", "sync", open_kfid).out.splitlines()) == 250
    run("config", "set", "base_url", "http://127.0.0.1:9")
    assert run("config", "unset", "base_url").code == 0
    assert run("config", "get", "base_url").code == 3
    r = run("config", "unset", "base_url")  # idempotent: already unset is fine, and said
    assert r.code == 0 and "was not set" in r.err
