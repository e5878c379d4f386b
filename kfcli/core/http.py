"""A small HTTP/1.1 client on the standard library's `http.client`.

Why not `requests`: importing it costs 40-100 ms on every invocation, more than kfcli's whole
start-up budget (a command must stay within 1.3x of a plain `requests` script, see bench/).
kfcli talks to one host with JSON and one multipart upload, which `http.client` covers; this
module adds what a CLI needs on top: keep-alive with a stale-connection check, separate
connect/read timeouts, HTTP(S)_PROXY / NO_PROXY, errors that say whether the request can
have reached the server (which decides whether a retry is safe), and a pool of connections so
that one `Http` can serve many threads (an `http.client` connection serves one exchange at a
time).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import select
import socket
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit


class HttpError(Exception):
    """Every failure of `Http.request`: whatever http.client, the socket, TLS or the proxy
    raised is turned into this one type, with a reason a user can read.

    `never_sent` is True when the server cannot have seen the request. `retry` is False when
    trying again cannot help (an answer that is not HTTP, a TLS or host-name problem, a request
    that cannot be encoded)."""

    def __init__(self, reason: str, *, never_sent: bool, retry: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.never_sent = never_sent
        self.retry = retry


@dataclass
class Response:
    status: int
    reason: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)


def multipart(field: str, filename: str, data: bytes, content_type: str) -> tuple[bytes, str]:
    """Encode one file part as multipart/form-data; returns (body, Content-Type header).

    WeCom's media upload wants the part named `media` with `filename` and `filelength`
    (kf-api.md §2.12).
    """
    boundary = "kfcli" + secrets.token_hex(12)
    quoted = filename.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "")
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="{field}"; filename="{quoted}"; '
        f"filelength={len(data)}\r\n"
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), (
        f"multipart/form-data; boundary={boundary}"
    )


class Http:
    """Connections to one base URL, reused across requests. Safe to share between threads.

    A request borrows an idle keep-alive connection (or opens a new one) and gives it back
    once the answer is read, so a connection serves one thread's exchange at a time and is
    reused by whichever thread asks next; there are never more connections than requests
    that were in flight at once. A forked child never touches the parent's connections: it
    notices the new process id and opens its own. `close()` closes the idle connections at
    once and the borrowed ones as they come back; the `Http` stays usable (a later request
    opens a new connection).
    """

    def __init__(self, base_url: str, *, connect_timeout: float, read_timeout: float,
                 user_agent: str) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base URL must be http(s)://host[:port], not {base_url!r}")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"base URL {base_url!r} has an invalid port") from None
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = port or (443 if self.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.user_agent = user_agent
        self.proxy = _proxy_for(self.scheme, self.host)
        # Idle connections, most recently used last. deque's append and pop are atomic, so
        # the pool needs no lock (and a fork can never leave one held in the child).
        self._idle: deque[Any] = deque()
        self._pid = os.getpid()
        self._generation = 0  # bumped by close(): borrowed connections are not pooled again

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                body: bytes | None = None, headers: dict[str, str] | None = None) -> Response:
        # http.client sends the target as ASCII and refuses control characters: quote the
        # rest (a non-ASCII path from `kfcli api` stays a request, not an encoding crash).
        target = quote(self.prefix + path, safe=_PATH_SAFE) + (
            ("?" + urlencode(params)) if params else "")
        all_headers = {"User-Agent": self.user_agent, "Accept": "application/json, */*",
                       **(headers or {})}
        if self.proxy and self.scheme == "http":
            # A plain-HTTP proxy takes the absolute URL.
            target = f"http://{self.host}:{self.port}{target}"
            if self.proxy.auth:
                all_headers["Proxy-Authorization"] = self.proxy.auth
        generation = self._generation
        conn = self._borrow()
        import http.client

        # On any failure the connection is closed, never given back: its state is unknown.
        try:
            conn.request(method, target, body=body, headers=all_headers)
        except TimeoutError:
            conn.close()
            raise HttpError("timed out", never_sent=False) from None
        except OSError as exc:
            conn.close()
            raise HttpError(f"connection failed while sending ({_os_reason(exc)})",
                            never_sent=False) from None
        except (http.client.HTTPException, ValueError) as exc:  # nothing went out
            conn.close()
            raise HttpError(f"cannot send the request ({type(exc).__name__}: {exc})",
                            never_sent=True, retry=False) from None
        try:
            resp = conn.getresponse()
            data = resp.read()
            headers = {k.lower(): v for k, v in resp.getheaders()}
        except TimeoutError:
            conn.close()
            raise HttpError("timed out waiting for the response", never_sent=False) from None
        except (ConnectionError, http.client.IncompleteRead):  # incl. RemoteDisconnected
            conn.close()
            raise HttpError("connection dropped before the whole response arrived",
                            never_sent=False) from None
        except OSError as exc:
            conn.close()
            raise HttpError(f"connection failed ({_os_reason(exc)})", never_sent=False) from None
        except (http.client.HTTPException, ValueError) as exc:
            # BadStatusLine, LineTooLong, a bad chunk size, too many headers: the other end
            # does not speak HTTP (a wrong port in base_url, a broken proxy). Retrying the
            # same server cannot help.
            conn.close()
            raise HttpError(f"the server's answer is not valid HTTP ({_http_reason(exc)}); "
                            "is base_url right?", never_sent=False, retry=False) from None
        if resp.will_close:
            conn.close()
        else:
            self._give_back(conn, generation)
        return Response(resp.status, resp.reason, headers, data)

    def _borrow(self):
        """An idle connection the server has not closed, or a new one."""
        pid = os.getpid()
        if self._pid != pid:
            # A forked child: the idle sockets are the parent's (shared descriptors). Forget
            # them without closing, which could disturb the parent, and start afresh.
            self._idle = deque()
            self._pid = pid
        while True:
            try:
                conn = self._idle.pop()
            except IndexError:
                return self._open()
            if not _dropped(conn):
                return conn
            conn.close()

    def _give_back(self, conn, generation: int) -> None:
        if generation != self._generation or self._pid != os.getpid():
            conn.close()
            return
        self._idle.append(conn)
        if generation != self._generation:  # close() ran meanwhile and may have missed it
            self._close_idle()

    def _open(self):
        import http.client

        conn = None
        try:
            conn = self._connection()
            conn.connect()
        except TimeoutError:
            _close(conn)
            raise HttpError("timed out connecting (server unreachable)", never_sent=True) from None
        except OSError as exc:
            _close(conn)
            if _is_tls_error(exc):
                # A certificate or protocol mismatch (https:// to a plain-HTTP port) stays
                # the same however often one tries.
                raise HttpError(f"TLS handshake with {self.host} failed ({_tls_reason(exc)})",
                                never_sent=True, retry=False) from None
            raise HttpError(f"connection failed ({_os_reason(exc)}; server unreachable)",
                            never_sent=True) from None
        except (http.client.HTTPException, ValueError) as exc:
            # A host name that cannot be encoded (UnicodeError from IDNA) or holds control
            # characters, a proxy that answers CONNECT with something that is not HTTP.
            _close(conn)
            raise HttpError(f"cannot connect to {self.host!r} ({_http_reason(exc)})",
                            never_sent=True, retry=False) from None
        conn.sock.settimeout(self.read_timeout)
        return conn

    def _connection(self):
        import http.client

        host, port = (self.proxy.host, self.proxy.port) if self.proxy else (self.host, self.port)
        if self.scheme != "https":
            return http.client.HTTPConnection(host, port, timeout=self.connect_timeout)
        import ssl

        conn = http.client.HTTPSConnection(host, port, timeout=self.connect_timeout,
                                           context=ssl.create_default_context())
        if self.proxy:
            tunnel_headers = {"Proxy-Authorization": self.proxy.auth} if self.proxy.auth \
                else None
            conn.set_tunnel(self.host, self.port, headers=tunnel_headers)
        return conn

    @property
    def _conn(self):
        """The connection the next request would try first (None when none is idle); what
        tests/core/test_http.py inspects to see keep-alive at work."""
        try:
            return self._idle[-1]
        except IndexError:
            return None

    def close(self) -> None:
        """Close every connection: the idle ones now, those in use when their request ends."""
        self._generation += 1
        if self._pid != os.getpid():
            self._idle = deque()  # the parent's, see _borrow
            return
        self._close_idle()

    def _close_idle(self) -> None:
        while True:
            try:
                conn = self._idle.pop()
            except IndexError:
                return
            conn.close()


def _close(conn) -> None:
    if conn is not None:
        conn.close()


def _dropped(conn) -> bool:
    """A kept-alive connection the server has closed (readable at EOF) must not be reused."""
    sock = conn.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, socket.gaierror):
        return "host name not found"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _http_reason(exc: BaseException) -> str:
    """Why http.client gave up, in one short line (a BadStatusLine carries the bytes the
    server sent instead of a status line: shown clipped and escaped)."""
    detail = str(exc)
    if len(detail) > 60:
        detail = detail[:60] + "…"
    return f"{type(exc).__name__}: {detail!r}" if detail else type(exc).__name__


def _is_tls_error(exc: BaseException) -> bool:
    import sys

    ssl = sys.modules.get("ssl")  # imported only for https; no TLS error without it
    return ssl is not None and isinstance(exc, ssl.SSLError)


def _tls_reason(exc: BaseException) -> str:
    return getattr(exc, "verify_message", None) or getattr(exc, "reason", None) or str(exc)


#: Characters left as they are in a request path (RFC 3986 pchar and "/", plus "%" so that
#: a path the caller already percent-encoded is not encoded twice, and "?" for a caller that
#: put a query in the path).
_PATH_SAFE = "/%:@!$&'()*+,;=-._~?"


@dataclass(frozen=True)
class _Proxy:
    host: str
    port: int
    auth: str | None


def _proxy_for(scheme: str, host: str) -> _Proxy | None:
    """The proxy from HTTPS_PROXY / HTTP_PROXY (either case) unless NO_PROXY covers `host`."""
    env = os.environ
    url = env.get(f"{scheme}_proxy") or env.get(f"{scheme.upper()}_PROXY") or \
        env.get("all_proxy") or env.get("ALL_PROXY")
    if not url:
        return None
    no_proxy = env.get("no_proxy") or env.get("NO_PROXY") or ""
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if entry == "*" or (entry and (host == entry.lstrip(".") or
                                       host.endswith("." + entry.lstrip(".")))):
            return None
    if host in ("localhost", "127.0.0.1", "::1"):
        return None  # loopback never goes through a proxy
    parts = urlsplit(url if "://" in url else "http://" + url)
    auth = None
    if parts.username:
        creds = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        auth = "Basic " + base64.b64encode(creds.encode()).decode()
    return _Proxy(parts.hostname or "", parts.port or 80, auth)
