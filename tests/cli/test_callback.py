"""`kfcli callback-verify url|decrypt|encrypt` as an operator runs it (DESIGN.md §7)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import pytest

from kfcli.core.crypto import WeComCrypto, parse_xml
from tests.core.test_crypto import (
    AES_KEY,
    ENCRYPT,
    MSG_SIGNATURE,
    NONCE,
    RECEIVE_ID,
    TIMESTAMP,
    TOKEN,
    ref_decrypt,
    ref_encrypt,
    ref_signature,
)

CREDS = ["--token", TOKEN, "--aes-key", AES_KEY, "--corp-id", RECEIVE_ID]
ENV = {"KFCLI_TOKEN": TOKEN, "KFCLI_AES_KEY": AES_KEY, "KFCLI_CORP_ID": RECEIVE_ID}
OFFICIAL = ["--msg-signature", MSG_SIGNATURE, "--timestamp", TIMESTAMP, "--nonce", NONCE]

INNER = ("<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>"
         "<CreateTime>1700000000</CreateTime><MsgType><![CDATA[event]]></MsgType>"
         "<Event><![CDATA[kf_msg_or_event]]></Event><Token><![CDATA[ENCApHxnGDNAVNY4AaSJKj4Tb5]]>"
         "</Token><OpenKfId><![CDATA[wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q]]></OpenKfId></xml>")


def no_secrets(*results) -> None:
    for r in results:
        assert TOKEN not in r.text and AES_KEY not in r.text, r.text


def signed(encrypt: str, ts: str = "1700000000", nonce: str = "8675309") -> list[str]:
    return ["--msg-signature", ref_signature(TOKEN, ts, nonce, encrypt), "--timestamp", ts,
            "--nonce", nonce]


def test_url_prints_the_echostr_and_raw_is_exact(run):
    echostr = ref_encrypt(AES_KEY, b"5927782489442352469", RECEIVE_ID.encode())
    r1 = run("callback-verify", "url", *signed(echostr), "--echostr", echostr, *CREDS)
    assert r1.code == 0, r1.err
    assert r1.out == "5927782489442352469\n"
    r2 = run("callback-verify", "url", *signed(echostr), "--echostr", echostr, "--raw",
             env=ENV)
    assert r2.code == 0 and r2.out == "5927782489442352469"
    r3 = run("callback-verify", "url", *signed(echostr), "--echostr", echostr, "-o", "json",
             env=ENV)
    assert r3.json() == {"echostr": "5927782489442352469"}
    no_secrets(r1, r2, r3)


def test_decrypt_official_vector_from_encrypt_file_and_stdin(run, tmp_path):
    r = run("callback-verify", "decrypt", *OFFICIAL, "--encrypt", ENCRYPT, *CREDS)
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert "Content\thello" in lines and "AgentID\t218" in lines and len(lines) == 7

    body = (f"<xml><ToUserName><![CDATA[{RECEIVE_ID}]]></ToUserName>"
            f"<Encrypt><![CDATA[{ENCRYPT}]]></Encrypt><AgentID><![CDATA[218]]></AgentID></xml>")
    path = tmp_path / "body.xml"
    path.write_text(body)
    r_file = run("callback-verify", "decrypt", *OFFICIAL, str(path), "-o", "json", env=ENV)
    assert r_file.code == 0, r_file.err
    doc = r_file.json()
    assert doc["Content"] == "hello" and doc["MsgId"] == "4561255354251345929"
    assert list(doc) == ["ToUserName", "FromUserName", "CreateTime", "MsgType", "Content",
                         "MsgId", "AgentID"]

    r_stdin = run("callback-verify", "decrypt", *OFFICIAL, "-", "--raw", input=body, env=ENV)
    assert r_stdin.code == 0
    expected = WeComCrypto(TOKEN, AES_KEY, RECEIVE_ID).decrypt(ENCRYPT)
    assert r_stdin.out.encode() == expected and len(expected) == 284
    no_secrets(r, r_file, r_stdin)


def test_decrypt_kf_event_fields_as_json(run):
    encrypt = ref_encrypt(AES_KEY, INNER.encode(), RECEIVE_ID.encode())
    r = run("callback-verify", "decrypt", *signed(encrypt), "--encrypt", encrypt, "--json",
            env=ENV)
    assert r.code == 0, r.err
    assert r.json() == {"ToUserName": RECEIVE_ID, "CreateTime": "1700000000",
                        "MsgType": "event", "Event": "kf_msg_or_event",
                        "Token": "ENCApHxnGDNAVNY4AaSJKj4Tb5",
                        "OpenKfId": "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q"}


def test_encrypt_body_on_stdout_query_on_stderr_and_it_decrypts(run, tmp_path):
    msg = tmp_path / "msg.xml"
    msg.write_text(INNER)
    r = run("callback-verify", "encrypt", str(msg), "--timestamp", "1700000001", "--nonce",
            "abc123", env=ENV)
    assert r.code == 0, r.err
    body = r.out.rstrip("\n")
    assert body.startswith(f"<xml><ToUserName><![CDATA[{RECEIVE_ID}]]></ToUserName><Encrypt>")
    assert body.endswith("</Encrypt><AgentID><![CDATA[]]></AgentID></xml>")
    query = {k: v[0] for k, v in parse_qs(r.err.strip()).items()}
    assert set(query) == {"msg_signature", "timestamp", "nonce"}
    assert query["timestamp"] == "1700000001" and query["nonce"] == "abc123"
    # independent check: signature and plaintext
    encrypt = parse_xml(body.encode())["Encrypt"]
    assert query["msg_signature"] == ref_signature(TOKEN, "1700000001", "abc123", encrypt)
    assert ref_decrypt(AES_KEY, encrypt)[:2] == (INNER.encode(), RECEIVE_ID.encode())
    # and our own decrypt reads it back from stdin
    back = run("callback-verify", "decrypt", "--msg-signature", query["msg_signature"],
               "--timestamp", "1700000001", "--nonce", "abc123", "-", "--raw", input=body,
               env=ENV)
    assert back.code == 0 and back.out == INNER
    no_secrets(r, back)


def test_encrypt_json_and_raw(run):
    r = run("callback-verify", "encrypt", "-", "-o", "json", input="héllo 👋", env=ENV)
    assert r.code == 0, r.err
    doc = r.json()
    assert set(doc) == {"encrypt", "msg_signature", "timestamp", "nonce", "body"}
    assert doc["timestamp"].isdigit() and len(doc["nonce"]) == 10
    assert ref_decrypt(AES_KEY, doc["encrypt"])[0] == "héllo 👋".encode()
    assert doc["msg_signature"] == ref_signature(TOKEN, doc["timestamp"], doc["nonce"],
                                                 doc["encrypt"])
    raw = run("callback-verify", "encrypt", "-", "--raw", input="x", env=ENV)
    assert raw.code == 0 and raw.out.startswith("<xml>") and raw.out.endswith("</xml>")
    no_secrets(r, raw)


def test_empty_corp_id_means_an_empty_receive_id(run):
    encrypt = ref_encrypt(AES_KEY, b"<xml><A>1</A></xml>", b"")
    args = ["callback-verify", "decrypt", *signed(encrypt), "--encrypt", encrypt, "--raw"]
    # An empty variable counts as unset (KFCLI_CORP_ID= in a CI file is "not given"): only
    # the flag says "an empty receive id".
    r = run(*args, env={**ENV, "KFCLI_CORP_ID": ""})
    assert r.code == 3 and "--corp-id ''" in r.err, r.err
    r = run(*args, "--token", TOKEN, "--aes-key", AES_KEY, "--corp-id", "")
    assert r.code == 0 and r.out == "<xml><A>1</A></xml>", r.err
    r = run(*args, env=ENV)  # expects wx5823…: the message carries an empty id
    assert r.code == 5 and "receive_id_mismatch" in r.err and "''" in r.err


def test_credentials_from_the_profile(run):
    for key, value in (("token", TOKEN), ("aes_key", AES_KEY)):
        assert run("config", "set", key, input=value + "\n").code == 0
    assert run("config", "set", "corp_id", RECEIVE_ID).code == 0
    r = run("callback-verify", "decrypt", *OFFICIAL, "--encrypt", ENCRYPT, "-o", "json")
    assert r.code == 0 and r.json()["Content"] == "hello", r.err
    # a flag beats the profile
    r = run("callback-verify", "decrypt", *OFFICIAL, "--encrypt", ENCRYPT, "--corp-id", "wwX")
    assert r.code == 5 and "receive_id_mismatch" in r.err


@pytest.mark.parametrize("case,needle", [
    ("bad_signature", "invalid_signature"),
    ("wrong_corp", "receive_id_mismatch"),
    ("wrong_key", "decrypt_failed"),
])
def test_verification_failures_exit_5_and_name_the_reason(run, case, needle):
    args = ["callback-verify", "decrypt", *OFFICIAL, "--encrypt", ENCRYPT]
    env = dict(ENV)
    if case == "bad_signature":
        args[3] = MSG_SIGNATURE[:-1] + "f"
    elif case == "wrong_corp":
        env["KFCLI_CORP_ID"] = "ww0000000000000000"
    else:
        env["KFCLI_AES_KEY"] = "A" * 43
    r = run(*args, env=env)
    assert r.code == 5, r.err
    assert r.out == "" and "Traceback" not in r.err
    assert r.err.startswith(f"error: {needle}") and "hint:" in r.err
    if case == "bad_signature":
        assert "msg_signature" in r.err and "URL-decode" in r.err
    if case == "wrong_corp":
        assert "'wx5823bf96d3bd56c7'" in r.err and "'ww0000000000000000'" in r.err
    j = run(*args, "-o", "json", env=env)
    assert j.code == 5 and json.loads(j.err)["error"]["reason"] == needle
    no_secrets(r, j)


def test_url_with_a_plus_turned_into_space_gets_a_helpful_hint(run):
    r = run("callback-verify", "url", *OFFICIAL, "--echostr", ENCRYPT.replace("+", " "),
            env=ENV)
    assert r.code == 5 and "invalid_signature" in r.err and "`+`" in r.err


@pytest.mark.parametrize("env,args,needle,code", [
    ({"KFCLI_AES_KEY": AES_KEY[:42]}, [], "exactly 43 characters [A-Za-z0-9]", 2),
    ({}, ["--aes-key", AES_KEY[:40] + "+/=="], "exactly 43 characters [A-Za-z0-9]", 2),
    ({"KFCLI_TOKEN": "bad token!"}, [], "1-32 characters [A-Za-z0-9]", 2),
    # Nothing configured is a configuration error (DESIGN.md §5: exit 3).
    ({"KFCLI_TOKEN": None}, [], "token not configured", 3),
    ({"KFCLI_CORP_ID": None}, [], "--corp-id ''", 3),
])
def test_bad_or_missing_credentials_are_refused_before_anything(run, env, args, needle, code):
    full_env = {k: v for k, v in {**ENV, **env}.items() if v is not None}  # None: unset
    r = run("callback-verify", "decrypt", *OFFICIAL, "--encrypt", ENCRYPT, *args, env=full_env)
    assert r.code == code, (r.code, r.err)
    assert needle in r.err and r.out == "" and len(r.err.strip().splitlines()) <= 2
    assert "Traceback" not in r.err
    no_secrets(r)
    for value in (env.get("KFCLI_AES_KEY"), env.get("KFCLI_TOKEN")):
        assert not value or value not in r.err


def test_usage_errors(run, tmp_path):
    r = run("callback-verify", "decrypt", *OFFICIAL, env=ENV)
    assert r.code == 2 and "--encrypt" in r.err
    r = run("callback-verify", "decrypt", *OFFICIAL, "-", "--encrypt", ENCRYPT, env=ENV)
    assert r.code == 2 and "not both" in r.err
    r = run("callback-verify", "decrypt", *OFFICIAL, str(tmp_path / "nope.xml"), env=ENV)
    assert r.code == 2 and "cannot read" in r.err
    r = run("callback-verify", "encrypt", "-", "--nonce", "a b", input="x", env=ENV)
    assert r.code == 2 and "--nonce" in r.err and r.out == ""
    r = run("callback-verify", "url", "--timestamp", "1", env=ENV)
    assert r.code == 2


def test_malformed_body_is_refused_without_expanding_entities(run):
    from tests.core.test_crypto import BILLION_LAUGHS

    r = run("callback-verify", "decrypt", *OFFICIAL, "-", input=BILLION_LAUGHS.decode(),
            env=ENV)
    assert r.code == 5 and "DOCTYPE" in r.err and r.out == ""


def test_secret_flags_still_work_but_warn_and_are_hidden_from_help(run):
    # A secret on the command line is visible in `ps` and kept in shell history: the flags
    # stay for old scripts, with a deprecation warning, and help no longer offers them.
    r = run("callback-verify", "decrypt", *OFFICIAL, "--encrypt", ENCRYPT, *CREDS)
    assert r.code == 0 and "Content\thello" in r.out
    assert "warning: --token and --aes-key are deprecated" in r.err and "KFCLI_TOKEN" in r.err
    r = run("callback-verify", "decrypt", *OFFICIAL, "--encrypt", ENCRYPT, "--aes-key",
            AES_KEY, env={"KFCLI_TOKEN": TOKEN, "KFCLI_CORP_ID": RECEIVE_ID})
    assert r.code == 0 and "warning: --aes-key is deprecated" in r.err
    r = run("callback-verify", "decrypt", *OFFICIAL, "--encrypt", ENCRYPT, env=ENV)
    assert r.code == 0 and "deprecated" not in r.err
    no_secrets(r)
    for command in ("url", "decrypt", "encrypt"):
        r = run("callback-verify", command, "--help")
        assert r.code == 0 and "--corp-id" in r.out
        assert "--token" not in r.out and "--aes-key" not in r.out, command
    # Unset, the error names the environment and the profile, not the flags.
    r = run("callback-verify", "decrypt", *OFFICIAL, "--encrypt", ENCRYPT,
            env={"KFCLI_CORP_ID": RECEIVE_ID})
    assert r.code == 3 and "KFCLI_TOKEN" in r.err and "--token" not in r.err


@pytest.mark.process
def test_a_missing_token_and_key_are_asked_for_without_echo(home):
    """On a terminal, the secrets come from a hidden prompt instead of flags (a pseudo-
    terminal that is the process's controlling terminal, as a person's would be)."""
    import fcntl
    import os
    import pty
    import select
    import subprocess
    import sys
    import termios
    import time

    master, slave = pty.openpty()

    def own_terminal() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    env = {**os.environ, "KFCLI_CORP_ID": RECEIVE_ID}
    proc = subprocess.Popen([sys.executable, "-m", "kfcli", "callback-verify", "decrypt",
                             *OFFICIAL, "--encrypt", ENCRYPT], env=env, stdin=slave,
                            stdout=slave, stderr=slave, preexec_fn=own_terminal)
    os.close(slave)
    seen = b""

    def read_until(marker: bytes) -> None:
        nonlocal seen
        deadline = time.monotonic() + 60
        while marker not in seen and time.monotonic() < deadline:
            if select.select([master], [], [], 1)[0]:
                try:
                    seen += os.read(master, 4096)
                except OSError:  # the other side closed
                    return

    try:
        # The space after the colon is written once echo is off (getpass): no race.
        read_until(b"Callback Token: ")
        os.write(master, TOKEN.encode() + b"\n")
        read_until(b"EncodingAESKey: ")
        os.write(master, AES_KEY.encode() + b"\n")
        read_until(b"AgentID")
        assert proc.wait(timeout=60) == 0, seen
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    text = seen.decode("utf-8", "replace")
    assert "hello" in text and TOKEN not in text and AES_KEY not in text, text
