"""`kfcli msg history` on a terminal reads as a conversation (who, when, what); piped, it is
still the raw message objects."""

from __future__ import annotations

import base64
import json
import re

import pytest

from tests.cli.test_export import nickname
from tests.conftest import PNG, on_terminal_in_process


def plain(out: str) -> str:
    """What a person sees: the terminal's colours and bold taken out."""
    return re.sub(r"\x1b\[[0-9;]*m", "", out)


ALICE = "wmTranscriptAlice000000000000001"
BOB = "wmTranscriptBob00000000000000002"


@pytest.fixture
def conversation(kf, sandbox):
    """Alice enters from a campaign, asks in Chinese, is picked up by user001, transferred to
    user002; the next day she writes two lines and sends a photo. Bob
    says hi in between."""
    open_kfid = sandbox.account("Support")
    r = sandbox.api("POST", "/cgi-bin/kf/servicer/add",
                    {"open_kfid": open_kfid, "userid_list": ["user001", "user002"]})
    assert r["errcode"] == 0, r
    ok = lambda doc: doc["errcode"] == 0 or pytest.fail(str(doc))  # noqa: E731
    ok(sandbox.post("/sandbox/enter_session", {"open_kfid": open_kfid,
                                               "external_userid": ALICE,
                                               "scene": "spring_sale"}))
    sandbox.say(open_kfid, "你好，我要退款", external_userid=ALICE)
    sandbox.say(open_kfid, "hi", external_userid=BOB)
    for userid, text in (("user001", "好的，请稍等"), ("user002", "我来处理")):
        ok(sandbox.post("/sandbox/servicer_message", {"open_kfid": open_kfid,
                                                      "external_userid": ALICE,
                                                      "userid": userid, "text": text}))
    ok(sandbox.post("/sandbox/clock", {"advance": 86400}))
    sandbox.say(open_kfid, "第一行\n第二行", external_userid=ALICE)
    ok(sandbox.post("/sandbox/customer_message", {
        "open_kfid": open_kfid, "external_userid": ALICE, "msgtype": "image",
        "media_base64": base64.b64encode(PNG).decode()}))
    r = kf("msg", "sync", open_kfid)
    assert r.code == 0, r.err
    return open_kfid, [json.loads(line) for line in r.out.splitlines()]


def test_one_customer_reads_as_a_conversation(kf, conversation, sandbox) -> None:
    open_kfid, _ = conversation
    alice = nickname(kf, ALICE)  # what customer/batchget calls her
    r = on_terminal_in_process(["msg", "history", open_kfid, "--customer", ALICE], sandbox.env)
    assert r.code == 0, r.err
    r.out = plain(r.out)
    lines = r.out.splitlines()
    assert lines[0] == f"conversation with customer {ALICE} ({alice})"
    assert r.out.count(ALICE) == 1  # named once, not on every line
    assert "hi" not in r.out.split()  # Bob's message is not in Alice's conversation
    days = [line for line in lines if line.startswith("── ")]
    assert len(days) == 2 and days[0] < days[1]
    body = [line for line in lines[1:] if not line.startswith("── ")]

    def said(who: str, what: str) -> bool:
        return any(line[10:].split(None, 1) == [who, what] for line in body)

    assert said("system", "entered from scene spring_sale, with a welcome_code")
    assert said(alice, "你好，我要退款")  # the customer speaks under her nickname
    assert said("system", "picked from the queue by user001")
    assert said("user001", "好的，请稍等")
    # The text starts in the same terminal column whoever speaks (a Chinese nickname's
    # characters are two cells wide).
    from rich.cells import cell_len

    starts = {cell_len(line.split(text)[0]) for line in body
              for text in ("你好，我要退款", "好的，请稍等") if text in line}
    assert len(starts) == 1, body
    assert said("system", "transferred to user002")
    assert said("user002", "我来处理")
    assert said(alice, f"[image {len(PNG)} B]")  # archived when synced: its size
    # Every message line starts with its local time; two lines of text go below, indented.
    at = next(i for i, line in enumerate(lines) if line.strip() == "第一行")
    assert lines[at].startswith("    ") and lines[at + 1] == "    第二行"
    assert lines[at - 1][8:].split() == [alice]
    assert all(line[:2].isdigit() and line[2] == ":" for line in body if line[0] != " ")


def test_without_customer_each_message_names_its_customer(kf, conversation, sandbox) -> None:
    open_kfid, synced = conversation
    bob = nickname(kf, BOB)
    before = sandbox.stats().get("/cgi-bin/kf/customer/batchget", 0)
    r = on_terminal_in_process(["msg", "history", open_kfid], sandbox.env)
    assert r.code == 0, r.err
    lines = [line for line in plain(r.out).splitlines() if line[:1].isdigit()]
    assert any(line.split()[1:] == [BOB, bob, "hi"] for line in lines)
    assert any(line.split()[1:3] == [ALICE, "user001"] for line in lines)
    assert len(lines) == len(synced)  # one header line per message (the 2-line text below)
    # Both customers' names in one customer/batchget call, cached in the store: the next
    # view asks WeCom nothing.
    assert sandbox.stats()["/cgi-bin/kf/customer/batchget"] == before + 1
    again = on_terminal_in_process(["msg", "history", open_kfid], sandbox.env)
    assert plain(again.out) == plain(r.out)
    assert sandbox.stats()["/cgi-bin/kf/customer/batchget"] == before + 1


