"""Small defects, each checked as a user meets it: exit code, stderr, and the state left."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from tests.core.test_crypto import (
    AES_KEY,
    ENCRYPT,
    MSG_SIGNATURE,
    NONCE,
    RECEIVE_ID,
    TIMESTAMP,
    TOKEN,
)

CREDS = ["--token", TOKEN, "--aes-key", AES_KEY, "--corp-id", RECEIVE_ID]
OFFICIAL = ["--msg-signature", MSG_SIGNATURE, "--timestamp", TIMESTAMP, "--nonce", NONCE]

# ---------------------------------------------------------------------- api


def test_api_path_without_the_leading_slash(kf, sandbox):
    open_kfid = sandbox.account()
    for path in ("cgi-bin/kf/account/list", "kf/account/list", "/cgi-bin/kf/account/list"):
        r = kf("api", "POST", path, "-F", "limit=10")
        assert r.code == 0, (path, r.err)
        assert r.json()["account_list"][0]["open_kfid"] == open_kfid
    paths = sandbox.stats()
    assert paths["/cgi-bin/kf/account/list"] == 3
    assert not any("cgi-bin/cgi-bin" in p for p in paths)


@pytest.mark.process
def test_api_binary_answer_needs_output_file(kf, sandbox, avatar, tmp_path):
    media_id = sandbox.upload(avatar.read_bytes())
    before = sandbox.stats().get("/cgi-bin/media/get", 0)
    r = kf("api", "GET", "/cgi-bin/media/get", "-f", f"media_id={media_id}")
    assert r.code == 2 and "-O FILE" in r.err and "media get" in r.err
    assert "base_url" not in r.err
    assert sandbox.stats().get("/cgi-bin/media/get", 0) == before  # nothing sent
    target = tmp_path / "out.png"
    r = kf("api", "GET", "/cgi-bin/media/get", "-f", f"media_id={media_id}", "-O",
           str(target), "-o", "json")
    assert r.code == 0, r.err
    assert target.read_bytes() == avatar.read_bytes()
    doc = r.json()
    assert doc["path"] == str(target) and doc["bytes"] == len(avatar.read_bytes())
    assert doc["content_type"].startswith("image/")
    r = kf("api", "GET", "/cgi-bin/media/get", "-f", f"media_id={media_id}", "-O", str(target))
    assert r.code == 2 and "--force" in r.err
    # -O - : the bytes on a pipe.
    env = {**__import__("os").environ, **sandbox.env}
    out = subprocess.run([sys.executable, "-m", "kfcli", "api", "GET", "/cgi-bin/media/get",
                          "-f", f"media_id={media_id}", "-O", "-"], env=env,
                         capture_output=True)
    assert out.returncode == 0 and out.stdout == avatar.read_bytes()
    # A WeCom error on a binary path is still an error with its exit code.
    r = kf("api", "GET", "/cgi-bin/media/get", "-f", "media_id=3NoSuchMedia", "-O",
           str(tmp_path / "none.png"))
    assert r.code == 4 and "40007" in r.err and not (tmp_path / "none.png").exists()


# ---------------------------------------------------------------------- callback-verify


def test_decrypt_with_neither_body_nor_encrypt_says_what_is_missing(run, tmp_path):
    r = run("callback-verify", "decrypt", *OFFICIAL, *CREDS)
    assert r.code == 2 and "nothing to decrypt" in r.err and "not both" not in r.err
    body = tmp_path / "body.xml"
    body.write_text(f"<xml><Encrypt><![CDATA[{ENCRYPT}]]></Encrypt></xml>")
    r = run("callback-verify", "decrypt", *OFFICIAL, str(body), "--encrypt", ENCRYPT, *CREDS)
    assert r.code == 2 and "not both" in r.err


# ---------------------------------------------------------------------- busy ports


@pytest.fixture
def busy_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def test_a_busy_port_exits_3_in_both_servers(run, busy_port, tmp_path):
    r = run("sandbox", "serve", "--port", str(busy_port), "--db", str(tmp_path / "s.db"))
    assert r.code == 3 and "already in use" in r.err and "--port" in r.err, r.err
    r = run("callback", "serve", "--port", str(busy_port), "-o", "json",
            env={"KFCLI_TOKEN": TOKEN, "KFCLI_AES_KEY": AES_KEY, "KFCLI_CORP_ID": RECEIVE_ID})
    assert r.code == 3, r.err
    error = json.loads(r.err)["error"]
    assert error["type"] == "environment" and "already in use" in error["message"]


def test_serve_db_in_a_missing_directory_creates_nothing(run, tmp_path):
    target = tmp_path / "missing" / "deeper" / "x.db"
    r = run("sandbox", "serve", "--port", "0", "--db", str(target))
    assert r.code == 2 and "does not exist" in r.err
    assert not (tmp_path / "missing").exists()


# ---------------------------------------------------------------------- sandbox reset / fault


def test_reset_refuses_while_a_simulator_uses_the_file(run, home):
    from kfcli.core import paths
    from kfcli.sandbox import start

    db = paths.sandbox_db()
    db.parent.mkdir(parents=True, exist_ok=True)
    server = start(db)
    try:
        r = run("sandbox", "reset", "--yes")
        assert r.code == 3 and "using" in r.err and str(db) in r.err
        assert db.exists()
        doc = server.store.credentials()  # the server's database is intact
        assert doc["corp_id"]
    finally:
        server.stop()
    r = run("sandbox", "reset", "--yes")
    assert r.code == 0 and not db.exists()


def test_embedded_sandbox_refuses_faults_it_can_never_fire(run, home):
    for kind, extra in (("errcode", ["--errcode", "45009"]), ("disconnect", []),
                        ("http_status", ["--status", "500"])):
        r = run("--sandbox", "sandbox", "fault", kind, *extra)
        assert r.code == 2 and "sandbox serve" in r.err, (kind, r.err)
    r = run("--sandbox", "sandbox", "fault", "expire_tokens")
    assert r.code == 0, r.err


# ---------------------------------------------------------------------- config


def test_removing_the_current_profile_falls_back_to_default_and_says_so(run, home):
    run("config", "set", "corp_id", "wwdefault")
    run("-p", "prod", "config", "set", "corp_id", "wwprod")
    assert run("config", "use", "prod").code == 0
    r = run("config", "remove", "prod", "--yes")
    assert r.code == 0 and "'default'" in r.err and "current" in r.err
    doc = json.loads((home / "config" / "config.json").read_text())
    assert doc["current"] == "default"
    assert run("config", "get", "corp_id").out == "wwdefault\n"


def test_removing_the_current_profile_never_picks_another_one(run, home):
    run("-p", "staging", "config", "set", "corp_id", "wwstaging")
    run("-p", "prod", "config", "set", "corp_id", "wwprod")
    assert run("config", "use", "staging").code == 0
    r = run("config", "remove", "staging", "--yes", "-o", "json")
    assert r.code == 0 and r.json() == {"removed": "staging", "current": None}
    r = run("config", "remove", "prod", "--yes")  # not current: nothing else changes
    assert r.code == 0 and "current" not in r.err
    run("-p", "qa", "config", "set", "corp_id", "wwqa")
    rows = run("config", "list", "-o", "json").json()
    assert [(p["profile"], p["current"]) for p in rows] == [("qa", False)]
    r = run("account", "list")
    assert r.code == 3 and "wwqa" not in r.text


def test_unset_is_idempotent(run, home):
    run("config", "set", "base_url", "http://127.0.0.1:9")
    assert run("config", "unset", "base_url").code == 0
    r = run("config", "unset", "base_url")
    assert r.code == 0 and "was not set" in r.err and r.out == ""
    r = run("config", "unset", "base_url", "-o", "json")
    assert r.code == 0 and r.json()["was_set"] is False
    r = run("-p", "ghost", "config", "unset", "base_url")
    assert r.code == 3 and "ghost" in r.err  # a named profile must exist


def test_unset_with_no_config_at_all(run, home):
    r = run("config", "unset", "secret")
    assert r.code == 0 and "was not set" in r.err
    assert not (home / "config" / "config.json").exists()


def test_config_list_shows_which_settings_each_profile_has(run, home):
    run("config", "set", "corp_id", "ww0123456789abcdef")
    run("config", "set", "secret", input="a-secret-of-some-length-9876\n")
    run("-p", "cb", "config", "set", "token", input="CallbackToken42\n")
    rows = {p["profile"]: p for p in run("config", "list", "-o", "json").json()}
    assert rows["default"]["corp_id"] == "ww0123456789abcdef"
    assert rows["default"]["secret"] == "****9876"
    assert rows["default"]["token"] is None and rows["default"]["aes_key"] is None
    assert rows["cb"]["token"].startswith("****") and rows["cb"]["secret"] is None
    r = run("config", "list")
    assert "a-secret-of-some-length-9876" not in r.text and "CallbackToken42" not in r.text
    lines = [line.split("\t") for line in r.out.splitlines()]
    assert lines[0][:4] == ["cb", "false", "", ""] and lines[0][4].startswith("****")
    assert lines[1][:4] == ["default", "true", "ww0123456789abcdef", "****9876"]


# ---------------------------------------------------------------------- auth token --raw


def test_auth_token_raw_prints_the_bare_token(kf, sandbox):
    r = kf("auth", "token", "--raw")
    assert r.code == 0, r.err
    token = r.out.strip()
    assert r.out == token + "\n" and len(token) > 20
    issued = sandbox.get("/cgi-bin/gettoken", corpid=sandbox.creds["corp_id"],
                         corpsecret=sandbox.creds["secret"])["access_token"]
    assert token == issued  # WeCom (and the simulator) return the valid token again
    r = kf("auth", "token")
    assert token not in r.text and "****" in r.out
    assert kf("auth", "token", "--raw", "-o", "json").json()["access_token"] == token


# ---------------------------------------------------------------------- knowledge


def test_intent_list_of_an_unknown_group_or_intent_exits_4(kf, sandbox):
    r = kf("knowledge", "intent", "list", "--group", "nosuch")
    assert r.code == 4 and "nosuch" in r.err and r.out == ""
    r = kf("knowledge", "intent", "list", "--intent", "nosuch", "-o", "json")
    assert r.code == 4 and json.loads(r.err)["error"]["type"] == "not_found"
    group_id = kf("knowledge", "group", "add", "Empty").out.strip()
    r = kf("knowledge", "intent", "list", "--group", group_id)
    assert r.code == 0 and r.out == ""  # an existing, empty group


LINK = ('{"msgtype": "link", "link": {"title": "t", "picurl": "https://e.com/p.png", '
        '"desc": "d", "url": "https://e.com"}}')


def test_intent_update_answer_asks_before_dropping_attachments(kf, sandbox, avatar):
    group_id = kf("knowledge", "group", "add", "FAQ").out.strip()
    intent_id = kf("knowledge", "intent", "add", "--group", group_id, "--question", "q1",
                   "--answer", "a1", "--attachment", LINK, "--image", str(avatar)).out.strip()

    def attachments() -> list[str]:
        [intent] = kf("knowledge", "intent", "list", "--intent", intent_id, "-o", "json").json()
        return [a["msgtype"] for a in intent["answers"][0].get("attachments") or []]

    def answer() -> str:
        [intent] = kf("knowledge", "intent", "list", "--intent", intent_id, "-o", "json").json()
        return intent["answers"][0]["text"]["content"]

    r = kf("knowledge", "intent", "update", intent_id, "--answer", "a2", "--attachment", LINK)
    assert r.code == 0 and "warning" not in r.err  # new ones given: replaced as asked
    assert attachments() == ["link"]
    intent_id_attachments = attachments()
    # no terminal to ask on: nothing changes, and the ways on are named
    r = kf("knowledge", "intent", "update", intent_id, "--answer", "a3")
    assert r.code == 2, r.err
    assert "removes intent" in r.err and "1 attachment (link)" in r.err and "--yes" in r.err
    assert "--keep-attachments" in r.err
    assert answer() == "a2" and attachments() == intent_id_attachments
    # --keep-attachments: the new answer with the old attachments (and new ones beside them)
    r = kf("knowledge", "intent", "update", intent_id, "--answer", "a4", "--keep-attachments")
    assert r.code == 0, r.err
    assert answer() == "a4" and attachments() == ["link"]
    r = kf("knowledge", "intent", "update", intent_id, "--answer", "a5", "--keep-attachments",
           "--image", str(avatar))
    assert r.code == 0, r.err
    assert attachments() == ["link", "image"]
    r = kf("knowledge", "intent", "update", intent_id, "--keep-attachments", "--question", "q")
    assert r.code == 2 and "--keep-attachments goes with a new --answer" in r.err
    # --yes: dropped without asking
    r = kf("knowledge", "intent", "update", intent_id, "--answer", "a6", "--yes")
    assert r.code == 0, r.err
    assert answer() == "a6" and attachments() == []
    r = kf("knowledge", "intent", "update", intent_id, "--answer", "a7")
    assert r.code == 0 and r.err.strip() == f"updated intent {intent_id}"  # nothing to drop


def test_booleans_read_the_same_everywhere(kf, sandbox):
    rows = [line.split("\t") for line in kf("knowledge", "group", "list").out.splitlines()]
    assert [r[2] for r in rows] == ["true"]  # WeCom's is_default 1, shown like other booleans
    assert kf("knowledge", "group", "list", "-o", "json").json()[0]["is_default"] == 1


# ---------------------------------------------------------------------- wording


def test_wording_plurals_and_articles(kf, sandbox, tmp_path):
    assert "dropped 0 cached tokens" in kf("auth", "logout", "--all").err
    kf("auth", "token")
    assert "dropped 1 cached token\n" in kf("auth", "logout", "--all").err
    sandbox.account("A")
    sandbox.account("B")
    r = kf("account", "list", "--limit", "1")
    assert "showing 1 account;" in r.err
    fake = tmp_path / "fake.amr"
    fake.write_bytes(b"not an amr file at all")
    r = kf("media", "upload", str(fake), "--type", "voice")
    assert r.code == 2 and "is not an AMR file" in r.err


def test_media_get_takes_output_options(kf, sandbox, avatar, tmp_path):
    media_id = sandbox.upload(avatar.read_bytes())
    target = tmp_path / "a.png"
    r = kf("media", "get", media_id, "-O", str(target), "-o", "json")
    assert r.code == 0, r.err
    doc = r.json()
    assert doc["path"] == str(target) and doc["bytes"] == len(avatar.read_bytes())
    assert doc["media_id"] == media_id and doc["content_type"].startswith("image/")
    r = kf("media", "get", media_id, "--json")
    assert r.code == 2 and json.loads(r.err)["error"]["type"] == "usage"


def test_an_empty_credential_variable_counts_as_unset(run, home):
    # KFCLI_TOKEN= (empty) must not hide the profile's Token.
    run("config", "set", "token", input=TOKEN + "\n")
    run("config", "set", "aes_key", input=AES_KEY + "\n")
    run("config", "set", "corp_id", RECEIVE_ID)
    r = run("callback-verify", "decrypt", *OFFICIAL, "--encrypt", ENCRYPT,
            env={"KFCLI_TOKEN": "", "KFCLI_AES_KEY": "", "KFCLI_CORP_ID": ""})
    assert r.code == 0, r.err
