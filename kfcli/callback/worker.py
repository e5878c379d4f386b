"""What happens after a callback is answered: a queue drained by one worker thread, and the
optional `sync_msg` pull that the callback announces (kf-api.md §4.3: answer at once, sync
asynchronously; the pull goes into the message store, which keeps each message once).

Emitted records (one JSON object per line on stdout in `kfcli callback serve`):

    {"type": "callback", "ToUserName": ..., "CreateTime": ..., "MsgType": "event",
     "Event": "kf_msg_or_event", "Token": ..., "OpenKfId": ...}
    {"type": "message", "msgid": ..., "open_kfid": ..., "msgtype": "text", ...}   (with --sync)

A callback record carries the inner XML's element names as keys; a message record is the
sync_msg message object as the API returns it (kf-api.md §3).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
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
    receiver then answers 503 and WeCom retries); `before` runs on the caller's thread first.
    A failing handler is logged and the worker goes on. The thread starts on first use and
    again in a forked child (gunicorn --preload); at exit, what is queued is handled first.
    """

    def __init__(self, handle: Callable[[Record], Any], *, maxsize: int = 10_000,
                 log: Log | None = None,
                 before: Callable[[Record], Record] | None = None) -> None:
        self.handle = handle
        self.before = before
        self.log = log or _log.warning
        self._queue: queue.Queue[Any] = queue.Queue(maxsize)
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def put(self, event: Record) -> None:
        """Queue an event. `before(event)` (if given) runs first, on the caller's thread: it
        may raise `queue.Full` to refuse the event (the receiver answers 503)."""
        self._ensure_thread()
        if self.before is not None:
            event = self.before(event)
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
                # A graceful stop (gunicorn's SIGTERM ends a worker with sys.exit) writes out
                # what is queued first: those callbacks were answered "success".
                import atexit

                atexit.register(self.close)

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


