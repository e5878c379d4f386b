"""`kfcli.core.export` on a stand-in store: CSV quoting as the csv module reads it, for any
text a customer can send, and the HTML page's escaping and media hook."""

from __future__ import annotations

import csv
import io
import json

import pytest

from kfcli.core.export import Exporter, Selection
from kfcli.core.store import Incoming, Row, Store
from kfcli.core.store.base import MediaItem


class FakeStore:
    # The store interface's own export_rows: every message handed over as its JSON text.
    export_rows = Store.export_rows

    def __init__(self, docs: list[dict]) -> None:
        self.rows = [Row(i + 1, json.dumps(d, ensure_ascii=False)) for i, d in enumerate(docs)]

    def media_items(self, corp_id, seqs):
        return {}

    def messages(self, corp_id, open_kfid=None, *, customer=None, since=None, until=None,
                 **_):
        for row in self.rows:
            doc = json.loads(row.text)
            if customer is not None and doc.get("external_userid", "") != customer:
                continue
            yield row


def text(content, n: int = 0, **extra) -> dict:
    return {"msgid": f"m{n}", "open_kfid": "wk1", "external_userid": "wm1", "origin": 3,
            "send_time": 1_790_000_000 + n, "msgtype": "text", "text": {"content": content},
            **extra}


NASTY = ['a, b', 'say "hi"', "two\nlines", "cr\r\nlf", "=SUM(A1)", "+1", "-x", "@me", "\tx",
         "", "plain", "逗号，中文", '",\n"', "trailing,"]


def export(docs, fmt="csv", **kwargs) -> str:
    out = io.StringIO(newline="")
    Exporter(FakeStore(docs), Selection("ww1"), **kwargs).write(fmt, out)
    return out.getvalue()


def test_csv_fields_read_back_exactly() -> None:
    data = export([text(t, i) for i, t in enumerate(NASTY)])
    assert data.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(data[1:], newline="")))
    assert rows[0][6] == "text" and len(rows) == len(NASTY) + 1
    got = [r[6] for r in rows[1:]]
    want = ["'" + t if t.startswith(("=", "-x", "@", "\t", "\r")) else t for t in NASTY]
    assert got == want  # "+1" is plainly a number: left as it is
    assert all(len(r) == 10 for r in rows)  # the last: the nickname


# Each is what a customer can type to get a formula run by a spreadsheet (the attack), and
# must come out with a leading '.
FORMULAS = [" =1+1", "  =HYPERLINK(\"http://x\")", "＝1+1", "＋1+1", "－1+1", "＠SUM(A1)",
            "\n=1+1", "\r\n=1+1", "\u3000=1+1", "\xa0@x", "﹦1", "\x1b=1", "\u202e=1+1",
            "=cmd|' /C calc'!A0", "-2+3", "+1+1", "\t=1", "@", "-", "+86 138 0013 8000 =1"]
# Plainly numbers, or not formulas: left as they are.
NOT_FORMULAS = ["+86 138 0013 8000", "+86-138-0013-8000", "-5", "+1 (555) 010-9999",
                " +86 138 0013 8000", "1+1", "a=b", "邮箱 a@b.c", "3.14", "－5"]


def csv_texts(contents: list[str]) -> list[str]:
    data = export([text(t, i) for i, t in enumerate(contents)])
    rows = list(csv.reader(io.StringIO(data[1:], newline="")))
    assert all(len(r) == 10 for r in rows)  # the last: the nickname
    return [r[6] for r in rows[1:]]


def test_formula_guard_covers_whitespace_full_width_and_line_breaks() -> None:
    from kfcli.core.export import _CSV_STRIP

    got = csv_texts(FORMULAS)
    assert got == ["'" + _CSV_STRIP.sub("", t) for t in FORMULAS]
    assert csv_texts(NOT_FORMULAS) == NOT_FORMULAS
    # Described messages (an event's scene) go through the same rule.
    event = {"msgid": "e", "origin": 4, "msgtype": "event", "send_time": 1_790_000_000,
             "event": {"event_type": "enter_session", "open_kfid": "wk1",
                       "external_userid": "wm1", "scene": "x"}}
    assert all(not cell.startswith("=") for cell in export([event]).split(","))


