"""Whole conversations (issue 21): every send kfcli makes is in the store with its
conversation (origin 100), the reply window counts them all, derived msgids follow the
conversation's turns, and `msg inbox` / `msg reply` work from the store. On SQLite and
PostgreSQL (`store_env`)."""

from __future__ import annotations

import csv
import io
import json

from kfcli.core.batch import derive_msgid
from kfcli.core.origins import KFCLI


def line(open_kfid: str, customer: str, text: str, **extra) -> str:
    return json.dumps({"open_kfid": open_kfid, "external_userid": customer,
                       "msgtype": "text", "text": {"content": text}, **extra},
                      ensure_ascii=False) + "\n"


def results(out: str) -> dict[int, dict]:
    return {r["line"]: r for r in map(json.loads, out.splitlines())}


def synced(kf, open_kfid: str, env: dict) -> dict[str, str]:
    """Pull into the store: {customer: msgid of their latest message}."""
    r = kf("msg", "sync", open_kfid, "-o", "jsonl", env=env)
    assert r.code == 0, r.err
    return {m["external_userid"]: m["msgid"] for m in map(json.loads, r.out.splitlines())
            if m.get("origin") == 3}


def history(kf, open_kfid: str, env: dict, *args: str) -> list[dict]:
    r = kf("msg", "history", open_kfid, *args, "-o", "jsonl", env=env)
    assert r.code == 0, r.err
    return [json.loads(x) for x in r.out.splitlines()]


def said(doc: dict) -> tuple[int, str]:
    return doc["origin"], doc.get("text", {}).get("content", doc["msgtype"])


def test_every_view_shows_both_sides_in_order(kf, sandbox, store_env, tmp_path):
    """Customers write; a bot (--batch) and a person (msg reply, msg send) answer: history,
    search, CSV, HTML and consumers show each conversation whole, in order."""
    k = sandbox.account()
    sandbox.say(k, "我要退款", external_userid="wmA")
    sandbox.say(k, "hello", external_userid="wmB")
    inbound = synced(kf, k, store_env)

    r = kf("msg", "send", "--batch", "-", input=line(k, "wmA", "退款已受理",
                                                      reply_to=inbound["wmA"]), env=store_env)
    assert r.code == 0, r.err
    r = kf("msg", "reply", inbound["wmB"], "--text", "您好，B", env=store_env)
    assert r.code == 0, r.err
    assert r.out.strip() == derive_msgid(k, "wmB", reply_to=inbound["wmB"])
    r = kf("msg", "send", k, "wmA", "--text", "还需要别的吗？", env=store_env)
    assert r.code == 0, r.err
    sandbox.say(k, "不用了，谢谢", external_userid="wmA")
    synced(kf, k, store_env)

    got = history(kf, k, store_env, "--customer", "wmA")
    assert [said(d) for d in got] == [(3, "我要退款"), (KFCLI, "退款已受理"),
                                      (KFCLI, "还需要别的吗？"), (3, "不用了，谢谢")]
    bot = got[1]
    assert bot["msgid"] == derive_msgid(k, "wmA", reply_to=inbound["wmA"])
    assert (bot["open_kfid"], bot["external_userid"], bot["msgtype"]) == (k, "wmA", "text")
    assert got[0]["send_time"] <= bot["send_time"] <= got[3]["send_time"]
    assert [said(d) for d in history(kf, k, store_env, "--customer", "wmB")] == \
        [(3, "hello"), (KFCLI, "您好，B")]

    found = kf("msg", "search", "已受理", "-o", "jsonl", env=store_env)
    assert found.code == 0 and [said(json.loads(x)) for x in found.out.splitlines()] == \
        [(KFCLI, "退款已受理")]
    view = kf("msg", "history", k, "--customer", "wmA", "-o", "tsv", env=store_env)
    assert "kfcli\t" in view.out and "退款已受理" in view.out

    out = tmp_path / "chats.csv"
    r = kf("msg", "export", "--format", "csv", "-O", str(out), env=store_env)
    assert r.code == 0, r.err
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    assert [(x["origin"], x["text"]) for x in rows if x["customer"] == "wmA"] == [
        ("customer", "我要退款"), ("kfcli", "退款已受理"), ("kfcli", "还需要别的吗？"),
        ("customer", "不用了，谢谢")]
    page = tmp_path / "chats.html"
    r = kf("msg", "export", "--format", "html", "-O", str(page), env=store_env)
    assert r.code == 0, r.err
    html = page.read_text(encoding="utf-8")
    assert '<div class="msg company kfcli">' in html
    assert html.index("我要退款") < html.index("退款已受理") < html.index("不用了，谢谢")

    # A consumer hands the sends out too, marked: a bot that answers origin 3 skips them.
    got = history(kf, k, store_env, "--consumer", "qa", "--since", "0")
    assert [d["origin"] for d in got] == [3, 3, KFCLI, KFCLI, KFCLI, 3]