class CallbackHandler:
    """Emit each callback; with a client, also pull the announced account into the message
    store (`kfcli.core.store`) and emit the messages that were new to it.

    Nothing is kept in memory between callbacks: the cursor, the pending pull request and
    what is still to be written live in the store, so any number of worker threads,
    processes and hosts can share one store (DESIGN.md §9). A callback for an account that
    another worker is pulling is recorded as a request, which that worker honours before it
    lets go of the account. `catch_up()` pulls every account the store has a cursor for (what
    arrived while the receiver was down). An account the store has never pulled: messages
    its first callback announces are emitted, older history is stored but not emitted unless
    `history=True` (decided on WeCom's clock: CreateTime against send_time).

    A pull that fails (WeCom rate limits, network, a database restart) stays requested and is
    retried after a back-off (`requeue` is set by `app_from_env` / `callback serve` to the
    dispatcher's `put`).
    """

    #: Back-off before a failed pull is tried again: doubling from RETRY_FIRST up to RETRY_MAX.
    RETRY_FIRST = 2.0
    RETRY_MAX = 60.0

    def __init__(self, emit: Emit, *, client: Any = None, store: Any = None,
                 open_kfids: Collection[str] | None = None, log: Log | None = None,
                 limit: int = 1000, history: bool = False, media: bool = True) -> None:
        self.emit = emit
        #: Fetch the media of new messages into the store's archive after each pull.
        self.media = media
        self._media_failures: dict[str, int] = {}
        self.client = client
        self.open_kfids = set(open_kfids or ())
        self.log = log or _log.warning
        self.limit = limit
        self.history = history
        self.requeue: Callable[[Record], None] | None = None
        self._failures: dict[str, int] = {}
        self.puller = None
        self.store = store
        if client is not None:
            from kfcli.core.pull import Puller

            if store is None:
                from kfcli.core.store import open_store

                self.store = open_store()
            self.corp_id = str(client.corp_id)
            self.puller = Puller(client, self.store, self.corp_id, owner=OWNER,
                                 owner_prefix=OWNER, sink=_Emitted(self), claim=_any,
                                 limit=limit, history=history, log=self.log)

    def record(self, fields: Record) -> Record:
        """The dispatcher's `before` hook, on the request thread: with a store, record the
        announcement there *before* WeCom is answered "success" (so a receiver killed with
        the callback still queued loses nothing: the next one's catch-up pulls the account).
        Returns the event to queue. A store that cannot take it answers 503: WeCom retries."""
        if self._wanted(fields):
            token = fields.get("Token")
            try:
                self.store.request_pull(self.corp_id, fields["OpenKfId"],
                                        token=token if isinstance(token, str) and token else None,
                                        callback=fields)
            except KfError as exc:
                self.log(f"cannot record the callback: {exc.message}")
                raise queue.Full from None
            fields = {**fields, RECORDED: True}
        return fields

    def _wanted(self, fields: Record) -> bool:
        open_kfid = fields.get("OpenKfId")
        return (self.puller is not None and isinstance(open_kfid, str) and bool(open_kfid)
                and (not self.open_kfids or open_kfid in self.open_kfids))

    def __call__(self, fields: Record) -> None:
        kind = fields.get("type")
        if kind == CATCH_UP:
            self.catch_up()
            return
        if kind == MEDIA:
            self.archive(str(fields.get("OpenKfId") or ""))
            return
        if kind != RETRY:
            record: Record = {"type": "callback"}
            record.update((k, v) for k, v in fields.items() if k not in ("type", RECORDED))
            self.emit(record)
        if self.puller is None:
            return
        open_kfid = fields.get("OpenKfId")
        if not isinstance(open_kfid, str) or not open_kfid:
            return
        if self.open_kfids and open_kfid not in self.open_kfids:
            return
        token = fields.get("Token")
        announced = _int(fields.get("CreateTime"))
        if not fields.get(RECORDED):
            try:
                self.store.request_pull(self.corp_id, open_kfid,
                                        token=token if isinstance(token, str) and token
                                        else None, callback=fields if kind != RETRY else None)
            except KfError as exc:
                self._failed(open_kfid, announced, f"cannot record the callback: {exc.message}")
                return
        self.drain(open_kfid, announced_at=announced)

    def catch_up(self) -> None:
        """Pull every account that has a cursor in the store (start-up catch-up)."""
        if self.puller is None:
            return
        try:
            accounts = self.store.accounts(self.corp_id)
        except KfError as exc:
            self.log(f"catch-up: the store is unavailable: {exc.message}")
            if self.requeue is not None:
                self._later({"type": CATCH_UP}, "catch-up")
            return
        for open_kfid in accounts:
            if self.open_kfids and open_kfid not in self.open_kfids:
                continue
            self(dict(type=RETRY, OpenKfId=open_kfid))

    def drain(self, open_kfid: str, *, announced_at: int | None = None) -> None:
        """Pull while the account has a pending request and nobody else holds it."""
        from kfcli.core.store import CursorMoved

        store, corp_id = self.store, self.corp_id
        try:
            while True:
                lock = self.puller.lock(open_kfid)
                if lock is None:
                    return  # the holder pulls again before it lets go (its request check)
                try:
                    self.puller.leftovers(open_kfid)
                    while True:
                        requested, token = store.take_request(corp_id, open_kfid)
                        if not requested:
                            break
                        try:
                            self.puller.pull(open_kfid, token=token, announced_at=announced_at)
                        except BaseException:
                            # Still to do: whoever pulls next (this worker's retry included)
                            # picks it up. The store may be what failed: then the retry does.
                            with contextlib.suppress(KfError):
                                store.request_pull(corp_id, open_kfid, token=None)
                            raise
                finally:
                    lock.release()
                # A request that came in after the last check but before the release found
                # the lock taken: honour it now.
                if not store.has_request(corp_id, open_kfid):
                    break
            self._failures.pop(open_kfid, None)
            self.archive(open_kfid)
        except CursorMoved:
            self.log(f"sync_msg for {open_kfid}: another puller moved the cursor; leaving the "
                     "account to it")
        except KfError as exc:
            self._failed(open_kfid, announced_at, f"sync_msg for {open_kfid} failed: "
                         f"{exc.message}")

    def archive(self, open_kfid: str) -> None:
        """Fetch the account's due media into the archive (after its pull, outside the pull
        lock). What fails for a passing reason is tried again after a back-off, from a
        minute doubling up to six hours; a failure never affects the messages."""
        if not self.media or self.puller is None or not open_kfid:
            return
        from kfcli.core.archive import Archiver, backoff

        try:
            result = Archiver(self.client, self.store, self.corp_id).run(open_kfid=open_kfid)
        except KfError as exc:
            self.log(f"media of {open_kfid} not archived now: {exc.message}")
            return
        for line in result.errors:
            self.log(f"media not archived: {line}")
        if not result.retrying:
            self._media_failures.pop(open_kfid, None)
            return
        count = self._media_failures.get(open_kfid, 0) + 1
        self._media_failures[open_kfid] = count
        if self.requeue is not None:
            timer = threading.Timer(backoff(count), self._requeue,
                                    args=({"type": MEDIA, "OpenKfId": open_kfid},))
            timer.daemon = True
            timer.start()

    def _failed(self, open_kfid: str, announced_at: int | None, text: str) -> None:
        if self.requeue is None:
            self.log(text)
            return
        self._later(dict(type=RETRY, OpenKfId=open_kfid, CreateTime=announced_at or ""),
                    open_kfid, text)

    def _later(self, event: Record, key: str, text: str = "") -> None:
        count = self._failures.get(key, 0)
        self._failures[key] = count + 1
        delay = min(self.RETRY_MAX, self.RETRY_FIRST * 2 ** count)
        self.log(f"{text}; trying again in {delay:.0f} s" if text else
                 f"{key}: trying again in {delay:.0f} s")
        timer = threading.Timer(delay, self._requeue, args=(event,))
        timer.daemon = True
        timer.start()

    def _requeue(self, event: Record) -> None:
        try:
            if self.requeue is not None:
                self.requeue(event)
        except queue.Full:
            self._later(event, str(event.get("OpenKfId", "catch-up")))


