"""A small HTTP/1.1 client on the standard library's `http.client`.

Why not `requests`: importing it costs 40-100 ms on every invocation, more than kfcli's whole
start-up budget (a command must stay within 1.3x of a plain `requests` script, see bench/).
kfcli talks to one host with JSON and one multipart upload, which `http.client` covers; this
module adds what a CLI needs on top: keep-alive with a stale-connection check, separate
connect/read timeouts, HTTP(S)_PROXY / ALL_PROXY / NO_PROXY (http:// proxies, Basic proxy
authentication), extra CA certificates on top of the system trust store (one SSL context per
`Http`), errors that say whether the request can have reached the server (which decides
whether a retry is safe) and name the proxy or the certificate at fault, and a pool of
connections so that one `Http` can serve many threads (an `http.client` connection serves one
exchange at a time).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import select
import socket
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, BinaryIO
from urllib.parse import quote, unquote, urlencode, urlsplit


class HttpError(Exception):
    """Every failure of `Http.request`: whatever http.client, the socket, TLS or the proxy
    raised is turned into this one type, with a reason a user can read.

    `never_sent` is True when the server cannot have seen the request. `retry` is False when
    trying again cannot help (an answer that is not HTTP, a TLS or host-name problem, a request
    that cannot be encoded).

    `config` is True when the fix is in the local setup, not the network (a proxy that wants
    other credentials or refuses the destination, a CA bundle that cannot be loaded): the
    CLI exits 3 for it. `stale` is True when a kept-alive connection failed before any byte
    of the answer arrived (the server had closed it): worth one immediate retry on a new
    connection. `hint` says what to change."""

    def __init__(self, reason: str, *, never_sent: bool, retry: bool = True,
                 config: bool = False, stale: bool = False, hint: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.never_sent = never_sent
        self.retry = retry
        self.config = config
        self.stale = stale
        self.hint = hint


class SettingError(ValueError):
    """A proxy or CA bundle setting kfcli cannot use (a malformed proxy URL, an unsupported
    proxy scheme, a CA bundle file that cannot be read). The message names the variable."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


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


def _refused_by_proxy(status: int, content_type: str) -> bool:
    """Whether an answer to a request through a plain-HTTP proxy is the proxy refusing it:
    407, or 401/403 that is not JSON (tinyproxy answers wrong credentials with 401; WeCom
    answers everything with JSON)."""
    return status == 407 or (status in (401, 403) and "json" not in content_type.lower())


def _is_text(headers: dict[str, str]) -> bool:
    ctype = headers.get("content-type", "").lower()
    return "json" in ctype or ctype.startswith("text/")


def _copy(resp, sink: BinaryIO) -> int:
    """Copy a response body to `sink` a block at a time; returns the bytes copied. An
    OSError of the sink (a full disk) is not the connection's: raised as SinkError."""
    total = 0
    while True:
        block = resp.read(1 << 16)
        if not block:
            return total
        try:
            sink.write(block)
        except OSError as exc:
            raise SinkError(exc) from None
        total += len(block)


