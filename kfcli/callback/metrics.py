"""The receiver's metrics: counters and gauges of each process, and one view of the whole
receiver for `GET /metrics` (DESIGN.md §7), in the Prometheus text format.

Under gunicorn the workers are separate processes and a scrape reaches one of them. Each
process keeps its figures in memory and writes them, at most once a second, to a small file
in a directory shared by the workers of one gunicorn master (`<state dir>/metrics/<master
pid>-<its start time>/`); the worker that answers a scrape adds them up. Nothing to
configure: the directory is found from the process tree, and directories of masters that are
gone are removed. Counters of a worker that died keep counting in the total (a counter never
goes back); gauges count only live processes. The embedded server (`callback serve`) is one
process and writes no files.

What the store knows (pull lag per account, consumer lag, what is waiting in the outbox and
the media archive) is read from the store at scrape time, so every worker and host shows the
same figures; `collect_store` adds it.

prometheus_client (imported only when /metrics is asked for) formats the exposition.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

Labels = tuple[tuple[str, str], ...]

#: name -> (type, help). Counters are named without `_total` (the exposition adds it).
METRICS: dict[str, tuple[str, str]] = {
    "kfcli_callbacks": ("counter", "Callbacks answered, by result (accepted, duplicate, stale, "
                        "bad_signature, malformed, too_large, unavailable, busy, error)."),
    "kfcli_pulls": ("counter", "Pulls of an account with sync_msg, by result (ok, failed) and "
                    "reason (callback, catch_up, safety, retry)."),
    "kfcli_messages_stored": ("counter", "Messages this receiver stored (new to the store)."),
    "kfcli_store_errors": ("counter", "Store operations that failed."),
    "kfcli_gaps": ("counter", "Accounts resumed after more than WeCom's 3-day retention: "
                   "messages may be lost."),
    "kfcli_emit_dropped": ("counter", "Callback records not written to a stalled stdout "
                           "(messages are never dropped: they wait in the store)."),
    "kfcli_emit_lag_messages": ("gauge", "Messages this receiver committed and has not yet "
                                "written to stdout."),
    "kfcli_queue_events": ("gauge", "Callbacks and pulls waiting for the worker threads "
                           "(the event queue; at 10,000 per process callbacks are refused)."),
    "kfcli_processes": ("gauge", "Receiver processes alive."),
    "kfcli_ready": ("gauge", "Receiver processes ready to take callbacks."),
}

#: How often a process writes its figures for the other workers.
FLUSH_EVERY = 1.0


class Metrics:
    """One process's counters and gauges. Thread-safe."""

    def __init__(self, directory: Callable[[], Path | None] | None = None) -> None:
        self._lock = threading.Lock()
        self._values: dict[tuple[str, Labels], float] = {}
        self._directory = directory or shared_directory
        self._pid = 0
        self._file: Path | None = None
        self._dirty = False
        self._flushed = 0.0

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount
            self._dirty = True

    def set(self, name: str, value: float, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._values[key] = float(value)
            self._dirty = True

    def labelled(self, **labels: str) -> Labelled:
        """A view that adds `labels` (the corp of one route) to every figure."""
        return Labelled(self, labels)

    def value(self, name: str, **labels: str) -> float:
        with self._lock:
            return self._values.get((name, tuple(sorted(labels.items()))), 0.0)

    # -- sharing between the processes of one server

    def _own_file(self) -> Path | None:
        if self._pid != os.getpid():  # first use, or a forked child: figures of its own
            with self._lock:
                if self._pid != os.getpid():
                    if self._pid:
                        self._values = {}
                    self._pid = os.getpid()
                    directory = self._directory()
                    self._file = (directory / f"{self._pid}-{secrets.token_hex(4)}.json"
                                  if directory is not None else None)
        return self._file

    def flush(self, *, force: bool = False) -> None:
        """Write this process's figures for the others (at most once a second)."""
        path = self._own_file()
        if path is None:
            return
        now = time.monotonic()
        with self._lock:
            if not force and (not self._dirty or now - self._flushed < FLUSH_EVERY):
                return
            data = {"pid": self._pid, "values": [[n, list(map(list, lab)), v]
                                                 for (n, lab), v in self._values.items()]}
            self._dirty = False
            self._flushed = now
        tmp = path.with_suffix(".tmp")
        with contextlib.suppress(OSError):
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(data, f)
            os.replace(tmp, path)

    def totals(self) -> dict[tuple[str, Labels], float]:
        """The figures of every process of this server: counters of all that ever ran,
        gauges of those alive."""
        own = self._own_file()
        with self._lock:
            totals = dict(self._values)
        if own is None:
            return totals
        self.flush(force=True)
        for path in own.parent.glob("*.json"):
            if path == own:
                continue
            try:
                data = json.loads(path.read_text())
                pid = int(data["pid"])
                values = data["values"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            alive = _alive(pid)
            for name, labels, value in values:
                kind = METRICS.get(name, ("gauge", ""))[0]
                if kind != "counter" and not alive:
                    continue
                key = (name, tuple((str(k), str(v)) for k, v in labels))
                totals[key] = totals.get(key, 0.0) + float(value)
        return totals

    # -- exposition

    def exposition(self, extra: Iterable[Any] = ()) -> tuple[bytes, str]:
        """The body and content type of a /metrics answer: this server's figures plus the
        metric families in `extra` (prometheus_client families, from `collect_store`)."""
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
        from prometheus_client.exposition import CONTENT_TYPE_LATEST

        totals = sorted(self.totals().items())
        names: dict[str, list[str]] = {}  # a family's label names: every sample's, in order
        for (name, labels), _value in totals:
            known = names.setdefault(name, [])
            known.extend(k for k, _ in labels if k not in known)
        families: dict[str, Any] = {}
        for (name, labels), value in totals:
            kind, text = METRICS.get(name, ("gauge", name))
            family = families.get(name)
            if family is None:
                cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
                family = families[name] = cls(name, text, labels=names[name])
            given = dict(labels)
            family.add_metric([given.get(k, "") for k in names[name]], value)
        for name, (kind, text) in METRICS.items():  # every metric shows, zero or not
            if name not in families and kind == "counter" and name in _UNLABELLED:
                families[name] = CounterMetricFamily(name, text, value=0)
        collected = [*families.values(), *extra]

        class _Collector:
            def collect(self) -> Iterable[Any]:
                return collected

        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector())  # type: ignore[arg-type]
        return generate_latest(registry), CONTENT_TYPE_LATEST


class Labelled:
    """Metrics of one route of a receiver serving several corps: every figure carries the
    route's labels (`corp_id`)."""

    def __init__(self, metrics: Metrics, labels: dict[str, str]) -> None:
        self.base = metrics
        self.labels = labels

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        self.base.inc(name, amount, **self.labels, **labels)

    def set(self, name: str, value: float, **labels: str) -> None:
        self.base.set(name, value, **self.labels, **labels)

    def value(self, name: str, **labels: str) -> float:
        return self.base.value(name, **self.labels, **labels)

    def flush(self, *, force: bool = False) -> None:
        self.base.flush(force=force)

    def exposition(self, extra: Iterable[Any] = ()) -> tuple[bytes, str]:
        return self.base.exposition(extra)


_UNLABELLED = {"kfcli_messages_stored", "kfcli_store_errors", "kfcli_emit_dropped"}


def collect_store(sources: Iterable[tuple[Any, str]], now: float) -> list[Any]:
    """Metric families read from the stores of (store, corp_id): what every worker and host
    sees alike. Raises KfError when a store does not answer."""
    from prometheus_client.core import GaugeMetricFamily

    lag = GaugeMetricFamily("kfcli_pull_lag_seconds", "Seconds since the last completed pull "
                            "of an account that has a pull waiting (0: none waiting).",
                            labels=["corp_id", "open_kfid"])
    consumers = GaugeMetricFamily("kfcli_consumer_lag_messages", "Messages stored after a "
                                  "consumer's position (msg history --consumer).",
                                  labels=["corp_id", "consumer", "open_kfid"])
    outbox = GaugeMetricFamily("kfcli_outbox_pending_messages", "Messages committed but not "
                               "yet written out by the process that committed them.",
                               labels=["corp_id"])
    pending = GaugeMetricFamily("kfcli_media_pending", "Media waiting to be archived.",
                                labels=["corp_id"])
    failed = GaugeMetricFamily("kfcli_media_failed", "Media that could not be archived.",
                               labels=["corp_id"])
    for store, corp_id in sources:
        for account in store.pull_states(corp_id):
            waited = 0.0
            if account.requested:
                waited = max(0.0, now - (account.last_pull_at or account.last_callback_at
                                         or now))
            lag.add_metric([corp_id, account.open_kfid], waited)
        for consumer in store.consumers(corp_id):
            consumers.add_metric([corp_id, consumer.name, consumer.open_kfid], consumer.behind)
        outbox.add_metric([corp_id], store.outbox_pending(corp_id))
        media = store.media_summary(corp_id)
        pending.add_metric([corp_id], media.pending)
        failed.add_metric([corp_id], media.failed)
    return [lag, consumers, outbox, pending, failed]


def shared_directory() -> Path | None:
    """Where the worker processes of one gunicorn master share their figures; None for a
    process of its own (the embedded server, or a WSGI server kfcli does not know)."""
    if "gunicorn" not in sys.modules:
        return None
    from kfcli.core import paths
    from kfcli.core.files import ensure_private_dir

    master = os.getppid()
    base = ensure_private_dir(paths.state_dir() / "metrics")
    name = f"{master}-{_started(master)}"
    directory = base / name
    for other in base.iterdir():  # masters that are gone
        pid = other.name.split("-", 1)[0]
        if other.name != name and pid.isdigit() and (
                not _alive(int(pid)) or other.name != f"{pid}-{_started(int(pid))}"):
            for path in other.glob("*"):
                with contextlib.suppress(OSError):
                    path.unlink()
            with contextlib.suppress(OSError):
                other.rmdir()
    return ensure_private_dir(directory)


def _started(pid: int) -> str:
    """The process's start time (clock ticks since boot, Linux): a pid used again by another
    process is another directory."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "0"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