def test_the_window_counts_single_and_batch_sends_together(kf, sandbox, store_env):
    k = sandbox.account()
    sandbox.say(k, "在吗", external_userid="wmW")
    synced(kf, k, store_env)
    for n in range(3):
        assert kf("msg", "send", k, "wmW", "--text", f"single {n}", env=store_env).code == 0
    from tests.conftest import on_terminal

    view = on_terminal(["msg", "history", k, "--customer", "wmW"], {**sandbox.env, **store_env})
    assert "reply window: 2 of 5 left, closes in 48 h" in view.err
    requests = sandbox.stats().get("/cgi-bin/kf/send_msg", 0)
    batch = "".join(line(k, "wmW", f"batch {n}") for n in range(3))
    r = kf("msg", "send", "--batch", "-", "--parallel", "1", input=batch, env=store_env)
    assert r.code == 0, r.err
    got = results(r.out)
    assert [got[n]["status"] for n in (1, 2, 3)] == ["sent", "sent", "skipped"]
    assert got[3]["errcode"] == 95001
    assert sandbox.stats().get("/cgi-bin/kf/send_msg", 0) == requests + 2  # none for line 3


def test_the_window_line_reports_a_closed_window_and_a_servicers_session(kf, sandbox,
                                                                         store_env):
    from tests.conftest import on_terminal

    k = sandbox.account()
    sandbox.say(k, "在吗", external_userid="wmOld")
    synced(kf, k, store_env)
    sandbox.post("/sandbox/clock", {"advance": 49 * 3600})
    sandbox.say(k, "hi", external_userid="wmNew")  # WeCom's clock, as the store learns it
    synced(kf, k, store_env)
    env = {**sandbox.env, **store_env}
    view = on_terminal(["msg", "history", k, "--customer", "wmOld"], env)
    assert "reply window: closed (the customer's last message was 49 h ago)" in view.err

    userid = sandbox.get("/sandbox/directory")["userids"][0]
    assert sandbox.api("POST", "/cgi-bin/kf/servicer/add",
                       {"open_kfid": k, "userid_list": [userid]})["errcode"] == 0
    sandbox.post("/sandbox/servicer_message", {"open_kfid": k, "external_userid": "wmNew",
                                               "userid": userid, "text": "我来处理"})
    sandbox.say(k, "好的", external_userid="wmNew")
    synced(kf, k, store_env)
    view = on_terminal(["msg", "history", k, "--customer", "wmNew"], env)
    assert "session with a servicer (state 3)" in view.err and "95018" in view.err
    r = kf("msg", "inbox", k, "-o", "json", env=store_env)
    assert r.code == 0, r.err
    (waiting,) = [e for e in json.loads(r.out) if e["external_userid"] == "wmNew"]
    assert waiting["state"] == 3 and waiting["answerable"] is False


