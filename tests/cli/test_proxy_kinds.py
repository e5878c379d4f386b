"""Proxies issue 23 added: https:// proxies (TLS to the proxy itself, its certificate checked
against the same CA-bundle settings as WeCom's), SOCKS5 through the extra kfcli[socks]
(socks5:// resolving names locally, socks5h:// letting the proxy resolve them), a clear exit
3 naming the extra when it is missing, and a real tinyproxy when one is installed.

The doubles are in tests/proxyutil.py; everything listens on loopback. Base URLs name hosts
the client never resolves (kf.test) or addresses it never reaches directly (192.0.2.10,
TEST-NET-1): the proxy sends every connection to the sandbox or the TLS front."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from urllib.parse import urlsplit

import pytest

from tests.cli.test_proxy_tls import CLEAN, PASSWORD, _no_secrets
from tests.proxyutil import FakeProxy, Socks5Proxy, TlsFront, TlsTunnel, make_ca


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return make_ca(tmp_path_factory.mktemp("ca"))


def _port(sandbox) -> int:
    return urlsplit(sandbox.base_url).port


# ------------------------------------------------------------------ https:// proxies


def test_https_proxy_to_https_wecom_trusting_the_ca(kf, sandbox, ca):
    """TLS to the proxy, CONNECT inside it, TLS to WeCom inside that (TLS in TLS)."""
    with TlsFront(ca["cert"], ca["key"], ("127.0.0.1", _port(sandbox))) as front, \
            FakeProxy(upstream=("127.0.0.1", front.port), user="alice",
                      password=PASSWORD) as proxy, \
            TlsTunnel(ca["cert"], ca["key"], ("127.0.0.1", proxy.port)) as tunnel:
        env = {**CLEAN, "KFCLI_BASE_URL": f"https://kf.test:{front.port}",
               "HTTPS_PROXY": f"https://alice:{PASSWORD}@127.0.0.1:{tunnel.port}"}
        untrusted = kf("account", "list", env=env)
        assert untrusted.code == 6, untrusted.text
        assert f"TLS certificate of proxy 127.0.0.1:{tunnel.port} is not trusted (" \
            in untrusted.err
        assert "KFCLI_CA_BUNDLE" in untrusted.err
        assert (tunnel.handshakes, proxy.connects) == (1, 0)  # never retried
        _no_secrets(untrusted, sandbox)
        trusted = kf("--debug", "account", "list", env={**env, "KFCLI_CA_BUNDLE": str(ca["ca"])})
        assert trusted.code == 0, trusted.text
        assert f"through proxy https://alice:****@127.0.0.1:{tunnel.port} (from HTTPS_PROXY)" \
            in trusted.err
        assert proxy.connects >= 1 and front.handshakes >= 1
        _no_secrets(trusted, sandbox)


def test_https_proxy_forwarding_plain_http_and_its_407(kf, sandbox, ca):
    port = _port(sandbox)
    with FakeProxy(upstream=("127.0.0.1", port), user="alice", password="Right-pw-77") as proxy, \
            TlsTunnel(ca["cert"], ca["key"], ("127.0.0.1", proxy.port)) as tunnel:
        env = {**CLEAN, "KFCLI_BASE_URL": f"http://kf.test:{port}",
               "REQUESTS_CA_BUNDLE": str(ca["ca"])}
        good = kf("account", "list", env={
            **env, "HTTP_PROXY": f"https://alice:Right-pw-77@127.0.0.1:{tunnel.port}"})
        assert good.code == 0, good.text
        assert proxy.requests[0].startswith(f"GET http://kf.test:{port}/cgi-bin/gettoken")
        bad = kf("account", "list", env={
            **env, "HTTP_PROXY": f"https://alice:{PASSWORD}@127.0.0.1:{tunnel.port}"})
    assert bad.code == 3, bad.text
    assert (f"proxy 127.0.0.1:{tunnel.port} answered 407 Proxy Authentication Required to a "
            f"request for kf.test:{port}: check the credentials in HTTP_PROXY") in bad.err
    _no_secrets(bad, sandbox, "Right-pw-77")


def test_an_https_proxy_url_naming_a_plain_http_server_fails_the_handshake(kf, sandbox):
    """An https:// proxy URL for a proxy that speaks plain HTTP (here the sandbox, which
    answers the TLS hello with an HTTP 400): one line, exit 6, not retried."""
    r = kf("account", "list", env={**CLEAN, "KFCLI_BASE_URL": "https://kf.test",
                                   "HTTPS_PROXY": f"https://127.0.0.1:{_port(sandbox)}"})
    assert r.code == 6, r.text
    assert f"TLS handshake with proxy 127.0.0.1:{_port(sandbox)} failed" in r.err
    assert "retrying" not in r.err


# ------------------------------------------------------------------ SOCKS5


@pytest.fixture
def socks_extra():
    pytest.importorskip("socks", reason="SOCKS needs the extra: pip install -e '.[test]'")


def test_socks5h_with_credentials_lets_the_proxy_resolve_names(kf, sandbox, socks_extra):
    port = _port(sandbox)
    with Socks5Proxy(("127.0.0.1", port), user="alice", password=PASSWORD) as proxy:
        env = {**CLEAN, "KFCLI_BASE_URL": f"http://kf.test:{port}"}
        r = kf("--debug", "account", "list", env={
            **env, "ALL_PROXY": f"socks5h://alice:{PASSWORD}@127.0.0.1:{proxy.port}"})
        assert r.code == 0, r.text
        assert f"through proxy socks5h://alice:****@127.0.0.1:{proxy.port} (from ALL_PROXY)" \
            in r.err
        assert ("kf.test", port) in proxy.destinations
        _no_secrets(r, sandbox)
        wrong = kf("account", "list", env={
            **env, "ALL_PROXY": f"socks5h://alice:wrong-pw@127.0.0.1:{proxy.port}"})
    assert wrong.code == 3, wrong.text
    assert f"SOCKS proxy 127.0.0.1:{proxy.port} refused the credentials: check ALL_PROXY" \
        in wrong.err
    _no_secrets(wrong, sandbox, "wrong-pw")


def test_socks_proxy_refusing_the_destination_or_not_listening(kf, sandbox, socks_extra):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # nothing listens there once closed
    with Socks5Proxy(("127.0.0.1", closed)) as proxy:
        r = kf("account", "list", env={**CLEAN, "KFCLI_BASE_URL": "http://kf.test",
                                       "HTTP_PROXY": f"socks5h://127.0.0.1:{proxy.port}"})
    assert r.code == 6, r.text
    assert (f"SOCKS proxy 127.0.0.1:{proxy.port} from HTTP_PROXY could not connect to "
            "kf.test:80 (") in r.err
    r = kf("account", "list", env={**CLEAN, "KFCLI_BASE_URL": "http://kf.test",
                                   "HTTP_PROXY": f"socks5h://127.0.0.1:{closed}"})
    assert r.code == 6, r.text
    assert f"cannot connect to proxy 127.0.0.1:{closed} from HTTP_PROXY (Connection refused)" \
        in r.err


def test_socks5_to_https_wecom_with_an_address(kf, sandbox, ca, socks_extra):
    """socks5:// resolves names locally; an address is sent as it is. TLS runs end to end
    through the proxy, checked against the CA bundle."""
    with TlsFront(ca["cert"], ca["key"], ("127.0.0.1", _port(sandbox))) as front, \
            Socks5Proxy(("127.0.0.1", front.port)) as proxy:
        r = kf("account", "list", env={
            **CLEAN, "KFCLI_BASE_URL": f"https://127.0.0.1:{front.port}",
            "NO_PROXY": "", "KFCLI_CA_BUNDLE": str(ca["ca"]),
            "HTTPS_PROXY": f"socks5://127.0.0.1:{proxy.port}"})
        # 127.0.0.1 is loopback, reached directly: the proxy is never asked
        assert r.code == 0, r.text
        assert proxy.destinations == []
    with Socks5Proxy(("127.0.0.1", _port(sandbox))) as proxy:
        r = kf("account", "list", env={
            **CLEAN, "KFCLI_BASE_URL": f"http://192.0.2.10:{_port(sandbox)}",
            "HTTP_PROXY": f"socks5://127.0.0.1:{proxy.port}"})
    assert r.code == 0, r.text
    assert ("192.0.2.10", _port(sandbox)) in proxy.destinations


@pytest.mark.process
def test_socks_without_the_extra_is_exit_3_naming_it(sandbox, home):
    code = ("import sys\nsys.modules['socks'] = None  # as if PySocks were not installed\n"
            "from kfcli.__main__ import main\nmain(['account', 'list'])")
    env = {**os.environ, **sandbox.env, **CLEAN, "KFCLI_BASE_URL": "https://kf.test",
           "HTTPS_PROXY": "socks5h://127.0.0.1:1080"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       timeout=60)
    assert r.returncode == 3, r.stderr
    assert "HTTPS_PROXY names a socks5h:// proxy" in r.stderr
    assert "kfcli[socks]" in r.stderr and "Traceback" not in r.stderr


# ------------------------------------------------------------------ a real tinyproxy


@pytest.fixture
def tinyproxy(tmp_path, sandbox, ca):
    """tinyproxy on loopback demanding alice:Right-pw-77, in front of a FakeProxy that sends
    everything to the sandbox (so tinyproxy never resolves kf.test) or, for CONNECT, to a
    TLS front. Skipped where tinyproxy is not installed (.ci/run installs it)."""
    binary = shutil.which("tinyproxy")
    if binary is None:
        pytest.skip("tinyproxy is not installed (apt-get install tinyproxy; .ci/run does)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with TlsFront(ca["cert"], ca["key"], ("127.0.0.1", _port(sandbox))) as front, \
            FakeProxy(upstream=("127.0.0.1", _port(sandbox)),
                      connect_upstream=("127.0.0.1", front.port)) as router:
        conf = tmp_path / "tinyproxy.conf"
        conf.write_text(f"Port {port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 20\n"
                        "Allow 127.0.0.1\nBasicAuth alice Right-pw-77\nLogLevel Critical\n"
                        f"Upstream http 127.0.0.1:{router.port}\n"
                        + ("User nobody\nGroup nogroup\n" if os.geteuid() == 0 else ""))
        proc = subprocess.Popen([binary, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            for _ in range(200):  # until it listens (or has exited)
                if proc.poll() is not None:
                    pytest.fail(f"tinyproxy exited with {proc.returncode}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.05)
            yield port, front
        finally:
            proc.terminate()
            proc.wait(timeout=10)


@pytest.mark.process
def test_through_tinyproxy(kf, sandbox, ca, tinyproxy):
    """The check issue 13 made by hand: right credentials pass, none get 407, wrong ones
    get tinyproxy's 401 (it refuses before reading a POST's body), each named, exit 3."""
    port, front = tinyproxy
    plain = {**CLEAN, "KFCLI_BASE_URL": f"http://kf.test:{_port(sandbox)}"}
    good = f"http://alice:Right-pw-77@127.0.0.1:{port}"
    r = kf("account", "list", env={**plain, "HTTP_PROXY": good})
    assert r.code == 0, r.text
    for proxy_url, code in ((f"http://127.0.0.1:{port}", 407),
                            (f"http://alice:{PASSWORD}@127.0.0.1:{port}", 401)):
        r = kf("account", "list", env={**plain, "HTTP_PROXY": proxy_url})
        assert r.code == 3, r.text
        assert f"proxy 127.0.0.1:{port} answered {code} " in r.err
        assert "dropped" not in r.err
        _no_secrets(r, sandbox, "Right-pw-77")
    # CONNECT through tinyproxy to the TLS front, trusting the throwaway CA
    r = kf("account", "list", env={
        **CLEAN, "KFCLI_BASE_URL": f"https://kf.test:{front.port}", "HTTPS_PROXY": good,
        "KFCLI_CA_BUNDLE": str(ca["ca"])})
    assert r.code == 0, r.text