class SinkError(Exception):
    """Writing a streamed answer where it was to go failed (`original`: the OSError)."""

    def __init__(self, original: OSError) -> None:
        super().__init__(str(original))
        self.original = original


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
                 user_agent: str, ca_bundle: str | None = None,
                 ca_bundle_from: str = "ca_bundle") -> None:
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
        self.proxy = _proxy_for(self.scheme, self.host, self.port)
        # CA certificates trusted on top of the system store: `ca_bundle` (KFCLI_CA_BUNDLE
        # or the profile's ca_bundle), else what requests and curl users already set.
        self.ca_bundle = _ca_bundle(ca_bundle, ca_bundle_from) if self.scheme == "https" \
            else None
        # One SSL context for every connection (building one reads the whole system trust
        # store, ~40 ms), made at the first TLS connection.
        self._ssl_context: Any = None
        self._ssl_lock = threading.Lock()
        # Idle connections, most recently used last. deque's append and pop are atomic, so
        # the pool needs no lock (and a fork can never leave one held in the child).
        self._idle: deque[Any] = deque()
        self._pid = os.getpid()
        self._generation = 0  # bumped by close(): borrowed connections are not pooled again

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                body: bytes | None = None, headers: dict[str, str] | None = None,
                sink: BinaryIO | None = None) -> Response:
        """One exchange. With `sink`, a successful answer that is not JSON or text (a media
        download) is written to it as it arrives, never held whole in memory; the
        Response's body is then empty and its `streamed` the number of bytes written."""
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
        reused = getattr(conn, "kfcli_reused", False)
        import http.client

        # On any failure the connection is closed, never given back: its state is unknown.
        try:
            conn.request(method, target, body=body, headers=all_headers)
        except TimeoutError:
            conn.close()
            raise HttpError("timed out", never_sent=False) from None
        except OSError as exc:
            conn.close()
            if reused and isinstance(exc, (ConnectionResetError, BrokenPipeError)):
                raise self._stale() from None
            self._diagnose_proxy(target, all_headers)
            raise HttpError(f"connection failed while sending ({_os_reason(exc)})",
                            never_sent=False) from None
        except (http.client.HTTPException, ValueError) as exc:  # nothing went out
            conn.close()
            raise HttpError(f"cannot send the request ({type(exc).__name__}: {exc})",
                            never_sent=True, retry=False) from None
        try:
            try:
                resp = conn.getresponse()
            except ConnectionResetError:  # incl. RemoteDisconnected: no status line came
                if not reused:
                    raise
                conn.close()
                raise self._stale() from None
            headers = {k.lower(): v for k, v in resp.getheaders()}
            streamed = None
            if sink is not None and resp.status == 200 and not _is_text(headers):
                data, streamed = b"", _copy(resp, sink)
            else:
                data = resp.read()
        except SinkError:
            conn.close()  # the rest of the answer is unread
            raise
        except TimeoutError:
            conn.close()
            raise HttpError("timed out waiting for the response", never_sent=False) from None
        except (ConnectionError, http.client.IncompleteRead):  # incl. RemoteDisconnected
            conn.close()
            self._diagnose_proxy(target, all_headers)
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
        if self.proxy and self.scheme == "http" and \
                _refused_by_proxy(resp.status, headers.get("content-type", "")):
            # A plain-HTTP proxy answers the absolute-URL request itself.
            raise self._proxy_refused(resp.status, resp.reason)
        return Response(resp.status, resp.reason, headers, data, streamed)

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

    def _stale(self) -> HttpError:
        """A kept-alive connection the server closed before answering (it had timed it out):
        the idle ones, older still, are dropped too, so the retry opens a new one."""
        self._close_idle()
        return HttpError("the server closed the kept-alive connection before answering",
                         never_sent=False, stale=True)

    def _diagnose_proxy(self, target: str, headers: dict[str, str]) -> None:
        """A plain-HTTP proxy that refuses a request often answers 407 and closes the
        connection without reading the request's body, and the unread body makes the
        connection reset: the answer is lost. Ask again without a body (GET, never taking
        effect) and raise the refusal if that is what it was; else return."""
        if not (self.proxy and self.scheme == "http"):
            return
        import http.client

        probe = None
        try:
            probe = self._connection()
            probe.connect()
            probe.request("GET", target, headers={k: v for k, v in headers.items()
                                                  if k != "Content-Type"})
            resp = probe.getresponse()
            status, reason = resp.status, resp.reason
            ctype = resp.getheader("content-type") or ""
        except (OSError, http.client.HTTPException, ValueError):
            return
        finally:
            _close(probe)
        if _refused_by_proxy(status, ctype):
            raise self._proxy_refused(status, reason)

    def _proxy_refused(self, code: int, message: str) -> HttpError:
        assert self.proxy is not None
        config, retry, advice = _proxy_refusal(self.proxy, code)
        what = f"CONNECT {self.host}:{self.port}" if self.scheme == "https" else \
            f"a request for {self.host}:{self.port}"
        return HttpError(f"proxy {self.proxy.address} answered {code} {message.strip()} to "
                         f"{what}: {advice}", never_sent=True, retry=retry, config=config)

    def _give_back(self, conn, generation: int) -> None:
        conn.kfcli_reused = True  # a later failure before any answer means it went stale
        if generation != self._generation or self._pid != os.getpid():
            conn.close()
            return
        self._idle.append(conn)
        if generation != self._generation:  # close() ran meanwhile and may have missed it
            self._close_idle()

    def _open(self):
        import http.client

        conn = None
        proxy = self.proxy
        try:
            conn = self._connection()
            conn.connect()
        except _AtProxy as exc:
            _close(conn)
            assert proxy is not None
            what = "timed out" if isinstance(exc.original, TimeoutError) else \
                _os_reason(exc.original)
            raise HttpError(f"cannot connect to proxy {proxy.address} from {proxy.variable} "
                            f"({what})", never_sent=True,
                            hint=f"check {proxy.variable}, or list {self.host} in NO_PROXY "
                            "if it must be reached directly") from None
        except TimeoutError:
            _close(conn)
            where = f" through proxy {proxy.address}" if proxy else " (server unreachable)"
            raise HttpError(f"timed out connecting{where}", never_sent=True) from None
        except OSError as exc:
            _close(conn)
            if _is_cert_error(exc):
                # An untrusted or mismatched certificate stays so however often one tries;
                # behind a TLS-inspecting proxy the fix is trusting the corporation's CA.
                raise HttpError(f"TLS certificate of {self.host} is not trusted "
                                f"({_tls_reason(exc)})", never_sent=True, retry=False,
                                hint=_CA_HINT) from None
            if _is_tls_error(exc):
                # A protocol mismatch (https:// to a plain-HTTP port) stays the same too.
                raise HttpError(f"TLS handshake with {self.host} failed ({_tls_reason(exc)})",
                                never_sent=True, retry=False) from None
            refused = _tunnel_status(exc)
            if proxy and refused:
                raise self._proxy_refused(*refused) from None
            if proxy:
                raise HttpError(f"proxy {proxy.address} failed during CONNECT {self.host}:"
                                f"{self.port} ({_os_reason(exc)})", never_sent=True) from None
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
            conn = http.client.HTTPConnection(host, port, timeout=self.connect_timeout)
        else:
            conn = http.client.HTTPSConnection(host, port, timeout=self.connect_timeout,
                                               context=self._context())
        if self.proxy:
            # http.client's own seam for dialling: failures there are the proxy's, named so.
            conn._create_connection = _proxy_dialer()
            if self.scheme == "https":
                tunnel_headers = {"Proxy-Authorization": self.proxy.auth} \
                    if self.proxy.auth else None
                conn.set_tunnel(self.host, self.port, headers=tunnel_headers)
        return conn

    def _context(self):
        """The SSL context every connection of this Http shares."""
        context = self._ssl_context
        if context is None:
            with self._ssl_lock:
                if self._ssl_context is None:
                    self._ssl_context = _new_context(self.ca_bundle)
                context = self._ssl_context
        return context

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


