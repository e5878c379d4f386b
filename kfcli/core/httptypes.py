"""The transport's interface and its failures: `Response`, the `Transport` protocol that
`KfClient(transport=...)` accepts, `HttpError`, `SinkError`; and `failure`, which turns
urllib3's typed exceptions (and what they wrap: the socket's, TLS's, http.client's,
PySocks') into one `HttpError` that says why in one line, whether the request may have
reached the server (DESIGN.md §3: that decides whether a retry is safe), whether retrying can
help, and whether the fix is a local setting (exit 3). The urllib3 transport itself is
`kfcli.core.http`; this module imports urllib3 only when a failure is explained.
"""

from __future__ import annotations

import json
from typing import Any, BinaryIO, Protocol, TypeVar

from kfcli.core.proxyenv import Proxy

E = TypeVar("E", bound=BaseException)

class HttpError(Exception):
    """Every failure of a request, with a `reason` a user can read. `never_sent`: the server
    cannot have seen it. `retry`: False when trying again cannot help (not HTTP, TLS).
    `config`: the fix is in the local setup (proxy credentials, a CA bundle): exit 3.
    `stale`: a kept-alive connection failed before any answer (worth one immediate retry on
    a new connection). `dropped`: the connection closed mid-exchange. `hint`: what to change.
    """

    def __init__(self, reason: str, *, never_sent: bool, retry: bool = True,
                 config: bool = False, stale: bool = False, dropped: bool = False,
                 hint: str | None = None) -> None:
        super().__init__(reason)
        self.reason, self.never_sent, self.retry = reason, never_sent, retry
        self.config, self.stale, self.dropped, self.hint = config, stale, dropped, hint


class Response:
    """An answer: `headers` with lower-case names; `streamed` is the number of bytes written
    to the request's sink instead of `body` (None when nothing was streamed)."""

    def __init__(self, status: int, reason: str, headers: dict[str, str], body: bytes,
                 streamed: int | None = None) -> None:
        self.status, self.reason, self.headers = status, reason, headers
        self.body, self.streamed = body, streamed

    def __repr__(self) -> str:
        return f"Response({self.status} {self.reason}, {len(self.body)} bytes)"

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)


class Transport(Protocol):
    """What `KfClient` sends through: one exchange per call, every failure an `HttpError`.
    With `sink`, a 200 answer that is not JSON or text may be written there (the Response's
    `streamed` then says how many bytes). An optional `close()` is called by
    `KfClient.close()`; an optional `proxy` attribute is shown by --debug."""

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                body: bytes | None = None, headers: dict[str, str] | None = None,
                sink: BinaryIO | None = None) -> Response: ...


class SinkError(Exception):
    """Writing a streamed answer where it was to go failed (`original`: the OSError)."""

    def __init__(self, original: OSError) -> None:
        super().__init__(str(original))
        self.original = original


class Target:
    """Where a request was going: `host`:`port`, through `proxy` (None: directly);
    `forwarding` when the proxy gets absolute URLs (http:// targets of an HTTP(S) proxy)."""

    def __init__(self, host: str, port: int, proxy: Proxy | None, forwarding: bool) -> None:
        self.host, self.port, self.proxy, self.forwarding = host, port, proxy, forwarding


