"""kfcli's transport: a thin adapter over urllib3 (2.x), imported on the first request.

urllib3 does the HTTP: a thread-safe pool of keep-alive connections per host (a connection
the server closed is noticed before reuse), connect/read timeouts, HTTP(S) and SOCKS proxies
(CONNECT with Basic proxy credentials, TLS to an https:// proxy), TLS, streaming reads,
multipart framing. This module adds what kfcli promises on top (DESIGN.md §3, §5, §14):
which proxy and CA bundle apply (`kfcli.core.proxyenv`), a fresh pool in a forked child, and
one `HttpError` per failure, with a reason a user can read and whether the request may have
reached the server, which decides whether a retry is safe.

urllib3 does not say whether a failed request went out; a subclass of its connection class
(`_Tracked`) notes it, per thread, through urllib3's public `connect` and `request` methods.
No private attribute of urllib3, http.client or ssl is used; the only error text read is a
proxy's refusal of CONNECT (`_tunnel_status`).

`Transport` is the seam `KfClient(transport=...)` accepts: any object with this `request`.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol
from urllib.parse import quote, urlencode, urlsplit

from kfcli.core.proxyenv import CaBundle, Proxy, SettingError, proxy_for
from kfcli.core.proxyenv import ca_bundle as _ca_bundle
from kfcli.core.proxyenv import proxy_for as _proxy_for  # noqa: F401 (tests, doctor)

__all__ = ["CaBundle", "Http", "HttpError", "Response", "SettingError", "SinkError",
           "Transport", "multipart"]


class HttpError(Exception):
    """Every failure of a request, with a `reason` a user can read. `never_sent`: the server
    cannot have seen it. `retry`: False when trying again cannot help (not HTTP, TLS).
    `config`: the fix is in the local setup (proxy credentials, a CA bundle): exit 3.
    `stale`: a kept-alive connection failed before any answer (worth one immediate retry on
    a new connection). `hint` says what to change."""

    def __init__(self, reason: str, *, never_sent: bool, retry: bool = True,
                 config: bool = False, stale: bool = False, hint: str | None = None) -> None:
        super().__init__(reason)
        self.reason, self.never_sent, self.retry = reason, never_sent, retry
        self.config, self.stale, self.hint = config, stale, hint


@dataclass
class Response:
    status: int
    reason: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    streamed: int | None = None  # bytes written to the request's sink instead of `body`

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


def multipart(field: str, filename: str, data: bytes, content_type: str) -> tuple[bytes, str]:
    """One file part as multipart/form-data: (body, Content-Type). WeCom's media upload wants
    `filelength` beside `filename` (kf-api.md §2.12), so kfcli writes that header itself."""
    from urllib3 import encode_multipart_formdata
    from urllib3.fields import RequestField

    quoted = filename.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "")
    part = RequestField(field, data, headers={
        "Content-Disposition": f'form-data; name="{field}"; filename="{quoted}"; '
                               f"filelength={len(data)}", "Content-Type": content_type})
    return encode_multipart_formdata([part])


#: Per thread, what the current attempt did: `sent` once a request began to go out on a
#: connected socket, `reused` when that connection had served an exchange before.
_attempt = threading.local()


class _Tracked:
    """Mixed into urllib3's connection classes (through the public `ConnectionCls`)."""

    kfcli_served = False

    def connect(self) -> None:
        self.kfcli_served = False
        super().connect()  # type: ignore[misc]

    def request(self, *args: Any, **kwargs: Any) -> None:
        if self.is_closed:  # type: ignore[attr-defined]  # connect first: nothing sent yet
            self.connect()
        _attempt.sent, _attempt.reused, self.kfcli_served = True, self.kfcli_served, True
        super().request(*args, **kwargs)  # type: ignore[misc]


_TRACKED: dict[type, type] = {}


