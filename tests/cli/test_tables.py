"""Tables on a terminal at 40, 80 and 200 columns: ids whole, nothing wider than the terminal,
the least useful columns hidden first, blocks when even the ids do not fit, `--columns`,
`-o wide`, and single values printed bare."""

from __future__ import annotations

import json
import re

import pytest
from rich.cells import cell_len

from kfcli.render import layout
from tests.conftest import on_terminal, on_terminal_in_process

WIDTHS = (40, 80, 200)
ANSWER = ("七天内可退。请在订单页面点击申请退货，填写原因后等待客服审核，审核通过后按提示寄回"
          "商品。运费由买家承担。")
ANSWER_EN = ("We are open from 9:00 to 18:00 every day, including public holidays, except for "
             "the Spring Festival when we close for three days.")


@pytest.fixture
def world(sandbox, home):
    """Two accounts (one with a CJK name), a customer with a conversation, two servicers and
    two knowledge intents with long answers: what the README quick start leaves behind."""
    support = sandbox.account("Support")
    after_sales = sandbox.account("售后服务中心")
    customer = sandbox.say(support, "hello")
    doc = sandbox.api("POST", "/cgi-bin/kf/servicer/add", {"open_kfid": support,
                                                           "userid_list": ["user001", "user002"]})
    assert doc["errcode"] == 0, doc
    group = sandbox.api("POST", "/cgi-bin/kf/knowledge/list_group", {"limit": 10}
                        )["group_list"][0]["group_id"]
    intents = []
    for question, answer in (("如何退货？需要什么手续", ANSWER),
                             ("What are your opening hours on public holidays?", ANSWER_EN)):
        doc = sandbox.api("POST", "/cgi-bin/kf/knowledge/add_intent", {
            "group_id": group, "question": {"text": {"content": question}},
            "answers": [{"text": {"content": answer}}]})
        assert doc["errcode"] == 0, doc
        intents.append(doc["intent_id"])
    return {"accounts": [support, after_sales], "customer": customer, "group": group,
            "intents": intents, "env": {**sandbox.env, "NO_COLOR": "1"}}


def screen(world, *args: str, columns: int, expect: int = 0, columns_env: bool = True):
    """What a terminal `columns` wide shows: in this process (the environment says stdout is
    a terminal and COLUMNS its width), or on a pseudo-terminal of that window size without
    COLUMNS (`columns_env=False`)."""
    if columns_env:
        r = on_terminal_in_process(list(args), world["env"], columns=columns)
    else:
        r = on_terminal(list(args), world["env"], columns=columns, columns_env=False)
    assert r.code == expect, (args, columns, r.out, r.err)
    return r


def check_fits(out: str, columns: int, ids: list[str]) -> None:
    """Every id whole on one line; no line wider than the terminal, except one holding
    nothing but an id or a URL that is itself wider; dates never split."""
    lines = out.splitlines()
    for ident in ids:
        assert any(ident in line for line in lines), (ident, out)
    for line in lines:
        if cell_len(line) > columns:
            lone = line.strip()
            assert lone in ids or re.fullmatch(r"[a-z]+://\S+", lone), (line, out)
            assert cell_len(lone) > columns, (line, out)
    assert len(re.findall(r"\b\d{4}-\d", out)) == len(re.findall(r"\b\d{4}-\d\d-\d\d\b", out))


COMMANDS = {
    "account list": lambda w: (["account", "list"], w["accounts"]),
    "customer get": lambda w: (["customer", "get", w["customer"], "--with-context"],
                               [w["customer"]]),
    "servicer list": lambda w: (["servicer", "list", w["accounts"][0]], []),
    "intent list": lambda w: (["knowledge", "intent", "list"], w["intents"]),
    "group list": lambda w: (["knowledge", "group", "list"], [w["group"]]),
    "state get": lambda w: (["state", "get", w["accounts"][0], w["customer"]], []),
    "upgrade config": lambda w: (["upgrade", "config"], ["wrSandboxGroupChat000000000001"]),
    "auth status": lambda w: (["auth", "status"], []),
}


@pytest.mark.parametrize("columns", WIDTHS)
def test_every_table_fits_and_keeps_ids_whole(world, columns):
    for name, command in COMMANDS.items():
        args, ids = command(world)
        r = screen(world, *args, columns=columns)
        assert r.out.strip(), name
        check_fits(r.out, columns, ids)


