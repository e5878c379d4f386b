"""The receiver's handler on a real (SQLite) store with a scripted client: first-pull history
on WeCom's clock, pull requests honoured by the lock holder, leftovers taken over."""

import pytest

from kfcli.callback import CallbackHandler
from kfcli.core.models import SyncPage
from kfcli.core.store import open_store


class FakeClient:
    corp_id = "wwfake"

    def __init__(self, messages):
        self.messages = messages
        self.calls = []

    def sync_msg(self, open_kfid, *, cursor=None, token=None, limit=1000, voice_format=None,
                 keep_text=False):
        self.calls.append((cursor, token))
        start = int(cursor or 0)
        page = self.messages[start:start + limit]
        return SyncPage.from_api({"msg_list": page, "next_cursor": str(start + len(page)),
                                  "has_more": 0})


def messages(out):
    return [r.get("msgid") for r in out if r["type"] == "message"]


def test_first_pull_emits_what_the_callback_announced_on_wecom_s_clock(tmp_path):
    created = 1_800_000_000  # the callback's CreateTime: WeCom's clock, not ours
    client = FakeClient([{"msgid": "old", "send_time": created - 86400},
                         {"msgid": "new", "send_time": created - 2}])
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    out = []
    handler = CallbackHandler(out.append, client=client, store=store)
    handler({"OpenKfId": "wk1", "Token": "t", "CreateTime": str(created)})
    assert messages(out) == ["new"]
    client.messages.append({"msgid": "later-but-backdated", "send_time": 1})
    handler({"OpenKfId": "wk1", "Token": "t2", "CreateTime": str(created + 5)})
    assert messages(out) == ["new", "later-but-backdated"]  # with a cursor, all new counts
    assert client.calls[-1] == ("2", "t2")
    held = [r.text for r in store.messages("wwfake", "wk1")]
    assert len(held) == 3  # the history is stored, just not emitted


def test_history_emits_everything_wecom_still_has(tmp_path):
    client = FakeClient([{"msgid": "old", "send_time": 1}])
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    out = []
    CallbackHandler(out.append, client=client, store=store, history=True)(
        {"OpenKfId": "wk1", "CreateTime": "1800000000"})
    assert messages(out) == ["old"]


def test_a_callback_during_another_pull_is_honoured_by_the_lock_holder(tmp_path):
    """Another worker holds the account: the callback only records a request; the holder
    (here: the same handler once the lock is free) pulls for it."""
    client = FakeClient([{"msgid": "a", "send_time": 5}])
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    out = []
    handler = CallbackHandler(out.append, client=client, store=store, history=True)
    held = store.lock("pull:wwfake:wk1")
    handler({"OpenKfId": "wk1", "CreateTime": "10"})
    assert messages(out) == [] and store.has_request("wwfake", "wk1")
    held.release()
    handler.drain("wk1")
    assert messages(out) == ["a"] and not store.has_request("wwfake", "wk1")


def test_a_dead_workers_unwritten_page_is_written_by_the_next(tmp_path):
    from kfcli.core.store import Incoming

    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    # A worker stored a page and died before writing it: its outbox entry is left.
    store.commit_page("wwfake", "wk1", expected=None, cursor="1",
                      messages=[Incoming.from_api({"msgid": "orphan", "send_time": 3})],
                      owner="receiver")
    client = FakeClient([{"msgid": "orphan", "send_time": 3}])
    out = []
    CallbackHandler(out.append, client=client, store=store)({"OpenKfId": "wk1"})
    assert messages(out) == ["orphan"]
    assert store.outbox("wwfake", "wk1", owner_prefix="") == []


def test_an_announcement_recorded_before_a_crash_is_pulled_by_the_next_start(tmp_path):
    """The callback was recorded and answered, then the receiver died before pulling: the
    next receiver's catch-up pulls the never-pulled account, on the recorded CreateTime."""
    created = 1_800_000_000
    client = FakeClient([{"msgid": "history", "send_time": created - 3600},
                         {"msgid": "announced", "send_time": created - 1}])
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    crashed = CallbackHandler([].append, client=client, store=store)
    queued = crashed.record({"OpenKfId": "wk1", "Token": "t", "CreateTime": str(created)})
    assert queued["OpenKfId"] == "wk1"  # ...and the process died with it in its queue
    out = []
    CallbackHandler(out.append, client=client, store=store).catch_up()
    assert messages(out) == ["announced"]


