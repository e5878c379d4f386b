"""Long human output on a terminal goes through a pager (KFCLI_PAGER, PAGER, less -FRX), run
on a pseudo-terminal as an operator's shell would; never for JSON/TSV, a pipe, --no-pager or
a command that writes until stopped; quitting it or Ctrl-C ends kfcli quietly."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import on_terminal

MARK = "sed s/^/PAGED:/"  # a pager that shows where its lines came from


@pytest.fixture
def accounts(sandbox):
    for name in ("Support", "Sales", "售后"):
        sandbox.account(name)
    return sandbox


@pytest.mark.process
def test_table_output_on_a_terminal_is_paged(accounts):
    term = on_terminal(["account", "list"], {**accounts.env, "KFCLI_PAGER": MARK}, columns=80)
    assert term.code == 0, term.err
    lines = [line for line in term.out.splitlines() if line.strip()]
    assert len(lines) == 4 and all(line.startswith("PAGED:") for line in lines), term.out
    assert "售后" in term.out and term.err == ""


@pytest.mark.process
@pytest.mark.parametrize("args, env", [
    (["account", "list", "--no-pager"], {"KFCLI_PAGER": MARK}),
    (["--no-pager", "account", "list"], {"KFCLI_PAGER": MARK}),
    (["account", "list", "-o", "json"], {"KFCLI_PAGER": MARK}),
    (["account", "list", "-o", "tsv"], {"KFCLI_PAGER": MARK}),
    (["account", "list"], {"KFCLI_PAGER": "", "PAGER": MARK}),  # empty: no pager
    (["account", "list"], {"PAGER": "cat"}),
    (["account", "list"], {"KFCLI_PAGER": "no-such-pager-here"}),  # as if none was asked for
])
def test_not_paged(accounts, args, env):
    term = on_terminal(args, {**accounts.env, **env}, columns=80)
    assert term.code == 0, term.err
    assert "Support" in term.out and "PAGED:" not in term.out, term.out


@pytest.mark.process
def test_pager_from_pager_variable_and_kfcli_pager_wins(accounts):
    term = on_terminal(["account", "list"], {**accounts.env, "PAGER": MARK}, columns=80)
    assert term.out.startswith("PAGED:"), term.out
    term = on_terminal(["account", "list"], {**accounts.env, "PAGER": MARK,
                                             "KFCLI_PAGER": "sed s/^/MINE:/"}, columns=80)
    assert term.out.startswith("MINE:") and "PAGED:" not in term.out, term.out


def test_never_paged_into_a_pipe(kf, accounts):
    r = kf("account", "list", env={"KFCLI_PAGER": MARK, "PAGER": MARK})
    assert r.code == 0 and "PAGED:" not in r.out and len(r.out.splitlines()) == 3


def test_less_is_the_default_pager():
    from kfcli.cli.pager import command

    assert command({}) == ["less", "-FRX"]
    assert command({"PAGER": "most -s"}) == ["most", "-s"]
    assert command({"PAGER": "most", "KFCLI_PAGER": "less -R"}) == ["less", "-R"]
    assert command({"PAGER": "cat"}) is None and command({"KFCLI_PAGER": " "}) is None


@pytest.mark.process
@pytest.mark.skipif(shutil.which("less") is None, reason="less is not installed")
def test_less_quits_at_once_when_the_output_fits(accounts):
    term = on_terminal(["account", "list"], {**accounts.env, "KFCLI_PAGER": "less -FRX"},
                       columns=80)
    assert term.code == 0, term.err
    assert "Support" in term.out and "Sales" in term.out


@pytest.mark.process
def test_quitting_the_pager_early_ends_quietly(sandbox):
    open_kfid = sandbox.account()
    sandbox.say(open_kfid)  # 179 days of statistics: 179 rows, 6 calls
    term = on_terminal(["stats", "corp", open_kfid, "--since", "179d"],
                       {**sandbox.env, "KFCLI_PAGER": "head -n 2"}, columns=200)
    assert term.code == 0, term.err
    assert term.err == ""
    assert len([line for line in term.out.splitlines() if line.strip()]) == 2


@pytest.mark.process
def test_ctrl_c_while_paged_ends_quietly(sandbox):
    open_kfid = sandbox.account()
    sandbox.say(open_kfid)
    # the pager reads a line, then Ctrl-C reaches kfcli (its parent), then it shows the rest
    pager = "sh -c 'read line; kill -INT $PPID; exec cat'"
    term = on_terminal(["stats", "corp", open_kfid, "--since", "179d"],
                       {**sandbox.env, "KFCLI_PAGER": pager}, columns=200)
    assert term.code in (0, 130), term.err  # 0 when kfcli had written everything already
    assert term.err == "", term.err  # no "interrupted" over the pager, no traceback


@pytest.mark.process
def test_a_long_conversation_is_paged(sandbox, kf):
    """The friction reported: `msg history K --customer X` on a terminal streamed every line."""
    open_kfid = sandbox.account()
    customer = sandbox.say(open_kfid, "第1条")
    for i in range(2, 41):
        sandbox.say(open_kfid, f"第{i}条", external_userid=customer)
    assert kf("msg", "sync", open_kfid).code == 0
    term = on_terminal(["msg", "history", open_kfid, "--customer", customer],
                       {**sandbox.env, "KFCLI_PAGER": MARK}, columns=80)
    assert term.code == 0, term.err
    shown = [line for line in term.out.splitlines() if line.strip()]
    assert len(shown) > 40 and all(line.startswith("PAGED:") for line in shown), term.out
    assert "第40条" in term.out
    # following never pages: it writes until stopped
    from kfcli.cli.pager import streams

    class Ctx:
        command_path = "kfcli msg history"
        params = {"follow": True}

    assert streams(Ctx())
