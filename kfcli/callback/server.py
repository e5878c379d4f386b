"""The embedded HTTP server for the receiver: the standard library's `wsgiref`, one thread per
connection, so that a slow request (or a slow consumer behind the queue) never delays another
answer. Production deployments can use any WSGI server instead (see `kfcli.callback`).
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    # Threads that outlive shutdown are daemons; do not keep a list of them (ThreadingMixIn
    # would otherwise hold every finished thread until server_close()).
    block_on_close = False
    request_queue_size = 128
    #: Connections served at once. One more is answered 503 at once by the accepting thread
    #: (WeCom retries), so threads stay bounded however many clients connect or stall.
    max_connections = 64
    #: Where a failed connection (a client that timed out or sent garbage) is reported, in
    #: one line; socketserver's default prints a traceback.
    log: Callable[[str], None] | None = None
    #: Called with no argument for each connection refused because all slots were taken.
    on_busy: Callable[[], None] | None = None

    def server_activate(self) -> None:
        super().server_activate()
        self._slots = threading.BoundedSemaphore(self.max_connections)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self._busy(request, client_address)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _busy(self, request: Any, client_address: Any) -> None:
        with contextlib.suppress(OSError):
            request.settimeout(1.0)
            request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n"
                            b"Connection: close\r\n\r\n")
        self.shutdown_request(request)
        if self.on_busy is not None:
            self.on_busy()
        now = time.monotonic()
        self._busy_count = getattr(self, "_busy_count", 0) + 1
        if self.log is not None and now - getattr(self, "_busy_logged", -1e9) >= 10.0:
            self._busy_logged = now
            count, self._busy_count = self._busy_count, 0
            self.log(f"{count} connection(s) refused (503) in the last 10 s, the latest from "
                     f"{client_address[0]}: all {self.max_connections} connection slots are "
                     "busy (slow clients? put a buffering proxy such as nginx in front)")

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        exc = sys.exc_info()[1]
        if self.log is not None:
            self.log(f"connection from {client_address[0]} failed: {type(exc).__name__}: {exc}")


class _Handler(WSGIRequestHandler):
    #: A client that stalls mid-request gives up its thread after this many seconds.
    timeout = 10
    #: ... and one that trickles (a byte now and then) after this many in all: a slot is
    #: never held for longer, whatever the client does.
    deadline = 30.0
    log: Callable[[str], None] | None = None

    def handle(self) -> None:
        timer = threading.Timer(self.deadline, self._cut)
        timer.daemon = True
        timer.start()
        try:
            super().handle()
        finally:
            timer.cancel()

    def _cut(self) -> None:
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        if self.log is not None:
            self.log(f"{self.client_address[0]} {format % args}")


def make_server(host: str, port: int, app: Callable, *,
                access_log: Callable[[str], None] | None = None,
                log: Callable[[str], None] | None = None) -> ThreadingWSGIServer:
    """Bind (port 0 picks a free port; `server.server_port` tells which) without serving yet.

    `access_log` gets one line per request; `log` one line per connection that failed outside
    the application (both default to silence)."""
    server_class = ThreadingWSGIServer
    if ":" in host:  # an IPv6 literal such as ::1
        server_class = type("ThreadingWSGIServer6", (ThreadingWSGIServer,),
                            {"address_family": socket.AF_INET6})
    handler = type("Handler", (_Handler,), {"log": staticmethod(access_log) if access_log
                                             else None})
    server = server_class((host, port), handler)
    server.set_app(app)
    server.log = log
    return server


def url_of(server: ThreadingWSGIServer) -> str:
    host, port = server.server_address[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/"