def failure(exc: BaseException, to: Target, *, sent: bool, reused: bool,
            answered: bool) -> HttpError:
    """The HttpError for `exc`. `sent`: the request began to go out on a connected socket;
    `reused`: on a connection that had served an exchange before; `answered`: a status line
    had arrived."""
    import http.client
    import ssl

    from urllib3 import exceptions as ux

    chain = _chain(exc)

    def first(kind: type[E] | tuple[type[E], ...]) -> E | None:
        return next((e for e in chain if isinstance(e, kind)), None)

    proxy = to.proxy
    # The innermost OSError that says why (PySocks wraps the socket's own).
    reason = _os_reason(next((e for e in chain if isinstance(e, OSError) and
                              isinstance(e.strerror, str)), None) or first(OSError) or exc)
    tls = first(ssl.SSLError)
    if tls is not None and not sent:
        # Untrusted, mismatched, or not TLS at all: the same however often one tries.
        whose = f"proxy {proxy.address}" if proxy and isinstance(exc, ux.ProxyError) \
            else to.host
        if isinstance(tls, ssl.SSLCertVerificationError):
            return HttpError(f"TLS certificate of {whose} is not trusted ({tls_reason(tls)})",
                             never_sent=True, retry=False, hint=CA_HINT)
        return HttpError(f"TLS handshake with {whose} failed ({tls_reason(tls)})",
                         never_sent=True, retry=False)
    if proxy and proxy.scheme.startswith("socks") and not sent:
        import socks  # PySocks: there is a SOCKS proxy, so the extra is installed

        if first(socks.SOCKS5AuthError):
            return HttpError(f"SOCKS proxy {proxy.address} refused the credentials: check "
                             f"{proxy.variable}", never_sent=True, retry=False, config=True)
        said = first((socks.SOCKS5Error, socks.SOCKS4Error))
        if said is not None:  # its answer to CONNECT: the destination, not the proxy
            return HttpError(f"SOCKS proxy {proxy.address} from {proxy.variable} could not "
                             f"connect to {to.host}:{to.port} ({said.msg})", never_sent=True)
    refused = _tunnel_status(exc)
    if proxy and refused:
        return proxy_refused(to, *refused)
    if proxy and not sent and (isinstance(exc, ux.ProxyError) or proxy.scheme.startswith(
            "socks") and isinstance(exc, ux.ConnectTimeoutError)):
        timed_out = first(ux.NewConnectionError) is None and (
            first(ux.ConnectTimeoutError) or first(TimeoutError))
        return HttpError(f"cannot connect to proxy {proxy.address} from {proxy.variable} "
                         f"({'timed out' if timed_out else reason})", never_sent=True,
                         hint=f"check {proxy.variable}, or list {to.host} in NO_PROXY if it "
                         "must be reached directly")
    if not sent and (first(UnicodeError) or isinstance(exc, ux.LocationValueError)):
        return HttpError(f"cannot connect to {to.host!r} ({_http_reason(exc)})",
                         never_sent=True, retry=False)
    if isinstance(exc, ValueError) and not isinstance(exc, ux.HTTPError):
        # http.client refused to encode the request (a control character in a header, a
        # value that is not Latin-1) before writing any of it.
        return HttpError(f"cannot send the request ({type(exc).__name__}: {exc})",
                         never_sent=True, retry=False)
    if isinstance(exc, ux.NewConnectionError):
        return HttpError(f"connection failed ({reason}; server unreachable)", never_sent=True)
    if not sent:
        if isinstance(exc, (ux.TimeoutError, TimeoutError)) or first(TimeoutError):
            where = f" through proxy {proxy.address}" if proxy else " (server unreachable)"
            return HttpError(f"timed out connecting{where}", never_sent=True)
        bad = first(http.client.HTTPException)
        if proxy and bad and not first(ConnectionError):  # CONNECT answered, not in HTTP
            return HttpError(f"cannot connect to {to.host!r} ({_http_reason(bad)})",
                             never_sent=True, retry=False)
        if proxy:
            return HttpError(f"proxy {proxy.address} failed during CONNECT {to.host}:"
                             f"{to.port} ({reason})", never_sent=True)
        return HttpError(f"connection failed ({reason}; server unreachable)", never_sent=True)
    # The request went out (maybe whole): the server may have acted on it.
    if isinstance(exc, ux.ReadTimeoutError):
        return HttpError("timed out waiting for the response", never_sent=False)
    if first(TimeoutError):
        return HttpError("timed out", never_sent=False)
    dropped = first(ConnectionError) or first(http.client.IncompleteRead)
    if dropped and reused and not answered:
        # The server had closed the kept-alive connection (its idle timer fired).
        return HttpError("the server closed the kept-alive connection before answering",
                         never_sent=False, stale=True)
    if dropped or (answered and isinstance(exc, ux.ProtocolError)):
        return HttpError("connection dropped before the whole response arrived",
                         never_sent=False, dropped=True)
    bad = first(http.client.HTTPException)
    if bad is not None:  # the other end does not speak HTTP: a wrong port, a broken proxy
        return HttpError(f"the server's answer is not valid HTTP ({_http_reason(bad)}); "
                         "is base_url right?", never_sent=False, retry=False)
    return HttpError(f"connection failed ({reason})", never_sent=False)


