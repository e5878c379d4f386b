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

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from kfcli.core.errors import ApiError, KfError
from kfcli.core.store.base import Committed, Incoming, Lock, OutboxEntry, Row, Store
from kfcli.core.sync import MAX_EMPTY_PAGES

if TYPE_CHECKING:
    from kfcli.core.client import KfClient
    from kfcli.core.models import SyncPage

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

    def __init__(self, store: Store, corp_id: str, open_kfid: str, *, purpose: str = "sync",
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
