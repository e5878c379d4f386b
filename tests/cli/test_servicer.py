"""`kfcli servicer` against the sandbox's corp directory."""

from __future__ import annotations

import json


def test_add_list_remove(kf, sandbox):
    open_kfid = sandbox.account()
    r = kf("servicer", "add", open_kfid, "user001", "user002", "--department", "2")
    assert r.code == 0, r.err
    lines = [line.split("\t") for line in r.out.splitlines()]
    assert [(f[0], f[1]) for f in lines] == [("user001", "ok"), ("user002", "ok"), ("2", "ok")]
    r = kf("servicer", "list", open_kfid, "-o", "json")
    listed = r.json()
    assert {"userid": "user001", "status": 0} in [
        {k: v for k, v in s.items() if k in ("userid", "status")} for s in listed]
    assert {"department_id": 2} in listed
    r = kf("servicer", "list", open_kfid)
    assert "user001\t\treceiving" in r.out
    r = kf("servicer", "remove", open_kfid, "user002")
    assert r.code == 2 and "--yes" in r.err
    assert kf("servicer", "remove", open_kfid, "user002", "--yes").code == 0
    users = [s.get("userid") for s in kf("servicer", "list", open_kfid, "--json").json()]
    assert "user002" not in users and "user001" in users


def test_per_item_failures_make_the_exit_code_non_zero(kf, sandbox):
    open_kfid = sandbox.account()
    r = kf("servicer", "add", open_kfid, "user001", "nobody-here", "-o", "json")
    assert r.code == 1
    results = {x.get("userid"): x for x in r.json()}
    assert results["user001"]["errcode"] == 0
    assert results["nobody-here"]["errcode"] == 60111
    err = json.loads(r.err)["error"]
    assert err["type"] == "partial" and "1 of 2" in err["message"]
    r = kf("servicer", "add", open_kfid, "user001")  # already a servicer: ignored, not failed
    assert r.code == 0 and "ignored" in r.out


def test_any_number_of_ids_in_batches_of_100(kf, sandbox, tmp_path):
    open_kfid = sandbox.account()
    userids = sandbox.get("/sandbox/directory")["userids"][:250]
    ids = tmp_path / "ids.txt"
    ids.write_text("# team\n" + "\n".join(userids) + "\n\n")
    before = sandbox.stats().get("/cgi-bin/kf/servicer/add", 0)
    r = kf("servicer", "add", open_kfid, "--from", str(ids))
    assert r.code == 0, r.err
    assert len(r.out.splitlines()) == 250
    assert sandbox.stats()["/cgi-bin/kf/servicer/add"] - before == 3
    r = kf("servicer", "remove", open_kfid, "--from", "-", "--yes", input="\n".join(userids))
    assert r.code == 0, r.err
    assert sandbox.stats()["/cgi-bin/kf/servicer/del"] == 3


def test_bad_input(kf, sandbox):
    open_kfid = sandbox.account()
    before = sandbox.stats()
    for args, needle in [
        ([open_kfid], "at least one"),
        ([open_kfid, "--department", "abc"], "positive integer"),
        ([open_kfid, "u" * 65], "64 bytes"),
        ([open_kfid, "x", "--from", "/nonexistent/file"], "cannot read"),
    ]:
        r = kf("servicer", "add", *args)
        assert r.code == 2 and needle in r.err, (args, r.err)
    assert sandbox.stats() == before