def _tracked(pool_cls: type) -> type:
    if pool_cls not in _TRACKED:
        base = pool_cls.ConnectionCls
        conn_cls = type("Kf" + base.__name__, (_Tracked, base), {})
        _TRACKED[pool_cls] = type("Kf" + pool_cls.__name__, (pool_cls,),
                                  {"ConnectionCls": conn_cls})
    return _TRACKED[pool_cls]


class Http:
    """Connections to one base URL, through a urllib3 pool built at the first request.

    Safe to share between threads: a request borrows an idle keep-alive connection (or opens
    one) and gives it back once the answer is read. A forked child never touches the
    parent's connections: it notices the new process id and builds its own pool. `close()`
    closes the idle connections at once and the borrowed ones as they come back; the `Http`
    stays usable (a later request opens a new connection).
    """

    def __init__(self, base_url: str, *, connect_timeout: float, read_timeout: float,
                 user_agent: str, ca_bundle: str | None = None,
                 ca_bundle_from: str = "ca_bundle") -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base URL must be http(s)://host[:port], not {base_url!r}")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"base URL {base_url!r} has an invalid port") from None
        self.scheme, self.host = parts.scheme, parts.hostname
        self.port = port or (443 if self.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self.user_agent = user_agent
        self.proxy: Proxy | None = proxy_for(self.scheme, self.host, self.port)
        # CA certificates trusted on top of the system store, for WeCom and an https:// proxy.
        tls = self.scheme == "https" or (self.proxy is not None and self.proxy.scheme == "https")
        self.ca_bundle = _ca_bundle(ca_bundle, ca_bundle_from) if tls else None
        self._ssl_context: Any = None  # one per Http: building one reads the trust store
        self._manager: Any = None
        self._lock = threading.Lock()
        self._pid = os.getpid()

    @property
    def _forwarding(self) -> bool:
        """Whether requests go to an HTTP(S) proxy as absolute URLs (it answers them itself)."""
        return self.proxy is not None and self.scheme == "http" and \
            self.proxy.scheme in ("http", "https")

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                body: bytes | None = None, headers: dict[str, str] | None = None,
                sink: BinaryIO | None = None) -> Response:
        """One exchange. With `sink`, a 200 answer that is not JSON or text (a media download)
        is written to it as it arrives; the Response's body is then empty and `streamed` the
        number of bytes written."""
        import http.client

        from urllib3.exceptions import HTTPError as Urllib3Error

        host = f"[{self.host}]" if ":" in self.host else self.host
        url = f"{self.scheme}://{host}:{self.port}" + quote(self.prefix + path, safe=_PATH_SAFE) \
            + (("?" + urlencode(params)) if params else "")
        all_headers = {"User-Agent": self.user_agent, "Accept": "application/json, */*",
                       **(headers or {})}
        manager = self._pools()
        _attempt.sent = _attempt.reused = False
        resp = None
        try:
            resp = manager.urlopen(method, url, body=body, headers=all_headers, retries=False,
                                   redirect=False, preload_content=False)
            head = {k.lower(): v for k, v in resp.headers.items()}
            streamed = None
            if sink is not None and resp.status == 200 and not _is_text(head):
                data, streamed = b"", _copy(resp, sink)
            else:
                data = resp.read()
        except SinkError:
            resp.close()  # the rest of the answer is unread: never reuse the connection
            raise
        except (Urllib3Error, OSError, http.client.HTTPException, ValueError) as exc:
            raise self._failure(exc, url, all_headers, answered=resp is not None) from None
        finally:
            if resp is not None:
                resp.release_conn()
        if self._forwarding and _refused_by_proxy(resp.status, head.get("content-type", "")):
            raise self._proxy_refused(resp.status, resp.reason)
        return Response(resp.status, resp.reason, head, data, streamed)

    def _pools(self):
        if self._pid != os.getpid():  # a forked child: leave the parent's sockets alone
            self._lock, self._manager, self._pid = threading.Lock(), None, os.getpid()
        manager = self._manager
        if manager is None:
            with self._lock:
                if self._manager is None:
                    self._manager = self._new_manager()
                manager = self._manager
        return manager

    def _new_manager(self):
        import urllib3

        proxy = self.proxy
        kwargs: dict[str, Any] = {"maxsize": 32, "retries": False, "timeout": urllib3.Timeout(
            connect=self.connect_timeout, read=self.read_timeout)}
        if self.scheme == "https":
            kwargs["ssl_context"] = self._context()
        if proxy is None:
            manager = urllib3.PoolManager(**kwargs)
        elif proxy.scheme.startswith("socks"):
            from urllib3.contrib.socks import SOCKSProxyManager

            manager = SOCKSProxyManager(proxy.url, username=proxy.user,
                                        password=proxy.password, **kwargs)
        else:
            manager = urllib3.ProxyManager(
                proxy.url, proxy_headers={"Proxy-Authorization": proxy.auth} if proxy.auth
                else None, proxy_ssl_context=self._context() if proxy.scheme == "https"
                else None, **kwargs)
        manager.pool_classes_by_scheme = {
            scheme: _tracked(cls) for scheme, cls in manager.pool_classes_by_scheme.items()}
        return manager

    def _context(self):
        """The SSL context every connection of this Http shares (WeCom's and the proxy's)."""
        if self._ssl_context is None:
            self._ssl_context = _new_context(self.ca_bundle)
        return self._ssl_context

    def _failure(self, exc: BaseException, url: str, headers: dict[str, str], *,
                 answered: bool) -> HttpError:
        """The HttpError for what urllib3 (or the socket, TLS, http.client) raised."""
        import http.client
        import ssl

        from urllib3 import exceptions as ux

        chain = _chain(exc)

        def first(kind):
            return next((e for e in chain if isinstance(e, kind)), None)

        proxy, sent = self.proxy, getattr(_attempt, "sent", False)
        # The innermost OSError that says why (PySocks wraps the socket's own).
        reason = _os_reason(next((e for e in chain if isinstance(e, OSError) and
                                  isinstance(e.strerror, str)), None) or first(OSError) or exc)
        tls = first(ssl.SSLError)
        if tls is not None and not sent:
            # Untrusted, mismatched, or not TLS at all: the same however often one tries.
            whose = f"proxy {proxy.address}" if proxy and isinstance(exc, ux.ProxyError) \
                else self.host
            if isinstance(tls, ssl.SSLCertVerificationError):
                return HttpError(f"TLS certificate of {whose} is not trusted ("
                                 f"{_tls_reason(tls)})", never_sent=True, retry=False,
                                 hint=_CA_HINT)
            return HttpError(f"TLS handshake with {whose} failed ({_tls_reason(tls)})",
                             never_sent=True, retry=False)
        if proxy and proxy.scheme.startswith("socks") and not sent:
            import socks  # PySocks: there is a SOCKS proxy, so the extra is installed

            if first(socks.SOCKS5AuthError):
                return HttpError(f"SOCKS proxy {proxy.address} refused the credentials: check "
                                 f"{proxy.variable}", never_sent=True, retry=False, config=True)
            said = first((socks.SOCKS5Error, socks.SOCKS4Error))
            if said is not None:  # its answer to CONNECT: the destination, not the proxy
                return HttpError(f"SOCKS proxy {proxy.address} from {proxy.variable} could not "
                                 f"connect to {self.host}:{self.port} ({said.msg})",
                                 never_sent=True)
        refused = _tunnel_status(exc)
        if proxy and refused:
            return self._proxy_refused(*refused)
        if proxy and not sent and (isinstance(exc, ux.ProxyError) or proxy.scheme.startswith(
                "socks") and isinstance(exc, ux.ConnectTimeoutError)):
            timed_out = first(ux.NewConnectionError) is None and (
                first(ux.ConnectTimeoutError) or first(TimeoutError))
            return HttpError(f"cannot connect to proxy {proxy.address} from "
                             f"{proxy.variable} ({'timed out' if timed_out else reason})",
                             never_sent=True, hint=f"check {proxy.variable}, or list {self.host}"
                             " in NO_PROXY if it must be reached directly")
        if not sent and (first(UnicodeError) or isinstance(exc, ux.LocationValueError)):
            return HttpError(f"cannot connect to {self.host!r} ({_http_reason(exc)})",
                             never_sent=True, retry=False)
        if isinstance(exc, ux.NewConnectionError):
            return HttpError(f"connection failed ({reason}; server unreachable)",
                             never_sent=True)
        if not sent:
            where = f" through proxy {proxy.address}" if proxy else " (server unreachable)"
            if isinstance(exc, (ux.TimeoutError, TimeoutError)) or first(TimeoutError):
                return HttpError(f"timed out connecting{where}", never_sent=True)
            if isinstance(exc, ValueError) and not isinstance(exc, ux.HTTPError):
                return HttpError(f"cannot send the request ({type(exc).__name__}: {exc})",
                                 never_sent=True, retry=False)
            bad = first(http.client.HTTPException)
            if proxy and bad and not first(ConnectionError):  # CONNECT answered, not in HTTP
                return HttpError(f"cannot connect to {self.host!r} ({_http_reason(bad)})",
                                 never_sent=True, retry=False)
            if proxy:
                return HttpError(f"proxy {proxy.address} failed during CONNECT {self.host}:"
                                 f"{self.port} ({reason})", never_sent=True)
            return HttpError(f"connection failed ({reason}; server unreachable)",
                             never_sent=True)
        # The request went out (maybe whole): the server may have acted on it.
        if isinstance(exc, ux.ReadTimeoutError):
            return HttpError("timed out waiting for the response", never_sent=False)
        if first(TimeoutError):
            return HttpError("timed out", never_sent=False)
        dropped = first(ConnectionError) or first(http.client.IncompleteRead)
        if dropped and getattr(_attempt, "reused", False) and not answered:
            # The server had closed the kept-alive connection (its idle timer fired): the
            # idle ones, older still, are dropped too, so the retry opens a new one.
            self.close()
            return HttpError("the server closed the kept-alive connection before answering",
                             never_sent=False, stale=True)
        if dropped or (answered and isinstance(exc, ux.ProtocolError)):
            return self._diagnose_proxy(url, headers) or HttpError(
                "connection dropped before the whole response arrived", never_sent=False)
        bad = first(http.client.HTTPException)
        if bad is not None:  # the other end does not speak HTTP: a wrong port, a broken proxy
            return HttpError(f"the server's answer is not valid HTTP ({_http_reason(bad)}); "
                             "is base_url right?", never_sent=False, retry=False)
        return HttpError(f"connection failed ({reason})", never_sent=False)

    def _diagnose_proxy(self, url: str, headers: dict[str, str]) -> HttpError | None:
        """A plain-HTTP proxy that refuses a request often answers 407 and closes without
        reading the body, and the unread body resets the connection: the answer is lost. Ask
        again without a body (GET, never taking effect): the refusal if that is what it was."""
        if not self._forwarding:
            return None
        import http.client

        from urllib3.exceptions import HTTPError as Urllib3Error

        try:
            resp = self._pools().urlopen(
                "GET", url, headers={k: v for k, v in headers.items() if k != "Content-Type"},
                retries=False, redirect=False)
        except (Urllib3Error, OSError, http.client.HTTPException, ValueError):
            return None
        if _refused_by_proxy(resp.status, resp.headers.get("content-type", "")):
            return self._proxy_refused(resp.status, resp.reason)
        return None

    def _proxy_refused(self, code: int, message: str) -> HttpError:
        assert self.proxy is not None
        config, retry, advice = _proxy_refusal(self.proxy, code)
        what = f"a request for {self.host}:{self.port}" if self._forwarding else \
            f"CONNECT {self.host}:{self.port}"
        return HttpError(f"proxy {self.proxy.address} answered {code} {message.strip()} to "
                         f"{what}: {advice}", never_sent=True, retry=retry, config=config)

    @property
    def _idle(self) -> list[Any]:
        """The idle connections to the base URL, most recently used last (for tests)."""
        if self._manager is None or self._pid != os.getpid():
            return []
        queue = self._manager.connection_from_host(self.host, self.port, self.scheme).pool
        return [conn for conn in (list(queue.queue) if queue else []) if conn is not None]

    @property
    def _conn(self):
        """The connection the next request would try first (None when none is idle)."""
        idle = self._idle
        return idle[-1] if idle else None

    def close(self) -> None:
        """Close every connection: the idle ones now, those in use when their request ends."""
        manager, self._manager = self._manager, None
        if manager is not None and self._pid == os.getpid():
            manager.clear()


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


