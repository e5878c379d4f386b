"""Test doubles for issue 13: a small HTTP forward proxy and a TLS front, both on loopback
(port 0), and a throwaway CA made with the `openssl` command.

`FakeProxy` answers every request with a fixed status (`answer="407 Proxy Authentication
Required"`), or forwards: CONNECT tunnels to `upstream` (whatever host the client asked for:
the client never resolves it) and absolute-URL requests to `upstream` too. With `user` and
`password` it demands Basic credentials (407 otherwise). It counts what it was asked.

`TlsFront` terminates TLS with a certificate for kf.test/localhost/127.0.0.1 signed by the
throwaway CA and relays each request to an HTTP server (the sandbox).

Issue 23: `TlsTunnel` puts TLS in front of a `FakeProxy` (together an https:// proxy), and
`Socks5Proxy` is a small SOCKS5 server (with or without username/password) that sends every
connection to one upstream. Everything listens on loopback only.
"""

from __future__ import annotations

import base64
import contextlib
import select
import socket
import ssl
import struct
import subprocess
import threading
from pathlib import Path


def make_ca(directory: Path) -> dict[str, Path]:
    """A CA (ca.pem) and a server certificate it signed (server.pem, server.key)."""
    d = directory
    ext = d / "server.ext"
    ext.write_text("subjectAltName=DNS:kf.test,DNS:localhost,IP:127.0.0.1\n"
                   "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                   "extendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\n"
                   "authorityKeyIdentifier=keyid\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    steps = [
        ["openssl", "req", "-x509", *ec, "-keyout", d / "ca.key", "-out", d / "ca.pem",
         "-days", "2", "-subj", "/CN=kfcli test CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ["openssl", "req", *ec, "-keyout", d / "server.key", "-out", d / "server.csr",
         "-subj", "/CN=kf.test"],
        ["openssl", "x509", "-req", "-in", d / "server.csr", "-CA", d / "ca.pem",
         "-CAkey", d / "ca.key", "-CAcreateserial", "-out", d / "server.pem", "-days", "2",
         "-extfile", ext],
    ]
    for step in steps:
        subprocess.run([str(a) for a in step], check=True, capture_output=True)
    return {"ca": d / "ca.pem", "cert": d / "server.pem", "key": d / "server.key"}


def _read_head(conn: socket.socket, buf: bytes = b"") -> tuple[bytes, bytes] | None:
    """(head up to and including the blank line, what followed) or None at EOF."""
    while b"\r\n\r\n" not in buf:
        data = conn.recv(65536)
        if not data:
            return None
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head + b"\r\n\r\n", rest


def _header(head: bytes, name: str) -> str | None:
    for line in head.decode("latin-1").split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


def _read_body(conn: socket.socket, head: bytes, rest: bytes) -> bytes:
    length = int(_header(head, "Content-Length") or 0)
    while len(rest) < length:
        data = conn.recv(65536)
        if not data:
            break
        rest += data
    return rest[:length]


def _forward(upstream: tuple[str, int], head: bytes, body: bytes) -> bytes:
    """Send one request (its target made origin-form) upstream with Connection: close;
    returns the whole answer."""
    line, _, headers = head.partition(b"\r\n")
    method, target, version = line.split(b" ", 2)
    if b"://" in target:
        target = b"/" + target.split(b"://", 1)[1].partition(b"/")[2]
    kept = [h for h in headers.split(b"\r\n") if h and not h.lower().startswith(
        (b"proxy-authorization:", b"connection:"))]
    request = b" ".join((method, target, version)) + b"\r\n" + b"\r\n".join(
        [*kept, b"Connection: close"]) + b"\r\n\r\n" + body
    with socket.create_connection(upstream, timeout=10) as up:
        up.sendall(request)
        chunks = []
        while data := up.recv(65536):
            chunks.append(data)
    answer = b"".join(chunks)
    if b"\r\nconnection: close" not in answer.partition(b"\r\n\r\n")[0].lower():
        status, _, tail = answer.partition(b"\r\n")  # we close after it: say so
        answer = status + b"\r\nConnection: close\r\n" + tail
    return answer


