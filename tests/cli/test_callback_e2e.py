"""End to end with real processes: a customer message in the simulator reaches `kfcli callback
serve` as an encrypted WeCom callback, and the receiver pulls the message with sync_msg.

    kfcli sandbox serve ──POST kf_msg_or_event──▶ kfcli callback serve --sync ──sync_msg──┐
          ▲                                                                               │
    kfcli sandbox callback URL / kfcli sandbox say KFID hello          ◀──────────────────┘

Also `kfcli sandbox callback`'s own behaviour (defaults, errors, --off).
"""

from __future__ import annotations

import json

import pytest

from kfcli.core.redact import mask
from tests.cli.conftest import AVATAR, receiver_url


def hello_arrived(records: list[dict]) -> bool:
    return any(r.get("type") == "message" and r.get("text", {}).get("content") == "hello"
               for r in records)


@pytest.mark.process
def test_say_reaches_callback_serve_which_syncs_the_message(spawn, run, tmp_path):
    sandbox = spawn("sandbox", "serve", "--port", "0", "--db", str(tmp_path / "kf.db"))
    creds = json.loads(sandbox.out_line())
    env = {"KFCLI_BASE_URL": creds["base_url"], "KFCLI_CORP_ID": creds["corp_id"],
           "KFCLI_SECRET": creds["secret"], "KFCLI_TOKEN": creds["token"],
           "KFCLI_AES_KEY": creds["aes_key"]}
    rx = spawn("callback", "serve", "--port", "0", "--sync", env=env)
    url = receiver_url(rx)

    r = run("account", "add", "--name", "Support", "--avatar", str(AVATAR), env=env)
    assert r.code == 0, r.err
    open_kfid = r.out.strip()
    r = run("sandbox", "callback", url, "-o", "json", env=env)
    assert r.code == 0, r.err
    assert r.json()["url"] == url and creds["token"] not in r.out
    r = run("sandbox", "say", open_kfid, "hello", "-o", "json", env=env)
    assert r.code == 0, r.err
    external_userid = r.json()["external_userid"]

    records = rx.records_until(hello_arrived)
    callbacks = [x for x in records if x["type"] == "callback"]
    assert callbacks, records
    assert callbacks[0]["OpenKfId"] == open_kfid
    assert callbacks[0]["ToUserName"] == creds["corp_id"]
    assert callbacks[0]["Event"] == "kf_msg_or_event"
    message = next(x for x in records if x["type"] == "message")
    assert message["open_kfid"] == open_kfid and message["external_userid"] == external_userid
    assert message["origin"] == 3 and message["msgtype"] == "text"


@pytest.mark.process
def test_embedded_sandbox_delivers_before_the_command_exits(spawn, run):
    # `kfcli --sandbox` stops its simulator as soon as the command is done: the callback of
    # `say` must still go out. The receiver's own --sandbox shares the same database.
    rx = spawn("--sandbox", "callback", "serve", "--port", "0", "--sync")
    url = receiver_url(rx)
    r = run("--sandbox", "account", "add", "--name", "Support", "--avatar", str(AVATAR))
    assert r.code == 0, r.err
    open_kfid = r.out.strip()
    assert run("--sandbox", "sandbox", "callback", url).code == 0
    assert run("--sandbox", "sandbox", "say", open_kfid, "hello").code == 0
    records = rx.records_until(hello_arrived)
    assert records[0]["type"] == "callback" and records[0]["OpenKfId"] == open_kfid


def test_sandbox_callback_command(kf, sandbox):
    creds = sandbox.creds
    # A production pair in the environment (or the profile) is never the default.
    production = {"KFCLI_TOKEN": "ProductionToken1", "KFCLI_AES_KEY": "P" * 43}
    url = "http://127.0.0.1:9/kf"

    r = kf("sandbox", "callback", "ftp://example.com/")
    assert r.code == 2 and "http://" in r.err
    r = kf("sandbox", "callback", url, "--aes-key", "short", env=production)
    assert r.code == 2 and "43" in r.err
    r = kf("sandbox", "callback", url, "--off")
    assert r.code == 2
    r = kf("sandbox", "callback", url, "--configured-keys")  # none configured
    assert r.code == 3 and "KFCLI_TOKEN" in r.err and "--token" not in r.err
    assert sandbox.get("/sandbox/callback")["url"] == ""  # nothing was sent

    r = kf("sandbox", "callback", url, "-o", "json", env=production)
    assert r.code == 0, r.err
    shown = r.json()
    assert shown["url"] == url and shown["keys"] == "sandbox"
    assert shown["token"].startswith("****") and "simulator's own" in r.err
    for secret in (creds["token"], creds["aes_key"], *production.values()):
        assert secret not in r.out + r.err
    assert sandbox.get("/sandbox/callback") == {
        "url": url, "token": mask(creds["token"]), "aes_key": mask(creds["aes_key"]),
        "keys": "sandbox"}

    r = kf("sandbox", "callback", url, "--configured-keys", "-o", "json", env=production)
    assert r.code == 0 and r.json()["keys"] == "given", r.err
    assert sandbox.get("/sandbox/callback")["aes_key"] == mask(production["KFCLI_AES_KEY"])

    # The old flags still work, but warn.
    r = kf("sandbox", "callback", url, "--token", "Other123", "--aes-key", "A" * 43)
    assert r.code == 0, r.err
    assert "deprecated" in r.err and "--token and --aes-key" in r.err
    assert sandbox.get("/sandbox/callback") == {"url": url, "token": mask("Other123"),
                                                "aes_key": mask("A" * 43), "keys": "given"}
    r = kf("sandbox", "callback", "-o", "json")
    assert r.code == 0 and r.json()["url"] == url and "Other123" not in r.out
    r = kf("sandbox", "callback", "--help")
    assert "--token" not in r.out and "--aes-key" not in r.out and "--configured-keys" in r.out

    r = kf("sandbox", "callback", "--off", "-o", "json")
    assert r.code == 0 and r.json()["url"] == ""
    assert sandbox.get("/sandbox/callback")["url"] == ""


@pytest.mark.process
def test_sandbox_serve_warns_when_it_listens_beyond_loopback(spawn, run, tmp_path):
    from kfcli.cli.sandbox import is_loopback

    assert all(map(is_loopback, ("127.0.0.1", "127.0.0.9", "::1", "[::1]", "localhost")))
    assert not any(map(is_loopback, ("0.0.0.0", "::", "192.168.1.5", "example.com", "")))
    # Nothing here listens beyond loopback: 192.0.2.1 (TEST-NET-1) is no address of this
    # machine, so the server cannot bind it (exit 3), after the warning.
    r = run("sandbox", "serve", "--host", "192.0.2.1", "--port", "0", "--db",
            str(tmp_path / "far.db"))
    assert r.code == 3 and "warning: --host 192.0.2.1 reaches beyond this machine" in r.err
    quiet = spawn("sandbox", "serve", "--host", "localhost", "--port", "0", "--db",
                  str(tmp_path / "kf.db"))
    assert json.loads(quiet.out_line())["base_url"]
    assert quiet.err_line().startswith("sandbox listening on")


def test_sandbox_callback_needs_a_simulator(run):
    r = run("sandbox", "callback", "--off")
    assert r.code == 2 and "--sandbox" in r.err
