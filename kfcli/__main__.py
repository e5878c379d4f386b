"""Entry point of the `kfcli` command and of `python -m kfcli`.

`kfcli --version` and TAB completion are answered here, before Typer is imported: start-up
time is paid on every TAB press and every script line, and neither needs Typer. Completion
requests (`_KFCLI_COMPLETE=bash|zsh|fish`, set by the scripts in completions/) are answered by
`kfcli._complete` from a command tree generated at build time.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    shell = os.environ.get("_KFCLI_COMPLETE")
    if shell in ("bash", "zsh", "fish"):
        from kfcli._complete import answer

        sys.exit(answer(shell, args))
    if args in (["--version"], ["-V"]):
        from kfcli import __version__

        sys.stdout.write(f"kfcli {__version__}\n")
        sys.exit(0)
    from kfcli.cli.app import run

    sys.exit(run(args))


if __name__ == "__main__":
    main()
