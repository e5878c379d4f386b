"""Injected faults (POST /sandbox/faults): the next K matching requests fail on purpose.

Faults live in the memory of one server process, as DESIGN.md §8 describes; they are not
shared through the database. ``expire_tokens`` is not queued here: it acts at once on the
database (see control.py).
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import asdict, dataclass

KINDS = ("errcode", "http_status", "disconnect", "delay")


@dataclass
class Fault:
    id: int
    fault: str  # one of KINDS
    path: str | None  # None = any /cgi-bin path
    times: int  # remaining
    errcode: int | None = None
    status: int | None = None
    seconds: float | None = None

    def matches(self, path: str) -> bool:
        return self.path is None or self.path == path

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
            delays = [f for f in self._faults if f.fault == "delay" and f.matches(path)]
            for fault in delays:
                self._use(fault)
            return [float(f.seconds or 0) for f in delays]

    def take(self, path: str) -> Fault | None:
        """Consume one use of the oldest pending non-delay fault matching ``path``."""
        with self._lock:
            for fault in self._faults:
                if fault.fault != "delay" and fault.matches(path):
                    self._use(fault)
                    return fault
            return None

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
