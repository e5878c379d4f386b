"""Every command has help with an example and appears in the README."""

from __future__ import annotations

from pathlib import Path

import typer.main

from kfcli.cli.app import app

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _leaves(command, path):
    """(path, command) of every runnable command; groups ignore the context they are given."""
    if hasattr(command, "list_commands"):
        for name in command.list_commands(None):
            yield from _leaves(command.get_command(None, name), [*path, name])
    else:
        yield path, command


def test_every_command_has_an_example_and_a_readme_line():
    root = typer.main.get_command(app)
    leaves = list(_leaves(root, ["kfcli"]))
    assert len(leaves) > 40
    missing_help, missing_readme = [], []
    for path, command in leaves:
        text = (command.help or "") + (command.epilog or "")
        if "Example" not in text or not (command.help or "").strip():
            missing_help.append(" ".join(path))
        if " ".join(path) not in README:
            missing_readme.append(" ".join(path))
    assert not missing_help, f"commands without help and an example: {missing_help}"
    assert not missing_readme, f"commands missing from README.md: {missing_readme}"
