"""`kfcli msg export`: CSV for Excel, JSON lines, one HTML page; filters; files never
half-written or overwritten by surprise."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.conftest import PNG

ALICE = "wmExportAlice0000000000000000001"
BOB = "wmExportBob000000000000000000002"
HOSTILE = '<script>alert("x")</script>&amp; <img src=x onerror=alert(1)>, "quoted"'


@pytest.fixture
def stored(kf, sandbox):
    """Two accounts. Support: Alice (Chinese, two lines, a servicer's answer, a photo) and
    Bob (hostile HTML, a formula); a day later Alice again. Sales: one message from Bob."""
    support, sales = sandbox.account("Support"), sandbox.account("Sales")
    r = sandbox.api("POST", "/cgi-bin/kf/servicer/add",
                    {"open_kfid": support, "userid_list": ["user001"]})
    assert r["errcode"] == 0, r
    sandbox.say(support, "你好，我要退款", external_userid=ALICE)
    sandbox.say(support, "订单号 123\n请尽快", external_userid=ALICE)
    sandbox.say(support, HOSTILE, external_userid=BOB)
    sandbox.say(support, "=1+1", external_userid=BOB)
    for doc in ({"open_kfid": support, "external_userid": ALICE, "userid": "user001",
                 "text": "好的"},):
        assert sandbox.post("/sandbox/servicer_message", doc)["errcode"] == 0
    assert sandbox.post("/sandbox/customer_message", {
        "open_kfid": support, "external_userid": ALICE, "msgtype": "image",
        "media_base64": base64.b64encode(PNG).decode()})["errcode"] == 0
    assert sandbox.post("/sandbox/clock", {"advance": 86400})["errcode"] == 0
    sandbox.say(support, "第二天", external_userid=ALICE)
    sandbox.say(sales, "sales question", external_userid=BOB)
    synced = {}
    for open_kfid in (support, sales):
        r = kf("msg", "sync", open_kfid)
        assert r.code == 0, r.err
        synced[open_kfid] = [json.loads(line) for line in r.out.splitlines()]
    return support, sales, synced


def nickname(kf, external_userid: str) -> str:
    """What customer/batchget says the customer is called."""
    r = kf("customer", "get", external_userid, "-o", "json")
    assert r.code == 0, r.err
    (customer,) = r.json()["customer_list"]
    return customer["nickname"]


def read_csv(path: Path) -> list[dict[str, str]]:
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def test_csv_opens_in_excel_with_chinese_and_line_breaks(kf, stored, tmp_path: Path) -> None:
    support, sales, synced = stored
    out = tmp_path / "week.csv"
    r = kf("msg", "export", "--format", "csv", "-O", str(out))
    assert r.code == 0, r.err
    assert r.out == ""
    total = sum(map(len, synced.values()))
    assert f"exported {total} messages to {out}" in r.err
    rows = read_csv(out)
    assert list(rows[0]) == ["time", "account", "customer", "origin", "sender", "msgtype",
                             "text", "msgid", "media_id", "nickname"]
    assert len(rows) == total
    assert {r["account"] for r in rows} == {support, sales}
    by_text = {r["text"]: r for r in rows}
    assert by_text["你好，我要退款"]["customer"] == ALICE
    assert by_text["订单号 123\n请尽快"]["origin"] == "customer"
    answer = by_text["好的"]
    assert (answer["origin"], answer["sender"], answer["customer"]) == \
        ("servicer", "user001", ALICE)
    assert HOSTILE in by_text
    assert "'=1+1" in by_text  # Excel would run it as a formula
    image = by_text[f"[image {len(PNG)} B]"]  # as every view says it: archived, its size
    assert image["msgtype"] == "image" and image["media_id"]
    # Each customer's nickname (customer/batchget, one call for both), on every row of theirs.
    names = {r["customer"]: r["nickname"] for r in rows if r["origin"] == "customer"}
    assert names == {ALICE: nickname(kf, ALICE), BOB: nickname(kf, BOB)}
    assert all(r["nickname"] == names.get(r["customer"], "") for r in rows)
    events = [r for r in rows if r["msgtype"] == "event"]
    assert events and all(r["origin"] == "system" for r in events)
    first = rows[0]["time"]
    assert first[10] == "T" and first[-6] in "+-" and first[-3] == ":"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_jsonl_is_the_raw_messages(kf, stored) -> None:
    support, _, synced = stored
    r = kf("msg", "export", "--account", support, "--format", "jsonl", "-O", "-")
    assert r.code == 0, r.err
    assert [json.loads(line) for line in r.out.splitlines()] == synced[support]
    assert "to stdout" in r.err
    history = kf("msg", "history", support)
    assert r.out == history.out


class Page(HTMLParser):
    """The tags, attributes and text of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.open: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data) -> None:
        self.text.append(data)


