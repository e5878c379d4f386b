"""`kfcli account` against the sandbox over HTTP, as a script runs it."""

from __future__ import annotations


def test_add_list_update_delete_round_trip(kf, sandbox, avatar):
    r = kf("account", "add", "--name", "Support", "--avatar", str(avatar))
    assert r.code == 0, r.err
    open_kfid = r.out.strip()
    assert open_kfid.startswith("wk")
    assert [a["name"] for a in sandbox.accounts()] == ["Support"]

    r = kf("account", "list")
    assert r.code == 0
    fields = r.out.rstrip("\n").split("\t")
    assert fields[:3] == [open_kfid, "Support", "true"]

    r = kf("account", "update", open_kfid, "--name", "售后服务")
    assert r.code == 0, r.err
    assert sandbox.accounts()[0]["name"] == "售后服务"

    r = kf("account", "list", "-o", "json")
    doc = r.json()
    assert doc == [{"open_kfid": open_kfid, "name": "售后服务", "avatar": doc[0]["avatar"],
                    "manage_privilege": True}]

    r = kf("account", "delete", open_kfid)  # no terminal: must insist on --yes
    assert r.code == 2 and "--yes" in r.err
    assert len(sandbox.accounts()) == 1
    r = kf("account", "delete", open_kfid, "--yes", "--json")
    assert r.code == 0 and r.json() == {"open_kfid": open_kfid, "deleted": True}
    assert sandbox.accounts() == []


def test_add_with_media_id_and_json(kf, sandbox, avatar):
    media_id = kf("media", "upload", str(avatar)).out.strip()
    r = kf("account", "add", "--name", "A", "--media-id", media_id, "-o", "json")
    assert r.code == 0, r.err
    doc = r.json()
    assert doc["name"] == "A" and doc["media_id"] == media_id and doc["open_kfid"]


def test_list_all_pages_beyond_100(kf, sandbox, avatar):
    media_id = kf("media", "upload", str(avatar)).out.strip()
    for i in range(103):
        sandbox.api("POST", "/cgi-bin/kf/account/add", {"name": f"acc{i}", "media_id": media_id})
    r = kf("account", "list")
    assert len(r.out.splitlines()) == 100 and "--all" in r.err
    r = kf("account", "list", "--all", "-o", "jsonl")
    names = [line for line in r.out.splitlines()]
    assert len(names) == 103
    r = kf("account", "list", "--limit", "10", "--offset", "100", "-o", "json")
    assert [a["name"] for a in r.json()] == ["acc100", "acc101", "acc102"]


def test_bad_input_is_rejected_before_anything_is_sent(kf, sandbox, avatar, tmp_path):
    before = sandbox.stats()
    cases = [
        (["account", "add", "--name", "x" * 17, "--avatar", str(avatar)], "limit is 16"),
        (["account", "add", "--name", "ok"], "avatar is required"),
        (["account", "add", "--name", "ok", "--avatar", str(tmp_path / "nope.png")],
         "cannot read"),
        (["account", "add", "--name", "ok", "--avatar", str(avatar), "--media-id", "m"],
         "not both"),
        (["account", "update", "wk1"], "nothing to update"),
        (["account", "list", "--limit", "101"], "out of range 1..100"),
        (["account", "add", "--name", "ok", "--media-id", "m" * 129], "limit is 128 bytes"),
    ]
    big = tmp_path / "big.png"
    with open(big, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n")
        fh.truncate(10 * 1024 * 1024 + 1)
    cases.append((["account", "add", "--name", "ok", "--avatar", str(big)], "10 MB"))
    for args, needle in cases:
        r = kf(*args)
        assert r.code == 2, (args, r.err)
        assert needle in r.err, (args, r.err)
        assert len(r.err.strip().splitlines()) <= 2 and "Traceback" not in r.err
        assert r.out == ""
    assert sandbox.stats() == before
    assert sandbox.accounts() == []


def test_api_errors_map_to_exit_codes(kf, sandbox):
    r = kf("account", "delete", "wkDoesNotExist", "--yes")
    assert r.code == 4
    assert "95004" in r.err and "hint:" in r.err
    r = kf("account", "delete", "wkDoesNotExist", "--yes", "-o", "json")
    err = __import__("json").loads(r.err)["error"]
    assert err["errcode"] == 95004 and err["type"] == "not_found"
