"""`-O DIR`: `media get` and `msg media` write the file into a directory under its original
name (as curl -OJ does), refusing names that would land elsewhere or mislead, and never
replacing a file without --force; `msg export -o FILE` points at -O."""

from __future__ import annotations

import os

import pytest

from tests.cli.test_media_archive import customer_sends, synced
from tests.conftest import PNG


def test_media_get_into_a_directory_keeps_the_original_name(kf, sandbox, tmp_path):
    folder = tmp_path / "downloads"
    folder.mkdir()
    media_id = sandbox.upload(PNG, name="收据 receipt.png")
    r = kf("media", "get", media_id, "-O", str(folder), "-o", "json")
    assert r.code == 0, r.err
    target = folder / "收据 receipt.png"
    assert r.json()["path"] == str(target) and target.read_bytes() == PNG
    assert oct(os.stat(target).st_mode & 0o777) == "0o600"
    # again: the file exists, so not without --force (and nothing else is written)
    r = kf("media", "get", media_id, "-O", str(folder) + "/")
    assert r.code == 2 and "exists; pass --force" in r.err, r.err
    assert os.listdir(folder) == ["收据 receipt.png"]
    target.write_bytes(b"mine")
    assert kf("media", "get", media_id, "-O", str(folder), "--force").code == 0
    assert target.read_bytes() == PNG


@pytest.mark.parametrize("name, problem", [
    ("../escape.png", "holds a path separator"),
    ("..", "is not a file's name"),
    (".bashrc", "starts with a dot"),
    ("photo\x1b[2J.png", "holds control characters"),
    ("gpj\u202e.exe", "holds control characters"),
])
def test_media_get_refuses_a_dangerous_name(kf, sandbox, tmp_path, name, problem):
    folder = tmp_path / "in"
    folder.mkdir()
    media_id = sandbox.upload(PNG, name=name)
    r = kf("media", "get", media_id, "-O", str(folder))
    assert r.code == 2, r.err
    assert problem in r.err and "nothing was written" in r.err, r.err
    assert f"-O {folder}/FILE" in r.err  # the way out: choose the name
    assert os.listdir(folder) == [] and not (tmp_path / "escape.png").exists()


def test_a_missing_directory_is_refused_before_the_request(kf, sandbox, tmp_path):
    media_id = sandbox.upload(PNG, name="a.png")
    before = sandbox.stats().get("/cgi-bin/media/get", 0)
    r = kf("media", "get", media_id, "-O", str(tmp_path / "nodir") + "/")
    assert r.code == 2 and "directory" in r.err and "does not exist" in r.err, r.err
    assert sandbox.stats().get("/cgi-bin/media/get", 0) == before


def test_msg_media_into_a_directory(kf, sandbox, tmp_path):
    open_kfid = sandbox.account()
    contract = "合同\n".encode() * 100
    file_id = customer_sends(sandbox, open_kfid, "file", contract, filename="合同.pdf")
    image_id = customer_sends(sandbox, open_kfid, "image", PNG)
    synced(kf, open_kfid, {})
    folder = tmp_path / "out"
    folder.mkdir()
    r = kf("msg", "media", file_id, "-O", str(folder), "-o", "json")
    assert r.code == 0, r.err
    assert r.json()["path"] == str(folder / "合同.pdf")
    assert (folder / "合同.pdf").read_bytes() == contract
    r = kf("msg", "media", file_id, "-O", str(folder))
    assert r.code == 2 and "exists; pass --force" in r.err
    r = kf("msg", "media", image_id, "-O", str(folder))
    assert r.code == 0, r.err
    assert (folder / "合同.pdf").exists() and len(os.listdir(folder)) == 2


def test_export_with_lowercase_o_points_at_capital_o(kf, sandbox):
    r = kf("msg", "export", "--format", "csv", "-o", "x.csv")
    assert r.code == 2
    assert "No such option: -o" in r.err and "-O FILE" in r.err, r.err
    r = kf("media", "get", "MEDIA", "-o", "x.png")
    assert r.code == 2 and "-O FILE" in r.err, r.err
