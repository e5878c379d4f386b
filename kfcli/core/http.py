"""kfcli's transport: a thin adapter over urllib3 (2.x), imported on the first request.

urllib3 does the HTTP: a thread-safe pool of keep-alive connections per host (one the server
closed is noticed before reuse), connect/read timeouts, HTTP(S) and SOCKS proxies (CONNECT
with Basic credentials, TLS to an https:// proxy), TLS, streamed reads, multipart framing.
kfcli adds (DESIGN.md §3, §5, §14): which proxy and CA bundle apply (`kfcli.core.proxyenv`),
a fresh pool in a forked child, and one `HttpError` per failure saying whether the request
may have reached the server (`kfcli.core.httptypes.failure`). urllib3 does not say whether a
failed request went out: a subclass of its connection class (`_Tracked`) notes it, per
thread, through urllib3's public `connect` and `request` methods. No private attribute of
urllib3, http.client or ssl is used. `KfClient(transport=...)` takes any other object with
`Http.request` (`kfcli.core.httptypes.Transport`).
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import quote, urlencode, urlsplit

from kfcli.core.httptypes import (
    HttpError,
    Response,
    SinkError,
    Target,
    Transport,
    failure,
    proxy_refused,
    refused_by_proxy,
    tls_reason,
)
from kfcli.core.proxyenv import CaBundle, Proxy, SettingError, proxy_for

if TYPE_CHECKING:
    import ssl

    from urllib3 import BaseHTTPResponse, PoolManager
from kfcli.core.proxyenv import ca_bundle as _ca_bundle
from kfcli.core.proxyenv import proxy_for as _proxy_for  # noqa: F401 (tests, doctor)

__all__ = ["CaBundle", "Http", "HttpError", "Response", "SettingError", "SinkError",
           "Transport", "multipart"]


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
        base: type = pool_cls.ConnectionCls  # type: ignore[attr-defined]  # urllib3's pools
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
        # one per Http: building one reads the trust store
        self._ssl_context: ssl.SSLContext | None = None
        self._manager: PoolManager | None = None
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
            assert resp is not None  # the sink is written once the answer came
            resp.close()  # the rest of the answer is unread: never reuse the connection
            raise
        except (Urllib3Error, OSError, http.client.HTTPException, ValueError) as exc:
            raise self._failure(exc, url, all_headers, answered=resp is not None) from None
        finally:
            if resp is not None:
                resp.release_conn()
        if self._forwarding and refused_by_proxy(resp.status, head.get("content-type", "")):
            raise proxy_refused(self._target, resp.status, resp.reason or "")
        return Response(resp.status, resp.reason or "", head, data, streamed)

    def _pools(self) -> PoolManager:
        if self._pid != os.getpid():  # a forked child: leave the parent's sockets alone
            self._lock, self._manager, self._pid = threading.Lock(), None, os.getpid()
        manager = self._manager
        if manager is None:
            with self._lock:
                if self._manager is None:
                    self._manager = self._new_manager()
                manager = self._manager
        return manager

    def _new_manager(self) -> PoolManager:
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

    def _context(self) -> ssl.SSLContext:
        """The SSL context every connection of this Http shares (WeCom's and the proxy's)."""
        if self._ssl_context is None:
            self._ssl_context = _new_context(self.ca_bundle)
        return self._ssl_context

    @property
    def _target(self) -> Target:
        return Target(self.host, self.port, self.proxy, self._forwarding)

    def _failure(self, exc: BaseException, url: str, headers: dict[str, str], *,
                 answered: bool) -> HttpError:
        error = failure(exc, self._target, sent=getattr(_attempt, "sent", False),
                        reused=getattr(_attempt, "reused", False), answered=answered)
        if error.stale:  # the idle connections, older still, go too: the retry opens one
            self.close()
        if error.dropped:
            return self._diagnose_proxy(url, headers) or error
        return error

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
        if refused_by_proxy(resp.status, resp.headers.get("content-type", "")):
            return proxy_refused(self._target, resp.status, resp.reason or "")
        return None

    @property
    def _idle(self) -> list[Any]:
        """The idle connections to the base URL, most recently used last (for tests)."""
        if self._manager is None or self._pid != os.getpid():
            return []
        queue = self._manager.connection_from_host(self.host, self.port, self.scheme).pool
        return [conn for conn in (list(queue.queue) if queue else []) if conn is not None]

    @property
    def _conn(self) -> Any:
        """The connection the next request would try first (None when none is idle)."""
        idle = self._idle
        return idle[-1] if idle else None

    def close(self) -> None:
        """Close every connection: the idle ones now, those in use when their request ends."""
        manager, self._manager = self._manager, None
        if manager is not None and self._pid == os.getpid():
            manager.clear()


def _is_text(headers: dict[str, str]) -> bool:
    ctype = headers.get("content-type", "").lower()
    return "json" in ctype or ctype.startswith("text/")


def _copy(resp: BaseHTTPResponse, sink: BinaryIO) -> int:
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


#: Characters left as they are in a request path (RFC 3986 pchar and "/", plus "%" so that
#: a path the caller already percent-encoded is not encoded twice, and "?" for a caller that
#: put a query in the path).
_PATH_SAFE = "/%:@!$&'()*+,;=-._~?"


def _new_context(bundle: CaBundle | None) -> ssl.SSLContext:
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
                            f"({tls_reason(exc)})", never_sent=True, retry=False, config=True,
                            hint=f"point {bundle.variable} at a PEM file of CA certificates"
                            ) from None
    return context
