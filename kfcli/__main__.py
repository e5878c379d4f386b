"""Entry point of the `kfcli` command and of `python -m kfcli`.

`kfcli --version` is answered here, before Typer is imported: start-up time is paid on every
TAB press and every script line, and the version needs none of it.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args in (["--version"], ["-V"]):
        from kfcli import __version__

        sys.stdout.write(f"kfcli {__version__}\n")
        sys.exit(0)
    from kfcli.cli.app import run

    sys.exit(run(args))


if __name__ == "__main__":
    main()
