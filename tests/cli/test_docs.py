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


ROOT = Path(__file__).resolve().parents[2]


def test_ci_runs_the_readme_test_command_with_the_constraints():
    commands = [line for line in README.splitlines()
                if line.startswith("python3 -m venv") and "pytest" in line]
    assert len(commands) == 1, commands
    assert commands[0] in (ROOT / ".ci" / "run").read_text().splitlines()
    assert "pip install -c constraints.txt " in commands[0]


def test_dependency_floors_exclude_vulnerable_releases():
    # filelock < 3.20.3: symlink TOCTOU in lock files; gunicorn < 23: request smuggling.
    import re

    floors = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, spec = re.fullmatch(r"([A-Za-z0-9_.-]+)(>=.+)", line).groups()
            floors[name.lower()] = spec
    assert floors["filelock"] == ">=3.20.3" and floors["gunicorn"] == ">=23", floors
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"filelock>=3.20.3"' in pyproject and '"gunicorn>=23"' in pyproject
    # Wherever gunicorn is installed in the docs, with its floor.
    service = (ROOT / "examples" / "kfcli-receiver.service").read_text()
    installs = [line for text in (README, service) for line in text.splitlines()
                if "pip install" in line or "'kfcli[postgres]'" in line]
    named = [line for line in installs if "gunicorn" in line]
    assert len(named) >= 3 and all("'gunicorn>=23'" in line for line in named), named