def test_csv_carries_no_terminal_control_or_bidi_character() -> None:
    # The attack: text that writes the clipboard (OSC 52), a disguised link (OSC 8), colours
    # (SGR, also as the 8-bit CSI U+009B), or reverses what a reader sees (bidi overrides),
    # when the CSV is shown on a terminal (`-O -`, `cat`).
    hostile = ["\x1b]52;c;Y3VybCBldmlsfHNo\x07copy me", "\x1b]8;;http://evil\x1b\\click\x1b]8;;\x1b\\",
               "\x1b[31mred\x1b[0m", "\x9b31mred", "abc\u202eexe.txt", "\u2066i\u2069 \u200f\u061c",
               "nul\x00 bel\x07 del\x7f c1\x85", "keep\ttab\r\nand lines"]
    data = export([text(t, i) for i, t in enumerate(hostile)]
                  + [text("x", 99, open_kfid="wk\x1b[2J", external_userid="wm\u202e1")])
    bad = [c for c in data if (ord(c) < 32 and c not in "\t\r\n") or 0x7f <= ord(c) <= 0x9f
           or c in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"]
    assert bad == []
    rows = list(csv.reader(io.StringIO(data[1:], newline="")))
    assert [r[6] for r in rows[1:]][:5] == ["]52;c;Y3VybCBldmlsfHNocopy me",
                                            "]8;;http://evil\\click]8;;\\", "[31mred[0m",
                                            "31mred", "abcexe.txt"]
    assert rows[-2][6] == "keep\ttab\r\nand lines" and rows[-1][1:3] == ["wk[2J", "wm1"]


def test_a_semicolon_forces_quoting() -> None:
    data = export([text("a;b", 1), text("x", 2, external_userid="wm;2")])
    assert '"a;b"' in data and '"wm;2"' in data


def test_odd_shapes_do_not_break_a_row() -> None:
    docs = [text(5, 1), {"msgid": 7, "origin": "3", "msgtype": "text", "send_time": "x",
                         "text": {"content": "x,y"}},
            {"msgid": "m3", "origin": 4, "msgtype": "event",
             "event": {"event_type": "session_status_change", "change_type": 3}}]
    rows = list(csv.reader(io.StringIO(export(docs)[1:], newline="")))
    assert [r[6] for r in rows[1:]] == ["5", "x,y", "session ended"]
    assert rows[3][3] == "system"


def test_html_escapes_and_uses_the_media_hook() -> None:
    image = {"msgid": "m9", "open_kfid": "wk1", "external_userid": "wm1", "origin": 3,
             "send_time": 1_790_000_100, "msgtype": "image", "image": {"media_id": "M"}}
    page = export([text("<b>x</b>\x1b[31m\u202e", 1), image], "html")
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "\x1b" not in page and "\u202e" not in page
    assert "[image]" in page and 'src="data:' not in page
    csp = ('<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
           "img-src data:; style-src 'unsafe-inline';")
    assert csp in page and page.index(csp) < page.index("<style>")  # before any content
    page = export([image], "html", media=Archived(b"\x89PNG", "image/png"))
    assert 'src="data:image/png;base64,iVBORw=="' in page and "[image]" not in page
    page = export([image], "html", media=Archived(b"x", 'image/png" onload="alert(1)'))
    assert "onload" not in page and "data:application/octet-stream" in page
    page = export([image], "html", media=Archived(b"", "", state="failed"))
    assert "[image, not archived: expired]" in page and 'src="data:' not in page


class Archived:
    """A MediaSource holding one entry for every message."""

    def __init__(self, data: bytes, content_type: str, *, state: str = "archived") -> None:
        self._data = data
        self.entry = MediaItem(9, "m9", "wk1", "image", 0, "M", state,
                               error="expired" if state == "failed" else None,
                               size=len(data), content_type=content_type)

    def item(self, seq):
        return self.entry

    def data(self, item):
        return self._data


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "html"])
def test_empty(fmt) -> None:
    assert Exporter(FakeStore([]), Selection("ww1")).write(fmt, io.StringIO()) == 0


# ------------------------------------------------------------------ Store.export_rows
# On SQLite and PostgreSQL (the `store` fixture): plain text messages are picked apart by
# the database; whatever it hands over, the CSV is byte for byte what Python alone writes.

def plain(n: int, content, origin: int = 3, **extra) -> dict:
    doc = text(content, n, origin=origin, open_kfid="wk,1", external_userid=f"wm{n % 3}",
               **extra)
    if "menu_id" in doc:  # a menu reply
        doc["text"]["menu_id"] = doc.pop("menu_id")
    if origin == 5:
        doc["servicer_userid"] = "user,1"
    return doc


def raw(n: int, **fields) -> str:
    """A stored line as a server might write it: `fields` given as raw JSON tokens."""
    values = {"msgid": f'"m{n}"', "open_kfid": '"wk,1"', "external_userid": '"wm1"',
              "origin": "3", "send_time": str(1_790_000_000 + n), "msgtype": '"text"',
              "text": '{"content": "raw"}', **fields}
    return "{" + ", ".join(f'"{k}": {v}' for k, v in values.items()) + "}"


PLAIN = [plain(i, t) for i, t in enumerate(NASTY)] + [
    plain(20, 'servicer, "quoted"\r\n', 5), plain(21, "😀 é \u2028 \x7f\x9b", 5),
    plain(22, "=1+1", 3, send_time=1_790_000_022 + 86400 * 200),  # another UTC offset, maybe
    plain(23, "same second", 3, send_time=1_790_000_022 + 86400 * 200)]
