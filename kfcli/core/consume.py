"""Reading the message store as it fills: named consumers with a durable position, and plain
followers (DESIGN.md §9, §11, §13).

`Consumer` is what `msg history --consumer NAME [--ack replies]` runs, and what a Python bot
uses directly:

    from kfcli.core import Consumer, Replier, open_store

    with Consumer(store, corp_id, "bot", open_kfid, ack=True) as consumer:
        for message in consumer.messages(follow=True):
            ...

A consumer keeps its position (the seq of the last message it handed out) in the store, per
(corp, name, account): a restarted consumer resumes right after it, also across kill -9. A
name used for the first time starts after the newest stored message (or at `since`). With
`ack`, it resumes instead from the oldest customer message of the last 48 h that no reply
acknowledged (`Replier`, `msg send --batch`), so a bot killed between reading and answering
is handed the message again, while the reply's derived msgid keeps it from going out twice.
One process per name and account at a time: a second gets `ConsumerRunning`.

`follow()` is `msg history --follow`: the newest stored messages, then every message as it is
committed, by any process or host sharing the store.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Generator
from typing import TYPE_CHECKING, TypeVar

from kfcli.core.errors import ConsumerRunning
from kfcli.core.outage import Outage, StoreUnavailable

if TYPE_CHECKING:
    from kfcli.core.pull import Journal
    from kfcli.core.store.base import Lock, Row, Store, Watch
    from kfcli.core.sync import Message

T = TypeVar("T")

#: The consumers table's open_kfid for the position of a consumer of every account.
ALL_ACCOUNTS = "*"
#: Messages read from the store at a time.
BATCH = 1000


class _Accounts:
    """The positions of a consumer of every account of the corp (no open_kfid). It reads the
    corp's messages in seq order (a corp's seqs grow in commit order in both stores) from one
    position, kept under the open_kfid `*`, and keeps each account's own position in step, as
    a consumer of that account would (`store status` shows them, and `ack` looks for
    unanswered messages per account). An account seen for the first time starts just before
    its first message."""

    def __init__(self, store: Store, corp_id: str, name: str) -> None:
        self.store = store
        self.corp_id = corp_id
        self.name = name
        self.known: set[str] = set()
        #: The last seq of each batch handed out: its accounts' last seqs.
        self.batches: dict[int, dict[str, int]] = {}

    def begin(self, since: int | None) -> int:
        """The shared position; on first use, every account's position at its newest
        message (or before `since`) and the shared one at the lowest of them."""
        store, corp_id, name = self.store, self.corp_id, self.name
        position = store.consumer_position(corp_id, name, ALL_ACCOUNTS)
        # The newest seq first: an account whose first message comes after it is met by the
        # stream, even one that appears while this runs.
        top = store.last_seq(corp_id) if position is None else 0
        accounts = [a.open_kfid for a in store.pull_states(corp_id)]
        for open_kfid in accounts:
            if store.consumer_position(corp_id, name, open_kfid) is not None:
                self.known.add(open_kfid)
            elif position is None:  # first start: each account from now (or since)
                at = store.seq_before(corp_id, open_kfid, since) if since is not None \
                    else store.last_seq(corp_id, open_kfid)
                store.set_consumer_position(corp_id, name, open_kfid, min(at, top))
                self.known.add(open_kfid)
        if position is None:
            position = top if since is None else min(
                (store.consumer_position(corp_id, name, k) or 0 for k in accounts), default=0)
            store.set_consumer_position(corp_id, name, ALL_ACCOUNTS, position)
        return position

    def unanswered(self, upto: int, since: int) -> int | None:
        found = [self.store.unanswered(self.corp_id, self.name, k, upto=upto, since=since)
                 for k in sorted(self.known)]
        return min((seq for seq in found if seq is not None), default=None)

    def seen(self, rows: list[Row]) -> None:
        """A batch about to be handed out (its last seq is what gets recorded): a new
        account's position starts before its first message."""
        self.batches[rows[-1].seq] = self._tops(rows)

    def _tops(self, rows: list[Row]) -> dict[str, int]:
        top: dict[str, int] = {}
        for row in rows:
            open_kfid = str(json.loads(row.text).get("open_kfid", ""))
            if open_kfid not in self.known:
                self.store.set_consumer_position(self.corp_id, self.name, open_kfid,
                                                 row.seq - 1)
                self.known.add(open_kfid)
            top[open_kfid] = row.seq
        return top

    def record(self, seqs: list[int]) -> None:
        """Handed out up to max(seqs): each account's position, then the shared one."""
        high = max(seqs)
        top: dict[str, int] = {}
        if any(seq not in self.batches for seq in seqs):
            # A dead run's journal, or a position inside a batch (a Python consumer records
            # each message): the accounts of what was handed out after the shared position.
            low = self.store.consumer_position(self.corp_id, self.name, ALL_ACCOUNTS) or 0
            if high > low:
                rows = self.store.messages(self.corp_id, after_seq=low, limit=high - low)
                top.update(self._tops([row for row in rows if row.seq <= high]))
        for seq in sorted(self.batches):
            if seq > high:
                break
            for open_kfid, at in self.batches.pop(seq).items():
                top[open_kfid] = max(at, top.get(open_kfid, 0))
        for open_kfid, at in top.items():
            if open_kfid:
                self.store.set_consumer_position(self.corp_id, self.name, open_kfid, at)
        self.store.set_consumer_position(self.corp_id, self.name, ALL_ACCOUNTS, high)


