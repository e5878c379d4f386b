"""The archive as a newcomer meets it in the README, on SQLite and on PostgreSQL: customers
send text and photos in the simulator, `msg sync`, the simulated clock moves past WeCom's
media expiry, then the conversation is found by a Chinese word, read as a transcript on a
terminal, its photo opened from the archive, and the week exported to CSV and HTML."""

from __future__ import annotations

import base64
import csv
import io
import re
from pathlib import Path

import pytest

from tests.conftest import on_terminal

ROOT = Path(__file__).resolve().parents[2]
PHOTO = ROOT / "examples" / "avatar.png"


def plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


@pytest.mark.process
def test_the_archive_end_to_end(kf, sandbox, store_env, tmp_path):
    def run(*args):
        r = kf(*args, env=store_env)
        assert r.code == 0, (args, r.err)
        return r

    open_kfid = run("account", "add", "--name", "售后", "--avatar", str(PHOTO)).out.strip()
    run("sandbox", "say", open_kfid, "你好，我的订单还没到，想申请退款", "--customer", "wmZhang")
    photo = run("sandbox", "say", open_kfid, "--image", str(PHOTO), "--customer", "wmZhang",
                "-o", "json").json()["msgid"]
    run("sandbox", "say", open_kfid, "请问发票怎么开？", "--customer", "wmLi")
    run("msg", "sync", open_kfid)
    run("sandbox", "clock", "--advance", "4d")  # WeCom's copy of the photo expires

    # Find the conversation by a Chinese word (two characters: shorter than a trigram).
    found = run("msg", "search", "退款", "-o", "jsonl").out.splitlines()
    assert len(found) == 1 and "wmZhang" in found[0]
    view = on_terminal(["msg", "search", "退款"], {**sandbox.env, **store_env})
    assert view.code == 0 and "申请退款" in plain(view.out)

    # Read it as a transcript on a terminal: who, when, what; the photo archived.
    view = on_terminal(["msg", "history", open_kfid, "--customer", "wmZhang"],
                       {**sandbox.env, **store_env}, columns=100)
    assert view.code == 0, view.err
    lines = plain(view.out).splitlines()
    # The customer is named by the nickname WeCom gives her (customer/batchget).
    name = run("customer", "get", "wmZhang", "-o", "json").json()["customer_list"][0][
        "nickname"]
    assert lines[0] == f"conversation with customer wmZhang ({name})"
    assert any(line.startswith("── ") for line in lines)
    assert any(name in line and "想申请退款" in line for line in lines)
    assert any(name in line and f"[image {PHOTO.stat().st_size} B]" in line
               for line in lines)
    assert "发票" not in view.out  # another customer's conversation

    # Open the photo from the archive, after WeCom's copy expired.
    out = tmp_path / "photo.png"
    run("msg", "media", photo, "-O", str(out))
    assert out.read_bytes() == PHOTO.read_bytes()

    # Export the week: CSV for Excel, HTML to read with the photo inline.
    run("msg", "export", "--since", "7d", "--format", "csv", "-O", str(tmp_path / "week.csv"))
    data = (tmp_path / "week.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert [(r["customer"], r["msgtype"]) for r in rows] == [
        ("wmZhang", "text"), ("wmZhang", "image"), ("wmLi", "text")]
    assert rows[0]["text"] == "你好，我的订单还没到，想申请退款"
    assert rows[0]["nickname"] == name
    run("msg", "export", "--since", "7d", "--format", "html", "-O", str(tmp_path / "week.html"))
    page = (tmp_path / "week.html").read_text(encoding="utf-8")
    assert 'src="data:image/png;base64,' + base64.b64encode(PHOTO.read_bytes()).decode() \
        + '"' in page
    assert "想申请退款" in page and "请问发票怎么开？" in page