def _is_cert_error(exc: BaseException) -> bool:
    import sys

    ssl = sys.modules.get("ssl")
    return ssl is not None and isinstance(exc, ssl.SSLCertVerificationError)


def _tunnel_status(exc: BaseException) -> tuple[int, str] | None:
    """(status, reason) of a proxy's refusal of CONNECT, which http.client raises as
    OSError("Tunnel connection failed: 407 Proxy Authentication Required")."""
    import re

    match = re.match(r"Tunnel connection failed: (\d{3}) ?(.*)", str(exc), re.S)
    return (int(match.group(1)), match.group(2)) if match else None


_CA_HINT = ("behind a TLS-inspecting proxy, trust your organisation's CA: set KFCLI_CA_BUNDLE "
            "(or REQUESTS_CA_BUNDLE) to its certificate, a PEM file")


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
    variable: str = "HTTPS_PROXY"  # the environment variable it came from
    user: str | None = None

    @property
    def address(self) -> str:
        """host:port as a user would write it ([v6]:port); never the credentials."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def shown(self) -> str:
        """The proxy for display: http://user:****@host:port, the password masked."""
        user = f"{quote(self.user, safe='')}:****@" if self.user is not None else ""
        return f"http://{user}{self.address}"


#: Proxy URL schemes kfcli refuses, with why (it speaks HTTP to the proxy: CONNECT for
#: https:// targets, absolute URLs for http:// ones).
_REFUSED_SCHEMES = {
    "https": "TLS to the proxy itself is not supported; use http://host:port (the tunnel "
             "to WeCom through it is still TLS end to end)",
    "socks4": "SOCKS proxies are not supported; use an HTTP proxy (http://host:port)",
    "socks4a": "SOCKS proxies are not supported; use an HTTP proxy (http://host:port)",
    "socks5": "SOCKS proxies are not supported; use an HTTP proxy (http://host:port)",
    "socks5h": "SOCKS proxies are not supported; use an HTTP proxy (http://host:port)",
}


