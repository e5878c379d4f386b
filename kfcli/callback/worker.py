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
import time
from collections.abc import Callable, Collection
from typing import Any

from kfcli.core.errors import KfError
from kfcli.core.outage import backoff

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

    def waiting(self) -> int:
        """Events queued in this process (approximate, as queue sizes are)."""
        return self._queue.qsize()

    def running(self) -> bool:
        """Whether this process's worker thread is alive (started on first use)."""
        self._ensure_thread()
        return self._thread is not None and self._thread.is_alive()

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

    What is written goes through an `Emitter`: by default one that writes at once, on the
    caller's thread; `Receiver` gives it one with a thread of its own, so that a stalled
    stdout never holds up storing. `emit=None` writes nothing (consumers read the store).

    A pull that fails (WeCom rate limits, network, a database restart) stays requested and is
    retried after a back-off (`requeue` is set by `Receiver` to the dispatcher's `put`).
    Resuming an account after more than WeCom keeps messages (3 days, on WeCom's clock) is
    logged, counted and noted in the store (`store status`).
    """

    #: Back-off before a failed pull is tried again: doubling from RETRY_FIRST up to RETRY_MAX.
    RETRY_FIRST = 2.0
    RETRY_MAX = 60.0

    def __init__(self, emit: Emit | None, *, client: Any = None, store: Any = None,
                 open_kfids: Collection[str] | None = None, log: Log | None = None,
                 limit: int = 1000, history: bool = False, media: bool = True,
                 metrics: Any = None, emitter: Emitter | None = None) -> None:
        #: Fetch the media of new messages into the store's archive after each pull.
        self.media = media
        self._media_failures: dict[str, int] = {}
        self.client = client
        self.open_kfids = set(open_kfids or ())
        self.log = log or _log.warning
        self.limit = limit
        self.history = history
        self.metrics = metrics
        self.requeue: Callable[[Record], None] | None = None
        self._failures: dict[str, int] = {}
        self.puller = None
        self.store = store
        self.corp_id = ""
        if client is not None:
            from kfcli.core.pull import Puller, PullLoop

            if store is None:
                from kfcli.core.store import open_store

                self.store = open_store()
            self.corp_id = str(client.corp_id)
        self.out = emitter or Emitter(emit, store=self.store, corp_id=self.corp_id,
                                      log=self.log, metrics=metrics)
        if client is not None:
            self.puller = Puller(client, self.store, self.corp_id, owner=OWNER,
                                 owner_prefix=OWNER, sink=_Committed(self), claim=_none,
                                 limit=limit, history=history, log=self.log,
                                 observe=self._observe)
            self.loop = PullLoop(self.puller, recover=self._adopt)
        self._earliest: int | None = None
        self._previous: float | None = None

    def _adopt(self, open_kfid: str) -> None:
        """The pull loop's recovery step (under the account's lock): what dead receivers
        committed and never wrote is this process's to write; its own entries carry its
        name. Notes when (WeCom's clock) the account was last pulled, for the gap check."""
        self.out.adopt()
        if self._previous is None:
            self._previous = self._last_pulled(open_kfid)
        assert self.puller is not None
        self.puller.owner = self.out.owner

    def record(self, fields: Record) -> Record:
        """The dispatcher's `before` hook, on the request thread: with a store, record the
        announcement there *before* WeCom is answered "success" (so a receiver killed with
        the callback still queued loses nothing: the next one's catch-up pulls the account).
        Returns the event to queue. Raises `Duplicate` for a callback taken before (same
        signature, by any process), `Unavailable` (503: WeCom retries) when the store cannot
        take it."""
        from kfcli.callback.app import Duplicate, Unavailable

        if self._wanted(fields):
            token = fields.get("Token")
            signature = fields.get(SIGNATURE)
            try:
                new = self.store.request_pull(
                    self.corp_id, fields["OpenKfId"],
                    token=token if isinstance(token, str) and token else None,
                    callback=_fields(fields),
                    signature=signature if isinstance(signature, str) else None)
            except KfError as exc:
                self._count("kfcli_store_errors")
                raise Unavailable(f"cannot record the callback: {exc.message}") from None
            if not new:
                raise Duplicate
            fields = {**fields, RECORDED: True}
        elif self.puller is None and self.out.writes:
            # Nothing is stored: the record on stdout is all there is, so a stalled reader
            # means 503 (WeCom retries) rather than a record dropped.
            self.out.reserve()
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
        if kind not in (RETRY, SAFETY):
            self.out.record({"type": "callback", **_fields(fields)},
                            reserved=self.puller is None)
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
                                        else None,
                                        callback=_fields(fields) if kind is None else None)
            except KfError as exc:
                self._count("kfcli_store_errors")
                self._failed(open_kfid, announced, f"cannot record the callback: {exc.message}")
                return
        reason = {None: "callback", RETRY: "retry", SAFETY: "safety"}.get(kind, "callback")
        self.drain(open_kfid, announced_at=announced, reason=reason)

    def catch_up(self) -> None:
        """Pull every account that has a cursor in the store (start-up catch-up)."""
        if self.puller is None:
            return
        try:
            self.out.adopt()
            accounts = self.store.accounts(self.corp_id)
        except KfError as exc:
            self._count("kfcli_store_errors")
            self.log(f"catch-up: the store is unavailable: {exc.message}")
            if self.requeue is not None:
                self._later({"type": CATCH_UP}, "catch-up")
            return
        for open_kfid in accounts:
            if self.open_kfids and open_kfid not in self.open_kfids:
                continue
            self.drain(open_kfid, reason="catch_up", request=True)

    def drain(self, open_kfid: str, *, announced_at: int | None = None,
              reason: str = "callback", request: bool = False) -> None:
        """Pull while the account has a pending request and nobody else holds it
        (`request`: note one first)."""
        from kfcli.core.store import CursorMoved

        store, corp_id = self.store, self.corp_id
        try:
            if request:
                store.request_pull(corp_id, open_kfid, token=None)
            elif not store.has_request(corp_id, open_kfid):
                # An earlier pull (this worker's or another's) took this callback's request
                # with its own: nothing to do (a burst of callbacks costs one read each).
                return
            self._earliest = self._previous = None
            done = self.loop.cycle(open_kfid, announced_at=announced_at, requests=True)
            if done is None:
                return  # the holder pulls again before it lets go (its request check)
            if done.pulled:
                self._count("kfcli_pulls", result="ok", reason=reason)
                self._pulled(open_kfid, self._previous, announced_at)
            self._failures.pop(open_kfid, None)
            self.archive(open_kfid)
        except CursorMoved:
            self.log(f"sync_msg for {open_kfid}: another puller moved the cursor; leaving the "
                     "account to it")
        except KfError as exc:
            self._count("kfcli_pulls", result="failed", reason=reason)
            self._failed(open_kfid, announced_at, f"sync_msg for {open_kfid} failed: "
                         f"{exc.message}")

    # -- gaps: judged on WeCom's clock

    def _observe(self, items: list[Any]) -> None:
        times = [m.send_time for m in items if m.send_time]
        if times:
            first = min(times)
            self._earliest = first if self._earliest is None else min(self._earliest, first)

    def _last_pulled(self, open_kfid: str) -> float | None:
        states = self.store.pull_states(self.corp_id, open_kfid)
        return states[0].wecom_pulled_at if states else None

    def _pulled(self, open_kfid: str, previous: float | None, announced_at: int | None) -> None:
        """After a pull: was the account resumed later than WeCom keeps messages? Then note
        the gap; and note when (WeCom's clock) it was pulled."""
        from kfcli.core.store.base import RETENTION

        # WeCom's time now: the callback's CreateTime, the messages' send_time, or this
        # host's clock corrected by the skew seen on the latest callback (a catch-up after a
        # long outage has neither of the first two).
        skew = self.store.clock_skew(self.corp_id) or 0.0
        now = max(time.time() + skew, float(announced_at or 0), float(self._earliest or 0))
        if previous:
            seen = now
            if seen - previous > RETENTION:
                self.store.note_gap(self.corp_id, open_kfid, previous, seen)
                self._count("kfcli_gaps", open_kfid=open_kfid)
                days = (seen - previous) / 86400
                _log.warning(
                    "account %s resumed %.1f days after its last pull (WeCom keeps messages "
                    "3 days): messages sent in between may be lost; see `kfcli store status`",
                    open_kfid, days, extra={"kf": {"event": "gap", "open_kfid": open_kfid,
                                                   "since": int(previous),
                                                   "until": int(seen)}})
        self.store.note_pulled(self.corp_id, open_kfid, now)

    def _count(self, name: str, **labels: str) -> None:
        if self.metrics is not None:
            self.metrics.inc(name, **labels)

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
        delay = backoff(count + 1, first=self.RETRY_FIRST, longest=self.RETRY_MAX)
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


#: Outbox owners of receivers start with this; each process owns its entries (`Emitter`).
OWNER = "receiver"
#: Queue markers: pull every account with a cursor; pull one account again (no new callback);
#: a periodic safety pull.
CATCH_UP = "kfcli-catch-up"
RETRY = "kfcli-retry"
SAFETY = "kfcli-safety"
#: Queue marker: fetch an account's due media again (after a passing failure).
MEDIA = "kfcli-media"
#: Set on a queued callback whose pull request `accept` already stored.
RECORDED = "kfcli-recorded"
#: The callback's msg_signature, as the app hands it over (kfcli.callback.app.SIGNATURE).
SIGNATURE = "kfcli-signature"


def _none(_entry: Any) -> bool:
    return False  # leftovers are adopted by the Emitter, never written by the puller


def _fields(fields: Record) -> Record:
    """A callback's own fields, without kfcli's markers."""
    return {k: v for k, v in fields.items()
            if k not in ("type", RECORDED, SIGNATURE)}


class _Committed:
    """The receiver's sink: what a pull committed is in the store's outbox under this
    process's name; the emitter writes it out (now, or on its own thread)."""

    def __init__(self, handler: CallbackHandler) -> None:
        self.handler = handler

    def write(self, rows: list[Any], outbox_id: int | None) -> None:
        if self.handler.metrics is not None and rows:
            self.handler.metrics.inc("kfcli_messages_stored", len(rows))
        if outbox_id is not None:
            self.handler.out.committed(len(rows))

    def settle(self) -> None:
        pass


class Emitter:
    """Writes out what a receiver process committed: callback records, and the messages of
    its outbox entries in the store, each exactly once (an entry is removed once its rows
    are written; a process killed in between leaves it to the next, which writes it again).

    Each process owns its entries (`owner`) and holds a lock saying it is alive while it
    runs; the entries of a process that died are adopted by a live one (`adopt`). Without
    `threaded`, writing happens at once on the caller's thread; with it, on a thread of its
    own, so a stalled reader delays only the writing: pulls and commits go on, and the
    writing catches up from the store when the reader drains. `emit=None` writes nothing
    and commits no outbox entries. Thread-safe.
    """

    #: Callback records waiting for a stalled reader, at most; more are dropped (counted)
    #: when the store has the messages, or refused (503) when the records are all there is.
    MAX_RECORDS = 10_000

    def __init__(self, emit: Emit | None, *, store: Any = None, corp_id: str = "",
                 log: Log | None = None, metrics: Any = None, threaded: bool = False) -> None:
        import collections

        self.emit = emit
        self.store = store
        self.corp_id = corp_id
        self.log = log or _log.warning
        self.metrics = metrics
        self.threaded = threaded
        self._records: collections.deque[Record] = collections.deque()
        self._reserved = 0
        self._lock = threading.RLock()
        self._flushing = threading.Lock()
        self._wake = threading.Event()
        self._pid = 0
        self._owner = ""
        self._alive: Any = None
        self._thread: threading.Thread | None = None
        self._stopped = False
        self.lag = 0  # messages committed and not yet written

    @property
    def writes(self) -> bool:
        return self.emit is not None

    @property
    def owner(self) -> str | None:
        """This process's outbox owner name (None: nothing is written, no outbox)."""
        if self.emit is None:
            return None
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    import secrets
                    import socket

                    host = socket.gethostname().replace(":", "_")
                    if self._pid:  # a forked child: nothing of the parent's is its own
                        self._alive = None
                        self._thread = None
                        self._records.clear()
                        self._reserved = 0
                        self.lag = 0
                    self._pid = os.getpid()
                    self._owner = f"{OWNER}:{host}:{self._pid}-{secrets.token_hex(4)}"
        if self._alive is None and self.store is not None:
            with self._lock:
                if self._alive is None:
                    self._alive = self.store.lock(_alive_lock(self._owner))
        return self._owner

    def reserve(self) -> None:
        """Room for one more record that must not be dropped; queue.Full when there is none."""
        with self._lock:
            if len(self._records) + self._reserved >= self.MAX_RECORDS:
                raise queue.Full
            self._reserved += 1

    def record(self, record: Record, *, reserved: bool = False) -> None:
        if self.emit is None:
            return
        with self._lock:
            if reserved:
                self._reserved = max(0, self._reserved - 1)
            elif len(self._records) >= self.MAX_RECORDS:
                if self.metrics is not None:
                    self.metrics.inc("kfcli_emit_dropped")
                return
            self._records.append(record)
        self._kick()

    def committed(self, count: int) -> None:
        with self._lock:
            self.lag += count
        if self.metrics is not None:
            self.metrics.set("kfcli_emit_lag_messages", self.lag)
        self._kick()

    def adopt(self) -> int:
        """Take over the outbox entries of receiver processes that died (their alive lock is
        free): they are written out by this one."""
        owner = self.owner
        if owner is None or self.store is None:
            return 0
        taken = 0
        for other in self.store.outbox_owners(self.corp_id, OWNER):
            if other == owner:
                continue
            lock = self.store.lock(_alive_lock(other))
            if lock is None:
                continue  # alive: it writes its own
            try:
                taken += self.store.adopt_outbox(self.corp_id, other, owner)
            finally:
                lock.release()
        if taken:
            self._kick()
        return taken

    def _kick(self) -> None:
        if not self.threaded:
            self.flush()
            return
        self._ensure_thread()
        self._wake.set()

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self.owner  # noqa: B018 (a forked child takes a name of its own first)
                self._thread = threading.Thread(target=self._run, name="kfcli-emitter",
                                                daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait(5.0)
            self._wake.clear()
            try:
                self.flush()
            except KfError as exc:
                self.log(f"writing out stored messages: {exc.message}; trying again")
                time.sleep(1.0)
            except Exception as exc:  # the reader's problem (EIO...): try again later
                self.log(f"writing to stdout failed: {type(exc).__name__}: {exc}")
                time.sleep(1.0)
            if self._stopped:
                # One more pass: what was committed before close() (the dispatcher's last
                # pulls) may have come after the pass above had listed the outbox.
                with contextlib.suppress(Exception):
                    self.flush()
                return

    def flush(self) -> None:
        """Write the waiting records, then this process's outbox entries, oldest first."""
        if self.emit is None:
            return
        with self._flushing:
            self._write_records()
            owner = self.owner
            if self.store is None or owner is None:
                return
            import json

            entries = self.store.outbox_of(self.corp_id, owner)
            self._write_records()  # a callback recorded before its messages were committed
            for entry in entries:
                rows = self.store.outbox_rows(self.corp_id, entry)
                for i, row in enumerate(rows):
                    record = {"type": "message"}
                    record.update((k, v) for k, v in json.loads(row.text).items()
                                  if k != "type")
                    started = time.monotonic()
                    self.emit(record)
                    if time.monotonic() - started > STALLED and i + 1 < len(rows):
                        # The reader is slow: note how far this entry got, so that a process
                        # stopped in the middle of a long stall leaves at most one line to be
                        # written again (not the whole page).
                        self.store.outbox_progress(entry.id, rows[i + 1].seq)
                self.store.outbox_done([entry.id])
                with self._lock:
                    self.lag = max(0, self.lag - len(rows))
                if self.metrics is not None:
                    self.metrics.set("kfcli_emit_lag_messages", self.lag)

    def _write_records(self) -> None:
        while True:
            with self._lock:
                if not self._records:
                    return
                record = self._records.popleft()
            self.emit(record)

    def close(self, timeout: float = 10.0) -> None:
        """Write out what is waiting (at most `timeout` seconds), then stop."""
        thread = self._thread
        if thread is not None and thread.is_alive() and self._pid == os.getpid():
            self._stopped = True
            self._wake.set()
            thread.join(timeout)
        if self._alive is not None and self._pid == os.getpid():
            with contextlib.suppress(Exception):
                self._alive.release()
            self._alive = None


#: A write to stdout slower than this means the reader is not keeping up (seconds).
STALLED = 0.05


def _alive_lock(owner: str) -> str:
    return f"receiver-alive:{owner}"


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
