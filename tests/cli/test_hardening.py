"""Attacks by someone with local access, replayed (issue 24): output targets that are not
files, files readable by others, and private directories planted or loosened in a shared
place. Each must now fail before kfcli writes anything there."""

from __future__ import annotations

import base64
import contextlib
import os
import stat
from pathlib import Path

import pytest

from tests.conftest import PNG


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@contextlib.contextmanager
def umask(value: int):
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def photo(kf, sandbox, tmp_path):
    """An account whose customer sent a photo, synced into a store in `shared/`: the store
    env, the photo message's msgid and its media_id."""
    open_kfid = sandbox.account()
    doc = sandbox.post("/sandbox/customer_message", {
        "open_kfid": open_kfid, "external_userid": "wmPhoto", "msgtype": "image",
        "media_base64": base64.b64encode(PNG).decode()})
    assert doc["errcode"] == 0, doc
    return open_kfid, doc["msgid"], doc["media_id"]


def shared_store(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    shared = tmp_path / "shared"
    shared.mkdir(exist_ok=True)
    store = shared / "kf.db"
    return store, {"KFCLI_STORE": f"sqlite:///{str(store).lstrip('/')}"}


def test_output_targets_that_are_fifos_or_devices_need_force(kf, sandbox, photo, tmp_path):
    # The attack: a FIFO (or a device) planted where the user will export; its reader
    # receives every customer's words. Refused without --force, before anything is sent.
    open_kfid, msgid, media_id = photo
    store, env = shared_store(tmp_path)
    assert kf("msg", "sync", open_kfid, env=env).code == 0
    fifo = tmp_path / "planted"
    os.mkfifo(fifo)
    before = sandbox.stats().get("/cgi-bin/media/get", 0)
    for args in (["msg", "export", "--format", "csv"], ["msg", "media", msgid],
                 ["media", "get", media_id], ["api", "GET", "/cgi-bin/media/get", "-f",
                                             f"media_id={media_id}"]):
        for target in (str(fifo), "/dev/null"):
            r = kf(*args, "-O", target, env=env)  # a writer would block on the FIFO
            assert r.code == 2, (args, r.err)
            assert "pass --force to write into it" in r.err and target in r.err, r.err
            assert ("FIFO" if target == str(fifo) else "device") in r.err
    assert fifo.is_fifo()
    assert sandbox.stats().get("/cgi-bin/media/get", 0) == before  # nothing was fetched
    # With --force a device is written into, never replaced; -O - is stdout, whatever it is.
    r = kf("msg", "export", "--format", "csv", "-O", "/dev/null", "--force", env=env)
    assert r.code == 0 and Path("/dev/null").is_char_device(), r.err
    r = kf("msg", "export", "--format", "jsonl", "-O", "-", env=env)
    assert r.code == 0 and msgid in r.out


def test_every_file_kfcli_writes_is_0600(kf, sandbox, photo, tmp_path):
    open_kfid, msgid, media_id = photo
    store, env = shared_store(tmp_path)
    with umask(0o022):  # the usual umask: 0644 unless kfcli says otherwise
        assert kf("msg", "sync", open_kfid, env=env).code == 0
        written = {
            "media get": (["media", "get", media_id], tmp_path / "got.png"),
            "api": (["api", "GET", "/cgi-bin/media/get", "-f", f"media_id={media_id}"],
                    tmp_path / "api.png"),
            "msg media": (["msg", "media", msgid], tmp_path / "archived.png"),
            "msg export": (["msg", "export", "--format", "html"], tmp_path / "chat.html"),
        }
        for name, (args, target) in written.items():
            r = kf(*args, "-O", str(target), env=env)
            assert r.code == 0, (name, r.err)
            assert mode(target) == 0o600, (name, oct(mode(target)))
        # Replacing an existing, looser file with --force leaves a private one.
        loose = tmp_path / "got.png"
        loose.chmod(0o644)
        assert kf("media", "get", media_id, "-O", str(loose), "--force").code == 0
        assert mode(loose) == 0o600 and loose.read_bytes() == PNG
    files = [p for p in store.parent.rglob("*") if p.is_file()]
    assert files and all(mode(p) == 0o600 for p in files), [(p, oct(mode(p))) for p in files]


@pytest.mark.parametrize("planted", ["kf.db.media", "kf.db.locks"])
def test_a_planted_symlink_beside_the_store_is_refused(kf, sandbox, photo, tmp_path, planted):
    # The attack: in a shared directory, someone links NAME.media (or NAME.locks) to a
    # directory of theirs; kfcli would archive customers' media (or take its locks) there.
    open_kfid, _, _ = photo
    store, env = shared_store(tmp_path)
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (store.parent / planted).symlink_to(theirs)
    r = kf("msg", "sync", open_kfid, env=env)
    assert r.code == 3, r.err
    assert f"{store.parent / planted} is a symlink" in r.err
    assert list(theirs.rglob("*")) == []


def test_loose_or_foreign_private_directories_are_refused(kf, sandbox, photo, tmp_path):
    open_kfid, _, _ = photo
    store, env = shared_store(tmp_path)
    media = store.parent / "kf.db.media"
    media.mkdir()
    media.chmod(0o777)  # writable by anyone: they could swap files in
    r = kf("msg", "sync", open_kfid, env=env)
    assert r.code == 3 and f"the directory {media} is writable by group or others" in r.err
    assert list(media.iterdir()) == []
    media.chmod(0o755)  # only readable by others: taken away, then used
    assert kf("msg", "sync", open_kfid, env=env).code == 0
    assert mode(media) == 0o700 and any(p.is_file() for p in media.rglob("*"))
    if os.geteuid() == 0:  # only root can give a directory away to test this
        locks = store.parent / "kf.db.locks"
        os.chown(locks, 65534, 65534)
        r = kf("msg", "sync", open_kfid, env=env)
        assert r.code == 3 and f"the directory {locks} belongs to another user" in r.err


def test_a_planted_token_cache_directory_is_refused(kf, sandbox, home, tmp_path):
    # XDG_CACHE_HOME shared, `kfcli` in it linked elsewhere: the access token would be
    # written to a directory someone else reads.
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    cache = home / "cache"
    cache.mkdir(parents=True)
    (cache / "kfcli").symlink_to(theirs)
    r = kf("account", "list")
    assert r.code == 3 and f"{cache / 'kfcli'} is a symlink" in r.err, r.err
    assert list(theirs.rglob("*")) == []