def test_a_rerun_sends_a_new_turn_but_never_the_same_turn_twice(kf, sandbox, store_env):
    """The same status-update file: run twice the same day, delivered once; run the next day
    after the customer wrote again, delivered again; `already_sent` says what it matches."""
    k = sandbox.account()
    sandbox.say(k, "订单到哪了？", external_userid="wmS")
    synced(kf, k, store_env)
    update = line(k, "wmS", "您的订单已发货")
    first = kf("msg", "send", "--batch", "-", input=update, env=store_env)
    assert first.code == 0 and results(first.out)[1]["status"] == "sent"
    again = kf("msg", "send", "--batch", "-", input=update, env=store_env)
    got = results(again.out)[1]
    assert got["status"] == "already_sent" and got["msgid"] == results(first.out)[1]["msgid"]
    assert "matches the send of msgid" in got["message"] and "您的订单已发货" in got["message"]

    sandbox.post("/sandbox/clock", {"advance": 24 * 3600})
    sandbox.say(k, "明天能到吗？", external_userid="wmS")
    synced(kf, k, store_env)
    next_day = kf("msg", "send", "--batch", "-", input=update, env=store_env)
    got = results(next_day.out)[1]
    assert got["status"] == "sent", got
    assert got["msgid"] != results(first.out)[1]["msgid"]
    texts = [m["text"]["content"] for m in sandbox.sent(k)]
    assert texts == ["您的订单已发货", "您的订单已发货"]


def test_a_send_the_store_cannot_take_is_recorded_on_the_next_run(kf, sandbox, store_env,
                                                                  monkeypatch):
    """The store refuses writes (read-only): the send still goes, the command says it was
    kept, and the next kfcli that sends records it; nothing is lost or doubled."""
    from kfcli.core.store.base import StoreUnwritable
    from kfcli.core.store.sqlite import SqliteStore

    k = sandbox.account()
    sandbox.say(k, "在吗", external_userid="wmRO")
    synced(kf, k, store_env)

    def read_only(self, *args, **kwargs):
        raise StoreUnwritable("cannot write to the store (read-only)")

    stores = [SqliteStore]
    if store_env:
        from kfcli.core.store.postgres import PostgresStore

        stores.append(PostgresStore)
    with monkeypatch.context() as m:
        for cls in stores:
            m.setattr(cls, "record_sent", read_only)
        r = kf("msg", "send", k, "wmRO", "--text", "单发", env=store_env)
        assert r.code == 0, r.err
        assert "kept in" in r.err and "recorded in the store on the next run" in r.err
        r = kf("msg", "send", "--batch", "-", input=line(k, "wmRO", "批量"), env=store_env)
        assert r.code == 0, r.err
        assert results(r.out)[1]["status"] == "sent"
        assert "1 send could not be recorded in the store" in r.err
    assert [m["text"]["content"] for m in sandbox.sent(k)] == ["单发", "批量"]
    assert [said(d) for d in history(kf, k, store_env)] == [(3, "在吗")]

    # The next send records what was kept first, then itself.
    r = kf("msg", "send", k, "wmRO", "--text", "第三条", env=store_env)
    assert r.code == 0, r.err
    assert "recorded 2 earlier sends" in r.err
    assert [said(d) for d in history(kf, k, store_env)] == [
        (3, "在吗"), (KFCLI, "单发"), (KFCLI, "批量"), (KFCLI, "第三条")]
    r = kf("msg", "send", k, "wmRO", "--text", "第四条", env=store_env)
    assert "earlier" not in r.err  # recorded once
    assert len(history(kf, k, store_env)) == 5


