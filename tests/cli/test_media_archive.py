"""The media archive from the command line, on SQLite and PostgreSQL: `msg sync` fetches each
photo, voice, video and file into the store; `msg media` writes it back after WeCom's copy
expired; failures are reported, retried (`store media --retry`) or failed for good with the
reason; `msg history` says which media are archived; `store prune` removes unused media."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PNG, on_terminal

ROOT = Path(__file__).resolve().parents[2]
AVATAR = ROOT / "examples" / "avatar.png"


def customer_sends(sandbox, open_kfid: str, msgtype: str, data: bytes, *,
                   customer: str = "wmPhoto", filename: str | None = None) -> str:
    body = {"open_kfid": open_kfid, "external_userid": customer, "msgtype": msgtype,
            "media_base64": base64.b64encode(data).decode()}
    if filename:
        body["filename"] = filename
    doc = sandbox.post("/sandbox/customer_message", body)
    assert doc["errcode"] == 0, doc
    return doc["msgid"]


def synced(kf, open_kfid: str, env: dict) -> list[dict]:
    r = kf("msg", "sync", open_kfid, "-o", "jsonl", env=env)
    assert r.code == 0, r.err
    return [json.loads(line) for line in r.out.splitlines()]


@pytest.mark.process
def test_photos_and_files_outlive_wecom(kf, sandbox, store_env, home, tmp_path):
    open_kfid = sandbox.account()
    sandbox.say(open_kfid, "请看照片", external_userid="wmPhoto")
    photo = AVATAR.read_bytes()
    image_id = customer_sends(sandbox, open_kfid, "image", photo)
    report = "季度报告\n".encode() * 1000
    file_id = customer_sends(sandbox, open_kfid, "file", report, filename="报告 2026.txt")
    messages = synced(kf, open_kfid, store_env)
    assert [m["msgtype"] for m in messages] == ["text", "image", "file"]  # written as ever
    r = kf("store", "media", "-o", "json", env=store_env)
    assert r.code == 0, r.err
    assert r.json() == {"archived": 2, "pending": 0, "failed": 0,
                        "bytes": len(photo) + len(report)}

    assert kf("sandbox", "clock", "--advance", "4d").code == 0  # WeCom's copies expire
    media_id = messages[1]["image"]["media_id"]
    r = kf("media", "get", media_id, "-O", str(tmp_path / "gone.png"))
    assert r.code == 4 and "40007" in r.err

    out = tmp_path / "photo.png"
    r = kf("msg", "media", image_id, "-O", str(out), "-o", "json", env=store_env)
    assert r.code == 0, r.err
    assert out.read_bytes() == photo
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert r.json() == {"msgid": image_id, "msgtype": "image", "path": str(out),
                        "bytes": len(photo), "content_type": "image/png",
                        "filename": "image.png",
                        "sha256": hashlib.sha256(photo).hexdigest()}
    r = kf("msg", "media", file_id, env=store_env)  # piped: the bytes on stdout
    assert r.code == 0, r.err
    assert r.out.encode() == report
    r = kf("msg", "media", file_id, "-O", "-", env=store_env)
    assert r.out.encode() == report

    view = on_terminal(["msg", "history", open_kfid, "--customer", "wmPhoto"],
                       {**sandbox.env, **store_env}, columns=120)
    assert view.code == 0, view.err
    assert "[image 276 B]" in view.out
    assert len(report) == 13_000 and "[file 报告 2026.txt 13 KB]" in view.out  # 12.7 KiB

    if not store_env:  # SQLite: content-addressed files beside store.db, 0600
        media = home / "state" / "kfcli" / "media"
        digest = hashlib.sha256(photo).hexdigest()
        kept = media / digest[:2] / digest
        assert kept.read_bytes() == photo
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600


@pytest.mark.process
def test_a_failed_download_is_reported_and_retried_never_losing_the_message(
        kf, sandbox, store_env):
    open_kfid = sandbox.account()
    msgid = customer_sends(sandbox, open_kfid, "image", PNG)
    sandbox.fault(fault="errcode", errcode=48002, path="/cgi-bin/media/get")
    r = kf("msg", "sync", open_kfid, "-o", "jsonl", env=store_env)
    assert r.code == 0, r.err
    assert json.loads(r.out)["msgid"] == msgid  # the message itself went out
    assert f"media not archived: {msgid} (image): 48002" in r.err
    assert "will be tried again later" in r.err
    status = kf("store", "media", "-o", "json", env=store_env).json()
    assert (status["pending"], status["archived"]) == (1, 0)
    view = on_terminal(["msg", "history", open_kfid], {**sandbox.env, **store_env})
    assert "[image, not archived yet]" in view.out

    r = kf("msg", "sync", open_kfid, env=store_env)  # not due yet: the next pull leaves it
    assert r.code == 0 and "media" not in r.err
    r = kf("store", "media", "--retry", "-o", "json", env=store_env)
    assert r.code == 0, r.err
    assert r.json()["retry"] == {"archived": 1, "failed": 0, "retrying": 0,
                                 "bytes": len(PNG), "errors": []}
    assert r.json()["archived"] == 1
    view = on_terminal(["msg", "history", open_kfid], {**sandbox.env, **store_env})
    assert f"[image {len(PNG)} B]" in view.out


@pytest.mark.process
def test_media_expired_before_archiving_fail_for_good_with_the_reason(
        kf, sandbox, store_env, tmp_path):
    open_kfid = sandbox.account()
    msgid = customer_sends(sandbox, open_kfid, "voice", b"#!AMR\n" + bytes(300))
    r = kf("msg", "sync", open_kfid, "--no-media", env=store_env)
    assert r.code == 0 and "media" not in r.err
    assert kf("sandbox", "clock", "--advance", "3d").code == 0
    r = kf("msg", "sync", open_kfid, env=store_env)
    assert r.code == 0, r.err
    assert "40007" in r.err and "tried again" not in r.err
    out = tmp_path / "voice.amr"
    r = kf("msg", "media", msgid, "-O", str(out), env=store_env)
    assert r.code == 4
    assert r.err.startswith(f"error: the voice of message {msgid} could not be archived: "
                            "WeCom's copy expired before it was archived (40007)")
    assert "Traceback" not in r.err and not out.exists()
    assert kf("store", "media", "-o", "json", env=store_env).json()["failed"] == 1
    view = on_terminal(["msg", "history", open_kfid], {**sandbox.env, **store_env})
    assert "[voice, not archived: WeCom's copy expired before it was archived (40007)]" in \
        view.out
    r = kf("store", "media", "--retry", "-o", "json", env=store_env)  # asks again; gone
    assert r.code == 1 and "1 media file could not be fetched" in r.err
    assert r.json()["retry"]["errors"] == [{
        "msgid": msgid, "msgtype": "voice", "errcode": 40007, "retry": False,
        "reason": "WeCom's copy expired before it was archived (40007)"}]


def test_msg_media_fetches_a_pending_one_on_demand(kf, sandbox, tmp_path):
    open_kfid = sandbox.account()
    msgid = customer_sends(sandbox, open_kfid, "video", b"\x00\x00\x00\x18ftypmp42" * 50)
    assert kf("msg", "sync", open_kfid, "--no-media").code == 0
    r = kf("msg", "media", msgid, "-O", str(tmp_path / "v.mp4"))
    assert r.code == 0, r.err
    assert (tmp_path / "v.mp4").read_bytes() == b"\x00\x00\x00\x18ftypmp42" * 50
    assert kf("store", "media", "-o", "json").json()["archived"] == 1


@pytest.mark.process
def test_msg_media_bad_input(kf, sandbox, tmp_path):
    open_kfid = sandbox.account()
    sandbox.say(open_kfid, "just words", external_userid="wmWords")
    image = customer_sends(sandbox, open_kfid, "image", PNG)
    text = synced(kf, open_kfid, {})[0]["msgid"]
    existing = tmp_path / "there.png"
    existing.write_bytes(b"mine")
    cases = [
        (["msg", "media", "nosuchmsgid", "-O", str(tmp_path / "a")], 4,
         "message nosuchmsgid is not in the store"),
        (["msg", "media", text, "-O", str(tmp_path / "a")], 4,
         f"message {text} is a text message: it has no media"),
        (["msg", "media", image, "-O", str(existing)], 2, "exists; pass --force"),
        (["msg", "media", image, "-O", str(tmp_path / "no" / "dir.png")], 2,
         "does not exist"),
        (["msg", "media", "bad id!", "-O", str(tmp_path / "a")], 2, "msgid"),
        (["msg", "media", image, "-O", ""], 2, "-O"),
        (["msg", "media", image, "-o", "json"], 2, "-o json describes the file"),
    ]
    for args, code, message in cases:
        r = kf(*args)
        assert r.code == code, (args, r.err)
        assert message in r.err and "Traceback" not in r.err, (args, r.err)
        assert r.err.count("\n") <= 2, r.err  # one line (and a hint)
    assert existing.read_bytes() == b"mine"
    assert not (tmp_path / "a").exists()
    r = kf("msg", "media", image, "-O", str(existing), "--force")
    assert r.code == 0 and existing.read_bytes() == PNG
    term = on_terminal(["msg", "media", image], sandbox.env)
    assert term.code == 2 and "refusing to write binary data to a terminal" in term.err


def test_prune_reports_media(kf, sandbox, store_env):
    """(What is removed, and what is kept because a newer message shares the bytes, is
    tested on both stores in tests/core/test_media_store.py: the simulated clock cannot
    make messages older than this machine's clock.)"""
    open_kfid = sandbox.account()
    customer_sends(sandbox, open_kfid, "image", PNG)
    synced(kf, open_kfid, store_env)
    r = kf("store", "prune", "--before", "1d", "--yes", env=store_env)
    assert r.code == 0, r.err
    assert "removed 0 archived media files no message refers to any more (0 B)" in r.err
    r = kf("store", "prune", "--before", "1d", "--dry-run", "-o", "json", env=store_env)
    assert (r.json()["media"], r.json()["media_bytes"]) == (0, 0)
    assert kf("store", "media", "-o", "json", env=store_env).json()["archived"] == 1


# Runs kfcli and, at exit, writes its own peak RSS (VmHWM, in kB) to the file $HWM_FILE. (A
# child's ru_maxrss would also count the memory of the test process it was forked from.)
MEASURED = """
import atexit, os, runpy, sys
def report():
    with open("/proc/self/status") as status, open(os.environ["HWM_FILE"], "w") as out:
        out.write(next(l.split()[1] for l in status if l.startswith("VmHWM:")))
atexit.register(report)
sys.argv[0] = "kfcli"
runpy.run_module("kfcli", run_name="__main__", alter_sys=True)
"""


@pytest.mark.process
def test_archiving_keeps_memory_flat_for_a_large_file(kf, sandbox, tmp_path):
    """A 15 MB file is fetched and written out in blocks: each process's peak memory stays
    far below the file's size above that of the same commands for a tiny file (a count of
    kilobytes, not a time)."""
    open_kfid = sandbox.account()
    big = os.urandom(15 * 1024 * 1024)
    small_id = customer_sends(sandbox, open_kfid, "file", b"tiny file", filename="t.bin")
    big_id = customer_sends(sandbox, open_kfid, "file", big, filename="big.bin")
    assert kf("msg", "sync", open_kfid, "--no-media").code == 0

    def peak_kb(*args: str) -> int:
        hwm = tmp_path / "hwm"
        proc = subprocess.run([sys.executable, "-c", MEASURED, *args], capture_output=True,
                              env={**os.environ, **sandbox.env, "HWM_FILE": str(hwm)})
        assert proc.returncode == 0, proc.stderr.decode()
        return int(hwm.read_text())

    fetch_small = peak_kb("msg", "media", small_id, "-O", str(tmp_path / "t.bin"))
    fetch_big = peak_kb("store", "media", "--retry")
    write_small = peak_kb("msg", "media", small_id, "-O", str(tmp_path / "t2.bin"))
    write_big = peak_kb("msg", "media", big_id, "-O", str(tmp_path / "big.bin"))
    assert (tmp_path / "big.bin").read_bytes() == big
    slack = 8 * 1024  # kB: a whole-file read would add 15 MB or more
    assert fetch_big < fetch_small + slack, (fetch_small, fetch_big)
    assert write_big < write_small + slack, (write_small, write_big)


def test_a_missing_copy_is_fetched_again_while_wecom_has_it(kf, sandbox, home, tmp_path):
    open_kfid = sandbox.account()
    msgid = customer_sends(sandbox, open_kfid, "image", PNG)
    synced(kf, open_kfid, {})
    media = home / "state" / "kfcli" / "media"
    digest = hashlib.sha256(PNG).hexdigest()
    (media / digest[:2] / digest).unlink()  # removed by hand
    r = kf("msg", "media", msgid, "-O", str(tmp_path / "again.png"))
    assert r.code == 0, r.err
    assert (tmp_path / "again.png").read_bytes() == PNG
    assert (media / digest[:2] / digest).read_bytes() == PNG  # archived again
    (media / digest[:2] / digest).unlink()
    assert kf("sandbox", "clock", "--advance", "4d").code == 0
    r = kf("msg", "media", msgid, "-O", str(tmp_path / "late.png"))
    assert r.code == 4 and "expired before it was archived" in r.err
    assert not (tmp_path / "late.png").exists()


def test_a_passing_failure_keeps_its_own_exit_status(kf, sandbox, tmp_path):
    open_kfid = sandbox.account()
    msgid = customer_sends(sandbox, open_kfid, "image", PNG)
    assert kf("msg", "sync", open_kfid, "--no-media").code == 0
    sandbox.fault(fault="errcode", errcode=48002, path="/cgi-bin/media/get")
    r = kf("msg", "media", msgid, "-O", str(tmp_path / "p.png"))
    assert r.code == 3, r.err  # the app's rights: configuration, not "gone for good"
    assert f"the image of message {msgid} is not archived yet and could not be fetched " \
        "now: 48002" in r.err
    assert not (tmp_path / "p.png").exists()
    r = kf("msg", "media", msgid, "-O", str(tmp_path / "p.png"))  # the fault was one-off
    assert r.code == 0, r.err


def test_prune_removes_only_what_kfcli_wrote(kf, sandbox, tmp_path):
    store = tmp_path / "y" / "store.db"
    env = {"KFCLI_STORE": str(store)}
    media = tmp_path / "y" / "media"
    orphan = "ab" + "0" * 62
    own = {media / "notes.txt": b"mine", media / "tmp" / "notes.txt": b"mine too",
           media / "photos" / ("c" * 64): b"a photo", media / "ab" / ("c" * 64): b"odd"}
    for path, data in own.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    leftover = media / "tmp" / "fetch-killed"
    (media / "ab" / orphan).write_bytes(b"archived once, no longer used")
    leftover.write_bytes(b"half a download")
    for path in [*own, leftover]:
        os.utime(path, (1, 1))  # old enough for anything
    open_kfid = sandbox.account()
    customer_sends(sandbox, open_kfid, "image", PNG)
    synced(kf, open_kfid, env)
    r = kf("store", "prune", "--before", "1d", "--yes", "-o", "json", env=env)
    assert r.code == 0, r.err
    assert (r.json()["messages"], r.json()["media"]) == (0, 1)  # the orphan only
    assert all(path.read_bytes() == data for path, data in own.items())
    assert not (media / "ab" / orphan).exists() and not leftover.exists()
    assert kf("store", "media", "-o", "json", env=env).json()["archived"] == 1


def test_no_media_without_sync_is_refused(kf):
    r = kf("callback", "serve", "--no-media", "--port", "0")
    assert r.code == 2 and "--no-media goes with --sync" in r.err
