"""The HTTP layer behind corporate networks (issue 13): NO_PROXY forms and loopback, proxy
failures named and retried only when that can help, one SSL context per `Http`, and an
immediate retry when a kept-alive connection turns out to be closed."""

from __future__ import annotations

import socket
import threading

import pytest

from kfcli.core import http as http_module
from kfcli.core.client import KfClient, RetryPolicy
from kfcli.core.errors import ConfigError, NetworkError
from kfcli.core.http import Http, SettingError, _proxy_for
from tests.proxyutil import FakeProxy, TlsFront, make_ca

PROXY_VARS = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
              "ALL_PROXY", "no_proxy", "NO_PROXY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
FAST = RetryPolicy(max_retries=3, base_delay=0.001, max_delay=0.001)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)


def _client(base_url: str, **kwargs) -> KfClient:
    return KfClient("wwcorp", "corp-secret-value", base_url=base_url, retry=FAST, timeout=5,
                    **kwargs)


def _get(client: KfClient, path: str = "/x", *, retry_safe: bool = True):
    resp, _ = client._send("GET" if retry_safe else "POST", path, params={}, body=None,
                           headers=None, retry_safe=retry_safe)
    return resp


@pytest.mark.parametrize("no_proxy, host, port, bypassed", [
    ("kf.test:8443", "kf.test", 8443, True),
    ("kf.test:8443", "kf.test", 443, False),
    ("10.0.0.0/8", "10.1.2.3", 443, True),
    ("10.0.0.0/8", "11.1.2.3", 443, False),
    ("10.0.0.0/8", "qyapi.weixin.qq.com", 443, False),
    ("192.168.1.5", "192.168.1.5", 443, True),
    ("192.168.1.5:443", "192.168.1.5", 443, True),
    ("fd00::/8", "fd00::1", 443, True),
    ("[fd00::1]:443", "fd00::1", 443, True),
    (".qq.com", "qyapi.weixin.qq.com", 443, True),
    ("qq.com", "qyapi.weixin.qq.com", 443, True),
    ("*.qq.com", "qyapi.weixin.qq.com", 443, True),
    ("xqq.com", "qyapi.weixin.qq.com", 443, False),
    ("other.test, qyapi.weixin.qq.com", "qyapi.weixin.qq.com", 443, True),
    ("*", "anything.test", 443, True),
    ("", "127.0.0.2", 443, True),  # every loopback address, without NO_PROXY
    ("", "::1", 443, True),
    ("", "localhost", 443, True),
    ("", "127.example.com", 443, False),
])
def test_no_proxy_forms_and_loopback(monkeypatch, no_proxy, host, port, bypassed):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    monkeypatch.setenv("NO_PROXY", no_proxy)
    assert (_proxy_for("https", host, port) is None) is bypassed


def test_proxy_variables_and_shown_form(monkeypatch):
    monkeypatch.setenv("ALL_PROXY", "http://al%40ice:p%40ss@proxy.corp:3128")
    proxy = _proxy_for("https", "qyapi.weixin.qq.com", 443)
    assert (proxy.host, proxy.port, proxy.variable) == ("proxy.corp", 3128, "ALL_PROXY")
    assert proxy.shown() == "http://al%40ice:****@proxy.corp:3128"
    monkeypatch.setenv("https_proxy", "proxy.corp")  # no scheme: http://, port 80
    proxy = _proxy_for("https", "qyapi.weixin.qq.com", 443)
    assert (proxy.address, proxy.variable, proxy.auth) == ("proxy.corp:80", "https_proxy", None)


@pytest.mark.parametrize("url", ["gopher://p:70", "ftp://p:21",
                                 "http://p:80a", "http://p:99999", "http://[::1", "http://:8080"])
def test_unusable_proxy_url_is_a_setting_error(monkeypatch, url):
    monkeypatch.setenv("HTTPS_PROXY", url)
    with pytest.raises(SettingError, match="HTTPS_PROXY"):
        Http("https://qyapi.weixin.qq.com", connect_timeout=1, read_timeout=1, user_agent="t")
    with pytest.raises(ConfigError, match="HTTPS_PROXY"):
        _client("https://qyapi.weixin.qq.com")


