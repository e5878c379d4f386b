"""Behind corporate networks (issue 13): proxy refusals, proxy URLs kfcli cannot use, TLS
certificates it does not trust, each reported in one line naming the proxy, the variable or
the certificate, tried once, with the documented exit code, and no secret in any output.

The proxy and the TLS front are small doubles on loopback (tests/proxyutil.py). The base URL
names a host the client never resolves (kf.test, qyapi.weixin.qq.com): through a proxy only
the proxy does, and it sends everything to the sandbox or the TLS front."""

from __future__ import annotations

import base64
import re
from urllib.parse import urlsplit

import pytest

from tests.proxyutil import FakeProxy, TlsFront, make_ca

PASSWORD = "Pr0xy-pa55word"
CLEAN = {name: "" for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
                               "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY",
                               "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "KFCLI_CA_BUNDLE")}
WECOM = "https://qyapi.weixin.qq.com"


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return make_ca(tmp_path_factory.mktemp("ca"))


def _port(sandbox) -> int:
    return urlsplit(sandbox.base_url).port


def _no_secrets(result, sandbox, *extra: str) -> None:
    basic = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    for secret in (sandbox.creds["secret"], PASSWORD, basic, *extra):
        assert secret not in result.text
    # --debug shows requests with their access token and corp secret masked
    assert re.search(r"(access_token|corpsecret)=(?!\*)", result.text) is None


@pytest.mark.parametrize("userinfo, advice", [
    (f"alice:{PASSWORD}@", "check the credentials in HTTPS_PROXY"),
    ("", "the proxy wants credentials: add them to HTTPS_PROXY as user:password@ before the "
         "host"),
])
def test_proxy_407_to_connect_is_one_line_exit_3_tried_once(kf, sandbox, userinfo, advice):
    with FakeProxy(answer="407 Proxy Authentication Required") as proxy:
        r = kf("--debug", "account", "list", env={
            **CLEAN, "KFCLI_BASE_URL": WECOM,
            "HTTPS_PROXY": f"http://{userinfo}127.0.0.1:{proxy.port}"})
    assert r.code == 3, r.text
    assert (f"proxy 127.0.0.1:{proxy.port} answered 407 Proxy Authentication Required to "
            f"CONNECT qyapi.weixin.qq.com:443: {advice}") in r.err
    assert proxy.connects == 1
    assert f"through proxy http://{userinfo.replace(PASSWORD, '****')}127.0.0.1:" \
        f"{proxy.port} (from HTTPS_PROXY)" in r.err  # --debug says a proxy is used
    assert "retrying" not in r.err
    _no_secrets(r, sandbox)


def test_proxy_403_to_connect_is_exit_3_tried_once(kf, sandbox):
    with FakeProxy(answer="403 Forbidden") as proxy:
        r = kf("account", "list", env={
            **CLEAN, "KFCLI_BASE_URL": WECOM,
            "https_proxy": f"http://bob:{PASSWORD}@127.0.0.1:{proxy.port}"})
    assert r.code == 3, r.text
    assert f"proxy 127.0.0.1:{proxy.port} answered 403 Forbidden to CONNECT " \
        "qyapi.weixin.qq.com:443" in r.err
    assert "https_proxy" in r.err
    assert proxy.connects == 1
    _no_secrets(r, sandbox)


def test_plain_http_proxy_407_is_the_same_not_a_json_error(kf, sandbox):
    port = _port(sandbox)
    with FakeProxy(upstream=("127.0.0.1", port), user="alice", password="Right-pw-77") as proxy:
        r = kf("account", "list", env={
            **CLEAN, "KFCLI_BASE_URL": f"http://kf.test:{port}",
            "HTTP_PROXY": f"http://alice:{PASSWORD}@127.0.0.1:{proxy.port}"})
        assert r.code == 3, r.text
        assert (f"proxy 127.0.0.1:{proxy.port} answered 407 Proxy Authentication Required "
                f"to a request for kf.test:{port}: check the credentials in HTTP_PROXY") in r.err
        assert "JSON" not in r.err
        assert len(proxy.requests) == 1
        _no_secrets(r, sandbox)
        # the right credentials: through the proxy to the sandbox
        good = kf("--debug", "account", "list", env={
            **CLEAN, "KFCLI_BASE_URL": f"http://kf.test:{port}",
            "HTTP_PROXY": f"http://alice:Right-pw-77@127.0.0.1:{proxy.port}"})
    assert good.code == 0, good.text
    assert "> GET http://kf.test:" in good.err and "access_token=" in good.err
    _no_secrets(good, sandbox, "Right-pw-77")
    assert proxy.requests[1].startswith(f"GET http://kf.test:{port}/cgi-bin/gettoken")


def test_a_proxy_that_refuses_before_reading_the_body_is_still_named(kf, sandbox):
    """tinyproxy answers a POST it refuses before reading its body, and the unread body
    resets the connection: kfcli asks again without a body to learn why. Wrong credentials
    get 401 from it, none 407: both are the proxy's refusal, exit 3, tried once."""
    port = _port(sandbox)
    base = {**CLEAN, "KFCLI_BASE_URL": f"http://kf.test:{port}"}
    with FakeProxy(upstream=("127.0.0.1", port), user="alice", password="Right-pw-77",
                   hasty=True) as proxy:
        good = f"http://alice:Right-pw-77@127.0.0.1:{proxy.port}"
        assert kf("account", "list", env={**base, "HTTP_PROXY": good}).code == 0  # token
        for proxy_url, code in ((f"http://127.0.0.1:{proxy.port}", 407),
                                (f"http://alice:{PASSWORD}@127.0.0.1:{proxy.port}", 401)):
            before = len(proxy.requests)
            r = kf("account", "list", env={**base, "HTTP_PROXY": proxy_url})
            assert r.code == 3, r.text
            assert f"proxy 127.0.0.1:{proxy.port} answered {code} " in r.err
            assert "dropped" not in r.err
            # Once; then, when the reset lost the answer, the question without a body.
            lines = [x.split()[0] for x in proxy.requests[before:]]
            assert lines in (["POST"], ["POST", "GET"]), lines
            _no_secrets(r, sandbox)


def test_connect_through_proxy_to_tls_front_trusting_the_ca(kf, sandbox, ca):
    with TlsFront(ca["cert"], ca["key"], ("127.0.0.1", _port(sandbox))) as front, \
            FakeProxy(upstream=("127.0.0.1", front.port), user="alice",
                      password=PASSWORD) as proxy:
        env = {**CLEAN, "KFCLI_BASE_URL": f"https://kf.test:{front.port}",
               "HTTPS_PROXY": f"http://alice:{PASSWORD}@127.0.0.1:{proxy.port}"}
        untrusted = kf("account", "list", env=env)
        assert untrusted.code == 6, untrusted.text
        assert "TLS certificate of kf.test is not trusted (" in untrusted.err
        assert "KFCLI_CA_BUNDLE" in untrusted.err  # the hint on trusting a corporate CA
        assert (proxy.connects, front.handshakes) == (1, 1)  # never retried
        _no_secrets(untrusted, sandbox)
        trusted = kf("account", "list", env={**env, "KFCLI_CA_BUNDLE": str(ca["ca"])})
        assert trusted.code == 0, trusted.text
        # what requests users already set works too
        requests_style = kf("account", "list", env={**env,
                                                   "REQUESTS_CA_BUNDLE": str(ca["ca"])})
        assert requests_style.code == 0, requests_style.text
        doctor = kf("doctor", "-o", "json", env={**env, "CURL_CA_BUNDLE": str(ca["ca"])})
    assert doctor.code == 0, doctor.text
    reach = next(row for row in doctor.json() if row["check"] == "reachability")
    assert f"through proxy http://alice:****@127.0.0.1:{proxy.port} (from HTTPS_PROXY)" \
        in reach["detail"]
    assert f"CA bundle {ca['ca']} (from CURL_CA_BUNDLE)" in reach["detail"]
    _no_secrets(doctor, sandbox)


def test_untrusted_certificate_without_proxy_is_not_retried(kf, sandbox, ca):
    with TlsFront(ca["cert"], ca["key"], ("127.0.0.1", _port(sandbox))) as front:
        r = kf("account", "list", env={**CLEAN, "KFCLI_BASE_URL": f"https://localhost:{front.port}"})
        assert r.code == 6, r.text
        assert "TLS certificate of localhost is not trusted" in r.err
        assert front.handshakes == 1


@pytest.mark.parametrize("variable", ["KFCLI_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_missing_ca_bundle_is_exit_3_naming_the_variable(kf, tmp_path, variable):
    r = kf("account", "list", env={**CLEAN, "KFCLI_BASE_URL": WECOM,
                                   variable: str(tmp_path / "nope.pem")})
    assert r.code == 3, r.text
    assert f"CA bundle {tmp_path / 'nope.pem'} from {variable} cannot be read" in r.err


def test_ca_bundle_that_is_not_pem_is_exit_3(kf, tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    r = kf("account", "list", env={**CLEAN, "KFCLI_BASE_URL": WECOM, "KFCLI_CA_BUNDLE": str(bad)})
    assert r.code == 3, r.text
    assert f"CA bundle {bad} from KFCLI_CA_BUNDLE cannot be loaded" in r.err


@pytest.mark.parametrize("url, problem", [
    ("ftp://proxy.corp:21", "kfcli supports http://, https:// and"),
    ("gopher://proxy.corp:70", "names a gopher:// proxy"),
    ("http://proxy.corp:80a", "the port is not a number"),
    ("http://proxy.corp:99999", "the port is not in 1-65535"),
    ("http://[::1", "not a valid proxy URL"),
])
def test_proxy_url_kfcli_cannot_use_is_exit_3_naming_the_variable(kf, url, problem):
    r = kf("account", "list", env={**CLEAN, "KFCLI_BASE_URL": WECOM, "HTTPS_PROXY": url})
    assert r.code == 3, r.text
    assert "HTTPS_PROXY" in r.err and problem in r.err
    assert "internal error" not in r.err


@pytest.mark.parametrize("url", ["http://proxy.corp:80a", "ftp://127.0.0.1:1080"])
def test_doctor_names_the_proxy_variable_not_base_url(kf, url):
    doctor = kf("doctor", "-o", "json", env={**CLEAN, "KFCLI_BASE_URL": WECOM,
                                              "HTTPS_PROXY": url})
    assert doctor.code == 3, doctor.text
    reach = next(row for row in doctor.json() if row["check"] == "reachability")
    assert reach["status"] == "failed"
    assert "HTTPS_PROXY" in reach["detail"] and "base_url" not in reach["detail"] + reach["hint"]


def test_loopback_bypasses_the_proxy(kf, sandbox):
    with FakeProxy(answer="407 Proxy Authentication Required") as proxy:
        r = kf("account", "list", env={**CLEAN, "ALL_PROXY": f"http://127.0.0.1:{proxy.port}"})
        assert r.code == 0, r.text
        assert proxy.requests == []
