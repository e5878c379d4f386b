"""Malformed input is refused with exit 2 and a message that names the field, and never
crashes; nothing is uploaded or sent (issue 10, item 6)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import KFCLI


@pytest.fixture
def chat(sandbox):
    open_kfid = sandbox.account()
    return open_kfid, sandbox.say(open_kfid, "你好")


def refused(r, *needles: str) -> None:
    """Exit 2, `error: …` on stderr naming what is wrong, nothing on stdout, no crash."""
    assert r.code == 2, (r.code, r.err)
    assert r.err.startswith("error: "), r.err
    assert "Traceback" not in r.err and "internal error" not in r.err, r.err
    assert r.out == "", r.out
    lines = [line for line in r.err.splitlines() if not line.startswith("hint: ")]
    assert len(lines) == 1, r.err
    for needle in needles:
        assert needle in r.err, (needle, r.err)


# ---------------------------------------------------------------------- JSON shapes


def test_json_options_report_shapes_with_a_field_path(kf, sandbox, chat, tmp_path):
    open_kfid, customer = chat
    menu_file = tmp_path / "menu.json"
    menu_file.write_text('{"list": [{"type": "click", "click": {"id": "1"}}]}')
    cases = [
        (["--menu", "[]"], "--menu: expected a menu object", "got an array"),
        (["--menu", "null"], "--menu: is required"),
        (["--menu", '{"list": {}}'], "--menu: list: expected an array", "got an object"),
        (["--menu", '{"list": []}'], "--menu: list: must hold 1-10 items"),
        (["--menu", '{"list": ["x"]}'], "--menu: list[0]: expected an object", "a string"),
        (["--menu", '{"list": [{}]}'], "--menu: list[0].type: expected one of click, view, "
                                       "miniprogram, text, got null"),
        (["--menu", '{"list": [{"type": ["click"]}]}'], "list[0].type: expected one of",
         "got an array"),
        (["--menu", '{"list": [{"type": "view", "view": "https://x"}]}'],
         "--menu: list[0].view: expected an object with url, content, got a string"),
        (["--menu", f"@{menu_file}"], "--menu: list[0].click.content: is required"),
        (["--menu", '{"head_content": 5, "list": [{"type": "text", "text": {"content": "a"}}]}'],
         "--menu: head_content: expected a string, got a number"),
        (["--payload", '{"msgtype": "text", "text": "str"}'],
         "--payload: text: expected an object, got a string"),
        (["--payload", '{"msgtype": "text", "text": {"content": 5}}'],
         "--payload: text.content: expected a string, got a number"),
        (["--payload", '{"msgtype": "text", "text": {}}'], "--payload: text.content: is required"),
        (["--payload", "[1]"], "--payload: expected an object", "got an array"),
        (["--payload", '"text"'], "--payload: expected an object", "got a string"),
        (["--payload", '{"msgtype": ["text"]}'], "--payload: msgtype: expected one of text,"),
        (["--payload", '{"msgtype": "text", "text": {"content": "a"}, "msgid": 7}'],
         "--payload: msgid: expected a string, got a number"),
        (["--payload", '{"msgtype": "location", "location": {"latitude": "north", '
                       '"longitude": 1}}'],
         "--payload: location.latitude: expected a number, got a string"),
        (["--payload", '{"msgtype": "msgmenu", "msgmenu": {"list": [{"type": "click", '
                       '"click": {"id": 1, "content": "a"}}]}}'],
         "--payload: msgmenu.list[0].click.id: expected a string, got a number"),
        (["--payload", '{"msgtype": "link", "link": {"title": "t", "url": "https://x", '
                       '"thumb_media_id": null}}'],
         "--payload: link.thumb_media_id: is required"),
    ]
    before = sandbox.stats()
    for args, *needles in cases:
        refused(kf("msg", "send", open_kfid, customer, *args), *needles)
    r = kf("msg", "send-on-event", "CODE", "--menu", '{"list": [{"type": "click"}]}')
    refused(r, "--menu: list[0].click: is required")
    assert sandbox.stats() == before and sandbox.sent(open_kfid) == []


@pytest.mark.process
def test_json_nested_too_deeply_is_malformed_not_a_crash(sandbox, chat, home):
    """In a process of its own: the parser's RecursionError unwinds at the interpreter's
    depth limit, where an in-process test's unrelated finalizers would fail too."""
    open_kfid, customer = chat
    proc = subprocess.run([sys.executable, "-m", "kfcli", "msg", "send", open_kfid, customer,
                           "--payload", "[" * 100_000], capture_output=True, text=True,
                          env={**os.environ, **sandbox.env}, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: --payload: malformed JSON"), proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert sandbox.sent(open_kfid) == []


def test_knowledge_attachments_are_checked_with_their_path(kf, sandbox):
    group = kf("knowledge", "group", "add", "退货").out.strip()
    base = ["knowledge", "intent", "add", "--group", group, "--question", "如何退货？",
            "--answer", "七天内可退。"]
    before = sandbox.stats()
    cases = [
        (['[]'], "--attachment: expected an object", "got an array"),
        (['{"msgtype": "news"}'], "--attachment: msgtype: expected one of image, video, "
                                  "link, miniprogram, got 'news'"),
        (['{"msgtype": "link", "link": "https://x"}'],
         "--attachment: link: expected an object, got a string"),
        (['{"msgtype": "link", "link": {"title": "t"}}'], "--attachment: link.url: is required"),
        (['{"msgtype": "image", "image": {"media_id": 5}}'],
         "--attachment: image.media_id: expected a string, got a number"),
        (['{"msgtype": "image", "image": {"media_id": "m"}}',
          '{"msgtype": "video"}'], "--attachment #2: video: is required"),
    ]
    for values, *needles in cases:
        args = [a for value in values for a in ("--attachment", value)]
        refused(kf(*base, *args), *needles)
    assert sandbox.stats() == before


def test_raw_api_json_values_never_crash(kf, sandbox):
    before = sandbox.stats()
    refused(kf("api", "POST", "/cgi-bin/kf/account/list", "-F", "limit=" + "[" * 100_000),
            "-F: limit:", "is not a JSON value")
    assert sandbox.stats() == before


# ---------------------------------------------------------------------- repeated options


def test_a_single_value_option_given_twice_is_refused(kf, sandbox, chat):
    open_kfid, customer = chat
    before = sandbox.stats()
    cases = [
        (["--text", "a", "--text", "b"], "--text given twice"),
        (["--text=a", "--text=b"], "--text given twice"),
        (["--text", "a", "--msgid", "m1", "--msgid", "m2"], "--msgid given twice"),
        (["--text", "a", "-o", "tsv", "--output", "tsv"], "-o/--output given twice"),
        (["--link", "https://x", "--title", "a", "--title", "b", "--thumb-media-id", "m"],
         "--title given twice"),
    ]
    for args, needle in cases:
        refused(kf("msg", "send", open_kfid, customer, *args), needle)
    refused(kf("msg", "send-on-event", "CODE", "--text", "a", "--text", "b"),
            "--text given twice")
    refused(kf("upgrade", "member", open_kfid, customer, "--userid", "a", "--userid", "b"),
            "--userid given twice")
    refused(kf("customer", "get", customer, "--from", "a", "--from", "b"),
            "--from given twice")
    assert sandbox.stats() == before and sandbox.sent(open_kfid) == []
    # A value that merely looks like the option is a value, not a repeat.
    r = kf("msg", "send", open_kfid, customer, "--text", "--text", "--dry-run", "-o", "json")
    assert r.code == 0 and r.json()["text"] == {"content": "--text"}, r.err


# ---------------------------------------------------------------------- unused options


def test_options_of_another_message_type_are_refused(kf, sandbox, chat, avatar):
    open_kfid, customer = chat
    before = sandbox.stats()
    cases = [
        (["--text", "hi", "--thumb", str(avatar)],
         "--thumb does not apply to a text message (--text); it goes with --link or "
         "--miniprogram"),
        (["--image", str(avatar), "--title", "t"], "--title does not apply to an image "
                                                   "message (--image)"),
        (["--location", "39.9,116.4", "--desc", "d"], "--desc does not apply to a location "
                                                     "message (--location); it goes with "
                                                     "--link"),
        (["--link", "https://x", "--title", "t", "--thumb-media-id", "m", "--name", "n"],
         "--name does not apply to a link message (--link); it goes with --location"),
        (["--miniprogram", "wx1", "--title", "t", "--pagepath", "p", "--thumb-media-id", "m",
          "--desc", "d"], "--desc does not apply to a mini program message (--miniprogram)"),
        (["--payload", '{"msgtype": "text", "text": {"content": "x"}}', "--address", "a"],
         "--address does not apply to a raw message (--payload)"),
        (["--link", "https://x", "--title", "t", "--thumb", str(avatar), "--thumb-media-id",
          "m"], "give --thumb or --thumb-media-id, not both"),
    ]
    for args, needle in cases:
        refused(kf("msg", "send", open_kfid, customer, *args), needle)
    assert sandbox.stats() == before  # no upload either


def test_payload_msgid_must_agree_with_the_flag(kf, sandbox, chat):
    open_kfid, customer = chat
    payload = json.dumps({"msgtype": "text", "text": {"content": "x"}, "msgid": "pay-1"})
    refused(kf("msg", "send", open_kfid, customer, "--payload", payload, "--msgid", "other"),
            "--payload: msgid 'pay-1' differs from the command line's 'other'")
    r = kf("msg", "send", open_kfid, customer, "--payload", payload, "--msgid", "pay-1")
    assert r.code == 0 and r.out.strip() == "pay-1", r.err


# ---------------------------------------------------------------------- empty and blank ids


def test_upgrade_with_empty_ids_sends_nothing(kf, sandbox, chat):
    open_kfid, customer = chat
    before = sandbox.stats()
    refused(kf("upgrade", "member", open_kfid, customer, "--userid", ""),
            "--userid: must not be empty")
    refused(kf("upgrade", "member", open_kfid, customer, "--userid", "  "),
            "--userid: must not be blank")
    refused(kf("upgrade", "group", open_kfid, customer, "--chat-id", ""),
            "--chat-id: must not be empty")
    refused(kf("upgrade", "member", open_kfid, "", "--userid", "u"),
            "external_userid: must not be empty")
    refused(kf("upgrade", "cancel", " ", customer), "open_kfid: must not be blank")
    refused(kf("upgrade", "member", open_kfid, customer, "--userid", "u", "--wording", ""),
            "--wording: must not be empty")
    assert sandbox.stats() == before


def test_blank_account_names_are_refused_before_the_upload(kf, sandbox, chat, avatar):
    open_kfid, _ = chat
    before = sandbox.stats()
    refused(kf("account", "add", "--name", " ", "--avatar", str(avatar)),
            "--name: must not be blank")
    refused(kf("account", "add", "--name", "\t\u3000", "--avatar", str(avatar)),
            "--name: must not be blank")
    refused(kf("account", "update", open_kfid, "--name", "  ", "--avatar", str(avatar)),
            "--name: must not be blank")
    assert sandbox.stats() == before  # in particular no /cgi-bin/media/upload
    r = kf("account", "add", "--name", " Support ", "--avatar", str(avatar))
    assert r.code == 0, r.err  # surrounding spaces are the user's business


# ---------------------------------------------------------------------- output options


def test_json_conflicts_with_another_output_format(kf, sandbox):
    refused(kf("account", "list", "--json", "-o", "tsv"), "--json conflicts with -o tsv")
    refused(kf("account", "list", "-o", "table", "--json"), "--json conflicts with -o table")
    refused(kf("-o", "tsv", "account", "list", "--json"),
            "--json conflicts with -o tsv given before the command")
    r = kf("--json", "account", "list", "-o", "jsonl")  # JSON was asked for: a JSON error
    assert r.code == 2 and r.out == ""
    assert json.loads(r.err)["error"]["message"] == ("-o jsonl conflicts with -o json given "
                                                    "before the command")
    for args in (["account", "list", "--json", "-o", "json"],
                 ["--json", "account", "list", "--json"],
                 ["-o", "json", "account", "list"]):
        r = kf(*args)
        assert r.code == 0 and r.json() == [], (args, r.err)
    r = kf("account", "list", "--json", env={"KFCLI_OUTPUT": "tsv"})  # a flag beats the env
    assert r.code == 0 and r.json() == [], r.err


# ---------------------------------------------------------------------- --text @FILE / -


def test_text_from_a_file_or_stdin(kf, sandbox, chat, tmp_path):
    open_kfid, customer = chat
    reply = tmp_path / "reply.txt"
    reply.write_bytes("\ufeff您好，\n请稍等。\n".encode())  # a BOM, as Windows editors write
    r = kf("msg", "send", open_kfid, customer, "--text", f"@{reply}")
    assert r.code == 0, r.err
    r = kf("msg", "send", open_kfid, customer, "--text", "-", input="from stdin\n")
    assert r.code == 0, r.err
    r = kf("msg", "send", open_kfid, customer, "--text", "@@all 请注意")
    assert r.code == 0, r.err
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(b"windows\r\n")
    r = kf("msg", "send", open_kfid, customer, "--text", f"@{crlf}")
    assert r.code == 0, r.err
    texts = [m["text"]["content"] for m in sandbox.sent(open_kfid)]
    assert texts == ["您好，\n请稍等。", "from stdin", "@all 请注意", "windows"]


def test_send_on_event_reads_text_from_a_file(kf, sandbox, chat, tmp_path):
    open_kfid, customer = chat
    code = kf("state", "trans", open_kfid, customer, "ended").out.strip()
    closing = tmp_path / "closing.txt"
    closing.write_text("感谢您的咨询\n", encoding="utf-8")
    r = kf("msg", "send-on-event", code, "--text", f"@{closing}")
    assert r.code == 0, r.err
    assert sandbox.sent(open_kfid)[-1]["text"] == {"content": "感谢您的咨询"}


def test_unreadable_text_sources_name_the_file(kf, sandbox, chat, tmp_path):
    open_kfid, customer = chat
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("café".encode("latin-1"))
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    big = tmp_path / "big.txt"
    big.write_text("汉" * 683, encoding="utf-8")
    before = sandbox.stats()
    cases = [
        (["--text", f"@{tmp_path / 'missing.txt'}"], f"--text: cannot read "
                                                     f"{tmp_path / 'missing.txt'}", "@@"),
        (["--text", f"@{tmp_path}"], f"cannot read {tmp_path}: it is a directory"),
        (["--text", f"@{latin1}"], f"--text: {latin1} is not UTF-8 text"),
        (["--text", f"@{empty}"], "--text: must not be empty"),
        (["--text", f"@{big}"], "--text: 2049 bytes in UTF-8, the limit is 2048 bytes"),
        (["--text", "@"], "--text: give a file name after @"),
    ]
    for args, *needles in cases:
        refused(kf("msg", "send", open_kfid, customer, *args), *needles)
    refused(kf("msg", "send", open_kfid, customer, "--text", "-", input="x" * 2049 + "\n"),
            "--text: 2049 bytes")
    assert sandbox.stats() == before


@pytest.mark.process
def test_text_from_stdin_that_is_not_utf8(sandbox, chat, home):
    open_kfid, customer = chat
    cmd = [KFCLI] if KFCLI else [sys.executable, "-m", "kfcli"]
    proc = subprocess.run([*cmd, "msg", "send", open_kfid, customer, "--text", "-"],
                          input=b"\xff\xfe\x00bad", capture_output=True, timeout=60,
                          env={**os.environ, **sandbox.env})
    assert proc.returncode == 2
    assert proc.stderr.decode().startswith("error: --text: stdin is not UTF-8 text")
    assert sandbox.sent(open_kfid) == []
