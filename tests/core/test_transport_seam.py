"""`KfClient(transport=...)` (issue 23): any object with the transport's `request` method
replaces the urllib3 one, so the retry rules of DESIGN.md §3 can be checked without a server:
a failure that never reached the server is retried for any call, one that may have reached it
only for calls that are safe to repeat."""

from __future__ import annotations

import json

import pytest

from kfcli.core.client import KfClient, RetryPolicy
from kfcli.core.errors import ConfigError, NetworkError
from kfcli.core.http import HttpError, Response

FAST = RetryPolicy(max_retries=2, base_delay=0.001, max_delay=0.001)


class FakeTransport:
    """Answers like WeCom; `failures` maps a path to HttpErrors raised on its first calls."""

    def __init__(self, failures: dict[str, list[HttpError]] | None = None) -> None:
        self.failures = failures or {}
        self.calls: list[tuple[str, str]] = []
        self.closed = False

    def request(self, method, path, *, params=None, body=None, headers=None, sink=None):
        self.calls.append((method, path))
        if self.failures.get(path):
            raise self.failures[path].pop(0)
        if path == "/cgi-bin/gettoken":
            doc = {"errcode": 0, "access_token": "fake-token", "expires_in": 7200}
        elif path == "/cgi-bin/kf/account/list":
            doc = {"errcode": 0, "account_list": [{"open_kfid": "wkFAKE", "name": "Fake",
                                                   "avatar": ""}]}
        else:
            doc = {"errcode": 0, "open_kfid": "wkNEW"}
        return Response(200, "OK", {"content-type": "application/json"},
                        json.dumps(doc).encode())

    def close(self) -> None:
        self.closed = True


def _client(transport) -> KfClient:
    return KfClient("wwfake", "fake-secret", transport=transport, retry=FAST)


def test_a_fake_transport_serves_calls_without_a_server(home):
    fake = FakeTransport()
    with _client(fake) as client:
        assert [a.open_kfid for a in client.account_list()] == ["wkFAKE"]
    assert fake.calls == [("GET", "/cgi-bin/gettoken"), ("POST", "/cgi-bin/kf/account/list")]
    assert fake.closed


def test_never_sent_failures_are_retried_even_for_writes(home):
    refused = HttpError("connection failed (refused; server unreachable)", never_sent=True)
    fake = FakeTransport({"/cgi-bin/kf/account/add": [refused]})
    client = _client(fake)
    assert client.account_add("Support", "media-1") == "wkNEW"
    assert fake.calls.count(("POST", "/cgi-bin/kf/account/add")) == 2


def test_a_write_that_may_have_been_sent_is_not_retried(home):
    dropped = HttpError("connection dropped before the whole response arrived",
                        never_sent=False)
    fake = FakeTransport({"/cgi-bin/kf/account/add": [dropped]})
    with pytest.raises(NetworkError, match="connection dropped") as exc:
        _client(fake).account_add("Support", "media-1")
    assert "may have reached WeCom" in exc.value.hint
    assert fake.calls.count(("POST", "/cgi-bin/kf/account/add")) == 1


def test_reads_are_retried_after_an_ambiguous_failure_and_config_errors_never(home):
    timeout = HttpError("timed out waiting for the response", never_sent=False)
    fake = FakeTransport({"/cgi-bin/kf/account/list": [timeout]})
    assert len(_client(fake).account_list()) == 1
    assert fake.calls.count(("POST", "/cgi-bin/kf/account/list")) == 2
    refusal = HttpError("proxy p:3128 answered 407 ...", never_sent=True, retry=False,
                        config=True)
    fake = FakeTransport({"/cgi-bin/kf/account/list": [refusal]})
    with pytest.raises(ConfigError, match="407"):
        _client(fake).account_list()
    assert fake.calls.count(("POST", "/cgi-bin/kf/account/list")) == 1