def test_the_inbox_lists_exactly_the_customers_still_waiting(kf, sandbox, store_env):
    k, other = sandbox.account(), sandbox.account("Sales")
    for customer in ("wmAnswered", "wmWaiting", "wmServicer", "wmAgain"):
        sandbox.say(k, f"{customer} asks", external_userid=customer)
    sandbox.say(other, "elsewhere", external_userid="wmElse")
    inbound = synced(kf, k, store_env)
    synced(kf, other, store_env)
    assert kf("msg", "reply", inbound["wmAnswered"], "--text", "ok",
              env=store_env).code == 0
    assert kf("msg", "send", "--batch", "-", input=line(k, "wmAgain", "first answer"),
              env=store_env).code == 0
    sandbox.say(k, "one more question", external_userid="wmAgain")  # waiting again
    userid = sandbox.get("/sandbox/directory")["userids"][0]
    sandbox.api("POST", "/cgi-bin/kf/servicer/add", {"open_kfid": k, "userid_list": [userid]})
    sandbox.post("/sandbox/servicer_message", {"open_kfid": k, "external_userid": "wmServicer",
                                               "userid": userid, "text": "我来"})
    synced(kf, k, store_env)

    r = kf("msg", "inbox", k, "-o", "json", env=store_env)
    assert r.code == 0, r.err
    entries = json.loads(r.out)
    assert [e["external_userid"] for e in entries] == ["wmWaiting", "wmAgain"]  # oldest first
    waiting = entries[0]
    assert waiting["msgid"] == inbound["wmWaiting"] and waiting["text"] == "wmWaiting asks"
    assert waiting["window_left"] == 5 and waiting["answerable"] is True
    assert 47 * 3600 < waiting["closes_in"] <= 48 * 3600 and waiting["state"] is None
    # --limit N: the N most urgent, the rest counted on stderr; --all: every one.
    msgids = [e["msgid"] for e in entries]
    r = kf("msg", "inbox", k, "--limit", "1", "-o", "json", env=store_env)
    assert r.code == 0 and [e["msgid"] for e in json.loads(r.out)] == msgids[:1], r.text
    assert json.loads(r.out)[0]["text"] == "wmWaiting asks" and "1 more waiting" in r.err
    r = kf("msg", "inbox", k, "--all", "-o", "json", env=store_env)
    assert r.code == 0 and [e["msgid"] for e in json.loads(r.out)] == msgids
    assert "more waiting" not in r.err
    assert kf("msg", "inbox", k, "--all", "--limit", "1", env=store_env).code == 2
    r = kf("msg", "inbox", "-o", "jsonl", env=store_env)
    assert sorted(json.loads(x)["external_userid"] for x in r.out.splitlines()) == \
        ["wmAgain", "wmElse", "wmWaiting"]

    assert kf("msg", "reply", waiting["msgid"], "--text", "来了", env=store_env).code == 0
    r = kf("msg", "inbox", k, "-o", "jsonl", env=store_env)
    assert [json.loads(x)["external_userid"] for x in r.out.splitlines()] == ["wmAgain"]
    again = kf("msg", "reply", waiting["msgid"], "--text", "来了（重发）", env=store_env)
    assert again.code == 0 and "delivered before" in again.err  # the same reply: not twice
    assert [m["text"]["content"] for m in sandbox.sent(k)].count("来了") == 1


def test_reply_refuses_what_is_not_a_stored_customer_message(kf, sandbox, store_env):
    k = sandbox.account()
    sandbox.say(k, "hi", external_userid="wmR")
    synced(kf, k, store_env)
    r = kf("msg", "reply", "nosuchmsgid", "--text", "x", env=store_env)
    assert r.code == 4 and "not in the store" in r.err
    sent = kf("msg", "send", k, "wmR", "--text", "mine", env=store_env).out.strip()
    r = kf("msg", "reply", sent, "--text", "x", env=store_env)
    assert r.code == 2 and "not a customer's" in r.err


