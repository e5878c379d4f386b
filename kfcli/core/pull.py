"""Pulling accounts into the store, and handing what was committed to whoever writes it out
(DESIGN.md §9). Used by `msg sync` and the callback receiver; `msg history` reads the store.

One pull of an account, under its pull lock (one puller per corp_id + open_kfid across
processes and hosts):

1. write out the account's *leftovers*: outbox entries that a killed process committed but
   never wrote (only entries this kind of puller owns: a receiver takes over a dead receiver's,
   `msg sync` a dead `msg sync`'s on the same host, see `Journal`);
2. page with `sync_msg` from the saved cursor while `has_more` is 1; each page's new messages
   and the next cursor commit in one transaction, with an outbox entry for what is to be
   written; the new rows go to the sink;
3. `sink.settle()`: everything handed over is written; the outbox entries are removed.

Only then is the lock released, so the next holder's leftovers are really left over.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from kfcli.core.errors import ApiError, KfError
from kfcli.core.store.base import Committed, Incoming, Lock, OutboxEntry, Row, Store, StorePart
from kfcli.core.sync import MAX_EMPTY_PAGES

if TYPE_CHECKING:
    from kfcli.core.archive import ArchiveResult
    from kfcli.core.client import KfClient
    from kfcli.core.models import SyncPage
    from kfcli.core.outage import Outage

#: Messages sent up to this many seconds (WeCom's clock) before the first callback that
#: announces a never-pulled account count as announced by it; older ones are history.
GRACE = 60


class Sink(Protocol):
    def write(self, rows: list[Row], outbox_id: int | None) -> None:
        """Write rows out (or hand them to something that will)."""

    def settle(self) -> None:
        """Make sure everything written so far is out, then remove its outbox entries."""


def lock_name(corp_id: str, open_kfid: str) -> str:
    return f"pull:{corp_id}:{open_kfid}"


class Puller:
    """Pulls accounts of one corp into `store`, handing new rows to `sink`.

    `owner` tags the outbox entries this puller commits; `claim(entry)` says whether a
    leftover entry (committed by a process that died before writing it) is this puller's to
    write. `history`: on an account's first pull, write older messages too (else only what the
    announcing callback announced; see `pull`).
    """

    def __init__(self, client: KfClient, store: Store, corp_id: str, *, owner: str | None,
                 sink: Sink, claim: Callable[[OutboxEntry], bool], owner_prefix: str,
                 limit: int = 1000, voice_format: int | None = None, history: bool = True,
                 log: Callable[[str], None] | None = None,
                 observe: Callable[[list[Incoming]], None] | None = None) -> None:
        self.client = client
        self.store = store
        self.corp_id = corp_id
        self.owner = owner
        self.owner_prefix = owner_prefix
        self.sink = sink
        self.claim = claim
        self.limit = limit
        self.voice_format = voice_format
        self.history = history
        self.log = log or (lambda _text: None)
        #: Sees each page's messages before they are committed (the receiver's gap check).
        self.observe = observe

    def lock(self, open_kfid: str, *, wait: float = 0.0) -> Lock | None:
        return self.store.lock(lock_name(self.corp_id, open_kfid), wait=wait)

    def leftovers(self, open_kfid: str) -> int:
        """Write out what dead pullers of this kind committed but never wrote (hold the lock)."""
        count = 0
        for entry in self.store.outbox(self.corp_id, open_kfid, owner_prefix=self.owner_prefix):
            if not self.claim(entry):
                continue
            rows = self.store.outbox_rows(self.corp_id, entry)
            self.sink.write(rows, entry.id)
            count += len(rows)
        return count

    def pull(self, open_kfid: str, *, token: str | None = None, start: str | None = None,
             announced_at: int | None = None) -> int:
        """Page until `has_more` is 0 (hold the lock). Returns the number of rows written.

        `start`: request from this cursor instead of the saved one (the saved one still guards
        the commit). `announced_at`: the CreateTime of the callback that asked for this pull;
        on an account the store has never pulled, messages sent more than GRACE seconds
        before it are stored but not written (unless `history`): WeCom's clock against
        WeCom's clock, never the local one.
        """
        expected = self.store.cursor(self.corp_id, open_kfid)
        cursor = expected if start is None else start
        emit_from = 0
        if expected is None and not self.history:
            # The earliest callback recorded for the account announced its first messages
            # (another worker, or a receiver that crashed, may have received it).
            first = self.store.first_callback_time(self.corp_id, open_kfid)
            announced_at = min(t for t in (announced_at, first, 2 ** 62) if t)
            emit_from = max(1, announced_at - GRACE)
        written = stalled = 0
        while True:
            page, token = self._fetch(open_kfid, cursor, token)
            texts: list[str | None] = list(page.msg_texts or ())
            texts = texts or [None] * len(page.msg_list)
            items = [Incoming.from_api(doc, text)
                     for doc, text in zip(page.msg_list, texts, strict=True)]
            if self.observe is not None and items:
                self.observe(items)
            next_cursor = page.next_cursor or cursor or ""
            committed = self.store.commit_page(self.corp_id, open_kfid, expected=expected,
                                               cursor=next_cursor, messages=items,
                                               owner=self.owner, emit_from=emit_from)
            written += self._hand_over(committed)
            moved = bool(page.msg_list) or next_cursor != (cursor or "")
            expected = cursor = next_cursor
            if not page.has_more:
                return written
            stalled = 0 if moved else stalled + 1
            if stalled >= MAX_EMPTY_PAGES:
                raise KfError(f"sync_msg for {open_kfid} answered {MAX_EMPTY_PAGES} empty "
                              "pages in a row with has_more=1; stopping (the cursor is saved)")

    def _hand_over(self, committed: Committed) -> int:
        if committed.rows:
            self.sink.write(committed.rows, committed.outbox_id)
        return len(committed.rows)

    def _fetch(self, open_kfid: str, cursor: str | None, token: str | None
               ) -> tuple[SyncPage, str | None]:
        """One page; a refused callback Token falls back to a pull without one."""
        while True:
            try:
                return self.client.sync_msg(open_kfid, cursor=cursor or None, token=token,
                                            limit=self.limit, voice_format=self.voice_format,
                                            keep_text=True), token
            except ApiError as exc:
                if exc.errcode == 95007 and token:
                    # The callback's Token expired (10 minutes) or was used up: pull without
                    # it (stricter rate limits, which the client backs off from).
                    self.log(f"sync_msg for {open_kfid}: the callback token was refused; "
                             "pulling without it")
                    token = None
                    continue
                raise


class Journal:
    """What one `msg sync`/`msg history --consumer` run's writer process has written.

    A file `<run>.journal` in a directory per (store, corp_id, account, purpose) under the
    state dir, locked (flock) by the run and inherited by its writer process, so the lock
    lasts while either lives. `owner` tags this run's outbox entries. `recover()` (under the
    account's pull lock) applies the journals of dead runs of this host to the store and
    deletes them; `claim(entry)` is then true for outbox entries of dead runs of this host.
    """

    def __init__(self, store: StorePart, corp_id: str, open_kfid: str, *, purpose: str = "sync",
                 directory: Path | None = None) -> None:
        import hashlib
        import secrets
        import socket

        from kfcli.core import paths
        from kfcli.core.files import ensure_private_dir

        key = hashlib.sha256("\0".join((store.display_url, corp_id, open_kfid, purpose))
                             .encode("utf-8")).hexdigest()[:24]
        self.store = store
        self.dir = ensure_private_dir((directory or paths.state_dir() / "runs") / key)
        self.run_id = f"{os.getpid()}-{secrets.token_hex(4)}"
        host = socket.gethostname().replace(":", "_")
        self.owner_prefix = f"{purpose}:{host}:"
        self.owner = self.owner_prefix + self.run_id
        self.path = self.dir / f"{self.run_id}.journal"
        self.fd = _open_locked(self.path, create=True)
        assert self.fd is not None
        self._live: set[str] = set()

    def recover(self, apply: Callable[[list[int]], None]) -> list[int]:
        """Hand each dead run's journal (the numbers it recorded: outbox ids for `msg sync`,
        seqs for a consumer) to `apply`, then delete it."""
        done: list[int] = []
        self._live = set()
        for path in sorted(self.dir.glob("*.journal")):
            run = path.name[:-len(".journal")]
            if run == self.run_id:
                continue
            fd = _open_locked(path, create=False)
            if fd is None:
                self._live.add(run)
                continue
            try:
                size = os.fstat(fd).st_size
                ids = [int(x) for x in (os.pread(fd, size, 0) if size else b"").split()
                       if x.isdigit()]
                apply(ids)
                done.extend(ids)
                path.unlink(missing_ok=True)
            finally:
                os.close(fd)
        return done

    def written(self) -> list[int]:
        """The numbers this run's writer journaled since the journal was last emptied."""
        assert self.fd is not None  # open until close()
        size = os.fstat(self.fd).st_size
        data = os.pread(self.fd, size, 0) if size else b""
        return [int(x) for x in data.split() if x.isdigit()]

    def claim(self, entry: OutboxEntry) -> bool:
        run = entry.owner[len(self.owner_prefix):]
        return run != self.run_id and run not in self._live

    def close(self, *, settled: bool) -> None:
        """End the run. The journal is deleted only when everything it records is settled in
        the store; otherwise the next run applies it."""
        if self.fd is not None:
            if settled:
                self.path.unlink(missing_ok=True)
            os.close(self.fd)
            self.fd = None