def _refused_by_proxy(status: int, content_type: str) -> bool:
    """Whether an answer through a forwarding proxy is the proxy refusing it: 407, or 401/403
    that is not JSON (tinyproxy answers wrong credentials with 401; WeCom answers JSON)."""
    return status == 407 or (status in (401, 403) and "json" not in content_type.lower())


def _proxy_refusal(proxy: Proxy, code: int) -> tuple[bool, bool, str]:
    """What a proxy's refusal means, by status: (exit 3?, retry?, advice)."""
    if code == 407:
        if proxy.auth:
            return True, False, f"check the credentials in {proxy.variable}"
        return True, False, (f"the proxy wants credentials: add them to {proxy.variable} "
                             "as user:password@ before the host")
    if code in (401, 403):
        return True, False, (f"the proxy refuses this destination: check the credentials in "
                             f"{proxy.variable} or ask its administrator to allow it")
    if code >= 500:
        return False, True, "the proxy could not reach WeCom or is failing"
    return True, False, f"check that {proxy.variable} names an HTTP forward proxy"


def _is_text(headers: dict[str, str]) -> bool:
    ctype = headers.get("content-type", "").lower()
    return "json" in ctype or ctype.startswith("text/")


def _copy(resp, sink: BinaryIO) -> int:
    """Copy a response body to `sink` a block at a time; returns the bytes copied. An
    OSError of the sink (a full disk) is not the connection's: raised as SinkError."""
    total = 0
    while block := resp.read(1 << 16):
        try:
            sink.write(block)
        except OSError as exc:
            raise SinkError(exc) from None
        total += len(block)
    return total


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