#: Outbox owner of receivers: any receiver worker writes out what a dead one committed.
OWNER = "receiver"
#: Queue markers: pull every account with a cursor; pull one account again (no new callback).
CATCH_UP = "kfcli-catch-up"
RETRY = "kfcli-retry"
#: Queue marker: fetch an account's due media again (after a passing failure).
MEDIA = "kfcli-media"
#: Set on a queued callback whose pull request `accept` already stored.
RECORDED = "kfcli-recorded"


def _any(_entry: Any) -> bool:
    return True


class _Emitted:
    """The receiver's sink: each new message is emitted as a record right away, then its
    outbox entry is removed (a worker killed in between leaves it for the next one)."""

    def __init__(self, handler: CallbackHandler) -> None:
        self.handler = handler

    def write(self, rows: list[Any], outbox_id: int | None) -> None:
        import json

        for row in rows:
            record: Record = {"type": "message"}
            record.update((k, v) for k, v in json.loads(row.text).items() if k != "type")
            self.handler.emit(record)
        if outbox_id is not None:
            self.handler.store.outbox_done([outbox_id])

    def settle(self) -> None:
        pass


class LineWriter:
    """Writes records as JSON lines to a file descriptor (stdout), one `write()` each.

    Several worker processes (gunicorn) share one stdout: a line of up to PIPE_BUF bytes
    written with one system call is never interleaved with another process's; longer lines
    are written under a file lock shared by the processes of this user. Thread-safe.
    """

    PIPE_BUF = 4096

    def __init__(self, fd: int = 1) -> None:
        self.fd = fd
        self._lock = threading.Lock()
        self._file_lock: Any = None

    def __call__(self, record: Record) -> None:
        from kfcli.core import jsontext

        data = (jsontext.dumps(record) + "\n").encode("utf-8")
        with self._lock:
            if len(data) <= self.PIPE_BUF:
                self._write(data)
                return
            lock = self._shared_lock()
            with lock:
                self._write(data)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    def _shared_lock(self) -> Any:
        if self._file_lock is None:
            import filelock

            from kfcli.core import paths
            from kfcli.core.files import ensure_private_dir

            path = ensure_private_dir(paths.state_dir()) / "receiver-stdout.lock"
            self._file_lock = filelock.FileLock(str(path), mode=0o600, thread_local=False)
        return self._file_lock


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
