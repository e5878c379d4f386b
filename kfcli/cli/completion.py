"""Shell completion scripts for bash, zsh and fish, as committed in `completions/`.

The scripts are thin shims: on TAB the shell runs `kfcli` with `_KFCLI_COMPLETE` set, and the
app answers from its own command tree, so completions never go stale in what they offer. The
committed files are regenerated with `python -m kfcli.cli.completion completions/`, and a test
fails when they differ from what this module produces.
"""

from __future__ import annotations

import sys
from pathlib import Path

FILES = {"bash": "kfcli.bash", "zsh": "_kfcli", "fish": "kfcli.fish"}


def script(shell: str) -> str:
    from typer._completion_shared import get_completion_script

    return get_completion_script(prog_name="kfcli", complete_var="_KFCLI_COMPLETE", shell=shell)


def main(argv: list[str]) -> None:
    target = Path(argv[0] if argv else "completions")
    target.mkdir(exist_ok=True)
    for shell, name in FILES.items():
        (target / name).write_text(script(shell).rstrip("\n") + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
