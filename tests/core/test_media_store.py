"""The media archive in both stores: an entry noted with each media message, claims, kept
bytes (content-addressed, in parts), failures and retries, pruning, and the upgrade of a
version-2 store."""

from __future__ import annotations

import hashlib
import os
import stat
import time
from pathlib import Path

import pytest

from kfcli.core.store import Incoming, open_store
from kfcli.core.store.base import MEDIA_CHUNK, SCHEMA_VERSION, MediaMissing
from tests.core.test_store import is_pg, raw

CORP = "wwMedia"
KFID = "wkMedia"


def message(msgid: str, msgtype: str = "image", *, media_id: str | None = None,
            send_time: int = 1000) -> Incoming:
    body = {"content": "你好"} if msgtype == "text" else {"media_id": media_id or "M" + msgid}
    return Incoming.from_api({"msgid": msgid, "open_kfid": KFID, "external_userid": "wmA",
                              "send_time": send_time, "origin": 3, "msgtype": msgtype,
                              msgtype: body})


def commit(store, messages, *, expected=None, cursor="c1"):
    return store.commit_page(CORP, KFID, expected=expected, cursor=cursor,
                             messages=messages, owner=None)


def keep(store, seq: int, data: bytes, content_type: str = "image/png", filename: str = "a.png"):
    file = store.new_media_file()
    file.write(data)
    return store.media_archived(CORP, seq, file, content_type=content_type, filename=filename)


def seqs(store, msgids: list[str]) -> dict[str, int]:
    return {m: store.message(CORP, m)[0].seq for m in msgids}


def test_each_new_media_message_is_noted_pending_with_the_message(store):
    commit(store, [message("t1", "text"), message("i1"), message("v1", "voice"),
                   message("f1", "file"), message("d1", "video")])
    commit(store, [message("i1")], expected="c1", cursor="c2")  # a duplicate: noted once
    due = store.media_due(CORP)
    assert [(i.msgid, i.msgtype, i.media_id, i.state) for i in due] == [
        ("i1", "image", "Mi1", "pending"), ("v1", "voice", "Mv1", "pending"),
        ("f1", "file", "Mf1", "pending"), ("d1", "video", "Md1", "pending")]
    assert all(i.open_kfid == KFID and i.send_time == 1000 for i in due)
    row, item = store.message(CORP, "t1")
    assert item is None and '"t1"' in row.text
    assert store.message(CORP, "nope") is None
    assert store.message("wwOther", "i1") is None
    assert store.media_summary(CORP).as_dict() == {"archived": 0, "pending": 4, "failed": 0,
                                                   "bytes": 0}


def test_claims_keep_other_archivers_off_until_the_lease_ends(store):
    commit(store, [message("i1"), message("i2"), message("i3")])
    first = store.media_due(CORP, limit=2, lease=300)
    assert [i.msgid for i in first] == ["i1", "i2"]
    assert [i.msgid for i in store.media_due(CORP, lease=300)] == ["i3"]
    assert store.media_due(CORP) == []  # all claimed
    assert len(store.media_due(CORP, force=True)) == 3  # --retry takes them all the same
    assert [i.msgid for i in store.media_due(CORP, after_seq=first[0].seq, force=True)] == [
        "i2", "i3"]
    assert store.media_due(CORP, open_kfid="wkOther", force=True) == []


def test_kept_bytes_come_back_exactly_and_equal_contents_are_kept_once(store, store_url):
    commit(store, [message("i1"), message("i2"), message("f1", "file")])
    ids = seqs(store, ["i1", "i2", "f1"])
    big = os.urandom(2 * MEDIA_CHUNK + 12345)  # three parts
    item = keep(store, ids["f1"], big, "application/pdf", "合同.pdf")
    assert (item.state, item.size, item.content_type, item.filename) == (
        "archived", len(big), "application/pdf", "合同.pdf")
    assert item.sha256 == hashlib.sha256(big).hexdigest()
    chunks = list(store.media_content(item))
    assert b"".join(chunks) == big and max(len(c) for c in chunks) <= MEDIA_CHUNK
    one = keep(store, ids["i1"], b"\x89PNG same")
    two = keep(store, ids["i2"], b"\x89PNG same")
    assert one.sha256 == two.sha256
    assert b"".join(store.media_content(two)) == b"\x89PNG same"
    commit(store, [message("e1")], expected="c1", cursor="c2")
    empty_item = keep(store, seqs(store, ["e1"])["e1"], b"")
    assert b"".join(store.media_content(empty_item)) == b""
    assert store.media_summary(CORP).as_dict() == {
        "archived": 4, "pending": 0, "failed": 0, "bytes": len(big) + 2 * len(b"\x89PNG same")}
    if is_pg(store_url):
        assert raw(store_url, "SELECT count(DISTINCT sha256) FROM media_parts") == [(3,)]
    else:
        media = Path(store_url).parent / "media"
        files = sorted(p for p in media.rglob("*") if p.is_file())
        assert [p.name for p in files] == sorted({one.sha256, item.sha256,
                                                  empty_item.sha256})
        assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)
        assert not list((media / "tmp").iterdir())  # no download left behind
        assert stat.S_IMODE(media.stat().st_mode) == 0o700