def test_a_welcome_sent_on_an_event_is_in_the_conversation(kf, sandbox, store_env):
    k = sandbox.account()
    doc = sandbox.post("/sandbox/enter_session", {"open_kfid": k, "external_userid": "wmHi"})
    assert doc["errcode"] == 0, doc
    r = kf("msg", "sync", k, "-o", "jsonl", env=store_env)
    (event,) = [json.loads(x)["event"] for x in r.out.splitlines()]
    r = kf("msg", "send-on-event", event["welcome_code"], "--text", "欢迎光临", env=store_env)
    assert r.code == 0, r.err
    got = history(kf, k, store_env, "--customer", "wmHi")
    assert [said(d) for d in got] == [(4, "event"), (KFCLI, "欢迎光临")]
    assert got[1]["msgid"] == r.out.strip()


def test_the_librarys_sends_are_recorded_with_a_recorder(sandbox, tmp_path, monkeypatch):
    """`KfClient(recorder=SendRecorder(store, corp_id))`: every delivered send is in the
    store; one the store cannot take is journaled and recorded by the next."""
    from kfcli.core import KfClient, SendRecorder
    from kfcli.core.sends import SendJournal
    from kfcli.core.store import open_store
    from kfcli.core.store.base import StoreUnwritable
    from kfcli.core.store.sqlite import SqliteStore

    k = sandbox.account()
    sandbox.say(k, "hello", external_userid="wmLib")
    env = sandbox.env
    store = open_store(str(tmp_path / "lib.db"))
    warnings: list[str] = []
    recorder = SendRecorder(store, env["KFCLI_CORP_ID"], warn=warnings.append,
                            journal=SendJournal(store.display_url, tmp_path / "journal"))
    with KfClient(env["KFCLI_CORP_ID"], env["KFCLI_SECRET"], base_url=env["KFCLI_BASE_URL"],
                  recorder=recorder) as client:
        first = client.send_message(open_kfid=k, external_userid="wmLib", msgtype="text",
                                    content={"content": "one"})
        assert first.recorded is True
        with monkeypatch.context() as m:
            def refuse(*args, **kwargs):
                raise StoreUnwritable("read-only")

            m.setattr(SqliteStore, "record_sent", refuse)
            second = client.send_message(open_kfid=k, external_userid="wmLib",
                                         msgtype="text", content={"content": "two"})
        assert second.recorded is False and "kept in" in warnings[0]
        other = SendRecorder(store, env["KFCLI_CORP_ID"], warn=warnings.append,
                             journal=SendJournal(store.display_url, tmp_path / "journal"))
        client.recorder = other
        client.send_message(open_kfid=k, external_userid="wmLib", msgtype="text",
                            content={"content": "three"})
    texts = [json.loads(r.text)["text"]["content"] for r in store.messages(
        env["KFCLI_CORP_ID"], k, customer="wmLib")]
    assert texts == ["one", "two", "three"]
    assert "recorded 1 earlier send" in warnings[-1]
    store.close()


def test_inbox_and_reply_never_create_a_store(kf, sandbox, tmp_path):
    where = tmp_path / "nowhere" / "store.db"
    env = {"KFCLI_STORE": f"sqlite:///{where}"}
    r = kf("msg", "inbox", "-o", "json", env=env)
    assert r.code == 3 and str(where) in r.err
    r = kf("msg", "reply", "somemsgid", "--text", "x", env=env)
    assert r.code == 3 and not where.parent.exists()


def test_a_send_on_a_code_from_state_trans_is_in_the_conversation(kf, sandbox, store_env):
    k = sandbox.account()
    sandbox.say(k, "有人吗", external_userid="wmQ")
    synced(kf, k, store_env)
    r = kf("state", "trans", k, "wmQ", "pool", "-o", "json", env=store_env)
    assert r.code == 0, r.err
    code = r.json()["msg_code"]
    assert code
    r = kf("msg", "send-on-event", code, "--text", "您已进入排队", env=store_env)
    assert r.code == 0, r.err
    assert "not in the store" not in r.err
    assert [said(d) for d in history(kf, k, store_env, "--customer", "wmQ")] == [
        (3, "有人吗"), (KFCLI, "您已进入排队")]