class MediaClient(FakeClient):
    """Serves media: `flaky` fails once with a passing error, `gone` has expired."""

    def __init__(self, messages):
        super().__init__(messages)
        self.downloads = []

    def media_download(self, media_id, sink):
        from kfcli.core.errors import api_error

        self.downloads.append(media_id)
        if media_id == "gone" or (media_id == "flaky" and self.downloads.count("flaky") == 1):
            raise api_error(40007 if media_id == "gone" else 48002, "no")
        sink.write(b"bytes of " + media_id.encode())
        return len(b"bytes of ") + len(media_id), "image/png", f"{media_id}.png"


def test_the_receiver_archives_media_and_retries_passing_failures(tmp_path, monkeypatch):
    import threading

    from kfcli.core import archive

    monkeypatch.setattr(archive, "FIRST_BACKOFF", 0.01)
    client = MediaClient([
        {"msgid": m, "send_time": 1, "msgtype": "image", "image": {"media_id": m}}
        for m in ("ok", "flaky", "gone")])
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    out = []
    handler = CallbackHandler(out.append, client=client, store=store, history=True)
    retried = threading.Event()

    def requeue(event):  # the dispatcher's put: here, handled at once
        handler(event)
        retried.set()

    handler.requeue = requeue
    handler({"OpenKfId": "wk1", "Token": "t", "CreateTime": "2"})
    assert messages(out) == ["ok", "flaky", "gone"]  # emitted whatever their media do
    assert retried.wait(30)  # the passing failure was tried again after its back-off
    items = {i.msgid: i for i in store.media_items("wwfake", range(1, 4)).values()}
    assert {k: i.state for k, i in items.items()} == {
        "ok": "archived", "flaky": "archived", "gone": "failed"}
    assert b"".join(store.media_content(items["flaky"])) == b"bytes of flaky"
    assert "40007" in items["gone"].error
    assert client.downloads.count("gone") == 1  # failed for good: never asked again


def test_a_receiver_without_media_leaves_them_due(tmp_path):
    client = MediaClient([{"msgid": "m", "send_time": 1, "msgtype": "image",
                           "image": {"media_id": "ok"}}])
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    CallbackHandler([].append, client=client, store=store, history=True, media=False)(
        {"OpenKfId": "wk1"})
    assert client.downloads == []
    assert [i.msgid for i in store.media_due("wwfake")] == ["m"]


def test_a_stalled_reader_leaves_at_most_a_line_to_write_again(tmp_path, monkeypatch):
    """Writing out a page to a reader that is not keeping up notes how far it got after each
    slow line: a process stopped in the middle leaves only the rest of the page."""
    import time

    from kfcli.callback import worker
    from kfcli.callback.worker import Emitter
    from kfcli.core.store import Incoming

    monkeypatch.setattr(worker, "STALLED", 0.0)  # every line counts as slow
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    written = []

    def emit(record):
        if len(written) == 3:
            raise KeyboardInterrupt  # the process stops while the fourth line is written
        time.sleep(0.001)
        written.append(record["msgid"])

    out = Emitter(emit, store=store, corp_id="wwfake")
    store.commit_page("wwfake", "wk1", expected=None, cursor="1", owner=out.owner,
                      messages=[Incoming.from_api({"msgid": f"m{i}", "send_time": i})
                                for i in range(10)])
    with pytest.raises(KeyboardInterrupt):
        out.flush()
    assert written == ["m0", "m1", "m2"]
    entry, = store.outbox_of("wwfake", out.owner)
    assert [r.text for r in store.outbox_rows("wwfake", entry)][0].count('"m3"') == 1


def test_closing_a_sqlite_store_under_a_busy_thread_is_safe(tmp_path):
    import threading

    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    stop = threading.Event()
    errors = []

    def reader():
        try:
            while not stop.is_set():
                store.cursor("wwfake", "wk1")
        except Exception as exc:  # a clean error would do; a crash would end the process
            errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    for _ in range(50):
        store.close()
        store.cursor("wwfake", "wk1")  # usable again after close()
    stop.set()
    thread.join()
    assert errors == []