def _open_locked(path: Path, *, create: bool) -> int | None:
    """Open and exclusively lock a journal; None when another live process holds it."""
    import fcntl

    flags = os.O_RDWR | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags | (os.O_CREAT if create else 0), 0o600)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


@dataclass
class Pulled:
    """What one `PullLoop.cycle` did: the rows handed to the sink, and whether it pulled."""

    rows: int = 0
    pulled: bool = False


class PullLoop:
    """The pull cycle of one corp's accounts, exactly once to the puller's sink — `msg sync`,
    the callback receiver and Python code all run this one:

    lock the account (one puller across processes and hosts) -> `recover` what dead pullers
    of this kind committed and never wrote -> pull (`sync_msg` while `has_more`, each page and
    its cursor in one transaction) -> the sink settles what it was handed -> release the lock
    -> (outside the lock) `archive` the account's due media.

    `cycle()` is one such round; `run()` repeats it for one account as `msg sync` does:
    once, once per callback token, or following until interrupted, riding out outages of
    WeCom and of the store with kfcli's one back-off policy (`kfcli.core.outage.backoff`).
    One thread at a time per instance; instances in several threads or processes may pull
    the same accounts (the store's lock decides).
    """

    def __init__(self, puller: Puller, *,
                 recover: Callable[[str], object] | None = None) -> None:
        self.puller = puller
        self.store = puller.store
        self.corp_id = puller.corp_id
        #: Under the lock, before pulling: hand over what dead pullers left (default: the
        #: puller's leftovers of its own kind).
        self.recover = recover or puller.leftovers

    def lock(self, open_kfid: str, *, wait: bool = False,
             on_wait: Callable[[], None] | None = None) -> Lock | None:
        """The account's pull lock; None when another holds it and not `wait`ing (then
        `on_wait()` is called once, and the lock is waited for however long it takes)."""
        lock = self.puller.lock(open_kfid, wait=0.0)
        if lock is not None or not wait:
            return lock
        if on_wait is not None:
            on_wait()
        while lock is None:
            lock = self.puller.lock(open_kfid, wait=1.0)
        return lock

    def cycle(self, open_kfid: str, *, token: str | None = None, start: str | None = None,
              announced_at: int | None = None, requests: bool = False, wait: bool = False,
              on_wait: Callable[[], None] | None = None) -> Pulled | None:
        """One round under the account's lock. None: another process holds the lock (and
        not `wait`). `requests`: pull while the store has a pull request for the account (a
        receiver's callbacks; one arriving during the pull is honoured before returning),
        else pull once with `token`/`start`."""
        store, corp_id = self.store, self.corp_id
        done = Pulled()
        while True:
            lock = self.lock(open_kfid, wait=wait, on_wait=on_wait)
            if lock is None:
                return done if done.pulled else None
            try:
                self.recover(open_kfid)
                if not requests:
                    done.rows += self.puller.pull(open_kfid, token=token, start=start,
                                                  announced_at=announced_at)
                    done.pulled = True
                while requests:
                    requested, token = store.take_request(corp_id, open_kfid)
                    if not requested:
                        break
                    try:
                        done.rows += self.puller.pull(open_kfid, token=token,
                                                      announced_at=announced_at)
                    except BaseException:
                        # Still to do: whoever pulls next picks it up (the store may be what
                        # failed: then a retry does).
                        with contextlib.suppress(KfError):
                            store.request_pull(corp_id, open_kfid, token=None)
                        raise
                    done.pulled = True
            finally:
                try:
                    self.puller.sink.settle()  # before the lock goes: what is written is done
                finally:
                    lock.release()
            # A request that came after the last look but before the release found the lock
            # taken: honour it now.
            if not requests or not store.has_request(corp_id, open_kfid):
                return done

    def archive(self, open_kfid: str, *,
                progress: Callable[[Any, Any], None] | None = None) -> ArchiveResult:
        """Fetch the account's due media into the store's archive (after a pull, outside
        the lock). Failures are in the result; the store's own failure is raised."""
        from kfcli.core.archive import Archiver

        return Archiver(self.puller.client, self.store, self.corp_id,
                        progress=progress).run(open_kfid=open_kfid)

    def run(self, open_kfid: str, *, token: str | None = None, start: str | None = None,
            follow: bool = False, tokens: Iterator[str | None] | None = None,
            interval: float = 2.0, longest: float = 60.0,
            store_outage: Outage | None = None, wecom_outage: Outage | None = None,
            archive: Callable[[str], None] | None = None,
            on_wait: Callable[[], None] | None = None,
            on_idle: Callable[[float], None] | None = None,
            sleep: Callable[[float], None] = time.sleep) -> int:
        """Pull `open_kfid` as `msg sync` does; the number of rows handed to the sink.

        Once (from `start` when given, the saved cursor else); once per token of `tokens`
        (callback tokens, as they come); or with `follow`, until interrupted, looking again
        after `interval` seconds, backing off up to `longest` while idle. With
        `store_outage` (a store wrapped by `outage.guarded`), the store's failures are
        waited out, and with `wecom_outage` WeCom's rate limits and network failures; without
        them such a failure is raised. `archive(open_kfid)` runs after each pull, outside the
        lock; `on_idle(delay)` before each idle wait.
        """
        from kfcli.core.errors import NetworkError, RateLimitError, TokenError
        from kfcli.core.outage import StoreUnavailable, backoff
        from kfcli.core.store.base import CursorMoved

        total = idle = 0
        while True:
            wait = 0.0
            new = 0
            try:
                done = self.cycle(open_kfid, token=token, start=start, wait=True,
                                  on_wait=on_wait)
                assert done is not None  # waited for the lock
                new = done.rows
                total += new
                start = None
                if wecom_outage is not None:
                    wecom_outage.recovered()
            except StoreUnavailable as exc:
                # What failed to commit is pulled again (WeCom keeps it, the saved cursor did
                # not move); what was written is settled once the store is back.
                if store_outage is None:
                    raise
                wait = store_outage.failed(exc)
            except CursorMoved:
                # The pull lock was lost with its database connection and another puller moved
                # the cursor meanwhile: what it pulled is its to write. Pull again from there.
                self.puller.log(f"another process pulled {open_kfid} meanwhile; pulling again "
                                "from where it got")
                continue
            except (RateLimitError, NetworkError, TokenError) as exc:
                if wecom_outage is None:
                    raise
                # WeCom blocks a minute after a rate limit; the network comes back: pull
                # again from the saved position.
                wait = wecom_outage.failed(exc)
            if wait:  # waited out without the lock, so others may pull meanwhile
                sleep(wait)
                continue
            if store_outage is not None:
                store_outage.recovered()
            if archive is not None:
                archive(open_kfid)
            token = None  # callback tokens are single-purpose and expire after 10 minutes
            if tokens is not None:
                token = next(tokens, None)
                if token is None:
                    return total
                continue
            if not follow:
                return total
            idle = 0 if new else idle + 1
            delay = backoff(idle + 1, first=interval, longest=max(interval, longest)) \
                if idle else interval
            if on_idle is not None:
                on_idle(delay)
            sleep(delay)
