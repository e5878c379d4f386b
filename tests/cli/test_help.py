"""Help as users see it: examples intact at 80 columns, groups without a command, global
options in the wrong place."""

from __future__ import annotations

import unicodedata

import pytest
import typer.main

from kfcli.cli.app import app, run
from kfcli.cli.environment import Environment

WIDTH = 80


def _columns(line: str) -> int:
    """Terminal columns: CJK characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)


def _commands(command, path):
    """(path, command) of every command, groups included."""
    yield path, command
    if hasattr(command, "list_commands"):
        for name in command.list_commands(None):
            yield from _commands(command.get_command(None, name), [*path, name])


ALL = [(path, command) for path, command in _commands(typer.main.get_command(app), [])]


def _render(args: list[str], capsys, monkeypatch) -> str:
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    outcome = run([*args, "--help"], env=Environment.captured())
    assert outcome.code == 0
    return outcome.out


def _example_lines(command) -> list[str]:
    """Lines of the help and epilog that are laid out by hand: the indented ones."""
    lines = []
    for text in (command.help, command.epilog):
        for line in (text or "").expandtabs().splitlines():
            if line[:1] == " " and line.strip():
                lines.append(line.strip())
    return lines


def test_there_are_many_commands_with_examples():
    with_examples = [p for p, c in ALL if _example_lines(c)]
    assert len(with_examples) > 40


@pytest.mark.parametrize("path", [p for p, _c in ALL], ids=lambda p: " ".join(p) or "kfcli")
def test_examples_are_never_broken_at_80_columns(path, capsys, monkeypatch):
    command = dict((tuple(p), c) for p, c in ALL)[tuple(path)]
    shown = _render(path, capsys, monkeypatch)
    lines = [line.strip() for line in shown.splitlines()]
    too_wide = [line for line in shown.splitlines() if _columns(line) > WIDTH]
    assert not too_wide, f"lines wider than {WIDTH} columns: {too_wide}"
    broken = [ex for ex in _example_lines(command) if ex not in lines]
    assert not broken, f"example lines rewrapped: {broken}\n{shown}"
    # An example written as prose (not indented) would be rewrapped.
    prose = [line for text in (command.help, command.epilog)
             for line in (text or "").splitlines() if line.startswith(("kfcli ", "# "))]
    assert not prose, f"examples must be indented lines: {prose}"

def test_a_group_without_its_command_shows_its_help(run):
    r = run("account")
    assert r.code == 0 and r.err == ""
    assert r.out.startswith("Usage: kfcli account") and "delete" in r.out
    r = run("knowledge", "intent")
    assert r.code == 0 and "Usage: kfcli knowledge intent" in r.out
    r = run()
    assert r.code == 0 and r.out.startswith("Usage: kfcli") and not r.err


def test_version_after_the_command_says_where_it_goes(run):
    r = run("account", "list", "--version")
    assert r.code == 2 and "-V/--version is a global option: put it before the command: " \
        "kfcli --version account list" in r.err, r.err


def test_an_unknown_option_is_still_reported_as_such(run):
    r = run("account", "list", "--colour")
    assert r.code == 2 and "No such option: --colour" in r.err



@pytest.mark.parametrize("path", [p for p, _c in ALL], ids=lambda p: " ".join(p) or "kfcli")
def test_one_help_style_everywhere(path, capsys, monkeypatch):
    """Upper-case placeholders (TEXT, FILE, SECONDS, OPEN_KFID), no Typer braces in usage
    lines, one env-var notation, arguments and options before the examples."""
    import re

    shown = _render(path, capsys, monkeypatch)
    assert not re.search(r"<(str|int|float|file|path)[^>]*>", shown), shown
    usage = shown.split("\n\n")[0]
    assert "{" not in usage and re.fullmatch(r"Usage: [^a-z]*kfcli[ a-z-]*( \[OPTIONS\])?"
                                             r"( [A-Z_\[\]|. -]+| COMMAND \[ARGS\]\.\.\.)*"
                                             r"( \[bash\|zsh\|fish\])?", usage), usage
    assert "[env var:" not in shown
    example = shown.find("Example")
    for section in ("Arguments:", "Options:"):
        if section in shown and example != -1:
            assert shown.index(section) < example, shown


@pytest.mark.parametrize("path", [p for p, c in ALL if hasattr(c, "list_commands")],
                         ids=lambda p: " ".join(p) or "kfcli")
def test_group_lists_whole_summaries(path, capsys, monkeypatch):
    from kfcli.cli.text import summary

    command = dict((tuple(p), c) for p, c in ALL)[tuple(path)]
    shown = " ".join(_render(path, capsys, monkeypatch).split("Commands:")[1].split())
    for name in command.list_commands(None):
        sub = command.get_command(None, name)
        if sub.hidden:
            continue
        assert f"{name} {summary(sub.help)}" in shown, (name, shown)
        assert "..." not in shown.split(name, 1)[1][:len(summary(sub.help)) + 2]