@pytest.mark.parametrize("columns", WIDTHS)
def test_msgid_and_external_userid_whole(world, sandbox, columns):
    open_kfid = world["accounts"][0]
    r = screen(world, "sandbox", "say", open_kfid, "hi", "--external-userid",
               world["customer"], columns=columns)
    lines = r.out.splitlines()
    label = next(i for i, line in enumerate(lines) if line.startswith("msgid:"))
    shown = lines[label].removeprefix("msgid:").strip() or lines[label + 1].strip()
    pulled = sandbox.api("POST", "/cgi-bin/kf/sync_msg", {"open_kfid": open_kfid,
                                                          "limit": 1000})["msg_list"]
    assert shown in {m["msgid"] for m in pulled}  # the whole msgid, not a piece of it
    check_fits(r.out, columns, [world["customer"], shown])


@pytest.mark.parametrize("columns", WIDTHS)
def test_stats_dates_never_split(world, columns):
    from datetime import date, timedelta

    since = (date.today() - timedelta(days=10)).isoformat()
    for kind in ("corp", "servicer"):
        r = screen(world, "stats", kind, world["accounts"][0], "--since", since,
                   columns=columns)
        check_fits(r.out, columns, [])
        assert since in r.out


def test_account_list_at_80_columns_keeps_the_name(world):
    r = screen(world, "account", "list", columns=80)
    header, *rows = r.out.splitlines()
    assert header.split()[:3] == ["open_kfid", "name", "manage_privilege"]
    for open_kfid, name in zip(world["accounts"], ["Support", "售后服务中心"], strict=True):
        assert any(row.startswith(open_kfid) and name in row for row in rows), r.out
    # The avatar URL gave way: shortened with an ellipsis, or hidden with a note.
    assert "…" in r.out or "avatar" in r.err
    check_fits(r.out, 80, world["accounts"])


def test_records_become_blocks_when_ids_do_not_fit(world):
    r = screen(world, "account", "list", columns=40)
    blocks = r.out.strip().split("\n\n")
    assert len(blocks) == 2
    for block, open_kfid in zip(blocks, world["accounts"], strict=True):
        lines = block.splitlines()
        assert lines[0].startswith("open_kfid:") and open_kfid in block
        assert any(line.startswith("name:") for line in lines)
    # The avatar is hidden, and stderr (a terminal) says so once, with how to see it.
    assert "avatar" not in r.out
    assert r.err.count("hidden at 40 columns: avatar") == 1
    assert "-o wide" in r.err and "--columns" in r.err
    check_fits(r.out, 40, world["accounts"])


def test_long_answers_are_shortened_not_folded(world):
    r = screen(world, "knowledge", "intent", "list", columns=80)
    lines = r.out.splitlines()
    assert lines[0].split()[0] == "intent_id" and "answer" in lines[0]
    assert len(lines) == 1 + len(world["intents"])  # one line per intent
    assert "…" in r.out
    check_fits(r.out, 80, world["intents"])
    wide = screen(world, "knowledge", "intent", "list", "-o", "wide", columns=200)
    assert world["group"] in wide.out and "group_id" in wide.out.splitlines()[0]


def test_customer_nickname_is_never_one_character_per_line(world, sandbox):
    for columns in WIDTHS:
        r = screen(world, "customer", "get", world["customer"], "--with-context",
                   columns=columns)
        nickname = sandbox.api("POST", "/cgi-bin/kf/customer/batchget", {
            "external_userid_list": [world["customer"]]})["customer_list"][0]["nickname"]
        assert any(nickname in line for line in r.out.splitlines()), (columns, r.out)


def test_columns_chooses_and_orders_in_table_and_tsv(world, kf):
    r = screen(world, "account", "list", "--columns", "name,open_kfid", columns=80)
    lines = r.out.splitlines()
    assert lines[0].split() == ["name", "open_kfid"]
    assert "avatar" not in r.out and r.err == ""
    tsv = kf("account", "list", "--columns", "name,open_kfid")
    assert tsv.code == 0
    assert [line.split("\t") for line in tsv.out.splitlines()] == [
        ["Support", world["accounts"][0]], ["售后服务中心", world["accounts"][1]]]
    # JSON keeps every field whatever --columns says.
    doc = kf("account", "list", "--columns", "name", "-o", "json").json()
    assert set(doc[0]) >= {"open_kfid", "name", "avatar", "manage_privilege"}
    # A header with a space is named with an underscore.
    picked = kf("servicer", "list", world["accounts"][0], "--columns", "status,userid")
    assert picked.out.splitlines()[0] == "receiving\tuser001"


def test_unknown_column_is_a_usage_error(world, kf):
    r = kf("account", "list", "--columns", "open_kfid,nmae")
    assert r.code == 2 and r.out == ""
    assert "nmae" in r.err and "open_kfid, name, manage_privilege, avatar" in r.err
    r = kf("account", "list", "--columns", ",")
    assert r.code == 2
    # A command that changes something checks the names before it acts.
    before = kf("servicer", "list", world["accounts"][0]).out
    r = kf("servicer", "add", world["accounts"][0], "user009", "--columns", "bogus")
    assert r.code == 2 and "id, result, errcode, errmsg" in r.err
    assert kf("servicer", "list", world["accounts"][0]).out == before