def _proxy_variable(scheme: str, env) -> tuple[str, str] | None:
    """(name, value) of the first proxy variable set for `scheme`: lower case before upper
    case, as curl and requests read them; ALL_PROXY last."""
    for name in (f"{scheme}_proxy", f"{scheme.upper()}_PROXY", "all_proxy", "ALL_PROXY"):
        value = env.get(name, "").strip()
        if value:
            return name, value
    return None


def _proxy_for(scheme: str, host: str, port: int | None = None) -> _Proxy | None:
    """The proxy from HTTPS_PROXY / HTTP_PROXY / ALL_PROXY (either case) unless NO_PROXY
    covers `host` (and `port`) or `host` is a loopback address. A proxy URL kfcli cannot use
    raises SettingError naming the variable."""
    env = os.environ
    found = _proxy_variable(scheme, env)
    if not found:
        return None
    no_proxy = env.get("no_proxy") or env.get("NO_PROXY") or ""
    if _is_loopback(host) or _bypassed(host, port, no_proxy):
        return None
    return _parse_proxy(*found)


def _parse_proxy(variable: str, url: str) -> _Proxy:
    hint = (f"set {variable} to http://HOST:PORT, with user:password@ before the host if the "
            "proxy wants credentials")
    try:
        parts = urlsplit(url if "://" in url else "http://" + url)
        proxy_port = parts.port
    except ValueError as exc:  # a bad port, an unclosed [v6 address
        raise SettingError(f"{variable} is not a valid proxy URL ({_url_problem(exc)})",
                           hint=hint) from None
    scheme = parts.scheme.lower()
    if scheme in _REFUSED_SCHEMES:
        raise SettingError(f"{variable} names a {scheme}:// proxy: {_REFUSED_SCHEMES[scheme]}",
                           hint=hint)
    if scheme != "http":
        raise SettingError(f"{variable} names a {scheme}:// proxy; kfcli supports http:// "
                           "proxies", hint=hint)
    if not parts.hostname:
        raise SettingError(f"{variable} is not a valid proxy URL (no host name)", hint=hint)
    if proxy_port == 0:
        raise SettingError(f"{variable} is not a valid proxy URL (port 0)", hint=hint)
    auth = user = None
    if parts.username is not None:
        user = unquote(parts.username)
        creds = f"{user}:{unquote(parts.password or '')}"
        auth = "Basic " + base64.b64encode(creds.encode()).decode()
        from kfcli.core.redact import register_secret

        if parts.password:
            register_secret(unquote(parts.password))
            register_secret(parts.password)
        register_secret(base64.b64encode(creds.encode()).decode())
    return _Proxy(parts.hostname, proxy_port or 80, auth, variable, user)


