"""Token expiry, rate limits, 5xx and dropped connections, as the account commands meet them."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest


def test_expired_token_is_refetched_once(kf, sandbox):
    assert kf("account", "list").code == 0
    sandbox.fault(fault="expire_tokens")
    r = kf("account", "list")
    assert r.code == 0, r.err
    assert sandbox.stats()["/cgi-bin/gettoken"] == 2


def test_token_errcodes_from_the_server(kf, sandbox):
    for code in (40014, 42001):
        kf("auth", "token")
        sandbox.fault(fault="errcode", errcode=code, path="/cgi-bin/kf/account/list")
        r = kf("account", "list")
        assert r.code == 0, (code, r.err)


def test_rate_limit_once_is_absorbed_then_reported(kf, sandbox):
    sandbox.fault(fault="errcode", errcode=45009, path="/cgi-bin/kf/account/list")
    assert kf("account", "list").code == 0
    sandbox.fault(fault="errcode", errcode=45009, path="/cgi-bin/kf/account/list", times=10)
    r = kf("account", "list")
    assert r.code == 7 and "45009" in r.err and "hint:" in r.err
    assert "sync_msg" not in r.err and "Token" not in r.err  # a hint for this command


def test_rate_limit_hint_names_the_callback_token_for_sync_msg_only():
    from kfcli.core.errors import api_error

    assert "msg sync --token" in api_error(45009, "limit", path="/cgi-bin/kf/sync_msg").hint
    assert "wait a minute" in api_error(45009, "limit", path="/cgi-bin/kf/sync_msg").hint
    assert "Token" not in api_error(45009, "limit", path="/cgi-bin/kf/account/list").hint


def test_5xx_is_retried_for_reads_only(kf, sandbox, avatar):
    sandbox.fault(fault="http_status", status=500, path="/cgi-bin/kf/account/list")
    assert kf("account", "list").code == 0
    media_id = kf("media", "upload", str(avatar)).out.strip()
    sandbox.fault(fault="http_status", status=502, path="/cgi-bin/kf/account/add")
    r = kf("account", "add", "--name", "x", "--media-id", media_id)
    assert r.code == 6 and "HTTP 502" in r.err
    assert sandbox.accounts() == []  # not retried: a create is not idempotent


def test_dropped_connection_on_a_create_is_not_repeated(kf, sandbox, avatar):
    media_id = kf("media", "upload", str(avatar)).out.strip()
    sandbox.fault(fault="disconnect", path="/cgi-bin/kf/account/add")
    r = kf("account", "add", "--name", "once", "--media-id", media_id)
    assert r.code == 6 and "may have reached WeCom" in r.err
    assert [a["name"] for a in sandbox.accounts()] == ["once"]


def test_dropped_connection_on_a_read_is_retried(kf, sandbox):
    sandbox.fault(fault="disconnect", path="/cgi-bin/kf/account/list")
    assert kf("account", "list").code == 0


def test_unreachable_server_is_a_network_error(run, home):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"KFCLI_BASE_URL": f"http://127.0.0.1:{port}", "KFCLI_CORP_ID": "ww1",
           "KFCLI_SECRET": "secret-for-unreachable-1"}
    r = run("account", "list", env=env)
    assert r.code == 6 and "unreachable" in r.err
    assert "secret-for-unreachable-1" not in r.text


def test_secrets_never_appear_even_in_debug_traces(kf, sandbox, avatar):
    r = kf("--debug", "account", "add", "--name", "Dbg", "--avatar", str(avatar))
    assert r.code == 0
    assert "> POST" in r.err and "/cgi-bin/media/upload" in r.err
    token = sandbox.get("/cgi-bin/gettoken", corpid=sandbox.creds["corp_id"],
                        corpsecret=sandbox.creds["secret"])["access_token"]
    for secret in (sandbox.creds["secret"], token):
        assert secret not in r.text
    r = kf("--debug", "account", "delete", "wkNope", "--yes", "-o", "json")
    assert r.code == 4
    assert sandbox.creds["secret"] not in r.text and token not in r.text
    json.loads(r.err.strip().splitlines()[-1])  # the last stderr line is the JSON error


@pytest.mark.process
def test_sixteen_cold_processes_fetch_one_token(sandbox, home):
    env = {**__import__("os").environ, **sandbox.env}
    procs = [
        subprocess.Popen([sys.executable, "-m", "kfcli", "account", "list"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(16)
    ]
    codes = [p.wait(timeout=60) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert codes == [0] * 16
    stats = sandbox.stats()
    assert stats["/cgi-bin/gettoken"] == 1
    assert stats["/cgi-bin/kf/account/list"] == 16
