"""The HTTP side of the simulator: `SandboxServer`, `start()` and the request handler.

Standard library only (``http.server``). One daemon thread per client connection, HTTP/1.1
keep-alive with Content-Length on every response, no per-request logging unless asked for.
What a request *means* is decided in `dispatch`; this module only moves bytes.
"""

from __future__ import annotations

import contextlib
import os
import socket
import socketserver
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from . import dispatch, rules
from .faults import FaultQueue
from .store import Store

LogFn = Callable[[str], None]


class SandboxServer:
    """A simulated WeCom KF API for one SQLite database, served on ``host:port``.

    ``port=0`` picks a free port; `base_url` tells which. `credentials` are the simulated
    corp's ``corp_id``, app ``secret``, callback ``token`` and ``aes_key``.
    """

    def __init__(
        self,
        db_path: str | os.PathLike[str],
        host: str = "127.0.0.1",
        port: int = 0,
        token_ttl: int = rules.DEFAULT_TOKEN_TTL,
        log: LogFn | None = None,
    ) -> None:
        self.store = Store(db_path)
        self.token_ttl = token_ttl
        self.log = log
        self.credentials: dict[str, str] = self.store.credentials()
        self.faults = FaultQueue()
        self.stats = dispatch.RequestStats()
        try:
            self._httpd = _HTTPServer((host, port), self)
        except BaseException:
            self.store.close()
            raise
        self._thread: threading.Thread | None = None
        self._serving = False
        self._stopped = False

    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def serve_forever(self) -> None:
        """Serve in the calling thread until `stop` is called (or KeyboardInterrupt)."""
        self._serving = True
        try:
            self._httpd.serve_forever(poll_interval=0.1)
        finally:
            self._serving = False

    def start(self) -> SandboxServer:
        """Serve in a daemon thread and return at once."""
        self._serving = True
        self._thread = threading.Thread(
            target=self.serve_forever, name=f"kfcli-sandbox-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, drop open client connections and close the database."""
        if self._stopped:
            return
        self._stopped = True
        if self._serving:
            # shutdown() waits for the accept loop to notice (up to its poll interval);
            # a throw-away connection wakes the loop at once.
            stopper = threading.Thread(target=self._httpd.shutdown, daemon=True)
            stopper.start()
            self._wake()
            stopper.join()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd.server_close()
        self._httpd.drop_connections(wait=2.0)
        self.store.close()

    def _wake(self) -> None:
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            host = "::1" if ":" in host else "127.0.0.1"
        with contextlib.suppress(OSError), socket.create_connection((host, self.port), 0.5):
            pass

    def __enter__(self) -> SandboxServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start(
    db_path: str | os.PathLike[str],
    host: str = "127.0.0.1",
    port: int = 0,
    token_ttl: int = rules.DEFAULT_TOKEN_TTL,
    log: LogFn | None = None,
) -> SandboxServer:
    """Open (or create) the database at ``db_path`` and serve it in a background thread."""
    return SandboxServer(db_path, host, port, token_ttl, log).start()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # Many concurrent kfcli processes may connect at once; don't refuse them.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: SandboxServer) -> None:
        self.app = app
        self._conn_lock = threading.Condition()
        self._open: set[socket.socket] = set()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind() resolves the host name with socket.getfqdn(), which can
        # stall on a machine with slow DNS; every embedded start would pay for it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            self._open.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            # This thread's SQLite connection dies with the client connection.
            self.app.store.release_thread_connection()
            with self._conn_lock:
                self._open.discard(request)
                self._conn_lock.notify_all()

    def drop_connections(self, wait: float) -> None:
        """Shut down idle keep-alive connections and wait a little for their threads."""
        with self._conn_lock:
            for sock in list(self._open):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self._conn_lock.wait_for(lambda: not self._open, timeout=wait)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-response are normal (the disconnect fault does it on
        # purpose); report only when a log is wanted.
        if self.app.log is not None:
            import traceback

            self.app.log(traceback.format_exc())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kfcli-sandbox"
    sys_version = ""
    timeout = 300  # idle keep-alive connections are closed after this many seconds
    # Buffer the response so headers and body leave in one segment (flushed at the end of
    # each request by http.server); with TCP_NODELAY this avoids the ~40 ms Nagle /
    # delayed-ACK stall per keep-alive request.
    wbufsize = 64 * 1024
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle_expect_100(self) -> bool:
        # The buffered writer would hold "100 Continue" back until the request is done.
        accepted = super().handle_expect_100()
        self.wfile.flush()
        return accepted

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def _serve(self) -> None:
        body = self._read_body()
        if body is None:
            return
        response = dispatch.handle(
            self.server.app,
            self.command,
            self.path,
            self.headers,
            body,
            self.client_address[0],
        )
        if response.disconnect:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(response.status, response.body, response.content_type, response.headers)

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self._refuse(400, "bad Content-Length")
            return None
        if length > rules.MAX_BODY_BYTES:
            self._refuse(413, "request body too large")
            return None
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes | None:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                self._refuse(400, "bad chunked encoding")
                return None
            if size == 0:
                while self.rfile.readline(1024).strip():  # trailers
                    pass
                return b"".join(chunks)
            total += size
            if total > rules.MAX_BODY_BYTES:
                self._refuse(413, "request body too large")
                return None
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)  # CRLF after the chunk

    def _refuse(self, status: int, message: str) -> None:
        # The unread body makes the connection unusable: answer and close it.
        self.close_connection = True
        payload = dispatch.json_response({"errcode": status, "errmsg": f"sandbox: {message}"})
        self._send(status, payload.body, payload.content_type, [("Connection", "close")])

    def _send(
        self, status: int, body: bytes, content_type: str, headers: list[tuple[str, str]]
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log = self.server.app.log
        if log is not None:
            log(f"{self.address_string()} {format % args}")