def test_proxy_5xx_to_connect_is_retried_and_names_the_proxy(monkeypatch):
    with FakeProxy(answer="502 Bad Gateway") as proxy:
        monkeypatch.setenv("HTTPS_PROXY", f"http://alice:pw-secret@127.0.0.1:{proxy.port}")
        client = _client("https://qyapi.weixin.qq.com")
        with pytest.raises(NetworkError) as exc:
            _get(client)
    assert f"proxy 127.0.0.1:{proxy.port} answered 502 Bad Gateway to CONNECT " \
        "qyapi.weixin.qq.com:443" in exc.value.message
    assert proxy.connects == 1 + FAST.max_retries
    assert "pw-secret" not in exc.value.message


def test_proxy_407_is_a_config_error_tried_once(monkeypatch):
    with FakeProxy(answer="407 Proxy Authentication Required") as proxy:
        monkeypatch.setenv("HTTPS_PROXY", f"http://alice:pw-secret@127.0.0.1:{proxy.port}")
        with pytest.raises(ConfigError, match="check the credentials in HTTPS_PROXY"):
            _get(_client("https://qyapi.weixin.qq.com"))
    assert proxy.connects == 1


def test_unreachable_proxy_is_named(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
    with pytest.raises(NetworkError) as exc:
        _get(_client("https://qyapi.weixin.qq.com"))
    assert f"cannot connect to proxy 127.0.0.1:{port} from HTTPS_PROXY (" in exc.value.message
    assert "NO_PROXY" in exc.value.hint


def test_one_ssl_context_per_http(tmp_path, monkeypatch):
    ca = make_ca(tmp_path)
    made = []
    real = http_module._new_context
    monkeypatch.setattr(http_module, "_new_context", lambda b: made.append(b) or real(b))
    with _Answering() as upstream, TlsFront(ca["cert"], ca["key"],
                                            ("127.0.0.1", upstream.port)) as front:
        http = Http(f"https://localhost:{front.port}", connect_timeout=5, read_timeout=5,
                    user_agent="t", ca_bundle=str(ca["ca"]), ca_bundle_from="KFCLI_CA_BUNDLE")
        for _ in range(3):  # the front closes every connection: three handshakes
            assert http.request("GET", "/").status == 200
    assert front.handshakes == 3
    assert len(made) == 1 and made[0].variable == "KFCLI_CA_BUNDLE"


class _Answering:
    """A raw HTTP server on loopback. Every connection answers its requests (keep-alive),
    except that with `drop_second`, the first connection reads its second request and
    closes without a word, as a server whose keep-alive timer fired at that moment."""

    def __init__(self, *, drop_second: bool = False) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.drop_second = drop_second
        self.requests: list[tuple[int, str]] = []  # (connection number, request line)
        self.connections = 0

    def __enter__(self):
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.sock.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn, self.connections),
                             daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        with conn:
            buf = b""
            served = 0
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                self.requests.append((number, head.split(b"\r\n")[0].decode()))
                served += 1
                if self.drop_second and number == 1 and served == 2:
                    return
                body = b'{"errcode": 0}'
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                if b"\r\nconnection: close" in head.lower():
                    return


def _no_backoff(monkeypatch):
    def sleep(seconds):
        raise AssertionError(f"backed off {seconds} s instead of retrying at once")

    monkeypatch.setattr("kfcli.core.client.time.sleep", sleep)


def test_stale_keep_alive_connection_is_retried_at_once_on_a_new_one(monkeypatch):
    _no_backoff(monkeypatch)
    with _Answering(drop_second=True) as server:
        client = _client(f"http://127.0.0.1:{server.port}")
        assert _get(client, "/a").status == 200
        assert _get(client, "/b").status == 200  # dropped on connection 1, sent again on 2
        assert [n for n, _ in server.requests] == [1, 1, 2]
        assert server.requests[2][1].startswith("GET /b")


def test_stale_connection_is_not_retried_when_retrying_is_unsafe(monkeypatch):
    _no_backoff(monkeypatch)
    with _Answering(drop_second=True) as server:
        client = _client(f"http://127.0.0.1:{server.port}")
        assert _get(client, "/a").status == 200
        with pytest.raises(NetworkError, match="closed the kept-alive connection"):
            _get(client, "/send", retry_safe=False)
        assert len(server.requests) == 2

