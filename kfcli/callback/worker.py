"""What happens after a callback is answered: a queue drained by one worker thread, and the
optional `sync_msg` pull that the callback announces (kf-api.md §4.3: answer at once, sync
asynchronously, deduplicate by msgid).

Emitted records (one JSON object per line on stdout in `kfcli callback serve`):

    {"type": "callback", "ToUserName": ..., "CreateTime": ..., "MsgType": "event",
     "Event": "kf_msg_or_event", "Token": ..., "OpenKfId": ...}
    {"type": "message", "msgid": ..., "open_kfid": ..., "msgtype": "text", ...}   (with --sync)

A callback record carries the inner XML's element names as keys; a message record is the
sync_msg message object as the API returns it (kf-api.md §3).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from typing import Any

from kfcli.core.errors import KfError

Record = dict[str, Any]
Emit = Callable[[Record], None]
Log = Callable[[str], None]

_log = logging.getLogger("kfcli.callback")
_STOP = object()


class Dispatcher:
    """Runs `handle(event)` for each event on one worker thread, in arrival order.

    `put` never blocks: it raises `queue.Full` when `maxsize` events are already waiting (the
    receiver then answers 503 and WeCom retries). A failing handler is logged and the worker
    goes on. The thread starts on first use and again in a forked child (gunicorn --preload).
    """

    def __init__(self, handle: Callable[[Record], Any], *, maxsize: int = 10_000,
                 log: Log | None = None) -> None:
        self.handle = handle
        self.log = log or _log.warning
        self._queue: queue.Queue[Any] = queue.Queue(maxsize)
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def put(self, event: Record) -> None:
        self._ensure_thread()
        self._queue.put_nowait(event)

    __call__ = put

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                if self._pid != os.getpid():
                    self._queue = queue.Queue(self._queue.maxsize)
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="kfcli-callback-worker",
                                                daemon=True)
                self._thread.start()

    def _run(self) -> None:
        q = self._queue
        while True:
            event = q.get()
            try:
                if event is _STOP:
                    return
                self.handle(event)
            except Exception as exc:
                self.log(f"callback handler failed: {type(exc).__name__}: {exc}")
            finally:
                q.task_done()

    def close(self, timeout: float = 10.0) -> None:
        """Let the worker finish what is queued, then stop it (waits at most `timeout`)."""
        thread = self._thread
        if thread is None or not thread.is_alive() or self._pid != os.getpid():
            return
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            return
        thread.join(timeout)


class _Recent:
    """The last `size` keys seen (msgids), to drop a message that a re-read page repeats."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._keys: OrderedDict[str, None] = OrderedDict()

    def seen(self, key: str) -> bool:
        if key in self._keys:
            self._keys.move_to_end(key)
            return True
        self._keys[key] = None
        if len(self._keys) > self.size:
            self._keys.popitem(last=False)
        return False


class CallbackHandler:
    """Emit each callback; with a client, also pull its messages with sync_msg and emit them.

    Cursors are kept in memory per open_kfid; `kfcli msg sync` is the command that persists
    them. Without a cursor sync_msg starts 3 days back, so the first pull for an account emits
    only messages sent since the receiver started (less `GRACE`): the new ones the callback
    announced, not history. `history=True` emits everything WeCom still has instead. The
    worker handles one callback at a time, so cursors need no lock.
    """

    #: Messages up to this many seconds older than the receiver's start still count as new
    #: (WeCom retries a callback for a while; clocks differ).
    GRACE = 300

    #: A page that has `has_more` but moves nothing, this many times in a row, ends the pull
    #: rather than spinning (kf-api.md §2.5 allows empty pages with has_more 1).
    MAX_STALLED_PAGES = 100

    def __init__(self, emit: Emit, *, client: Any = None,
                 open_kfids: Collection[str] | None = None, log: Log | None = None,
                 limit: int = 1000, history: bool = False) -> None:
        self.emit = emit
        self.client = client
        self.open_kfids = set(open_kfids or ())
        self.log = log or _log.warning
        self.limit = limit
        self.cursors: dict[str, str] = {}
        self._recent = _Recent()
        self.since = 0.0 if history else time.time() - self.GRACE

    def __call__(self, fields: Record) -> None:
        record: Record = {"type": "callback"}
        record.update((k, v) for k, v in fields.items() if k != "type")
        self.emit(record)
        if self.client is None:
            return
        open_kfid = fields.get("OpenKfId")
        if not isinstance(open_kfid, str) or not open_kfid:
            return
        if self.open_kfids and open_kfid not in self.open_kfids:
            return
        token = fields.get("Token")
        try:
            self.pull(open_kfid, token if isinstance(token, str) and token else None)
        except KfError as exc:
            self.log(f"sync_msg for {open_kfid} failed: {exc.message}")

    def pull(self, open_kfid: str, token: str | None) -> None:
        stalled = 0
        first = open_kfid not in self.cursors
        while True:
            cursor = self.cursors.get(open_kfid)
            page = self.client.sync_msg(open_kfid, cursor=cursor, token=token, limit=self.limit)
            for msg in page.msg_list:
                msgid = msg.get("msgid")
                if isinstance(msgid, str) and msgid and self._recent.seen(msgid):
                    continue
                if first and _sent_at(msg) < self.since:
                    continue  # history from before this receiver started
                record: Record = {"type": "message"}
                record.update((k, v) for k, v in msg.items() if k != "type")
                self.emit(record)
            if page.next_cursor:
                # Advanced only after the page's messages were emitted (and flushed).
                self.cursors[open_kfid] = page.next_cursor
            if not page.has_more:
                return
            moved = bool(page.msg_list) or page.next_cursor not in ("", cursor)
            stalled = 0 if moved else stalled + 1
            if stalled >= self.MAX_STALLED_PAGES:
                self.log(f"sync_msg for {open_kfid} keeps answering has_more without progress; "
                         "stopping until the next callback")
                return


def _sent_at(msg: Record) -> float:
    try:
        return float(msg.get("send_time") or 0)
    except (TypeError, ValueError):
        return 0.0
