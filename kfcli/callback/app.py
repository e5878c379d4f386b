"""The callback receiver as a WSGI application (DESIGN.md §7, kf-api.md §4.2-4.3).

* GET with `msg_signature`, `timestamp`, `nonce`, `echostr`: URL verification; 200 with the
  decrypted echostr as the bare body (text/plain, no newline), which WeCom wants within 1 s.
* POST with `msg_signature`, `timestamp`, `nonce` and the XML body: verify the signature over the
  body's `Encrypt`, decrypt, parse the inner XML, hand its fields to `on_event` and answer 200
  `success`. `on_event` must return at once (queue the work: `Dispatcher.put`); WeCom drops the
  connection after 5 s and retries, 3 times in all.

Answers: 403 (empty body, no detail) when the signature does not match, or when the
query `timestamp` is further than `max_skew` seconds from now (a replay, or a skewed clock);
413 when the body is larger than `max_body`; 411 when its length is unknown; 400 for malformed
XML, missing fields and failures after a valid signature (wrong EncodingAESKey, receive id
mismatch); 503 when the callback cannot be taken now (the store is down, the disk full, the
event queue full: WeCom retries later); 405 for other methods. A callback taken before within
the window (same msg_signature: WeCom's own retry, or a replay) is answered `success` once
more and nothing else happens. The reason of every refusal is logged for the operator, with
the client's address, never sent to the client.

Operations (GET, never logged): `/healthz` 200 while the process runs; `/readyz` 200 while it
can take callbacks, else 503 with the reason; `/metrics` the Prometheus text exposition
(`kfcli.callback.metrics`). A bare GET without a query answers 200 (a probe, not WeCom).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterable
from queue import Full
from typing import Any, Protocol
from urllib.parse import parse_qs

from kfcli.callback.logs import DEFAULT_TRUSTED, Refusals, client_address, parse_networks
from kfcli.core.crypto import MalformedCallback, WeComCrypto, parse_xml
from kfcli.core.errors import CallbackError

#: Largest POST body accepted. WeCom's KF callbacks are well under 1 KiB (the message content is
#: fetched with sync_msg), so 64 KiB is generous and still bounds what one request can cost.
MAX_BODY = 64 * 1024

#: How much of an oversized body is read and discarded before answering 413.
_DRAIN = 1024 * 1024

Event = dict[str, Any]
OnEvent = Callable[[Event], Any]

#: Key under which the app hands a callback's msg_signature to `on_event` (for the store's
#: record of callbacks taken, shared by workers and hosts); never emitted.
SIGNATURE = "kfcli-signature"

_STATUS = {
    200: "200 OK",
    400: "400 Bad Request",
    403: "403 Forbidden",
    405: "405 Method Not Allowed",
    404: "404 Not Found",
    411: "411 Length Required",
    413: "413 Payload Too Large",
    500: "500 Internal Server Error",
    503: "503 Service Unavailable",
}


class _Refused(Exception):
    def __init__(self, status: int, reason: str, result: str = "malformed") -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.result = result  # the `result` label of kfcli_callbacks_total


class Unavailable(Exception):
    """Raised by `on_event` when the callback cannot be taken now (the store is down, the
    disk full): the receiver answers 503 naming the cause in its log, and WeCom retries."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Duplicate(Exception):
    """Raised by `on_event` for a callback already taken (same msg_signature): the receiver
    answers `success` and does nothing else."""


class Probes(Protocol):
    """What the operations paths ask of the receiver behind the app."""

    def ready(self) -> tuple[bool, str]: ...

    def metrics_text(self) -> tuple[bytes, str]: ...


#: Paths answered by the receiver itself (GET only), never taken as callbacks.
HEALTH, READY, METRICS = "/healthz", "/readyz", "/metrics"

#: Default freshness window: a POST whose `timestamp` is further from now is refused.
MAX_SKEW = 600
#: Signatures each process remembers (the store remembers every one within the window).
SEEN = 4096


