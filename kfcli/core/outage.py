"""Riding out outages in long-running loops (followers, consumers, batch sends).

A follower (`msg sync --follow`, `msg history --follow`/`--consumer`, `msg send --batch`)
keeps going while the message store is unusable for a while (a PostgreSQL restart, a full
disk, a dropped connection) or WeCom cannot be reached: it backs off, tries again, and goes on
from where it was. It says so twice on stderr, once when the trouble starts and once when it
is over, never once per retry. It exits only for a configuration error found when it starts,
or a signal.

* `Outage` counts one kind of trouble and words its two log lines;
* `StoreUnavailable` is what `guarded(store)` raises for any failure of the store, so that a
  loop that also talks to WeCom can tell the store's trouble from WeCom's;
* `open_waiting` opens a store, waiting while it is unreachable (a configuration error is
  raised at once).
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from kfcli.core.errors import KfError, NetworkError

if TYPE_CHECKING:
    from kfcli.core.store.base import Store

#: Back-off between two tries: from FIRST, doubling, to at most LONGEST seconds. A store
#: that is back is used again within LONGEST seconds (a bot's answers wait no longer); one
#: connection attempt every few seconds costs a recovering server nothing.
FIRST = 0.5
LONGEST = 5.0


def backoff(tries: int, *, first: float = FIRST, longest: float = LONGEST) -> float:
    """kfcli's one back-off policy: the wait after the `tries`-th failure (or idle look) in a
    row, from `first` seconds doubling up to `longest`. Outages, the receiver's retries of a
    failed pull and an idle follower all wait this way."""
    return float(min(longest, first * 2 ** min(max(tries, 1) - 1, 16)))


class Outage:
    """One kind of trouble (`what`: "the message store", "WeCom") a loop rides out.

    `failed(exc)` notes a failed try and returns how long to wait before the next one (the
    first failure is logged); `recovered()` ends the outage (logged, with how long it lasted).
    Not thread-safe: one loop's.
    """

    def __init__(self, what: str, log: Callable[[str], None], *, first: float = FIRST,
                 longest: float = LONGEST, then: str = "trying again",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.what = what
        self.log = log
        self.first = first
        self.longest = longest
        #: What the loop does meanwhile, for the first line ("sending goes on …").
        self.then = then
        self.clock = clock
        self.failures = 0
        self._since = 0.0

    @property
    def active(self) -> bool:
        return self.failures > 0

    def failed(self, exc: BaseException) -> float:
        self.failures += 1
        if self.failures == 1:
            self._since = self.clock()
            reason = exc.message if isinstance(exc, KfError) else str(exc)
            self.log(f"{self.what}: {reason}; {self.then}, backing off up to "
                     f"{self.longest:.0f} s")
        return backoff(self.failures, first=self.first, longest=self.longest)

    def recovered(self, detail: str = "") -> None:
        if not self.failures:
            return
        took = self.clock() - self._since
        tries = self.failures
        self.failures = 0
        self.log(f"{self.what} works again after {_duration(took)} ({tries} failed "
                 f"{'try' if tries == 1 else 'tries'}){detail}")


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class StoreUnavailable(KfError):
    """The message store failed (`cause`: the store's own error, with its exit code)."""

    def __init__(self, cause: KfError) -> None:
        super().__init__(cause.message, hint=cause.hint)
        self.cause = cause
        self.exit_code = cause.exit_code
        self.kind = cause.kind


def guarded(store: Store) -> Store:
    """`store`, with every failure of its methods (and of the iterators they return) raised
    as `StoreUnavailable`. A missing media copy (`MediaMissing`) is an answer, not a failure,
    and passes as it is."""
    return _Guarded(store)  # a Store: every attribute is the store's, guarded


class _Guarded:
    def __init__(self, store: Store) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with _tagged():
                result = attr(*args, **kwargs)
            # A file (new_media_file's: a plain file is an iterator of lines) is handed over
            # as it is: the archive writes into it and seeks in it.
            if isinstance(result, Iterator) and not isinstance(result, io.IOBase):
                return _iterate(result)
            return result

        return call

    def __enter__(self) -> _Guarded:
        return self

    def __exit__(self, *exc: object) -> None:
        self._store.close()

    def __repr__(self) -> str:
        return f"guarded({self._store!r})"


def _iterate(rows: Iterator[Any]) -> Iterator[Any]:
    with _tagged():
        yield from rows


@contextmanager
def _tagged() -> Iterator[None]:
    from kfcli.core.store.base import MediaMissing, SchemaTooNew

    try:
        yield
    except (StoreUnavailable, MediaMissing, SchemaTooNew):  # an answer, or a reason to stop
        raise
    except KfError as exc:
        raise StoreUnavailable(exc) from exc


def open_waiting(open_store: Callable[[], Store], outage: Outage,
                 sleep: Callable[[float], None] = time.sleep) -> Store:
    """`open_store()`, tried again while the store cannot be reached (a PostgreSQL server
    down or restarting: `NetworkError`). Anything else (a wrong URL, a refused password, a
    store of a newer kfcli) is a configuration error and raised at once."""
    while True:
        try:
            store = open_store()
        except NetworkError as exc:
            sleep(outage.failed(exc))
            continue
        outage.recovered()
        return store