ODD = [
    plain(30, "menu reply", menu_id="101"), plain(31, "null menu", menu_id=None),
    plain(32, "empty menu", menu_id=""), plain(33, 5), plain(34, ["list"]),
    plain(35, "no servicer", 5) | {"servicer_userid": None},
    plain(36, "int id") | {"msgid": 7}, plain(37, "origin text") | {"origin": "3"},
    plain(38, "time text") | {"send_time": "1790000000"},
    plain(39, "no account") | {"open_kfid": None},
    plain(40, "bool user") | {"external_userid": True},
    plain(41, "zero time", send_time=0), plain(42, "before 1970", send_time=-61),
    {"msgid": "m43", "origin": 4, "msgtype": "event", "send_time": 1_790_000_043,
     "event": {"event_type": "enter_session", "open_kfid": "wk,1", "external_userid": "wm1",
               "scene": "=s"}},
    {"msgid": "m44", "origin": 3, "msgtype": "image", "open_kfid": "wk,1",
     "external_userid": "wm1", "send_time": 1_790_000_044, "image": {"media_id": "M,44"}},
    plain(45, "not text") | {"msgtype": "link", "link": {"title": "t"}},
    plain(46, "system", 4),
]
RAW = [raw(50, origin="3.0"), raw(51, send_time="1790000051.0"), raw(52, send_time="1e9"),
       raw(53, send_time="NaN"), raw(54, x="Infinity"), raw(55, send_time="-0"),
       raw(56, text='{"content": "\\u4f60\\u597d \\ud83d\\ude00 \\u00e9"}'),
       raw(57, text='{"content": "nul \\u0000 inside"}'),
       raw(58, msgtype='"te\\u0078t"'), raw(59, text='{"content": "x", "menu_id": null}'),
       raw(60, origin="5", servicer_userid='"u\\"1"'), raw(61, text='{"content": 1.5}')]


def fill(store) -> None:
    items = [Incoming.from_api(doc) for doc in PLAIN + ODD]
    items += [Incoming.from_api(json.loads(line), line) for line in RAW]
    store.commit_page("ww1", "wk,1", expected=None, cursor="c1", messages=items, owner=None)
    other = [Incoming.from_api(plain(70 + i, f"other account {i}") | {"open_kfid": "wk2"})
             for i in range(3)]
    store.commit_page("ww1", "wk2", expected=None, cursor="c2", messages=other, owner=None)


class PythonReads:
    """`store` with the interface's own export_rows: Python reads every message's JSON."""

    export_rows = Store.export_rows

    def __init__(self, store) -> None:
        self.messages = store.messages
        self.media_by_msgid = store.media_by_msgid


def test_export_rows_picks_plain_text_apart(store) -> None:
    fill(store)
    rows = list(store.export_rows("ww1", "wk,1"))
    stored = [r.text for r in store.messages("ww1", "wk,1")]
    assert len(rows) == len(stored) == len(PLAIN) + len(ODD) + len(RAW)
    for i, doc in enumerate(PLAIN):
        servicer = "user,1" if doc["origin"] == 5 else None
        assert rows[i] == (None, doc["send_time"], "wk,1", doc["external_userid"], servicer,
                           doc["origin"], doc["msgid"], doc["text"]["content"])
    # The rest is handed over whole, or (where the database reads it as Python does)
    # picked apart: either way a text is exactly what is stored.
    assert all(r[0] in (None, s) for r, s in zip(rows, stored, strict=True))
    whole = {json.loads(r[0])["msgid"] for r in rows if r[0] is not None}
    assert {"m30", "m33", "m34", "m37", "m38", "m39", "m43", "m44", "m45", "m46"} <= whole
    # Filters select what messages() selects.
    for kwargs in ({}, {"customer": "wm1"}, {"since": 1_790_000_010},
                   {"until": 1_790_000_020}, {"customer": "wm0", "until": 1_790_000_030}):
        for account in (None, "wk,1", "wk2"):
            want = [r.text for r in store.messages("ww1", account, **kwargs)]
            got = list(store.export_rows("ww1", account, **kwargs))
            assert len(got) == len(want)
            assert [r[-2] if r[0] is None else str(json.loads(r[0])["msgid"]) for r in got] \
                == [str(json.loads(t)["msgid"]) for t in want]
    assert list(store.export_rows("ww1", "wk-none")) == []
    assert list(store.export_rows("ww-other")) == []


def test_csv_is_what_python_alone_writes(store) -> None:
    fill(store)
    for selection in (Selection("ww1"), Selection("ww1", "wk,1", "wm1"),
                      Selection("ww1", None, None, 1_790_000_005, 1_790_000_060)):
        out, want = io.StringIO(newline=""), io.StringIO(newline="")
        count = Exporter(store, selection).write("csv", out)
        assert Exporter(PythonReads(store), selection).write("csv", want) == count > 0
        assert out.getvalue() == want.getvalue()
        if selection.open_kfid is None and selection.since is None:  # all of them
            shown = [r[6] for r in csv.reader(io.StringIO(out.getvalue()[1:], newline=""))]
            assert "'=1+1" in shown and "menu reply" not in shown  # described