def test_wide_shows_every_column(world):
    r = screen(world, "account", "list", "-o", "wide", columns=200)
    assert r.out.splitlines()[0].split() == ["open_kfid", "name", "manage_privilege", "avatar"]
    assert "https://" in r.out and "…" not in r.out and r.err == ""
    narrow = screen(world, "account", "list", "-o", "wide", columns=80)
    assert "avatar" in narrow.out and "…" not in narrow.out
    check_fits(narrow.out, 80, world["accounts"])
    customer = screen(world, "customer", "get", world["customer"], "-o", "wide", columns=200)
    assert "avatar" in customer.out.splitlines()[0]  # a column shown only when asked for
    assert "avatar" not in screen(world, "customer", "get", world["customer"],
                                  columns=200).out


@pytest.mark.process
def test_wide_is_a_table_format_everywhere(world, kf):
    env = {"KFCLI_OUTPUT": "wide"}
    r = on_terminal(["account", "list"], {**world["env"], **env}, columns=200)
    assert r.code == 0 and "avatar" in r.out
    assert "not one of table, tsv, json, jsonl, wide" in kf("account", "list", "-o",
                                                            "yaml").err


@pytest.mark.process
def test_terminal_size_without_columns_variable(world):
    by_env = screen(world, "account", "list", columns=80)
    by_size = screen(world, "account", "list", columns=80, columns_env=False)
    assert by_size.out == by_env.out


def test_single_values_are_bare_on_a_terminal(world, kf, avatar):
    open_kfid = world["accounts"][0]
    r = screen(world, "link", "create", open_kfid, columns=80)
    url = r.out.strip()
    assert url.startswith("https://") and "\n" not in url  # no `url:` label
    r = screen(world, "media", "upload", str(avatar), columns=40)
    assert re.fullmatch(r"\S{20,}", r.out.strip()), r.out
    r = screen(world, "account", "add", "--name", "Bare", "--avatar", str(avatar), columns=40)
    new = r.out.strip()
    assert new.startswith("wk") and len(r.out.splitlines()) == 1
    assert new in kf("account", "list").out
    # Not on a terminal: TSV and JSON as before.
    assert kf("link", "create", open_kfid).out.startswith("https://")
    doc = kf("link", "create", open_kfid, "--scene", "s1", "-o", "json").json()
    assert set(doc) == {"open_kfid", "scene", "scene_param", "url"}
    # -o wide or --columns on a terminal: the fields, labelled.
    r = screen(world, "link", "create", open_kfid, "-o", "wide", columns=80)
    assert r.out.startswith("url:") and f"open_kfid:   {open_kfid}" in r.out
    r = screen(world, "link", "create", open_kfid, "--columns", "open_kfid,url", columns=80)
    assert r.out.splitlines()[0] == f"open_kfid: {open_kfid}"


def test_tsv_and_json_unchanged(world, kf):
    tsv = kf("account", "list").out.splitlines()
    assert [line.split("\t")[:2] for line in tsv] == [[world["accounts"][0], "Support"],
                                                      [world["accounts"][1], "售后服务中心"]]
    assert all(len(line.split("\t")) == 4 for line in tsv)
    doc = json.loads(kf("knowledge", "intent", "list", "-o", "json").out)
    assert [d["intent_id"] for d in doc] == world["intents"]


@pytest.mark.process
def test_header_is_bold_unless_no_color(world, sandbox):
    r = on_terminal(["account", "list"], sandbox.env, columns=200)
    assert r.out.startswith("\x1b[1mopen_kfid")
    assert "\x1b" not in screen(world, "account", "list", columns=200).out


# ---------------------------------------------------------------------- the layout itself

ID = "wmEeCW4FF_ZXUTyJ0vvRkSo-2F5z6pi8"


def test_layout_cjk_cells_count_double():
    result = layout(["external_userid", "nickname"], [[ID, "王先生"]], 80)
    assert result.lines[1][0] == f"{ID}  王先生"
    assert result.lines[0] == (f"{'external_userid':<32}  nickname", True)