def _url_problem(exc: ValueError) -> str:
    text = str(exc)
    if "out of range" in text:
        return "the port is not in 1-65535"
    if "Port could not be cast" in text or "invalid literal" in text:
        return "the port is not a number"
    if "IPv6" in text or "[" in text:
        return "an unclosed [IPv6 address]"
    return "cannot be parsed"


def _ip(host: str):
    import ipaddress

    try:
        return ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return None


def _is_loopback(host: str) -> bool:
    """localhost and every loopback address (127.0.0.0/8, ::1) never use a proxy."""
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    ip = _ip(host)
    return ip is not None and ip.is_loopback


def _bypassed(host: str, port: int | None, no_proxy: str) -> bool:
    """Whether NO_PROXY covers host[:port]. Entries, comma separated: `*`; a domain
    (`example.com` and `.example.com` both cover it and its subdomains); an IP address; a
    CIDR block (`10.0.0.0/8`); any of these with `:port`; `[v6]` or `[v6]:port`."""
    import ipaddress

    host = host.lower().rstrip(".")
    ip = _ip(host)
    for entry in (e.strip().lower() for e in no_proxy.replace(" ", ",").split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        entry_port = None
        if entry.startswith("["):  # [v6] or [v6]:port
            close = entry.find("]")
            entry, rest = entry[1:close], entry[close + 1:]
            if rest.startswith(":") and rest[1:].isdigit():
                entry_port = int(rest[1:])
        elif entry.count(":") == 1:  # host:port or v4:port (a bare v6 has several colons)
            name, _, number = entry.partition(":")
            if number.isdigit():
                entry, entry_port = name, int(number)
        if entry_port is not None and port is not None and entry_port != port:
            continue
        if "/" in entry:
            try:
                net = ipaddress.ip_network(entry, strict=False)
            except ValueError:
                continue
            if ip is not None and ip.version == net.version and ip in net:
                return True
            continue
        entry_ip = _ip(entry)
        if entry_ip is not None:
            if ip is not None and ip == entry_ip:
                return True
            continue
        domain = entry.lstrip(".").lstrip("*.").rstrip(".")
        if domain and (host == domain or host.endswith("." + domain)):
            return True
    return False


@dataclass(frozen=True)
class CaBundle:
    path: str
    variable: str  # where it was set: KFCLI_CA_BUNDLE, profile 'x' ca_bundle, REQUESTS_CA_BUNDLE…


def _ca_bundle(path: str | None, where: str) -> CaBundle | None:
    """The extra CA certificates to trust: `path` (from `where`), else REQUESTS_CA_BUNDLE,
    else CURL_CA_BUNDLE. A file (or directory of hashed certificates) that cannot be read
    raises SettingError naming where it was set."""
    if not path:
        for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
            if os.environ.get(name, "").strip():
                path, where = os.environ[name].strip(), name
                break
        else:
            return None
    path = os.path.expanduser(path)
    hint = f"point {where} at a PEM file holding your CA's certificate, or unset it"
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            with open(path, "rb") as f:
                f.read(1)
    except OSError as exc:
        raise SettingError(f"CA bundle {path} from {where} cannot be read "
                           f"({exc.strerror or exc})", hint=hint) from None
    return CaBundle(path, where)


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


class _AtProxy(Exception):
    """Connecting to the proxy itself failed (`original`: the OSError); raised through
    http.client, which lets it pass, so that `_open` can name the proxy."""

    def __init__(self, original: OSError) -> None:
        super().__init__(str(original))
        self.original = original


def _proxy_dialer(create=socket.create_connection):
    def dial(*args, **kwargs):
        try:
            return create(*args, **kwargs)
        except OSError as exc:
            raise _AtProxy(exc) from None

    return dial


#: What a proxy's refusal of CONNECT means, by status: (exit 3?, retry?, advice).
def _proxy_refusal(proxy: _Proxy, code: int) -> tuple[bool, bool, str]:
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