class _Server:
    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop = True
        self.sock.close()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve_safely, args=(conn,), daemon=True).start()

    def _serve_safely(self, conn: socket.socket) -> None:
        try:
            with conn:
                conn.settimeout(10)
                self.serve(conn)
        except (OSError, ssl.SSLError):
            pass

    def serve(self, conn: socket.socket) -> None:
        raise NotImplementedError


class FakeProxy(_Server):
    def __init__(self, *, answer: str | None = None, upstream: tuple[str, int] | None = None,
                 user: str | None = None, password: str | None = None,
                 hasty: bool = False, connect_upstream: tuple[str, int] | None = None) -> None:
        super().__init__()
        self.connect_upstream = connect_upstream or upstream  # where CONNECT goes, if not
        self.answer = answer
        #: Like tinyproxy: refuse at once, before reading the request's body (closing with
        #: it unread resets the connection), and answer wrong credentials with 401.
        self.hasty = hasty
        self.upstream = upstream
        self.credentials = None if user is None else "Basic " + base64.b64encode(
            f"{user}:{password}".encode()).decode()
        self.requests: list[str] = []  # request lines, e.g. "CONNECT kf.test:443 HTTP/1.0"
        self.lock = threading.Lock()

    @property
    def connects(self) -> int:
        return sum(1 for line in self.requests if line.startswith("CONNECT "))

    def serve(self, conn: socket.socket) -> None:
        buf = b""
        while True:
            got = _read_head(conn, buf)
            if got is None:
                return
            head, rest = got
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            with self.lock:
                self.requests.append(line)
            status = self.answer
            given = _header(head, "Proxy-Authorization")
            if status is None and self.credentials is not None and given != self.credentials:
                status = "401 Unauthorized" if self.hasty and given else \
                    "407 Proxy Authentication Required"
            if status is not None and self.hasty and int(_header(head, "Content-Length") or 0):
                # As if the body were left unread: answer, then close with a reset.
                conn.sendall((f"HTTP/1.0 {status}\r\nContent-Type: text/html\r\n"
                              "Connection: close\r\n\r\n<h1>no</h1>").encode())
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                struct.pack("ii", 1, 0))  # close with a reset
                return
            if status is not None or self.upstream is None:
                conn.sendall((f"HTTP/1.1 {status or '502 Bad Gateway'}\r\n"
                             'Proxy-Authenticate: Basic realm="corp"\r\n'
                             "Content-Type: text/html\r\nContent-Length: 11\r\n"
                             "Connection: close\r\n\r\n<h1>no</h1>").encode())
                return
            if line.startswith("CONNECT "):
                with socket.create_connection(self.connect_upstream, timeout=10) as up:
                    conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    if rest:
                        up.sendall(rest)
                    _pipe(conn, up)
                return
            body = _read_body(conn, head, rest)
            conn.sendall(_forward(self.upstream, head, body))
            return  # the answer says Connection: close


def _pipe(a: socket.socket, b: socket.socket) -> None:
    while True:
        readable, _, _ = select.select([a, b], [], [], 10)
        if not readable:
            return
        for src in readable:
            data = src.recv(65536)
            if not data:
                return
            (b if src is a else a).sendall(data)


class TlsFront(_Server):
    """HTTPS on loopback relaying to `upstream` (HTTP); `handshakes` counts TLS attempts."""

    def __init__(self, cert: Path, key: Path, upstream: tuple[str, int]) -> None:
        super().__init__()
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.upstream = upstream
        self.handshakes = 0

    def serve(self, conn: socket.socket) -> None:
        self.handshakes += 1
        with self.context.wrap_socket(conn, server_side=True) as tls:
            got = _read_head(tls)
            if got is None:
                return
            head, rest = got
            tls.sendall(_forward(self.upstream, head, _read_body(tls, head, rest)))