class Consumer:
    """A named consumer of one account (`open_kfid`) or of every account of the corp (None).

    `customer`, `since`, `until` narrow what is handed out (the position still moves over
    the rest). `ack`: resume from the oldest unanswered customer message of the last 48 h
    (see the module's docstring). `outage`: ride out failures of the store (a store wrapped by
    `kfcli.core.outage.guarded`), logging when one begins and ends; without it they are
    raised. `journal` (the CLI's writer process): positions a dead run recorded there are
    applied on start.

    Use as a context manager (or `start()` … `close()`). One thread at a time; from asyncio,
    `amessages()` runs each read in a worker thread so the event loop never blocks.
    """

    def __init__(self, store: Store, corp_id: str, name: str, open_kfid: str | None = None,
                 *, customer: str | None = None, since: int | None = None,
                 until: int | None = None, ack: bool = False, outage: Outage | None = None,
                 journal: Journal | None = None, log: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        from kfcli.core import limits

        limits.check_consumer(name)
        if open_kfid is not None:
            limits.check_open_kfid(open_kfid)
        self.store = store
        self.corp_id = corp_id
        self.name = name
        self.open_kfid = open_kfid
        self.customer = customer
        self.since = since
        self.until = until
        self.ack = ack
        self.outage = outage
        self.journal = journal
        self.log = log or (lambda _text: None)
        self.clock = clock
        self.sleep = sleep
        self.key = open_kfid or ALL_ACCOUNTS
        self.every = _Accounts(store, corp_id, name) if open_kfid is None else None
        #: The seq of the last message handed out (None before `start`).
        self.position: int | None = None
        self._lock: Lock | None = None
        self._lock_key = f"consumer:{corp_id}:{name}:{self.key}"
        self._relock = False
        self._watch: Watch | None = None

    # -- life

    def __enter__(self) -> Consumer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> int:
        """Take the consumer's lock (`ConsumerRunning` when another process has it), apply a
        dead run's journal, and find the position; returns it."""
        if self.position is not None:
            return self.position
        self._lock = self.retrying(lambda: self.store.lock(self._lock_key, wait=0.0))
        if self._lock is None:
            raise ConsumerRunning(self.name, None if self.every else self.open_kfid)
        try:
            self.position = self.retrying(self._begin)
        except BaseException:
            self.close()
            raise
        self._relock = self.outage is not None  # the store may have been away meanwhile
        self._watch = self.store.watch(self.corp_id)  # commits from now on wake `idle`
        return self.position

    def close(self) -> None:
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def idle(self, interval: float) -> None:
        """Wait for news: until another process commits messages (the store's `watch`:
        a fraction of a second), or at most `interval` seconds."""
        if self._watch is None:
            self._watch = self.store.watch(self.corp_id)
        self._watch.wait(interval)

    def _begin(self) -> int:
        from kfcli.core.store.base import WINDOW_SECONDS

        store, corp_id, name = self.store, self.corp_id, self.name
        if self.journal is not None:
            self.journal.recover(self.record)
        window_start = int(self.clock()) - WINDOW_SECONDS
        if self.every is not None:
            position = self.every.begin(self.since)
            oldest = self.every.unanswered(position, window_start) if self.ack else None
        else:
            assert self.open_kfid is not None
            found = store.consumer_position(corp_id, name, self.open_kfid)
            oldest = None
            if found is None:
                # A new consumer starts after the newest stored message (Kafka's "latest"),
                # or at `since`.
                position = store.seq_before(corp_id, self.open_kfid, self.since) \
                    if self.since is not None else store.last_seq(corp_id, self.open_kfid)
                store.set_consumer_position(corp_id, name, self.open_kfid, position)
            else:
                position = found
                if self.ack:
                    oldest = store.unanswered(corp_id, name, self.open_kfid, upto=position,
                                              since=window_start)
        if oldest is not None and oldest <= position:
            self.log(f"consumer {name}: message seq {oldest} was never answered; resuming "
                     "from it (answers already sent are not sent twice)")
            position = oldest - 1
        return position

    # -- reading

    def retrying(self, step: Callable[[], T]) -> T:
        """`step()`, tried again after a back-off while the store is away (with `outage`)."""
        while True:
            try:
                result = step()
            except StoreUnavailable as exc:
                if self.outage is None:
                    raise
                self.sleep(self.outage.failed(exc))
                self._relock = True
                continue
            if self.outage is not None:
                self.outage.recovered()
            return result

    def poll(self, limit: int = BATCH) -> tuple[list[Row], int]:
        """The next messages after the position (at most `limit`), and the position to
        record once they are handed out (past other customers' messages with `customer`).
        Does not move the position: `record()` does."""
        position = self.start()
        if self._relock:
            # A PostgreSQL lock ends with its connection, which can drop on its own (a
            # terminated session, a network blip): looked at after an outage.
            self._check_lock()
            self._relock = False
        batch = list(self.store.messages(self.corp_id, self.open_kfid, customer=self.customer,
                                         since=self.since, until=self.until,
                                         after_seq=position, limit=limit))
        if batch:
            if self.every is not None:
                self.every.seen(batch)
            return batch, batch[-1].seq
        if self.customer is not None:
            # Skip over other customers' messages for good: the position is per account.
            return [], max(position, self.store.last_seq(self.corp_id, self.open_kfid))
        return [], position

    def advance(self, position: int) -> None:
        """What `poll` returned up to `position` is handed out: later polls start after it
        (recorded in the store by `record`)."""
        self.position = max(self.position or 0, position)

    def record(self, seqs: list[int]) -> None:
        """Record the position: everything up to max(seqs) was handed out."""
        if not seqs:
            return
        if self.every is not None:
            self.every.record(seqs)
        else:
            assert self.open_kfid is not None
            self.store.set_consumer_position(self.corp_id, self.name, self.open_kfid,
                                             max(seqs))

    def messages(self, *, follow: bool = False, interval: float = 1.0,
                 limit: int | None = None) -> Generator[Message, None, None]:
        """The messages after the position, oldest first, each a `kfcli.core.Message` with
        its `seq`. A message's position is recorded when the next one is asked for (or the
        iteration ends): a bot killed while handling a message is handed it again. With
        `follow`, waits for new messages (looking every `interval` seconds) until the
        caller stops iterating."""
        from kfcli.core.sync import Message

        handed = 0
        pending: int | None = None
        try:
            while limit is None or handed < limit:
                want = BATCH if limit is None else min(BATCH, limit - handed)
                batch, upto = self.retrying(lambda: self.poll(want))  # noqa: B023
                for row in batch:
                    if pending is not None:
                        done = pending
                        self.retrying(lambda: self.record([done]))  # noqa: B023
                    message = Message.from_row(row)
                    self.advance(row.seq)
                    pending = row.seq
                    yield message
                    handed += 1
                    if limit is not None and handed >= limit:
                        break
                if not batch:
                    if upto != self.position:
                        self.retrying(lambda: self.record([upto]))  # noqa: B023
                        self.advance(upto)
                    if not follow:
                        break
                    self.idle(interval)
        finally:
            if pending is not None:
                last = pending
                self.retrying(lambda: self.record([last]))

    async def amessages(self, *, follow: bool = False, interval: float = 1.0,
                        limit: int | None = None) -> AsyncIterator[Message]:
        """`messages()` for asyncio: each step runs in a worker thread (`asyncio.to_thread`),
        so waiting for the store never blocks the event loop."""
        import asyncio

        done = object()
        iterator = self.messages(follow=follow, interval=interval, limit=limit)
        try:
            while True:
                item = await asyncio.to_thread(next, iterator, done)
                if item is done:
                    return
                yield item  # type: ignore[misc]
        finally:
            await asyncio.to_thread(iterator.close)

    def _check_lock(self) -> None:
        """After an outage: the consumer's lock, taken again if the store ended it (a
        PostgreSQL restart ends the session that held it). Another process with the same
        name that took it meanwhile keeps it, and this one stops."""
        assert self._lock is not None
        if self._lock.held():
            return
        self._lock.release()
        again = self.store.lock(self._lock_key, wait=0.0)
        if again is None:
            self._lock = None
            raise ConsumerRunning(self.name, None if self.every else self.open_kfid)
        self._lock = again

    def run(self, deliver: Callable[[list[Row], int], None], *, follow: bool = False,
            interval: float = 1.0, limit: int | None = None,
            on_idle: Callable[[], None] | None = None) -> int:
        """Hand batches to `deliver(rows, position)` until nothing is left (or `limit`
        messages), or with `follow` until interrupted; the number handed out. `deliver`
        writes the rows and records `position` once they are out (`record`; the CLI's writer
        process journals it first). A failure of the store inside `deliver` is ridden out
        like any other (with `outage`)."""
        written = 0
        while True:
            want = BATCH if limit is None else min(BATCH, limit - written)

            def step() -> list[Row]:
                batch, upto = self.poll(want)  # noqa: B023 - called at once
                if batch or upto != self.position:
                    # Past them before they go out: should recording fail in `deliver` (the
                    # store went away), they are not handed out again; the journal has them.
                    self.advance(upto)
                    deliver(batch, upto)
                return batch

            batch = self.retrying(step)
            written += len(batch)
            if batch:
                if limit is not None and written >= limit:
                    return written
                continue
            if not follow:
                return written
            if on_idle is not None:
                on_idle()
            self.idle(interval)
            self._relock = self.outage is not None


def follow(store: Store, corp_id: str, open_kfid: str | None,
           deliver: Callable[[list[Row]], None], *, customer: str | None = None,
           since: int | None = None, until: int | None = None, limit: int | None = None,
           outage: Outage, interval: float = 1.0, one_by_one: bool = False,
           on_idle: Callable[[], None] | None = None,
           sleep: Callable[[float], None] = time.sleep) -> None:
    """`msg history --follow`: the stored messages (the newest `limit`), then every message as
    it is committed, until interrupted. The store may go away meanwhile: waited for (with
    `outage`), and the follower goes on after the last message delivered. `one_by_one`: one
    message per `deliver` (a failure never repeats one). Between looks it waits on the
    store's `watch`: a commit by any process wakes it at once, `interval` is the longest
    wait."""
    watch = store.watch(corp_id)
    try:
        _follow(store, corp_id, open_kfid, deliver, watch, customer=customer, since=since,
                until=until, limit=limit, outage=outage, interval=interval,
                one_by_one=one_by_one, on_idle=on_idle, sleep=sleep)
    finally:
        watch.close()


def _follow(store: Store, corp_id: str, open_kfid: str | None,
            deliver: Callable[[list[Row]], None], watch: Watch, *, customer: str | None,
            since: int | None, until: int | None, limit: int | None, outage: Outage,
            interval: float, one_by_one: bool, on_idle: Callable[[], None] | None,
            sleep: Callable[[float], None]) -> None:
    last: int | None = None
    while last is None:  # the listing, tried again while it fails before its first message
        try:
            # The newest seq before listing: one stored after it comes in the loop below (seqs
            # grow in commit order), even if the listing missed it.
            top = store.last_seq(corp_id, open_kfid)
            for row in store.messages(corp_id, open_kfid, customer=customer, since=since,
                                      until=until, limit=limit, newest=limit is not None):
                deliver([row])
                last = row.seq
            last = max(last or 0, top)
        except StoreUnavailable as exc:
            if last is None:
                sleep(outage.failed(exc))
    while True:
        try:
            batch = list(store.messages(corp_id, open_kfid, customer=customer, since=since,
                                        until=until, after_seq=last, limit=BATCH))
            for part in ([row] for row in batch) if one_by_one else [batch] if batch else []:
                deliver(part)
                last = part[-1].seq
        except StoreUnavailable as exc:
            sleep(outage.failed(exc))
            continue
        outage.recovered()
        if not batch:
            if on_idle is not None:
                on_idle()
            watch.wait(interval)

