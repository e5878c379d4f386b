"""Stricter option parsing than Click's: a single-value option given twice is a usage error.

Click keeps the last value of a repeated option and drops the others without a word, so
`kfcli msg send K C --text a --text b` would send "b". A command made with
`@app.command(..., cls=StrictCommand)` refuses that before it runs (exit 2, `--text given
twice`). Options that take several values (`list[...]` options), counters and flags are left
alone: repeating them is either their purpose or harmless.

The check parses the arguments once more with the command's own parser, which reports every
occurrence of every option in order (Click's documented `parse_args` result), so it sees
exactly what Click sees: `--text=a`, `-o json`, values that look like options, `--`.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperCommand

from kfcli.cli.anywhere import GlobalOptions

try:  # Typer 0.28 vendors Click; older releases use the click package.
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover
    from click import exceptions as click_exceptions


class StrictCommand(GlobalOptions, TyperCommand):
    """A Typer command that refuses a single-value option given more than once, and takes
    the global options after its name too (kfcli/cli/anywhere.py)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        refuse_repeated_options(self, ctx, args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: Any) -> Any:
        from kfcli.cli.pager import streams

        if streams(ctx):  # `--follow`, a server: writes until stopped, never paged
            from kfcli.cli.context import state

            state().no_pager()
        return super().invoke(ctx)


def refuse_repeated_options(command: Any, ctx: Any, args: list[str]) -> None:
    """Raise Click's UsageError (exit 2) naming the first single-value option that `args`
    give twice. Any other parse problem is left to Click's own parse, which reports it."""
    if ctx.resilient_parsing:  # shell completion: never fail
        return
    try:
        _, _, order = command.make_parser(ctx).parse_args(args=list(args))
    except click_exceptions.UsageError:
        return
    seen: set[str] = set()
    for param in order:
        if not _single_valued(param):
            continue
        if param.name in seen:
            names = "/".join(sorted(param.opts + param.secondary_opts, key=len))
            raise click_exceptions.UsageError(
                f"{names} given twice; give it once", ctx)
        seen.add(param.name)


def _single_valued(param: Any) -> bool:
    return (getattr(param, "param_type_name", "") == "option"
            and not getattr(param, "multiple", False)
            and not getattr(param, "count", False)
            and not getattr(param, "is_flag", False))
