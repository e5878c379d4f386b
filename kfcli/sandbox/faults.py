"""Injected faults (POST /sandbox/faults): the next K matching requests fail on purpose.

With ``after`` N, a fault first lets N matching requests through ("fail the second page").

Faults live in the memory of one server process, as DESIGN.md §8 describes; they are not
shared through the database. ``expire_tokens`` is not queued here: it acts at once on the
database (see control.py).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass

KINDS = ("errcode", "http_status", "disconnect", "delay", "empty_page")
# Faults that the endpoint's handler applies itself, after validating the request, rather
# than the dispatcher: empty_page (sync_msg answers an empty page with has_more 1).
HANDLER_KINDS = ("empty_page",)


@dataclass
class Fault:
    id: int
    fault: str  # one of KINDS
    path: str | None  # None = any /cgi-bin path
    times: int  # remaining
    errcode: int | None = None
    status: int | None = None
    seconds: float | None = None
    after: int | None = None  # matching requests still to let through before the fault acts

    def matches(self, path: str) -> bool:
        return self.path is None or self.path == path

    def waiting(self) -> bool:
        """Count one matching request against ``after``; True while the fault still waits."""
        if not self.after:
            return False
        self.after = self.after - 1 or None
        return True

    def as_dict(self) -> dict[str, object]:
        return {k: v for k, v in asdict(self).items() if v is not None or k == "path"}


class FaultQueue:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)

    def add(self, kind: str, path: str | None, times: int, **params: object) -> Fault:
        with self._lock:
            fault = Fault(next(self._ids), kind, path, times, **params)  # type: ignore[arg-type]
            self._faults.append(fault)
            return fault

    def take_delays(self, path: str) -> list[float]:
        """Consume one use of every pending delay fault matching ``path``."""
        with self._lock:
            delays = [
                f
                for f in self._faults
                if f.fault == "delay" and f.matches(path) and not f.waiting()
            ]
            for fault in delays:
                self._use(fault)
            return [float(f.seconds or 0) for f in delays]

    def take(self, path: str) -> Fault | None:
        """Consume one use of the oldest pending dispatcher fault matching ``path``."""
        return self._take(path, lambda kind: kind != "delay" and kind not in HANDLER_KINDS)

    def take_kind(self, kind: str, path: str) -> Fault | None:
        """Consume one use of the oldest pending ``kind`` fault matching ``path``."""
        return self._take(path, lambda candidate: candidate == kind)

    def _take(self, path: str, wanted: Callable[[str], bool]) -> Fault | None:
        with self._lock:
            chosen = None
            # Every matching fault counts the request against its ``after``, even when an
            # older fault is the one that acts on it.
            for fault in list(self._faults):
                if not wanted(fault.fault) or not fault.matches(path) or fault.waiting():
                    continue
                if chosen is None:
                    chosen = fault
            if chosen is not None:
                self._use(chosen)
            return chosen

    def _use(self, fault: Fault) -> None:
        fault.times -= 1
        if fault.times <= 0:
            self._faults.remove(fault)

    def pending(self) -> list[dict[str, object]]:
        with self._lock:
            return [f.as_dict() for f in self._faults]

    def clear(self) -> int:
        with self._lock:
            count = len(self._faults)
            self._faults.clear()
            return count
