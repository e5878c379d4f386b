"""`kfcli sandbox say --image/--voice/--video/--file` and `kfcli sandbox clock`: customers'
media in the simulator, synced, downloaded, and expired by moving the simulated clock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kfcli.core.sync import Message

ROOT = Path(__file__).resolve().parents[2]
AVATAR = ROOT / "examples" / "avatar.png"
AMR = b"#!AMR\n" + bytes(range(256)) * 4
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00" + bytes(range(256)) * 4


def test_image_round_trip_and_expiry(kf, sandbox, tmp_path):
    open_kfid = sandbox.account()
    r = kf("sandbox", "say", open_kfid, "--image", str(AVATAR), "--customer", "wmPhoto1",
           "-o", "json")
    assert r.code == 0, r.err
    said = r.json()
    assert said["external_userid"] == "wmPhoto1" and said["msgid"]

    r = kf("msg", "sync", open_kfid, "-o", "jsonl")
    assert r.code == 0, r.err
    (message,) = [json.loads(line) for line in r.out.splitlines()]
    assert message["msgid"] == said["msgid"]
    assert message["msgtype"] == "image" and message["origin"] == 3
    assert message["external_userid"] == "wmPhoto1"
    media_id = message["image"]["media_id"]
    assert set(message["image"]) == {"media_id"}
    assert media_id == said["media_id"]

    out = tmp_path / "out.png"
    r = kf("media", "get", media_id, "-O", str(out), "-o", "json")
    assert r.code == 0, r.err
    assert out.read_bytes() == AVATAR.read_bytes()
    assert r.json()["filename"] == "avatar.png"
    assert r.json()["content_type"] == "image/png"

    r = kf("sandbox", "clock", "--advance", "3d")
    assert r.code == 0, r.err
    r = kf("media", "get", media_id, "-O", str(tmp_path / "late.png"))
    assert r.code == 4, r.text
    assert "40007" in r.err
    assert not (tmp_path / "late.png").exists()


def test_text_and_plain_output(kf, sandbox):
    open_kfid = sandbox.account()
    r = kf("sandbox", "say", open_kfid, "你好", "--external-userid", "wmOld1")
    assert r.code == 0, r.err
    external_userid, msgid = r.out.rstrip("\n").split("\t")
    assert external_userid == "wmOld1" and len(msgid) > 8
    r = kf("sandbox", "say", open_kfid, "--image", str(AVATAR))
    assert r.code == 0, r.err
    assert len(r.out.rstrip("\n").split("\t")) == 2
    r = kf("sandbox", "say", open_kfid, "hi", "-o", "json")
    assert set(r.json()) == {"external_userid", "msgid"}


@pytest.mark.parametrize(("option", "data", "name", "summary"), [
    ("--voice", AMR, "hello.amr", "[voice]"),
    ("--video", MP4, "clip.mp4", "[video]"),
    ("--file", b"quarterly numbers\n", "report 2026.txt", "[file]"),
])
def test_other_types(kf, sandbox, tmp_path, option, data, name, summary):
    open_kfid = sandbox.account()
    path = tmp_path / name
    path.write_bytes(data)
    r = kf("sandbox", "say", open_kfid, option, str(path), "-o", "json")
    assert r.code == 0, r.err
    r = kf("msg", "sync", open_kfid, "-o", "jsonl")
    (message,) = [json.loads(line) for line in r.out.splitlines()]
    msgtype = option[2:]
    assert message["msgtype"] == msgtype
    assert Message.from_api(message).summary().startswith(summary)
    out = tmp_path / "copy"
    r = kf("media", "get", message[msgtype]["media_id"], "-O", str(out), "-o", "json")
    assert r.code == 0, r.err
    assert out.read_bytes() == data
    assert r.json()["filename"] == name
    r = kf("msg", "history", open_kfid, "-o", "tsv")
    assert r.code == 0, r.err


def test_sync_summary_names_the_kind(kf, sandbox):
    open_kfid = sandbox.account()
    assert kf("sandbox", "say", open_kfid, "--image", str(AVATAR)).code == 0
    r = kf("msg", "sync", open_kfid, "-o", "jsonl")
    summary = Message.from_api(json.loads(r.out)).summary()
    assert summary.startswith("[image]")


def test_bad_input_sends_nothing(kf, sandbox, tmp_path):
    open_kfid = sandbox.account()
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture at all")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    cases = [
        ((), "TEXT or as one of"),
        (("hello", "--image", str(AVATAR)), "not TEXT and --image"),
        (("--image", str(AVATAR), "--file", str(notes)), "not --image and --file"),
        (("--image", str(tmp_path / "missing.png")), "missing.png"),
        (("--file", str(tmp_path)), "not a regular file"),
        (("--image", str(notes)), "JPG or PNG"),
        (("--image", str(empty)), "empty"),
        (("  ",), "TEXT is empty"),
    ]
    for args, words in cases:
        r = kf("sandbox", "say", open_kfid, *args)
        assert r.code == 2, (args, r.text)
        assert words in r.err, (args, r.err)
        assert r.out == ""
    doc = sandbox.api("POST", "/cgi-bin/kf/sync_msg", {"open_kfid": open_kfid})
    assert doc["errcode"] == 0 and doc["msg_list"] == []


def test_unreadable_file(kf, sandbox, tmp_path):
    import os

    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    secret = tmp_path / "secret.png"
    secret.write_bytes(AVATAR.read_bytes())
    secret.chmod(0)
    r = kf("sandbox", "say", sandbox.account(), "--image", str(secret))
    assert r.code == 2 and "secret.png" in r.err and "cannot read" in r.err


def test_oversize_is_refused_before_reading(kf, sandbox, tmp_path):
    big = tmp_path / "big.png"
    with big.open("wb") as f:
        f.write(AVATAR.read_bytes())
        f.truncate(3 * 1024 * 1024)
    r = kf("sandbox", "say", sandbox.account(), "--image", str(big))
    assert r.code == 2 and "up to 2 MB" in r.err and "big.png" in r.err


def test_clock(kf, sandbox):
    r = kf("sandbox", "clock", "-o", "json")
    assert r.code == 0, r.err
    start = r.json()
    assert set(start) == {"time", "now", "offset"} and start["offset"] == 0
    r = kf("sandbox", "clock", "--advance", "72h", "-o", "json")
    assert r.code == 0, r.err
    assert r.json()["offset"] == 72 * 3600
    assert r.json()["now"] - start["now"] >= 72 * 3600
    r = kf("sandbox", "clock", "--advance", "1d12h")
    assert r.code == 0, r.err
    time_text, now, offset = r.out.rstrip("\n").split("\t")
    assert int(offset) == 72 * 3600 + 36 * 3600 and time_text[:4].isdigit()
    r = kf("sandbox", "clock", "--advance", "90", "-o", "json")
    assert r.json()["offset"] == 108 * 3600 + 90
    for bad in ("-3d", "3 days", "1.5d", "", "99999d"):
        r = kf("sandbox", "clock", "--advance", bad)
        assert r.code == 2 and "--advance" in r.err, (bad, r.text)
    assert kf("sandbox", "clock", "-o", "json").json()["offset"] == 108 * 3600 + 90