def test_piped_or_jsonl_is_the_raw_objects(kf, conversation, sandbox) -> None:
    open_kfid, synced = conversation
    alice = [m for m in synced if ALICE in (m.get("external_userid"),
                                             m.get("event", {}).get("external_userid"))]
    r = kf("msg", "history", open_kfid, "--customer", ALICE)
    assert r.code == 0 and [json.loads(x) for x in r.out.splitlines()] == alice
    t = on_terminal_in_process(["msg", "history", open_kfid, "--customer", ALICE, "-o", "jsonl"],
                    sandbox.env)
    assert [json.loads(x) for x in t.out.splitlines()] == alice


def test_a_narrow_terminal_never_cuts_ids_or_forges_lines(kf, sandbox) -> None:
    open_kfid = sandbox.account()
    forged = "14:09:57  user001   please pay to account 123"
    sandbox.say(open_kfid, "x" * 30 + " " + forged, external_userid=ALICE)
    kf("msg", "sync", open_kfid)
    r = on_terminal_in_process(["msg", "history", open_kfid], sandbox.env, columns=50)
    assert r.code == 0, r.err
    r.out = plain(r.out)
    assert ALICE in r.out  # whole, on the header line
    [at] = [i for i, line in enumerate(r.out.splitlines()) if "please pay" in line]
    assert r.out.splitlines()[at].startswith("    ")


def test_a_line_of_text_is_not_dim(kf, sandbox) -> None:
    """Only the time is dim: a one-line message reads as brightly as a long one."""
    open_kfid = sandbox.account()
    sandbox.say(open_kfid, "short and bright", external_userid=ALICE)
    assert kf("msg", "sync", open_kfid).code == 0
    r = on_terminal_in_process(["msg", "history", open_kfid, "--customer", ALICE], sandbox.env)
    assert r.code == 0, r.err
    (line,) = [x for x in r.out.splitlines() if "short and bright" in x]
    styles = re.findall(r"\x1b\[([0-9;]*)m", line.split("short and bright")[0])
    active = styles[-1].split(";") if styles else []
    assert "2" not in active, repr(line)  # the text's own style carries no dim
    assert "\x1b[2m" in line  # the time is dim


def test_one_wording_in_every_view(kf, sandbox, tmp_path) -> None:
    """An event and a file read the same on the terminal, in TSV, CSV and HTML: the file
    with its name and size once archived."""
    import csv
    import html
    import io

    open_kfid = sandbox.account()
    ok = lambda doc: doc["errcode"] == 0 or pytest.fail(str(doc))  # noqa: E731
    ok(sandbox.post("/sandbox/enter_session", {"open_kfid": open_kfid, "external_userid": ALICE,
                                               "scene": "spring_sale", "scene_param": "ad7"}))
    data = b"%PDF-1.4 contract\n" * 300
    ok(sandbox.post("/sandbox/customer_message", {
        "open_kfid": open_kfid, "external_userid": ALICE, "msgtype": "file",
        "filename": "合同.pdf", "media_base64": base64.b64encode(data).decode()}))
    assert kf("msg", "sync", open_kfid).code == 0
    from kfcli.core.transcript import size_text

    file_text = f"[file 合同.pdf {size_text(len(data))}]"
    event_text = "entered from scene spring_sale (ad7)"
    term = plain(on_terminal_in_process(["msg", "history", open_kfid], sandbox.env).out)
    tsv = kf("msg", "history", open_kfid, "-o", "tsv").out
    texts = [line.split("\t")[6] for line in tsv.splitlines()]
    out = tmp_path / "x.csv"
    assert kf("msg", "export", "--format", "csv", "-O", str(out)).code == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig"), newline="")))
    page = tmp_path / "x.html"
    assert kf("msg", "export", "--format", "html", "-O", str(page)).code == 0
    shown = html.unescape(re.sub(r"<[^>]+>", " ", page.read_text(encoding="utf-8")))
    for wanted in (file_text, event_text):
        assert wanted in term
        assert any(t.startswith(wanted) for t in texts), texts
        assert any(r["text"].startswith(wanted) for r in rows), rows
        assert wanted in shown
    # Every TSV row names its account and customer, the event's too.
    assert {tuple(line.split("\t")[1:3]) for line in tsv.splitlines()} == {(open_kfid, ALICE)}


def test_a_view_of_every_account_names_each_account(kf, sandbox) -> None:
    support, sales = sandbox.account("Support"), sandbox.account("Sales")
    for open_kfid, text, who in ((support, "support question", ALICE),
                                 (sales, "sales question", BOB),
                                 (support, "support again", ALICE)):
        sandbox.say(open_kfid, text, external_userid=who)
        assert kf("msg", "sync", open_kfid).code == 0  # stored in this order
    r = on_terminal_in_process(["msg", "history"], sandbox.env, columns=120)
    assert r.code == 0, r.err
    lines = [line for line in plain(r.out).splitlines() if not line.startswith("── 20")]
    marks = [i for i, line in enumerate(lines) if line.startswith("── account ")]
    assert [lines[i] for i in marks] == [f"── account {support} ──", f"── account {sales} ──",
                                         f"── account {support} ──"]  # in stored order
    assert "support question" in lines[marks[0] + 1] and "sales" in lines[marks[1] + 1]
    one = on_terminal_in_process(["msg", "history", support], sandbox.env, columns=60)
    assert "── account" not in plain(one.out)  # one account's view: named by the command
