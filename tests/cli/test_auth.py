def test_status_shows_sources_masked(kf, sandbox, run):
    r = kf("auth", "status", "-o", "json", env={"KFCLI_OUTPUT": "tsv"})
    assert r.code == 0, r.err
    doc = r.json()
    assert doc["settings"]["corp_id"] == {"value": sandbox.creds["corp_id"], "source": "env"}
    assert doc["settings"]["secret"]["value"].startswith("****")
    assert sandbox.creds["secret"] not in r.text
    assert doc["token"]["cached"] is False
    assert "/cgi-bin/gettoken" not in sandbox.stats()


def test_token_fetch_cache_refresh_logout(kf, sandbox):
    r = kf("auth", "token", "-o", "json")
    assert r.code == 0, r.err
    doc = r.json()
    assert doc["source"] == "gettoken" and doc["access_token"].startswith("****")
    assert 7000 < doc["expires_in"] <= 7200
    assert kf("auth", "token", "-o", "json").json()["source"] == "cache"
    assert sandbox.stats()["/cgi-bin/gettoken"] == 1
    assert kf("auth", "token", "--refresh", "-o", "json").json()["source"] == "gettoken"
    assert kf("auth", "status", "-o", "json").json()["token"]["cached"] is True
    assert kf("auth", "logout").code == 0
    assert kf("auth", "status", "-o", "json").json()["token"]["cached"] is False


def test_wrong_secret_is_a_credentials_error(kf, sandbox):
    r = kf("account", "list", env={"KFCLI_SECRET": "wrong-secret-value-1234"})
    assert r.code == 3 and "40001" in r.err
    assert "wrong-secret-value-1234" not in r.text
    assert sandbox.stats()["/cgi-bin/gettoken"] == 1  # no hammering with a bad secret
