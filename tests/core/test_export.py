"""`kfcli.core.export` on a stand-in store: CSV quoting as the csv module reads it, for any
text a customer can send, and the HTML page's escaping and media hook."""

from __future__ import annotations

import csv
import io
import json

import pytest

from kfcli.core.export import Exporter, Selection
from kfcli.core.store import Row


class FakeStore:
    def __init__(self, docs: list[dict]) -> None:
        self.rows = [Row(i + 1, json.dumps(d, ensure_ascii=False)) for i, d in enumerate(docs)]

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
    want = ["'" + t if t.startswith(("=", "+", "-", "@", "\t", "\r")) else t for t in NASTY]
    assert got == want
    assert all(len(r) == 9 for r in rows)


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
    assert "[image]" in page and "data:" not in page
    page = export([image], "html", media=lambda m: (b"\x89PNG", "image/png"))
    assert 'src="data:image/png;base64,iVBORw=="' in page and "[image]" not in page
    page = export([image], "html", media=lambda m: (b"x", 'image/png" onload="alert(1)'))
    assert "onload" not in page and "data:application/octet-stream" in page


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "html"])
def test_empty(fmt) -> None:
    assert Exporter(FakeStore([]), Selection("ww1")).write(fmt, io.StringIO()) == 0
