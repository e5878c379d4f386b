"""Output formats, and hostile text that must not break or hijack them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import on_pty


def _add_hostile(sandbox, kf, avatar):
    media_id = kf("media", "upload", str(avatar)).out.strip()
    # The name goes straight to the simulator: the CLI itself would refuse 16+ characters.
    doc = sandbox.api("POST", "/cgi-bin/kf/account/add", {"name": "a\tb\nc\x1b[2J", "media_id":
                                                         media_id})
    assert doc["errcode"] == 0, doc
    return doc["open_kfid"]


def test_tsv_escapes_tabs_newlines_and_strips_escapes(kf, sandbox, avatar):
    _add_hostile(sandbox, kf, avatar)
    r = kf("account", "list")
    lines = r.out.splitlines()
    assert len(lines) == 1
    fields = lines[0].split("\t")
    assert fields[1] == "a\\tb\\nc[2J"
    assert "\x1b" not in r.out


def test_json_keeps_text_raw(kf, sandbox, avatar):
    _add_hostile(sandbox, kf, avatar)
    assert kf("account", "list", "--json").json()[0]["name"] == "a\tb\nc\x1b[2J"
    lines = kf("account", "list", "-o", "jsonl").out.splitlines()
    assert json.loads(lines[0])["name"] == "a\tb\nc\x1b[2J"


def test_env_output_and_invalid_format(kf, sandbox):
    assert kf("account", "list", env={"KFCLI_OUTPUT": "json"}).out.strip() == "[]"
    r = kf("account", "list", "-o", "yaml")
    assert r.code == 2 and "not one of table, tsv, json, jsonl" in r.err
    r = kf("account", "list", env={"KFCLI_OUTPUT": "xml"})
    assert r.code == 3 and "KFCLI_OUTPUT" in r.err  # the environment: configuration


@pytest.mark.process
def test_table_on_a_terminal_cannot_be_hijacked(sandbox, home, avatar):
    env = {**os.environ, **sandbox.env, "COLUMNS": "200", "TERM": "xterm"}
    media = subprocess.run([sys.executable, "-m", "kfcli", "media", "upload", str(avatar)],
                           env=env, capture_output=True, text=True).stdout.strip()
    doc = sandbox.api("POST", "/cgi-bin/kf/account/add", {"name": "[b]x[/b]\x1b]0;t\x07",
                                                           "media_id": media})
    assert doc["errcode"] == 0, doc
    screen = on_pty(["account", "list"], env)
    assert "[b]x[/b]" in screen  # shown literally, not as markup
    assert "\x1b]0;" not in screen and "\x07" not in screen
    assert "open_kfid" in screen  # a table with headers, not TSV