def refused_by_proxy(status: int, content_type: str) -> bool:
    """Whether an answer through a forwarding proxy is the proxy refusing it: 407, or 401/403
    that is not JSON (tinyproxy answers wrong credentials with 401; WeCom answers JSON)."""
    return status == 407 or (status in (401, 403) and "json" not in content_type.lower())


def proxy_refused(to: Target, code: int, message: str) -> HttpError:
    """The proxy refused (CONNECT, or a forwarded request) with `code`: exit 3 for what a
    setting can fix, retried for a failing proxy (5xx)."""
    proxy = to.proxy
    assert proxy is not None
    if code == 407 and proxy.auth:
        config, retry, advice = True, False, f"check the credentials in {proxy.variable}"
    elif code == 407:
        config, retry, advice = True, False, (f"the proxy wants credentials: add them to "
                                              f"{proxy.variable} as user:password@ before "
                                              "the host")
    elif code in (401, 403):
        config, retry, advice = True, False, (
            f"the proxy refuses this destination: check the credentials in {proxy.variable} "
            "or ask its administrator to allow it")
    elif code >= 500:
        config, retry, advice = False, True, "the proxy could not reach WeCom or is failing"
    else:
        config, retry, advice = True, False, (f"check that {proxy.variable} names an HTTP "
                                              "forward proxy")
    what = f"a request for {to.host}:{to.port}" if to.forwarding else \
        f"CONNECT {to.host}:{to.port}"
    return HttpError(f"proxy {proxy.address} answered {code} {message.strip()} to {what}: "
                     f"{advice}", never_sent=True, retry=retry, config=config)


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and what it wraps: urllib3 puts the original in `args` and `__cause__`."""
    seen: list[BaseException] = []
    todo: list[Any] = [exc]
    while todo:
        e = todo.pop(0)
        if isinstance(e, BaseException) and not any(e is s for s in seen):
            seen.append(e)
            todo += [*e.args, e.__cause__, None if e.__suppress_context__ else e.__context__]
    return seen


def _tunnel_status(exc: BaseException) -> tuple[int, str] | None:
    """(status, reason) of a proxy's refusal of CONNECT. urllib3 2 offers no field for it:
    the refusal arrives as http.client's OSError("Tunnel connection failed: 407 Proxy
    Authentication Required"), wrapped in urllib3's ProtocolError or ProxyError. This is the
    one place kfcli reads error text; if the wording changes, a refusal is reported as a
    failed CONNECT (exit 6) instead of by its status."""
    import re

    for e in _chain(exc):
        match = re.match(r"Tunnel connection failed: (\d{3}) ?(.*)", str(e), re.S)
        if match and isinstance(e, OSError):
            return int(match.group(1)), match.group(2)
    return None


def _os_reason(exc: BaseException) -> str:
    import socket

    if isinstance(exc, socket.gaierror):
        return "host name not found"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _http_reason(exc: BaseException) -> str:
    """Why the exchange is not HTTP, in one short line (the bytes clipped and escaped)."""
    detail = str(exc)
    if len(detail) > 60:
        detail = detail[:60] + "…"
    return f"{type(exc).__name__}: {detail!r}" if detail else type(exc).__name__


CA_HINT = ("behind a TLS-inspecting proxy, trust your organisation's CA: set KFCLI_CA_BUNDLE "
           "(or REQUESTS_CA_BUNDLE) to its certificate, a PEM file")


def tls_reason(exc: BaseException) -> str:
    return getattr(exc, "verify_message", None) or getattr(exc, "reason", None) or str(exc)
