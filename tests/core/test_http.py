import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from kfcli.core.http import Http, HttpError, _proxy_for, multipart


def test_multipart_carries_filename_and_length():
    body, ctype = multipart("media", 'a"b.png', b"\x89PNGdata", "image/png")
    boundary = ctype.split("boundary=")[1]
    assert body.startswith(f"--{boundary}\r\n".encode())
    assert b'name="media"; filename="a\\"b.png"; filelength=8' in body
    assert body.endswith(f"\r\n--{boundary}--\r\n".encode())


def test_proxy_from_environment(monkeypatch):
    for key in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(key, raising=False)
    assert _proxy_for("https", "qyapi.weixin.qq.com") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://user:p%40ss@proxy.corp:3128")
    proxy = _proxy_for("https", "qyapi.weixin.qq.com")
    assert (proxy.host, proxy.port) == ("proxy.corp", 3128)
    assert proxy.auth == "Basic dXNlcjpwQHNz"  # user:p@ss
    assert _proxy_for("https", "127.0.0.1") is None
    monkeypatch.setenv("NO_PROXY", ".qq.com")
    assert _proxy_for("https", "qyapi.weixin.qq.com") is None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802
        if self.path.startswith("/close"):
            self.close_connection = True
        body = b'{"ok": 1}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_keep_alive_and_recovery_after_server_closes(server):
    http = Http(server, connect_timeout=2, read_timeout=2, user_agent="t")
    assert http.request("GET", "/a").json() == {"ok": 1}
    first = http._conn
    assert http.request("GET", "/b").status == 200 and http._conn is first
    assert http.request("GET", "/close").status == 200
    assert http.request("GET", "/c").json() == {"ok": 1}  # a new connection, transparently
    http.close()


def test_refused_connection_is_never_sent():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    http = Http(f"http://127.0.0.1:{port}", connect_timeout=1, read_timeout=1, user_agent="t")
    with pytest.raises(HttpError) as exc:
        http.request("GET", "/")
    assert exc.value.never_sent


@pytest.mark.parametrize("headers", [{"X-Bad": "a\r\nInjected: 1"}, {"X-Name": "客服"}])
def test_a_request_that_cannot_be_encoded_is_never_sent(server, headers):
    http = Http(server, connect_timeout=2, read_timeout=2, user_agent="t")
    with pytest.raises(HttpError, match="cannot send the request") as exc:
        http.request("GET", "/a", headers=headers)
    assert exc.value.never_sent and not exc.value.retry
    assert http.request("GET", "/b").json() == {"ok": 1}  # the pool is still usable
    http.close()
