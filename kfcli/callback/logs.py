"""The receiver's log: the `kfcli.callback` logger, lines an on-call engineer can read.

Every line carries the time (UTC), the level and the process id; `json` makes each line one
JSON object (`time`, `level`, `pid`, `logger`, `message`, and fields such as `status`,
`client`, `reason` where they apply). Secrets registered with `kfcli.core.redact` are masked
in every line. Refusals are rate-limited per (status, reason, client): the first is logged,
the same again within `REFUSAL_QUIET` seconds only counted, and the count said on the next
line logged for it.

`kfcli callback serve` configures the logger from `--log-format` and `--log-level`. Under
gunicorn, `app_from_env` adds the same handler on stderr when neither the `kfcli.callback`
logger nor the root logger has one; a deployment with its own logging configuration
(gunicorn's `--log-config`, `logging.config.dictConfig`) configures `kfcli.callback` like any
other logger and kfcli leaves it alone.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import threading
import time
from collections.abc import Collection
from datetime import datetime, timezone
from typing import IO, Any

LOGGER = "kfcli.callback"
FORMATS = ("text", "json")
LEVELS = ("debug", "info", "warning", "error")

#: Seconds during which the same refusal (status, reason, client) is logged once.
REFUSAL_QUIET = 10.0

log = logging.getLogger(LOGGER)


class _Formatter(logging.Formatter):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def format(self, record: logging.LogRecord) -> str:
        from kfcli.core.redact import redact

        when = datetime.fromtimestamp(record.created, timezone.utc)
        stamp = when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
        message = redact(record.getMessage())
        if self.kind == "json":
            doc: dict[str, Any] = {"time": stamp, "level": record.levelname.lower(),
                                   "pid": record.process, "logger": record.name,
                                   "message": message}
            fields = getattr(record, "kf", None)
            if isinstance(fields, dict):
                doc.update((k, redact(v) if isinstance(v, str) else v)
                           for k, v in fields.items() if k not in doc)
            return json.dumps(doc, ensure_ascii=False)
        return f"{stamp} {record.levelname} [{record.process}] {message}"


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handlers kfcli installed, so that configuring again replaces them."""


def configure(fmt: str = "text", level: str = "info", stream: IO[str] | None = None) -> None:
    """Send the receiver's log to `stream` (stderr) in `fmt`, from `level` up."""
    import sys

    for handler in [h for h in log.handlers if isinstance(h, _Handler)]:
        log.removeHandler(handler)
    handler = _Handler(stream or sys.stderr)
    handler.setFormatter(_Formatter(fmt))
    log.addHandler(handler)
    log.setLevel(level.upper())
    log.propagate = False


def configure_default(fmt: str | None = None, level: str | None = None) -> None:
    """For `app_from_env`: configure unless the deployment configured logging itself."""
    if fmt is None and level is None and (log.handlers or logging.getLogger().handlers):
        return
    configure(fmt or "text", level or "info")


class Refusals:
    """Logs refusals, each (status, reason, client) at most once per REFUSAL_QUIET seconds.
    Thread-safe."""

    def __init__(self, quiet: float = REFUSAL_QUIET, *,
                 clock: Any = time.monotonic) -> None:
        self.quiet = quiet
        self.clock = clock
        self._lock = threading.Lock()
        self._seen: dict[tuple[int, str, str], tuple[float, int]] = {}

    def __call__(self, status: int, reason: str, message: str, client: str) -> None:
        # The same kind of refusal: its status, its cause (the start of the message, numbers
        # aside) and its client.
        kind = reason if reason in _FIXED else re.sub(r"\d+", "N", message)[:40]
        key = (status, kind, client)
        now = self.clock()
        with self._lock:
            last, hidden = self._seen.get(key, (-1e18, 0))
            if now - last < self.quiet:
                self._seen[key] = (last, hidden + 1)
                return
            self._seen[key] = (now, 0)
            if len(self._seen) > 10_000:  # many clients: forget the quiet ones
                self._seen = {k: v for k, v in self._seen.items()
                              if now - v[0] < self.quiet}
        more = (f" ({hidden} more like it in the last {self.quiet:.0f} s not logged)"
                if hidden else "")
        log.warning("callback refused (%d) from %s: %s%s", status, client, message, more,
                    extra={"kf": {"event": "refused", "status": status, "reason": reason,
                                  "client": client, "suppressed": hidden}})


#: Refusals of one kind whatever their message says (a method name, a path): one key each.
_FIXED = frozenset({"method", "busy", "stale", "too_large", "bad_signature"})


def parse_networks(values: Collection[str]) -> list[Any]:
    """Trusted proxies as networks (an address is a /32 or /128); ValueError names a bad one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address or network (CIDR)") from None
    return networks


#: Proxies trusted by default to say who their client is (X-Forwarded-For): this host only.
DEFAULT_TRUSTED = ("127.0.0.1", "::1")


def client_address(environ: dict[str, Any], trusted: list[Any]) -> str:
    """Who sent the request: the peer, or, when the peer is a trusted proxy, the nearest
    address in X-Forwarded-For that is not a trusted proxy itself."""
    peer = str(environ.get("REMOTE_ADDR") or "-")
    forwarded = str(environ.get("HTTP_X_FORWARDED_FOR") or "")
    if not forwarded or not _trusted(peer, trusted):
        return peer
    hops = [h.strip() for h in forwarded.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            return hop[:64]
    return hops[0][:64] if hops else peer


def _trusted(address: str, trusted: list[Any]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip.version == net.version and ip in net for net in trusted)