def _relay(src: socket.socket, dst: socket.socket) -> None:
    """Copy src to dst until either end closes; then shut both down (the other direction's
    relay ends too). Works for TLS sockets, whose buffered bytes select() would not see."""
    with contextlib.suppress(OSError):  # ssl.SSLError is an OSError
        while data := src.recv(65536):
            dst.sendall(data)
    for sock in (src, dst):
        with contextlib.suppress(OSError, ValueError):
            sock.shutdown(socket.SHUT_RDWR)


def _splice(a: socket.socket, b: socket.socket) -> None:
    other = threading.Thread(target=_relay, args=(b, a), daemon=True)
    other.start()
    _relay(a, b)
    other.join(10)


class TlsTunnel(_Server):
    """TLS on loopback in front of `upstream` (a FakeProxy): together, an https:// proxy.
    `handshakes` counts TLS attempts."""

    def __init__(self, cert: Path, key: Path, upstream: tuple[str, int]) -> None:
        super().__init__()
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.upstream = upstream
        self.handshakes = 0

    def serve(self, conn: socket.socket) -> None:
        self.handshakes += 1
        with self.context.wrap_socket(conn, server_side=True) as tls, \
                socket.create_connection(self.upstream, timeout=10) as up:
            _splice(tls, up)


def _recv_exactly(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed mid-message")
        data += chunk
    return data


class Socks5Proxy(_Server):
    """A SOCKS5 server (RFC 1928, CONNECT only; RFC 1929 username/password when `user` is
    given) that sends every connection to `upstream`, whatever the client asked for.
    `destinations` records what it asked for: ("kf.test", 8443) for a name the proxy is to
    resolve (socks5h://), ("192.0.2.10", 80) for an address."""

    def __init__(self, upstream: tuple[str, int], *, user: str | None = None,
                 password: str | None = None) -> None:
        super().__init__()
        self.upstream = upstream
        self.user, self.password = user, password
        self.destinations: list[tuple[str, int]] = []

    def serve(self, conn: socket.socket) -> None:
        version, count = _recv_exactly(conn, 2)
        methods = _recv_exactly(conn, count)
        wanted = 0x02 if self.user is not None else 0x00
        if version != 5 or wanted not in methods:
            conn.sendall(b"\x05\xff")
            return
        conn.sendall(bytes([5, wanted]))
        if wanted == 0x02:
            _, ulen = _recv_exactly(conn, 2)
            user = _recv_exactly(conn, ulen).decode()
            plen = _recv_exactly(conn, 1)[0]
            password = _recv_exactly(conn, plen).decode()
            ok = (user, password) == (self.user, self.password)
            conn.sendall(b"\x01\x00" if ok else b"\x01\x01")
            if not ok:
                return
        _, command, _, atyp = _recv_exactly(conn, 4)
        if atyp == 1:
            host = socket.inet_ntop(socket.AF_INET, _recv_exactly(conn, 4))
        elif atyp == 4:
            host = socket.inet_ntop(socket.AF_INET6, _recv_exactly(conn, 16))
        else:
            host = _recv_exactly(conn, _recv_exactly(conn, 1)[0]).decode()
        port = struct.unpack("!H", _recv_exactly(conn, 2))[0]
        self.destinations.append((host, port))
        if command != 1:
            conn.sendall(b"\x05\x07\x00\x01" + bytes(6))  # command not supported
            return
        try:
            up = socket.create_connection(self.upstream, timeout=10)
        except OSError:
            conn.sendall(b"\x05\x05\x00\x01" + bytes(6))  # connection refused
            return
        with up:
            conn.sendall(b"\x05\x00\x00\x01" + bytes(6))  # succeeded (bound 0.0.0.0:0)
            _splice(conn, up)
