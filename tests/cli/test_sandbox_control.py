"""`kfcli sandbox enter / servicer-say / servicer-status / corp`: the simulator's control
endpoints for people, checked by their effect on what the API then shows."""

from __future__ import annotations

import json


def _events(kf, open_kfid: str) -> list[dict]:
    r = kf("msg", "sync", open_kfid, "--no-save", "-o", "jsonl")
    assert r.code == 0, r.err
    return [json.loads(line) for line in r.out.splitlines()]


def test_enter_gives_a_welcome_code_that_send_on_event_answers(kf, sandbox):
    open_kfid = sandbox.account()
    r = kf("sandbox", "enter", open_kfid, "--scene", "sale", "--scene-param", "order=42",
           "-o", "json")
    assert r.code == 0, r.err
    doc = r.json()
    customer, code = doc["external_userid"], doc["welcome_code"]
    assert customer.startswith("wm") and code
    [event] = [m["event"] for m in _events(kf, open_kfid) if m["msgtype"] == "event"]
    assert event == {"event_type": "enter_session", "open_kfid": open_kfid,
                     "external_userid": customer, "scene": "sale", "scene_param": "order=42",
                     "welcome_code": code}
    r = kf("msg", "send-on-event", code, "--text", "欢迎光临")
    assert r.code == 0, r.err
    [sent] = sandbox.sent(open_kfid)
    assert sent["code"] == code and sent["text"] == {"content": "欢迎光临"}
    # Welcomed once: entering again within 48 h earns no new code (TSV: an empty column).
    r = kf("sandbox", "enter", open_kfid, "--external-userid", customer)
    assert r.code == 0 and r.out == f"{customer}\t\n"


def test_servicer_say_takes_the_session_and_arrives_with_origin_5(kf, sandbox):
    open_kfid = sandbox.account()
    assert kf("servicer", "add", open_kfid, "user001").code == 0
    customer = sandbox.say(open_kfid, "hello")
    r = kf("sandbox", "servicer-say", open_kfid, customer, "我来帮您", "--servicer", "user001")
    assert r.code == 0, r.err
    msgid = r.out.strip()
    messages = _events(kf, open_kfid)
    [reply] = [m for m in messages if m["msgid"] == msgid]
    assert reply["origin"] == 5 and reply["servicer_userid"] == "user001"
    assert reply["text"] == {"content": "我来帮您"}
    [change] = [m["event"] for m in messages if m["msgtype"] == "event"]
    assert change["event_type"] == "session_status_change"
    assert change["new_servicer_userid"] == "user001"
    assert sandbox.state(open_kfid, customer) == 3
    r = kf("state", "get", open_kfid, customer, "-o", "json")
    assert r.json()["servicer_userid"] == "user001"


def test_servicer_say_refuses_someone_who_is_not_a_servicer(kf, sandbox):
    open_kfid = sandbox.account()
    customer = sandbox.say(open_kfid, "hello")
    r = kf("sandbox", "servicer-say", open_kfid, customer, "hi", "--servicer", "user002")
    assert r.code == 1 and "not a servicer" in r.err
    r = kf("sandbox", "servicer-say", "wkNoSuchAccount", customer, "hi", "--servicer", "u")
    assert r.code == 4 and "wkNoSuchAccount" in r.err


def test_servicer_status_shows_in_servicer_list_and_as_an_event(kf, sandbox):
    open_kfid = sandbox.account()
    assert kf("servicer", "add", open_kfid, "user001").code == 0
    r = kf("sandbox", "servicer-status", open_kfid, "user001", "suspended")
    assert r.code == 0 and "suspended" in r.err and r.out == ""
    [row] = kf("servicer", "list", open_kfid, "-o", "json").json()
    assert row["userid"] == "user001" and row["status"] == 1 and row["stop_type"] == 1
    [event] = [m["event"] for m in _events(kf, open_kfid)]
    assert event["event_type"] == "servicer_status_change"
    assert (event["servicer_userid"], event["status"], event["stop_type"]) == ("user001", 2, 1)
    r = kf("sandbox", "servicer-status", open_kfid, "user001", "receiving", "-o", "json")
    assert r.code == 0 and r.json() == {"open_kfid": open_kfid, "userid": "user001",
                                        "status": "receiving"}
    assert kf("servicer", "list", open_kfid, "-o", "json").json()[0]["status"] == 0
    r = kf("sandbox", "servicer-status", open_kfid, "user001", "asleep")
    assert r.code == 2 and "receiving, stopped, suspended" in r.err


def test_corp_sets_what_corp_qualification_answers(kf, sandbox):
    r = kf("sandbox", "corp", "--wechat-channels-binding")
    assert r.code == 0, r.err
    assert kf("corp", "qualification", "-o", "json").json()["wechat_channels_binding"] is True
    assert kf("sandbox", "corp", "--no-wechat-channels-binding").code == 0
    assert kf("corp", "qualification", "-o", "json").json()["wechat_channels_binding"] is False
    r = kf("sandbox", "corp")
    assert r.code == 2 and "--wechat-channels-binding" in r.err


def test_embedded_sandbox_enter_then_welcome(run, home, avatar):
    open_kfid = run("--sandbox", "account", "add", "--name", "S", "--avatar",
                    str(avatar)).out.strip()
    r = run("--sandbox", "sandbox", "enter", open_kfid, "-o", "json")
    assert r.code == 0, r.err
    code = r.json()["welcome_code"]
    r = run("--sandbox", "msg", "sync", open_kfid, "-o", "jsonl")
    assert [json.loads(x)["event"]["welcome_code"] for x in r.out.splitlines()] == [code]
    assert run("--sandbox", "msg", "send-on-event", code, "--text", "hi").code == 0