def test_layout_shrinks_free_text_then_hides_images_then_blocks():
    row = [ID, "售后服务中心", "yes", "https://wework.qpic.cn/wwpic/" + "a" * 40 + "/0"]
    headers = ["open_kfid", "name", "manage_privilege", "avatar"]
    at80 = layout(headers, [row], 80)
    assert not at80.blocks and at80.hidden == []
    assert "售后服务中心" in at80.text and "https://wewor" in at80.text and "…" in at80.text
    at60 = layout(headers, [row], 60)
    assert at60.hidden == ["avatar"] and not at60.blocks and "售后服务中心" in at60.text
    at40 = layout(headers, [row], 40)
    assert at40.blocks and at40.hidden == ["avatar"]
    assert at40.text.splitlines()[:2] == ["open_kfid:", f"  {ID}"]
    wide = layout(headers, [row], 60, wide=True)
    assert wide.hidden == [] and "avatar" in wide.text and "…" not in wide.text


def test_layout_never_folds_dates_or_short_values():
    headers = ["date", "state", "session_cnt", "detail"]
    rows = [["2026-11-25 10:00:00", "receiving", "12345", "word " * 30]]
    for width in (30, 45, 60, 100):
        result = layout(headers, rows, width)
        text = result.text
        assert "2026-11-25 10:00:00" in text and "receiving" in text and "12345" in text
        assert all(cell_len(line) <= width for line in text.splitlines()), (width, text)


def test_layout_optional_columns_go_before_blocks():
    headers = ["intent_id", "group_id", "question", "answer"]
    rows = [[ID, ID.lower(), "q" * 50, "a " * 100]]
    result = layout(headers, rows, 80, optional=["group_id"])
    assert result.hidden == ["group_id"] and not result.blocks
    assert layout(headers, rows, 80).blocks  # not optional: every column, as blocks


def test_layout_id_in_free_text_is_not_folded():
    result = layout(["setting", "value"], [["corp_id", "ww0173509520b78acd"]], 24)
    assert "ww0173509520b78acd" in result.text


def test_urls_never_split_and_empty_columns_go_first(world, kf):
    long_url = "https://qyapi.weixin.qq.com.example-corporate-proxy.internal:8443/wecom"
    assert kf("config", "set", "corp_id", "ww0123456789abcdef").code == 0
    assert kf("-p", "prod", "config", "set", "corp_id", "wwprod").code == 0
    assert kf("config", "set", "base_url", "https://qyapi.weixin.qq.com").code == 0
    r = screen(world, "config", "list", columns=80)  # a short URL: a table that fits
    header = r.out.splitlines()[0]
    assert header.split() == ["profile", "current", "corp_id", "base_url"], r.out
    assert "https://qyapi.weixin.qq.com" in r.out
    assert "hidden at 80 columns: secret, token, aes_key" in r.err
    assert kf("config", "set", "base_url", long_url).code == 0
    for columns in (80, 200):
        r = screen(world, "config", "list", columns=columns)
        assert any(line.strip().endswith(long_url) for line in r.out.splitlines()), r.out
        assert "token" not in r.out and "aes_key" not in r.out  # empty: hidden first
        check_fits(r.out, columns, [])
    assert r.out.splitlines()[0].split()[-1] == "base_url"  # 200: still a table


def test_store_status_is_a_table_at_120_columns(world, kf):
    for open_kfid in world["accounts"]:
        world_say = kf("msg", "sync", open_kfid)
        assert world_say.code == 0, world_say.err
    r = screen(world, "store", "status", columns=120)
    lines = r.out.splitlines()
    assert lines[0].split()[:4] == ["open_kfid", "messages", "oldest", "newest"], r.out
    assert len(lines) == 3 and all(a in r.out for a in world["accounts"])
    assert "hidden at 120 columns: last callback, pending outbox" in r.err
    r = screen(world, "store", "status", columns=80)  # blocks, a blank line between accounts
    blocks = r.out.strip().split("\n\n")
    assert len(blocks) == 2 and all(b.startswith("open_kfid:") for b in blocks), r.out


def test_customer_get_with_context_shows_scene(world, sandbox):
    open_kfid, customer = world["accounts"][0], world["customer"]
    doc = sandbox.post("/sandbox/enter_session", {"open_kfid": open_kfid,
                                                  "external_userid": customer,
                                                  "scene": "spring_sale",
                                                  "scene_param": "channel=moments"})
    assert doc["errcode"] == 0, doc
    other = sandbox.say(open_kfid, "no context")
    r = screen(world, "customer", "get", customer, other, "--with-context", columns=80)
    lines = r.out.splitlines()
    assert lines[0].split()[-2:] == ["scene", "scene_param"], r.out
    assert lines[1].split()[-2:] == ["spring_sale", "channel=moments"]
    assert lines[2].split()[-2:] == ["-", "-"]  # no session entered in 48 h
    r = screen(world, "customer", "get", customer, columns=80)
    assert "scene" not in r.out
