"""Usage errors that deserve better than Click's words (called from `kfcli.cli.app.run`).

* `kfcli account` (a group without its command) asks what the group holds: its help goes to
  stdout and the exit status is 0, as with `--help`; the same for `kfcli` alone.
* `--version` after the command (`kfcli account list --version`) is not "no such option": the
  message says where it goes, with the command line to type. (-p, --sandbox and --debug are
  accepted anywhere: kfcli/cli/anywhere.py.)
"""

from __future__ import annotations

import shlex

try:  # Typer 0.28 vendors Click; older releases use the click package.
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover
    from click import exceptions as click_exceptions

#: Options of the root command only, by each spelling: (name shown, takes a value).
GLOBAL_OPTIONS: dict[str, tuple[str, bool]] = {
    "-V": ("-V/--version", False),
    "--version": ("-V/--version", False),
}
#: Root options that take a value (to find where the command starts).
_ROOT_VALUED = ("-p", "--profile", "-o", "--output")


def show_group_help(exc: Exception) -> bool:
    """For a group run without its command: write its help to stdout; True if so."""
    no_args = getattr(click_exceptions, "NoArgsIsHelpError", None)
    if no_args is None or not isinstance(exc, no_args) or exc.ctx is None:
        return False
    import typer

    typer.echo(exc.ctx.get_help())
    return True


def format_in(args: list[str]) -> str | None:
    """The output format a command line asks for (`-o json`, `-ojson`, `--output=json`,
    `--json`), read from the words themselves when Click could not parse them; the last one
    given (before any `--`)."""
    found = None
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg == "--json":
            found = "json"
        elif arg in ("-o", "--output") and i + 1 < len(args):
            found = args[i + 1]
        elif arg.startswith("--output="):
            found = arg.split("=", 1)[1]
        elif arg.startswith("-o") and not arg.startswith("--") and len(arg) > 2:
            found = arg[2:]
    return found


def output_file_hint(exc: Exception) -> str | None:
    """`msg export -o x.csv`: -o is not this command's, but -O FILE is: say so."""
    if not isinstance(exc, click_exceptions.NoSuchOption) or exc.ctx is None:
        return None
    if exc.option_name not in ("-o", "--output"):
        return None
    if not any("-O" in p.opts for p in exc.ctx.command.params):
        return None
    return (f"this command writes to a file with -O FILE (-O - for stdout): "
            f"`{exc.ctx.command_path} -O FILE`")


def misplaced_global(exc: Exception, args: list[str]) -> str | None:
    """The message for a global option given after the command, else None."""
    if not isinstance(exc, click_exceptions.NoSuchOption):
        return None
    known = GLOBAL_OPTIONS.get(exc.option_name)
    if known is None:
        return None
    shown = known[0]
    moved = _moved_to_front(args)
    where = f": kfcli {shlex.join(moved)}" if moved else ""
    return f"{shown} is a global option: put it before the command{where}"


def _moved_to_front(args: list[str]) -> list[str] | None:
    """`args` with every global option after the command moved to the front."""
    start = 0  # skip the root's own options: the misplaced ones come after the command
    while start < len(args) and args[start].startswith("-") and args[start] != "--":
        start += 2 if args[start] in _ROOT_VALUED else 1
    moved: list[str] = []
    rest = list(args[:start])
    i = start
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        taken = _global_at(args, i)
        if taken:
            moved.extend(taken)
            i += len(taken)
        else:
            rest.append(arg)
            i += 1
    return [*moved, *rest] if moved else None


def _global_at(args: list[str], i: int) -> list[str]:
    """The tokens of a global option at args[i] (with its value), else []."""
    arg = args[i]
    for spelling, (_shown, takes_value) in GLOBAL_OPTIONS.items():
        if arg == spelling:
            return args[i:i + 2] if takes_value else [arg]
        if takes_value and spelling.startswith("--") and arg.startswith(spelling + "="):
            return [arg]
        if takes_value and not spelling.startswith("--") and arg.startswith(spelling) \
                and not arg.startswith("--"):
            return [arg]  # -pprod
    return []