class CallbackApp:
    """WSGI callable. Thread-safe: it holds no per-request state.

    `max_skew`: seconds a POST's query `timestamp` may be from now (0: no check); a callback
    seen before within that window (same msg_signature) is answered `success` and not passed
    on again. `probes` answers /readyz and /metrics (without it: 200 and 404). `metrics`
    counts callbacks by result. `trusted_proxies`: networks whose X-Forwarded-For names the
    client in the log.
    """

    def __init__(self, crypto: WeComCrypto, on_event: OnEvent, *, max_body: int = MAX_BODY,
                 log: Callable[[str], None] | None = None, max_skew: int = MAX_SKEW,
                 probes: Probes | None = None, metrics: Any = None,
                 trusted_proxies: Collection[str] = DEFAULT_TRUSTED,
                 clock: Callable[[], float] = time.time,
                 previous: WeComCrypto | None = None) -> None:
        self.crypto = crypto
        #: Key rotation: the pair WeCom used before, accepted beside the current one.
        self.previous = previous
        self.on_event = on_event
        self.max_body = max_body
        self.log = log
        self.max_skew = max_skew
        self.probes = probes
        self.metrics = metrics
        self.trusted = parse_networks(trusted_proxies)
        self.clock = clock
        self._refusals = Refusals()
        self._seen: dict[str, float] = {}
        self._seen_lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        try:
            if method == "GET":
                answer = self._operations(environ, start_response)
                if answer is not None:
                    return answer
                body = self._get(environ)
                return _answer(start_response, 200, body)
            if method == "POST":
                result = self._post(environ)
                self._count(result)
                return _answer(start_response, 200, b"success")
            raise _Refused(405, f"method not allowed ({method[:16]})", "method")
        except _Refused as exc:
            self._count(exc.result)
            self._refused(environ, exc.status, exc.result, exc.reason)
            headers = [("Allow", "GET, POST")] if exc.status == 405 else None
            return _answer(start_response, exc.status, b"", headers)
        except Exception as exc:  # a bug must cost one request, never the server
            self._count("error")
            self._refused(environ, 500, "error", f"{type(exc).__name__}: {exc}")
            return _answer(start_response, 500, b"")

    def _count(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.inc("kfcli_callbacks", result=result)

    def _refused(self, environ: dict[str, Any], status: int, result: str, reason: str) -> None:
        if self.log is not None:
            self.log(f"callback refused ({status}): {reason}")
            return
        self._refusals(status, result, reason, client_address(environ, self.trusted))

    # -- operations: health, readiness, metrics (never logged)

    def _operations(self, environ: dict[str, Any],
                    start_response: Callable) -> Iterable[bytes] | None:
        return operations(environ, start_response, self.probes)

    # -- methods

    def _get(self, environ: dict[str, Any]) -> bytes:
        q = _query(environ, "msg_signature", "timestamp", "nonce", "echostr")
        # echostr is base64, which has no spaces: a space here is a `+` that a proxy or client
        # left unencoded, so put it back instead of failing.
        echostr = q["echostr"].replace(" ", "+")
        return self._open(lambda c: c.verify_url(q["msg_signature"], q["timestamp"],
                                                 q["nonce"], echostr))

    def _post(self, environ: dict[str, Any]) -> str:
        body = self._body(environ)  # read first: refusing with unread data resets the socket
        q = _query(environ, "msg_signature", "timestamp", "nonce")
        inner = self._open(lambda c: c.decrypt_post(q["msg_signature"], q["timestamp"],
                                                    q["nonce"], body))
        # Signatures are hex, compared without regard to case: one callback, one key.
        signature = q["msg_signature"].lower()
        self._fresh(q["timestamp"])
        try:
            fields = parse_xml(inner)
        except CallbackError as exc:
            raise _Refused(400, f"inner message: {exc.message}") from None
        if self._seen_before(signature):
            return "duplicate"
        try:
            self.on_event({**fields, SIGNATURE: signature})
        except Duplicate:
            self._remember(signature)
            return "duplicate"
        except Unavailable as exc:
            raise _Refused(503, exc.reason, "unavailable") from None
        except Full:
            raise _Refused(503, "event queue full; WeCom will retry", "unavailable") from None
        self._remember(signature)
        return "accepted"

    def _fresh(self, timestamp: str) -> None:
        if not self.max_skew:
            return
        try:
            sent = int(timestamp)
        except ValueError:
            raise _Refused(400, f"timestamp {timestamp[:20]!r} is not a number") from None
        off = sent - self.clock()
        if abs(off) > self.max_skew:
            side = "ahead of" if off > 0 else "behind"
            raise _Refused(403, f"stale timestamp: {abs(off):.0f} s {side} this host's clock "
                           f"(window ±{self.max_skew} s; a replay, or a skewed clock)", "stale")

    def _seen_before(self, signature: str) -> bool:
        with self._seen_lock:
            return signature in self._seen

    def _remember(self, signature: str) -> None:
        """Signatures taken within the window, in this process (the store remembers them for
        every worker and host): WeCom's own retries and replays are answered at once."""
        now = self.clock()
        with self._seen_lock:
            self._seen[signature] = now
            if len(self._seen) > SEEN:  # the oldest go first: memory stays flat
                horizon = now - max(self.max_skew, 60) * 2
                self._seen = {s: t for s, t in self._seen.items() if t >= horizon}
                while len(self._seen) > SEEN:
                    self._seen.pop(next(iter(self._seen)))

    def _open(self, action: Callable[[WeComCrypto], bytes]) -> bytes:
        try:
            try:
                return action(self.crypto)
            except CallbackError as exc:
                # Key rotation: signed or sealed with the previous pair (only the Token, or
                # only the EncodingAESKey, may have changed). The current pair's failure is
                # the one reported when neither works.
                if self.previous is None:
                    raise
                try:
                    return action(self.previous)
                except CallbackError:
                    raise exc from None
        except MalformedCallback as exc:
            raise _Refused(400, exc.message) from None
        except CallbackError as exc:
            if exc.reason == "invalid_signature":
                raise _Refused(403, exc.message, "bad_signature") from None
            raise _Refused(400, exc.message, "undecryptable") from None

    def _body(self, environ: dict[str, Any]) -> bytes:
        stream = environ["wsgi.input"]
        length = environ.get("CONTENT_LENGTH") or ""
        if length:
            try:
                size = int(length)
            except ValueError:
                raise _Refused(400, "bad Content-Length") from None
            if size < 0:
                raise _Refused(400, "bad Content-Length")
            if size > self.max_body:
                # Read (a bounded amount of) it anyway, so that the client gets the 413 rather
                # than a connection reset from unread data.
                _read(stream, min(size, _DRAIN))
                raise _Refused(413, f"body of {size} bytes exceeds {self.max_body}",
                               "too_large")
            return _read(stream, size)
        if environ.get("wsgi.input_terminated"):  # chunked bodies under gunicorn and others
            data = _read(stream, self.max_body + 1)
            if len(data) > self.max_body:
                raise _Refused(413, f"body exceeds {self.max_body} bytes", "too_large")
            return data
        raise _Refused(411, "no Content-Length")


def operations(environ: dict[str, Any], start_response: Callable,
               probes: Probes | None) -> Iterable[bytes] | None:
    """The answer to a GET of /healthz, /readyz, /metrics or a bare GET; None for others."""
    path = environ.get("PATH_INFO") or "/"
    if path == HEALTH:
        return _answer(start_response, 200, b"ok\n")
    if path == READY:
        ok, why = probes.ready() if probes is not None else (True, "")
        text = ("ready\n" if ok else f"not ready: {why}\n").encode("utf-8")
        return _answer(start_response, 200 if ok else 503, text)
    if path == METRICS:
        if probes is None:
            return _answer(start_response, 404, b"")
        body, content_type = probes.metrics_text()
        return _answer(start_response, 200, body, content_type=content_type)
    if not environ.get("QUERY_STRING"):
        # A bare GET is a load balancer's or a person's probe, not WeCom (which always sends
        # the verification parameters): answer it without a refusal line.
        return _answer(start_response, 200, b"kfcli callback receiver (GET /healthz, "
                       b"/readyz, /metrics)\n")
    return None


def not_found(start_response: Callable) -> list[bytes]:
    return _answer(start_response, 404, b"")


def _read(stream: Any, size: int) -> bytes:
    chunks: list[bytes] = []
    left = size
    while left > 0:
        chunk = stream.read(min(left, 65536))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _query(environ: dict[str, Any], *names: str) -> dict[str, str]:
    """The named query parameters, URL-decoded exactly once; 400 when one is missing."""
    parsed = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    missing = [n for n in names if not parsed.get(n)]
    if missing:
        raise _Refused(400, f"missing query parameter(s): {', '.join(missing)}")
    return {n: parsed[n][0] for n in names}


def _answer(start_response: Callable, status: int, body: bytes,
            headers: list[tuple[str, str]] | None = None, *,
            content_type: str = "text/plain; charset=utf-8") -> list[bytes]:
    start_response(_STATUS[status], [("Content-Type", content_type),
                                     ("Content-Length", str(len(body))), *(headers or [])])
    return [body]


def make_app(token: str, aes_key: str, receive_id: str, *, on_event: OnEvent,
             max_body: int = MAX_BODY, log: Callable[[str], None] | None = None,
             **options: Any) -> CallbackApp:
    """A WSGI receiver for one Token / EncodingAESKey / receive id (the CorpID for KF).

    `on_event(fields)` gets each verified callback's inner XML as a dict (`Token`, `OpenKfId`,
    `CreateTime`, ...) on the request thread: it must not block (see `Dispatcher`). Raising
    `queue.Full` or `Unavailable` answers 503, so that WeCom retries; `Duplicate` answers
    `success` for a callback already taken. `options` go to `CallbackApp` (`max_skew`,
    `probes`, `metrics`, `trusted_proxies`; `previous=(token, aes_key)`: the pair before a
    key rotation, accepted too). Raises `CallbackError` for a bad key.
    """
    previous = options.pop("previous", None)
    if previous is not None and not isinstance(previous, WeComCrypto):
        previous_token, previous_key = previous
        previous = WeComCrypto(previous_token, previous_key, receive_id)
    return CallbackApp(WeComCrypto(token, aes_key, receive_id), on_event, max_body=max_body,
                       log=log, previous=previous, **options)
