"""`kfcli media upload|get` and `kfcli api`."""

import json

import pytest


def test_upload_then_get(kf, sandbox, avatar, tmp_path):
    media_id = kf("media", "upload", str(avatar)).out.strip()
    target = tmp_path / "out.png"
    r = kf("media", "get", media_id, "-O", str(target))
    assert r.code == 0, r.err
    assert target.read_bytes() == avatar.read_bytes()
    r = kf("media", "get", media_id, "-O", str(target))
    assert r.code == 2 and "--force" in r.err
    assert kf("media", "get", media_id, "-O", str(target), "--force").code == 0
    r = kf("media", "get", "3NoSuchMedia")
    assert r.code == 4 and "40007" in r.err


@pytest.mark.process
def test_get_to_a_pipe(run, sandbox, avatar):
    import subprocess
    import sys

    env = {**__import__("os").environ, **sandbox.env}
    media_id = subprocess.run([sys.executable, "-m", "kfcli", "media", "upload", str(avatar)],
                              env=env, capture_output=True, text=True).stdout.strip()
    out = subprocess.run([sys.executable, "-m", "kfcli", "media", "get", media_id], env=env,
                         capture_output=True)
    assert out.returncode == 0 and out.stdout == avatar.read_bytes()


def test_media_type_checks(kf, sandbox, tmp_path):
    fake = tmp_path / "fake.amr"
    fake.write_bytes(b"not an amr file at all")
    r = kf("media", "upload", str(fake), "--type", "voice")
    assert r.code == 2 and "AMR" in r.err
    r = kf("media", "upload", str(fake), "--type", "sticker")
    assert r.code == 2
    assert kf("media", "upload", str(fake), "--type", "file", "-o", "json").json()["type"] == \
        "file"


def test_api_raw_calls(kf, sandbox):
    open_kfid = sandbox.account("Raw")
    r = kf("api", "POST", "/cgi-bin/kf/account/list", "-F", "offset=0", "-F", "limit=10")
    assert r.code == 0, r.err
    assert r.json()["account_list"][0]["open_kfid"] == open_kfid
    r = kf("api", "GET", "kf/servicer/list", "-f", f"open_kfid={open_kfid}")
    assert r.code == 0 and r.json()["servicer_list"] == []
    r = kf("api", "POST", "/cgi-bin/kf/add_contact_way", "--input", "-",
           input=json.dumps({"open_kfid": open_kfid}))
    assert r.code == 0 and r.json()["url"].startswith("https://")
    r = kf("api", "POST", "/cgi-bin/kf/account/del", "-f", "open_kfid=wkGone")
    assert r.code == 4


def test_api_never_sends_the_token_elsewhere(kf, sandbox):
    before = sandbox.stats()
    for target in ("https://evil.example.com/cgi-bin/kf/account/list",
                   "http://127.0.0.1:1/cgi-bin/kf/account/list"):
        r = kf("api", "GET", target)
        assert r.code == 2 and "refusing" in r.err
    r = kf("api", "GET", sandbox.base_url + "/cgi-bin/kf/customer/get_upgrade_service_config")
    assert r.code == 0, r.err
    assert kf("api", "DELETE", "/x").code == 2
    assert kf("api", "GET", "/cgi-bin/kf/x?access_token=abc").code == 2
    assert sandbox.stats().get("/cgi-bin/gettoken", 0) <= before.get("/cgi-bin/gettoken", 0) + 1


def test_get_into_a_missing_directory_downloads_nothing(kf, sandbox, avatar, tmp_path):
    media_id = kf("media", "upload", str(avatar)).out.strip()
    before = sandbox.stats().get("/cgi-bin/media/get", 0)
    r = kf("media", "get", media_id, "-O", str(tmp_path / "nodir" / "x.png"))
    assert r.code == 2 and "does not exist" in r.err and "Traceback" not in r.err
    assert sandbox.stats().get("/cgi-bin/media/get", 0) == before


def test_api_typed_fields_fall_back_to_strings(kf, sandbox):
    open_kfid = sandbox.account("Typed")
    # a plain word is not JSON: sent as a string, as gh api -F does
    r = kf("api", "POST", "/cgi-bin/kf/add_contact_way", "-F", f"open_kfid={open_kfid}")
    assert r.code == 0 and r.json()["url"].startswith("https://"), r.err
    r = kf("api", "POST", "/cgi-bin/kf/account/list", "-F", "limit=1", "-F", "offset=0")
    assert r.code == 0 and len(r.json()["account_list"]) == 1, r.err
    # unknown ids still reach WeCom as strings, which names them
    r = kf("api", "POST", "/cgi-bin/kf/add_contact_way", "-F", "open_kfid=wkNOPE")
    assert r.code == 4 and "is not a JSON value" not in r.err, r.err
    # a broken array or object is refused, not sent as a string; -f stays a string
    before = sandbox.stats()
    r = kf("api", "POST", "/cgi-bin/kf/account/list", "-F", "limit=[1,")
    assert r.code == 2 and "limit: '[1,' is not a JSON value" in r.err and "-f key=value" in r.err
    assert sandbox.stats() == before
    r = kf("api", "POST", "/cgi-bin/kf/account/list", "-f", "limit=10")
    assert r.code != 0  # "10" as a string, which WeCom refuses for limit
