import json
import stat
import time

from kfcli.core.tokens import REFRESH_MARGIN, TokenCache, cache_key


def make(tmp_path, tokens, secret="secret-one"):
    calls = []

    def fetch():
        calls.append(1)
        return tokens[len(calls) - 1], 7200

    return TokenCache("ww1", secret, fetch, directory=tmp_path / "tokens"), calls


def test_fetches_once_then_serves_from_disk(tmp_path):
    cache, calls = make(tmp_path, ["tok-aaaaaaaa"])
    assert cache.get() == "tok-aaaaaaaa" and cache.last_source == "gettoken"
    again, calls2 = make(tmp_path, ["never"])
    assert again.get() == "tok-aaaaaaaa" and again.last_source == "cache"
    assert len(calls) == 1 and not calls2
    assert stat.S_IMODE(cache.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.path.parent.stat().st_mode) == 0o700


def test_key_includes_secret_so_apps_do_not_collide(tmp_path):
    assert cache_key("ww1", "a") != cache_key("ww1", "b")
    one, _ = make(tmp_path, ["tok-one-1111"], secret="a")
    two, _ = make(tmp_path, ["tok-two-2222"], secret="b")
    assert one.get() == "tok-one-1111" and two.get() == "tok-two-2222"
    assert one.get() == "tok-one-1111"


def test_refreshes_ahead_of_expiry(tmp_path):
    cache, calls = make(tmp_path, ["old-token-1", "new-token-2"])
    cache.get()
    doc = json.loads(cache.path.read_text())
    doc["expires_at"] = time.time() + REFRESH_MARGIN - 1
    cache.path.write_text(json.dumps(doc))
    later, calls2 = make(tmp_path, ["new-token-2"])  # the next process
    assert later.get() == "new-token-2" and len(calls2) == 1
    # A long-running process notices expiry from its own memory too.
    cache._memo = later._memo.__class__("old-token-1", time.time() + 10, time.time())
    assert cache.get() == "new-token-2" and len(calls) == 1


def test_rejected_token_is_replaced_but_a_newer_one_is_reused(tmp_path):
    cache, calls = make(tmp_path, ["first-token", "second-token"])
    cache.get()
    assert cache.get(rejected="first-token") == "second-token"
    # Another process already replaced the token we saw rejected: no extra gettoken.
    assert cache.get(rejected="first-token") == "second-token" and len(calls) == 2


def test_damaged_cache_file_is_rebuilt(tmp_path):
    cache, calls = make(tmp_path, ["good-token-1"])
    cache.path.parent.mkdir(parents=True)
    cache.path.write_text("garbage")
    assert cache.get() == "good-token-1"