def test_failures_pending_with_a_retry_time_or_failed_for_good(store):
    commit(store, [message("i1"), message("i2")])
    ids = seqs(store, ["i1", "i2"])
    store.media_failed(CORP, ids["i1"], "48002 api forbidden", retry_at=time.time() + 3600)
    store.media_failed(CORP, ids["i2"], "WeCom's copy expired", retry_at=None)
    items = store.media_items(CORP, ids.values())
    assert (items[ids["i1"]].state, items[ids["i1"]].attempts, items[ids["i1"]].error) == (
        "pending", 1, "48002 api forbidden")
    assert (items[ids["i2"]].state, items[ids["i2"]].error) == ("failed",
                                                                 "WeCom's copy expired")
    assert store.media_due(CORP) == []  # i1 not before its retry time, i2 never
    assert [i.msgid for i in store.media_due(CORP, force=True)] == ["i1", "i2"]
    keep(store, ids["i2"], b"late but there")  # a forced retry that worked
    item = store.media_items(CORP, [ids["i2"]])[ids["i2"]]
    assert item.state == "archived" and item.error is None
    store.media_failed(CORP, ids["i2"], "too late", retry_at=None)  # never undoes archived
    assert store.media_items(CORP, [ids["i2"]])[ids["i2"]].state == "archived"
    assert store.media_summary(CORP, KFID).as_dict()["failed"] == 0


def test_prune_removes_what_no_message_refers_to(store, store_url):
    commit(store, [message("old1", send_time=100), message("old2", send_time=200),
                   message("new1", send_time=5000)])
    ids = seqs(store, ["old1", "old2", "new1"])
    keep(store, ids["old1"], b"only old")
    shared = keep(store, ids["old2"], b"shared with a newer message")
    keep(store, ids["new1"], b"shared with a newer message")
    preview = store.prune(CORP, 1000, dry_run=True)
    assert (preview.total, preview.media, preview.media_bytes) == (2, 1, len(b"only old"))
    pruned = store.prune(CORP, 1000)
    assert (pruned.total, pruned.media, pruned.media_bytes) == (2, 1, len(b"only old"))
    assert store.message(CORP, "old1") is None
    assert b"".join(store.media_content(store.message(CORP, "new1")[1])) == \
        b"shared with a newer message"
    assert store.media_summary(CORP).archived == 1
    again = store.prune(CORP, 10_000)
    assert (again.total, again.media) == (1, 1)
    with pytest.raises(MediaMissing, match="is missing|is incomplete"):
        b"".join(store.media_content(shared))


def test_a_version_2_store_is_upgraded_with_its_media_messages_pending(store_url):
    with open_store(store_url) as store:
        commit(store, [message("t1", "text"), message("i1"), message("f1", "file")])
    drop = "DROP TABLE media_parts" if is_pg(store_url) else "DROP TRIGGER media_delete"
    raw(store_url, drop, "DROP TABLE media",
        "UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    with open_store(store_url) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert [(i.msgid, i.state) for i in store.media_due(CORP)] == [
            ("i1", "pending"), ("f1", "pending")]
        item = keep(store, store.message(CORP, "i1")[0].seq, b"after the upgrade")
        assert b"".join(store.media_content(item)) == b"after the upgrade"


def test_a_download_file_thrown_away_leaves_nothing(store, store_url):
    file = store.new_media_file()
    file.write(b"half a download")
    file.close()
    if not is_pg(store_url):
        assert not list((Path(store_url).parent / "media" / "tmp").iterdir())


def test_stores_in_one_directory_never_share_media_files(tmp_path):
    from kfcli.core.store.sqlite import SqliteStore

    assert SqliteStore(tmp_path / "store.db").media_dir == tmp_path / "media"
    assert SqliteStore(tmp_path / "other.db").media_dir == tmp_path / "other.db.media"


def test_media_ids_are_read_only_from_media_messages():
    from kfcli.core.store.base import media_id_of

    assert media_id_of({"msgtype": "image", "image": {"media_id": "X"}}) == "X"
    assert media_id_of({"msgtype": "text", "text": {"media_id": "X"}}) == ""
    assert media_id_of({"msgtype": "file", "file": {"media_id": 5}}) == ""
    assert media_id_of({"msgtype": "voice", "voice": "X"}) == ""
