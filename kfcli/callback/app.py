"""The callback receiver as a WSGI application (DESIGN.md §7, kf-api.md §4.2-4.3).

* GET with `msg_signature`, `timestamp`, `nonce`, `echostr`: URL verification; 200 with the
  decrypted echostr as the bare body (text/plain, no newline), which WeCom wants within 1 s.
* POST with `msg_signature`, `timestamp`, `nonce` and the XML body: verify the signature over the
  body's `Encrypt`, decrypt, parse the inner XML, hand its fields to `on_event` and answer 200
  `success`. `on_event` must return at once (queue the work: `Dispatcher.put`); WeCom drops the
  connection after 5 s and retries, 3 times in all.

Answers: 403 (empty body, no detail) when the signature does not match; 413 when the body is
larger than `max_body`; 411 when its length is unknown; 400 for malformed XML, missing fields and
failures after a valid signature (wrong EncodingAESKey, receive id mismatch); 503 when the
event queue is full (WeCom retries later); 405 for other methods. The reason of every refusal is
logged for the operator, never sent to the client.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from queue import Full
from typing import Any
from urllib.parse import parse_qs

from kfcli.core.crypto import MalformedCallback, WeComCrypto, parse_xml
from kfcli.core.errors import CallbackError

#: Largest POST body accepted. WeCom's KF callbacks are well under 1 KiB (the message content is
#: fetched with sync_msg), so 64 KiB is generous and still bounds what one request can cost.
MAX_BODY = 64 * 1024

#: How much of an oversized body is read and discarded before answering 413.
_DRAIN = 1024 * 1024

Event = dict[str, Any]
OnEvent = Callable[[Event], Any]

_log = logging.getLogger("kfcli.callback")

_STATUS = {
    200: "200 OK",
    400: "400 Bad Request",
    403: "403 Forbidden",
    405: "405 Method Not Allowed",
    411: "411 Length Required",
    413: "413 Payload Too Large",
    500: "500 Internal Server Error",
    503: "503 Service Unavailable",
}


class _Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class CallbackApp:
    """WSGI callable. Thread-safe: it holds no per-request state."""

    def __init__(self, crypto: WeComCrypto, on_event: OnEvent, *, max_body: int = MAX_BODY,
                 log: Callable[[str], None] | None = None) -> None:
        self.crypto = crypto
        self.on_event = on_event
        self.max_body = max_body
        self.log = log or _log.warning

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        try:
            if method == "GET":
                body = self._get(environ)
                return _answer(start_response, 200, body)
            if method == "POST":
                self._post(environ)
                return _answer(start_response, 200, b"success")
            return _answer(start_response, 405, b"", [("Allow", "GET, POST")])
        except _Refused as exc:
            self.log(f"callback refused ({exc.status}): {exc.reason}")
            return _answer(start_response, exc.status, b"")
        except Exception as exc:  # a bug must cost one request, never the server
            self.log(f"callback failed (500): {type(exc).__name__}: {exc}")
            return _answer(start_response, 500, b"")

    # -- methods

    def _get(self, environ: dict[str, Any]) -> bytes:
        q = _query(environ, "msg_signature", "timestamp", "nonce", "echostr")
        # echostr is base64, which has no spaces: a space here is a `+` that a proxy or client
        # left unencoded, so put it back instead of failing.
        echostr = q["echostr"].replace(" ", "+")
        return self._open(lambda: self.crypto.verify_url(q["msg_signature"], q["timestamp"],
                                                         q["nonce"], echostr))

    def _post(self, environ: dict[str, Any]) -> None:
        body = self._body(environ)  # read first: refusing with unread data resets the socket
        q = _query(environ, "msg_signature", "timestamp", "nonce")
        inner = self._open(lambda: self.crypto.decrypt_post(q["msg_signature"], q["timestamp"],
                                                            q["nonce"], body))
        try:
            fields = parse_xml(inner)
        except CallbackError as exc:
            raise _Refused(400, f"inner message: {exc.message}") from None
        try:
            self.on_event(fields)
        except Full:
            raise _Refused(503, "event queue full; WeCom will retry") from None

    def _open(self, action: Callable[[], bytes]) -> bytes:
        try:
            return action()
        except MalformedCallback as exc:
            raise _Refused(400, exc.message) from None
        except CallbackError as exc:
            status = 403 if exc.reason == "invalid_signature" else 400
            raise _Refused(status, exc.message) from None

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
                raise _Refused(413, f"body of {size} bytes exceeds {self.max_body}")
            return _read(stream, size)
        if environ.get("wsgi.input_terminated"):  # chunked bodies under gunicorn and others
            data = _read(stream, self.max_body + 1)
            if len(data) > self.max_body:
                raise _Refused(413, f"body exceeds {self.max_body} bytes")
            return data
        raise _Refused(411, "no Content-Length")


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
            headers: list[tuple[str, str]] | None = None) -> list[bytes]:
    start_response(_STATUS[status], [("Content-Type", "text/plain; charset=utf-8"),
                                     ("Content-Length", str(len(body))), *(headers or [])])
    return [body]


def make_app(token: str, aes_key: str, receive_id: str, *, on_event: OnEvent,
             max_body: int = MAX_BODY, log: Callable[[str], None] | None = None) -> CallbackApp:
    """A WSGI receiver for one Token / EncodingAESKey / receive id (the CorpID for KF).

    `on_event(fields)` gets each verified callback's inner XML as a dict (`Token`, `OpenKfId`,
    `CreateTime`, ...) on the request thread: it must not block (see `Dispatcher`). Raising
    `queue.Full` answers 503, so that WeCom retries. Raises `CallbackError` for a bad key.
    """
    return CallbackApp(WeComCrypto(token, aes_key, receive_id), on_event, max_body=max_body,
                       log=log)
