from urllib.parse import parse_qs, urlsplit


def _account(kf, avatar):
    return kf("account", "add", "--name", "Links", "--avatar", str(avatar)).out.strip()


def test_create_prints_the_url(kf, sandbox, avatar):
    open_kfid = _account(kf, avatar)
    r = kf("link", "create", open_kfid)
    assert r.code == 0, r.err
    assert r.out.startswith("https://work.weixin.qq.com/kf/") and r.out.count("\n") == 1


def test_scene_and_scene_param(kf, sandbox, avatar):
    open_kfid = _account(kf, avatar)
    r = kf("link", "create", open_kfid, "--scene", "spring_sale", "--scene-param", "订单=42&x",
           "-o", "json")
    assert r.code == 0, r.err
    doc = r.json()
    query = parse_qs(urlsplit(doc["url"]).query)
    assert query["scene_param"] == ["订单=42&x"]
    assert "enc_scene" in query
    assert doc["scene"] == "spring_sale"


def test_bad_scene_sends_nothing(kf, sandbox, avatar):
    open_kfid = _account(kf, avatar)
    before = sandbox.stats()
    for args, needle in [
        (["--scene", "has space"], "[0-9a-zA-Z_-]"),
        (["--scene", "a" * 33], "33 bytes"),
        (["--scene-param", "x"], "needs a non-empty --scene"),
        (["--scene", "s", "--scene-param", "p" * 129], "128 bytes"),
    ]:
        r = kf("link", "create", open_kfid, *args)
        assert r.code == 2 and needle in r.err, (args, r.err)
    assert sandbox.stats() == before


def test_unknown_account(kf, sandbox):
    r = kf("link", "create", "wkUnknown")
    assert r.code == 4 and "95004" in r.err