def test_html_is_one_escaped_page_grouped_by_conversation(kf, stored, tmp_path: Path) -> None:
    support, _, synced = stored
    out = tmp_path / "chats.html"
    r = kf("msg", "export", "--account", support, "--format", "html", "-O", str(out))
    assert r.code == 0, r.err
    source = out.read_text(encoding="utf-8")
    page = Page()
    page.feed(source)
    tags = [t for t, _ in page.tags]
    assert "script" not in tags
    # The image was archived when synced: inline, as a data: URI of its own bytes.
    (img,) = [a for t, a in page.tags if t == "img"]
    assert img["src"] == "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert all(not (a.get("src") or "").startswith("http") and "href" not in a
               for _, a in page.tags)  # self-contained
    assert "<script>" not in source and "onerror=alert" not in source.replace(
        "onerror=alert(1)&gt;", "")
    text = "".join(page.text)
    assert HOSTILE in text  # shown as written, not run
    sections = [a for t, a in page.tags if t == "section"]
    assert [s["data-customer"] for s in sections] == [ALICE, BOB]  # order of first message
    assert all(s["data-account"] == support for s in sections)
    # Alice's conversation holds all her messages, with a line for each of the two days.
    alice = source.split('data-customer="' + ALICE)[1].split("</section>")[0]
    assert alice.count('class="day"') == 2
    assert alice.index("你好，我要退款") < alice.index("好的") < alice.index("<img") < \
        alice.index("第二天")
    assert "订单号 123\n请尽快" in alice
    assert f"{len(synced[support])} messages" in text


def test_filters(kf, stored, tmp_path: Path) -> None:
    support, sales, synced = stored
    times = sorted({m["send_time"] for m in synced[support]})
    day2 = times[-1]

    def export(*args: str) -> list[dict]:
        r = kf("msg", "export", "--format", "jsonl", "-O", "-", *args)
        assert r.code == 0, r.err
        return [json.loads(line) for line in r.out.splitlines()]

    alice = export("--account", support, "--customer", ALICE)
    assert alice and all(ALICE in json.dumps(m) for m in alice)
    assert [m["text"]["content"] for m in export("--since", str(day2), "--account", support)] \
        == ["第二天"]
    before = export("--until", str(day2), "--account", support)
    assert len(before) == len(synced[support]) - 1
    assert [m["open_kfid"] for m in export("--customer", BOB, "--since", str(day2))] == [sales]
    assert export("--until", str(times[0])) == []


@pytest.mark.parametrize("args, needle", [
    (["--since", "2026-11-02", "--until", "2026-11-01"], "later than --since"),
    (["--format", "xlsx"], "--format"),
    (["--customer", ""], "external_userid"),
    (["--account", ""], "open_kfid"),
    (["--since", "soon"], "--since"),
])
def test_bad_input_exits_2_and_writes_nothing(kf, sandbox, tmp_path: Path, args, needle):
    out = tmp_path / "x.csv"
    full = ["msg", "export", "-O", str(out), *args]
    if "--format" not in args:
        full += ["--format", "csv"]
    r = kf(*full)
    assert r.code == 2, r.text
    assert needle in r.err and not out.exists()


