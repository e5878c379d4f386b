"""`kfcli msg send` / `send-on-event` against the sandbox."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def chat(sandbox):
    open_kfid = sandbox.account()
    return open_kfid, sandbox.say(open_kfid, "你好")


def test_text_is_delivered_once_with_a_generated_msgid(kf, sandbox, chat):
    open_kfid, customer = chat
    r = kf("msg", "send", open_kfid, customer, "--text", "您好 👋")
    assert r.code == 0, r.err
    msgid = r.out.strip()
    sent = sandbox.sent(open_kfid)
    assert len(sent) == 1
    assert sent[0]["msgid"] == msgid and sent[0]["text"] == {"content": "您好 👋"}
    assert sent[0]["touser"] == customer and sent[0]["msgtype"] == "text"
    assert len(msgid) <= 32


def test_every_msgtype(kf, sandbox, chat, avatar, tmp_path):
    open_kfid, customer = chat
    menu = tmp_path / "menu.json"
    menu.write_text(json.dumps({"head_content": "请选择", "list": [
        {"type": "click", "click": {"id": "101", "content": "满意"}},
        {"type": "view", "view": {"url": "https://example.com", "content": "官网"}},
        {"type": "miniprogram", "miniprogram": {"appid": "wx123", "pagepath": "pages/i",
                                                 "content": "小程序"}},
        {"type": "text", "text": {"content": "第一行\n第二行"}}], "tail_content": "谢谢"}))
    doc = tmp_path / "manual.pdf"
    doc.write_bytes(b"%PDF-1.4 hello world")
    cases = [
        ["--image", str(avatar)],
        ["--file", str(doc)],
        ["--link", "https://example.com/a", "--title", "Offer", "--desc", "d", "--thumb",
         str(avatar)],
        ["--miniprogram", "wx1234", "--title", "Shop", "--pagepath", "pages/index",
         "--thumb", str(avatar)],
        ["--menu", f"@{menu}"],
        ["--location", "39.9042,116.4074", "--name", "Office", "--address", "Beijing"],
        ["--ca-link", "https://work.weixin.qq.com/ca/abc"],
        ["--payload", '{"msgtype": "text", "text": {"content": "raw"}}'],
    ]
    for args in cases:
        sandbox.say(open_kfid, "again", customer)  # keep within the 5-message window
        r = kf("msg", "send", open_kfid, customer, *args)
        assert r.code == 0, (args, r.err)
    types = [m["msgtype"] for m in sandbox.sent(open_kfid)]
    assert types == ["image", "file", "link", "miniprogram", "msgmenu", "location", "ca_link",
                     "text"]
    link = sandbox.sent(open_kfid)[2]["link"]
    assert link["title"] == "Offer" and link["thumb_media_id"]


def test_dry_run_sends_and_uploads_nothing(kf, sandbox, chat, avatar):
    open_kfid, customer = chat
    before = sandbox.stats()
    r = kf("msg", "send", open_kfid, customer, "--image", str(avatar), "--dry-run")
    assert r.code == 0, r.err
    body = r.json()
    assert body["msgtype"] == "image" and body["image"]["media_id"].startswith("<upload")
    assert sandbox.stats() == before and sandbox.sent(open_kfid) == []


def test_bad_input_is_refused_before_sending(kf, sandbox, chat, tmp_path):
    open_kfid, customer = chat
    bad_menu = tmp_path / "bad.json"
    bad_menu.write_text('{"list": [')
    eleven = tmp_path / "eleven.json"
    eleven.write_text(json.dumps({"list": [{"type": "click", "click": {"id": str(i),
                                                                       "content": "x"}}
                                           for i in range(11)]}))
    before = sandbox.stats()
    cases = [
        (["--text", "x" * 2049], "2048 bytes"),
        (["--text", "汉" * 683], "2049 bytes"),
        (["--text", "a", "--msgid", "has space"], "[0-9a-zA-Z_-]"),
        (["--text", "a", "--msgid", "m" * 33], "32 bytes"),
        (["--menu", f"@{bad_menu}"], "malformed JSON"),
        (["--menu", f"@{eleven}"], "at most 10"),
        (["--menu", '{"list": [{"type": "bogus"}]}'], "not one of click, view"),
        (["--location", "91,10"], "out of range -90..90"),
        (["--location", "10,181"], "-180..180"),
        (["--location", "north"], "LAT,LNG"),
        (["--link", "ftp://x", "--title", "t", "--thumb-media-id", "m"], "http"),
        (["--link", "https://x", "--title", "t" * 129, "--thumb-media-id", "m"], "128 bytes"),
        (["--link", "https://x", "--title", "t"], "cover image"),
        (["--text", "a", "--image", str(bad_menu)], "exactly one"),
        ([], "exactly one"),
        (["--payload", '{"msgtype": "text"}'], "no 'text' object"),
        (["--payload", '{"msgtype": "news", "news": {}}'], "not one of"),
        (["--image", str(tmp_path / "missing.png")], "cannot read"),
    ]
    for args, needle in cases:
        r = kf("msg", "send", open_kfid, customer, *args)
        assert r.code == 2, (args, r.err)
        assert needle in r.err, (args, r.err)
    assert sandbox.stats() == before


def test_session_rules_map_to_clear_errors(kf, sandbox, chat):
    open_kfid, customer = chat
    for i in range(5):
        assert kf("msg", "send", open_kfid, customer, "--text", f"m{i}").code == 0
    r = kf("msg", "send", open_kfid, customer, "--text", "sixth")
    assert r.code == 1 and "95001" in r.err and "5 messages" in r.err
    sandbox.api("POST", "/cgi-bin/kf/service_state/trans",
                {"open_kfid": open_kfid, "external_userid": customer, "service_state": 4})
    r = kf("msg", "send", open_kfid, customer, "--text", "late")
    assert r.code == 1 and "95018" in r.err and "state" in r.err


def test_repeated_msgid_is_not_delivered_twice(kf, sandbox, chat):
    open_kfid, customer = chat
    assert kf("msg", "send", open_kfid, customer, "--text", "a", "--msgid", "order-42").code == 0
    # Repeating a send with the same msgid (as the hint after a network failure says) is safe:
    # WeCom refuses the duplicate, kfcli reports the message as delivered, once.
    r = kf("msg", "send", open_kfid, customer, "--text", "a", "--msgid", "order-42")
    assert r.code == 0 and r.out.strip() == "order-42"
    assert "delivered before" in r.err
    assert len(sandbox.sent(open_kfid)) == 1


def test_dropped_connection_after_delivery_is_still_one_send(kf, sandbox, chat):
    open_kfid, customer = chat
    sandbox.fault(fault="disconnect", path="/cgi-bin/kf/send_msg")
    r = kf("msg", "send", open_kfid, customer, "--text", "exactly once", "-o", "json")
    assert r.code == 0, r.err
    sent = sandbox.sent(open_kfid)
    assert len(sent) == 1 and sent[0]["msgid"] == r.json()["msgid"]


def test_server_error_on_send_is_retried_safely(kf, sandbox, chat):
    open_kfid, customer = chat
    sandbox.fault(fault="http_status", status=500, path="/cgi-bin/kf/send_msg")
    r = kf("msg", "send", open_kfid, customer, "--text", "after a 500")
    assert r.code == 0, r.err
    assert len(sandbox.sent(open_kfid)) == 1


def test_send_on_event_with_a_closing_code(kf, sandbox, chat):
    open_kfid, customer = chat
    r = kf("state", "trans", open_kfid, customer, "ended")
    assert r.code == 0, r.err
    code = r.out.strip()
    assert code and "20 s" in r.err
    r = kf("msg", "send-on-event", code, "--text", "感谢您的咨询")
    assert r.code == 0, r.err
    assert sandbox.sent(open_kfid)[-1]["text"] == {"content": "感谢您的咨询"}
    r = kf("msg", "send-on-event", code, "--text", "again")
    assert r.code == 1 and "95007" in r.err
    r = kf("msg", "send-on-event", code, "--text", "x", "--menu", "{}")
    assert r.code == 2


def test_welcome_code_from_enter_session(kf, sandbox):
    open_kfid = sandbox.account()
    doc = sandbox.post("/sandbox/enter_session", {"open_kfid": open_kfid, "scene": "ad"})
    r = kf("msg", "send-on-event", doc["welcome_code"], "--menu",
           '{"head_content": "欢迎", "list": [{"type": "click", "click": {"id": "1", '
           '"content": "人工"}}]}')
    assert r.code == 0, r.err


def test_menu_item_and_miniprogram_limits(kf, sandbox, chat, tmp_path):
    open_kfid, customer = chat
    before = sandbox.stats()

    def menu(item):
        return json.dumps({"list": [item]})

    cases = [
        (["--menu", menu({"type": "click", "click": {"id": "x" * 65, "content": "c"}})],
         "--menu: list[0].click.id: 65 bytes"),  # JSON paths count from 0
        (["--menu", menu({"type": "view", "view": {"url": "https://e.com", "content": ""}})],
         "must not be empty"),
        (["--menu", menu({"type": "text", "text": {"content": "t" * 257}})], "256 bytes"),
        (["--menu", menu({"type": "miniprogram", "miniprogram": {"appid": "a" * 33,
                                                                 "pagepath": "p",
                                                                 "content": "c"}})],
         "32 bytes"),
        (["--menu", json.dumps({"head_content": "h" * 1025, "list": [
            {"type": "text", "text": {"content": "x"}}]})], "1024 bytes"),
        (["--miniprogram", "wx1", "--title", "标" * 22, "--pagepath", "p",
          "--thumb-media-id", "m"], "64 bytes"),
        (["--miniprogram", "wx1", "--title", "t"], "--pagepath"),
        (["--payload", "@" + str(tmp_path / "nope.json")], "cannot read"),
        (["--ca-link", "not-a-url"], "http"),
    ]
    for args, needle in cases:
        r = kf("msg", "send", open_kfid, customer, *args)
        assert r.code == 2 and needle in r.err, (args, r.err)
    r = kf("msg", "send-on-event", "CODE", "--menu", menu({"type": "bad"}))
    assert r.code == 2 and "not one of" in r.err
    assert sandbox.stats() == before


def test_payload_keeps_its_msgid_and_checks_routing(kf, sandbox, chat, tmp_path):
    open_kfid, customer = chat
    body = tmp_path / "body.json"
    body.write_text(json.dumps({"msgtype": "text", "text": {"content": "p"}, "msgid": "pay-1",
                                "touser": customer}))
    r = kf("msg", "send", open_kfid, customer, "--payload", f"@{body}")
    assert r.code == 0 and r.out.strip() == "pay-1"
    r = kf("msg", "send", open_kfid, customer, "--payload", f"@{body}")  # rerun: not twice
    assert r.code == 0 and len(sandbox.sent(open_kfid)) == 1
    r = kf("msg", "send", open_kfid, "wmSomeoneElse", "--payload", f"@{body}")
    assert r.code == 2 and "differs" in r.err
    r = kf("msg", "send", open_kfid, customer, "--payload",
           '{"msgtype": "text", "text": {"content": "x"}, "extra": 1}')
    assert r.code == 2 and "unexpected keys: extra" in r.err


def test_piped_errors_stay_plain_text_unless_json_was_asked_for(kf, sandbox, chat):
    open_kfid, _ = chat
    r = kf("msg", "sync", open_kfid, "--limit", "0")
    assert r.code == 2 and r.err.startswith("error: ")
    r = kf("msg", "sync", open_kfid, "--limit", "0", "-o", "jsonl")
    assert r.code == 2 and json.loads(r.err)["error"]["type"] == "validation"