_CA_HINT = ("behind a TLS-inspecting proxy, trust your organisation's CA: set KFCLI_CA_BUNDLE "
            "(or REQUESTS_CA_BUNDLE) to its certificate, a PEM file")


def _tls_reason(exc: BaseException) -> str:
    return getattr(exc, "verify_message", None) or getattr(exc, "reason", None) or str(exc)


#: Characters left as they are in a request path (RFC 3986 pchar and "/", plus "%" so that
#: a path the caller already percent-encoded is not encoded twice, and "?" for a caller that
#: put a query in the path).
_PATH_SAFE = "/%:@!$&'()*+,;=-._~?"


def _new_context(bundle: CaBundle | None):
    """The system trust store (and SSL_CERT_FILE / SSL_CERT_DIR), plus `bundle`."""
    import ssl

    context = ssl.create_default_context()
    if bundle is not None:
        try:
            if os.path.isdir(bundle.path):
                context.load_verify_locations(capath=bundle.path)
            else:
                context.load_verify_locations(cafile=bundle.path)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError: not PEM
            raise HttpError(f"CA bundle {bundle.path} from {bundle.variable} cannot be loaded "
                            f"({_tls_reason(exc)})", never_sent=True, retry=False, config=True,
                            hint=f"point {bundle.variable} at a PEM file of CA certificates"
                            ) from None
    return context