def test_an_existing_file_is_kept_without_force(kf, stored, tmp_path: Path) -> None:
    out = tmp_path / "chats.csv"
    out.write_text("precious")
    r = kf("msg", "export", "--format", "csv", "-O", str(out))
    assert r.code == 2 and "--force" in r.err and str(out) in r.err
    assert out.read_text() == "precious"
    r = kf("msg", "export", "--format", "csv", "-O", str(out), "--force")
    assert r.code == 0, r.err
    assert read_csv(out)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_an_unwritable_path_is_named(kf, stored, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    r = kf("msg", "export", "--format", "csv", "-O", str(locked / "x.csv"))
    assert r.code == 2 and str(locked / "x.csv") in r.err
    assert list(locked.iterdir()) == []


def test_missing_directory_and_directory_target(kf, stored, tmp_path: Path) -> None:
    r = kf("msg", "export", "--format", "csv", "-O", str(tmp_path / "nope" / "x.csv"))
    assert r.code == 2 and str(tmp_path / "nope") in r.err
    r = kf("msg", "export", "--format", "csv", "-O", str(tmp_path))
    assert r.code == 2 and "directory" in r.err


def test_export_to_dev_null_and_empty_store(kf, sandbox) -> None:
    assert kf("msg", "sync", sandbox.account()).code == 0  # a store, with nothing in it
    r = kf("msg", "export", "--format", "html", "-O", "/dev/null")
    assert r.code == 2 and "a device" in r.err and "--force" in r.err  # nothing written
    r = kf("msg", "export", "--format", "html", "-O", "/dev/null", "--force")
    assert r.code == 0, r.err
    assert "exported 0 messages to /dev/null" in r.err
    r = kf("msg", "export", "--format", "csv", "-O", "-")
    assert r.code == 0 and r.out.splitlines() == ["\ufefftime,account,customer,origin,sender,"
                                                  "msgtype,text,msgid,media_id,nickname"]


def test_a_path_nobody_can_write_is_named(kf, stored) -> None:
    target = "/proc/kfcli-export.csv"  # not even root creates files here
    r = kf("msg", "export", "--format", "csv", "-O", target)
    assert r.code == 2 and f"cannot write {target}" in r.err


@pytest.mark.process
def test_progress_on_a_terminal_and_the_count(kf, sandbox, tmp_path: Path) -> None:
    from tests.conftest import on_terminal

    open_kfid = sandbox.account()
    assert sandbox.post("/sandbox/seed_messages", {"open_kfid": open_kfid,
                                                   "count": 20_000})["errcode"] == 0
    assert kf("msg", "sync", open_kfid, "-o", "jsonl").code == 0
    out = tmp_path / "all.csv"
    r = on_terminal(["msg", "export", "--format", "csv", "-O", str(out)], sandbox.env)
    assert r.code == 0, r.err
    assert "exporting: 10,000 messages" in r.err and "exporting: 20,000 messages" in r.err
    assert f"exported 20,000 messages to {out}" in r.err
    assert r.out == ""
    assert len(read_csv(out)) == 20_000


@pytest.mark.process
def test_export_search_and_transcript_on_postgresql(kf, sandbox, pg_url, tmp_path: Path
                                                    ) -> None:
    """The same archive commands against a PostgreSQL store (KFCLI_STORE)."""
    from tests.conftest import on_terminal

    env = {"KFCLI_STORE": pg_url}
    support = sandbox.account("Support")
    sandbox.say(support, "你好，我要退款", external_userid=ALICE)
    sandbox.say(support, "订单号 123\n请尽快", external_userid=ALICE)
    sandbox.say(support, HOSTILE, external_userid=BOB)
    r = kf("msg", "sync", support, env=env)
    assert r.code == 0, r.err
    out = tmp_path / "pg.csv"
    r = kf("msg", "export", "--format", "csv", "-O", str(out), env=env)
    assert r.code == 0, r.err
    rows = read_csv(out)
    assert [row["text"] for row in rows] == ["你好，我要退款", "订单号 123\n请尽快", HOSTILE]
    found = kf("msg", "search", "退款", "-o", "jsonl", env=env)
    assert found.code == 0, found.err
    assert [json.loads(line)["text"]["content"] for line in found.out.splitlines()] == [
        "你好，我要退款"]
    view = on_terminal(["msg", "history", support, "--customer", ALICE],
                       {**sandbox.env, **env}, columns=100)
    assert view.code == 0, view.err
    assert "你好，我要退款" in view.out and "    请尽快" in view.out


@pytest.mark.process
def test_csv_to_a_terminal_carries_no_control_sequence(kf, sandbox) -> None:
    """The attack: a customer's message writes the clipboard (OSC 52), colours the screen
    or reverses text when `msg export --format csv -O -` shows it on a terminal."""
    from tests.conftest import on_terminal

    open_kfid = sandbox.account()
    hostile = "\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J\x9b31m\u202egnp.exe =1+1"
    sandbox.say(open_kfid, hostile, external_userid=ALICE)
    sandbox.say(open_kfid, " =HYPERLINK(\"http://x\")", external_userid=ALICE)
    assert kf("msg", "sync", open_kfid).code == 0
    r = on_terminal(["msg", "export", "--format", "csv", "-O", "-"], sandbox.env)
    assert r.code == 0, r.err
    assert "\x1b" not in r.out and "\x9b" not in r.out and "\u202e" not in r.out
    assert "]52;c;cm0gLXJmIH4=[2J31mgnp.exe =1+1" in r.out
    assert "' =HYPERLINK" in r.out
    for fmt in ("jsonl", "html"):
        r = on_terminal(["msg", "export", "--format", fmt, "-O", "-"], sandbox.env)
        assert r.code == 0 and "\x1b" not in r.out and "\x9b" not in r.out, fmt
        assert "\u202e" not in r.out, fmt
