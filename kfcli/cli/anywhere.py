"""Global options accepted anywhere on the command line, as gh, kubectl and aws accept theirs.

`kfcli -p prod account list` and `kfcli account list -p prod` mean the same. The root command
declares `-p/--profile`, `--sandbox`, `--debug` and `--no-pager` (kfcli/cli/app.py); every
group and command made by `new_app` also takes them, hidden from its help, through
`GlobalOptions.get_params`.
Click parses them with the command's own parser, so a value that looks like an option
(`msg send K C --text -p`) stays the value it is. Given twice with different values (`kfcli -p
a account list -p b`, or `-p a -p b` after the command) is a usage error: which was meant?
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperGroup, TyperOption

try:  # Typer 0.28 vendors Click; older releases use the click package.
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover
    from click import exceptions as click_exceptions

#: Each global option's spellings (as the root declares them).
SPELLINGS = {"profile": ("--profile", "-p"), "sandbox": ("--sandbox",), "debug": ("--debug",),
             "no_pager": ("--no-pager",)}


def _set_profile(ctx: Any, _param: Any, values: tuple[str, ...]) -> None:
    if not values or ctx.resilient_parsing:
        return
    from kfcli.cli.context import state

    st = state()
    given = ([st.profile] if st.profile is not None else []) + list(values)
    if len(set(given)) > 1:
        shown = ", ".join(repr(v) for v in dict.fromkeys(given))
        raise click_exceptions.UsageError(
            f"-p/--profile given twice with different values ({shown}); give it once", ctx)
    check_profile(given[0])
    st.profile = given[0]


def check_profile(name: str) -> None:
    if not name.strip():
        from kfcli.core.errors import UsageError

        raise UsageError("-p/--profile: the profile name is empty",
                         hint="name a profile (`kfcli config list` shows them), or leave "
                         "out -p for the current one")


def _set_flag(ctx: Any, param: Any, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        from kfcli.cli.context import state

        name = param.name.removeprefix("global_")
        if name == "no_pager":
            state().no_pager()
        else:
            setattr(state(), name, True)


def global_params(taken: set[str]) -> list[Any]:
    """Hidden copies of the root's global options, leaving out any spelling in `taken` (a
    command's own option wins)."""
    params = []
    for name, decls in SPELLINGS.items():
        if taken.intersection(decls):
            continue
        if name == "profile":  # several -p after the command: checked to agree
            params.append(TyperOption(param_decls=[f"global_{name}", *decls], multiple=True,
                                      callback=_set_profile, expose_value=False, hidden=True,
                                      metavar="NAME"))
        else:
            params.append(TyperOption(param_decls=[f"global_{name}", *decls], is_flag=True,
                                      default=False, callback=_set_flag, expose_value=False,
                                      hidden=True))
    return params


class GlobalOptions:
    """Mixin for a Click command or group: the global options are its options too."""

    def get_params(self, ctx: Any) -> list[Any]:
        from kfcli.cli.text import plain_params

        params = plain_params(super().get_params(ctx), ctx)  # type: ignore[misc]
        extra = getattr(self, "_kfcli_globals", None)
        if extra is None:  # made once: Click asks for the params several times per parse
            taken = {opt for p in params for opt in (*p.opts, *p.secondary_opts)}
            extra = self._kfcli_globals = global_params(taken)
        help_at = next((i for i, p in enumerate(params) if "--help" in p.opts), len(params))
        return [*params[:help_at], *extra, *params[help_at:]]


class Group(GlobalOptions, TyperGroup):
    """A command group (`kfcli account`, `kfcli knowledge intent`): global options after its
    name too, and "did you mean" for a mistyped command."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except click_exceptions.UsageError as exc:
            names = [n for n in self.list_commands(ctx)
                     if not getattr(self.get_command(ctx, n), "hidden", False)]
            suggest(exc, names, args)
            raise


def suggest(exc: Any, names: list[str], args: list[str]) -> None:
    """Add "Did you mean …?" to a "No such command" error (once), from `names`."""
    if not args or "Did you mean" in exc.message or args[0].startswith("-"):
        return
    from difflib import get_close_matches

    did_you_mean(exc, get_close_matches(args[0], names, n=3, cutoff=0.7))


def did_you_mean(exc: Any, matches: list[str]) -> None:
    if matches:
        shown = " or ".join(repr(m) for m in matches[:3])
        exc.message = f"{exc.message.rstrip('.')}. Did you mean {shown}?"
