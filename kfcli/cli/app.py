"""The root `kfcli` command: global options, the command groups, and the one place that turns
exceptions into messages and exit codes (DESIGN.md §5)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from typer.core import TyperGroup

from kfcli import __version__
from kfcli.cli.context import JsonOpt, OutputOpt, reset_state, state
from kfcli.core.errors import KfError

try:  # Typer 0.28 vendors Click; older releases use the click package.
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover
    from click import exceptions as click_exceptions

# Typer's Exit/Abort, and Click's where they are different classes.
_EXIT = tuple({typer.Exit, getattr(click_exceptions, "Exit", typer.Exit)})
_ABORT = tuple({typer.Abort, getattr(click_exceptions, "Abort", typer.Abort)})

HELP = """kfcli: administer WeChat Customer Service (微信客服) on WeCom from the command line.

Try it without a WeCom corp: every command runs against a local simulator with --sandbox.

Examples:

  kfcli --sandbox account add --name Support --avatar examples/avatar.png

  kfcli --sandbox account list -o json

  kfcli config set corp_id ww0123456789abcdef && kfcli config set secret
"""

#: Command groups, each in its own module, imported only when the command line names it (or
#: for --help and completion): a command pays start-up for its own group alone.
GROUPS = {
    "config": "kfcli.cli.config",
    "auth": "kfcli.cli.auth",
    "account": "kfcli.cli.account",
    "link": "kfcli.cli.link",
    "servicer": "kfcli.cli.servicer",
    "state": "kfcli.cli.state",
    "msg": "kfcli.cli.msg",
    "store": "kfcli.cli.store",
    "customer": "kfcli.cli.customer",
    "upgrade": "kfcli.cli.upgrade",
    "corp": "kfcli.cli.corp",
    "stats": "kfcli.cli.stats",
    "knowledge": "kfcli.cli.knowledge",
    "media": "kfcli.cli.media",
    "api": "kfcli.cli.api",
    "callback-verify": "kfcli.cli.callback_verify",
    "callback": "kfcli.cli.callback",
    "sandbox": "kfcli.cli.sandbox",
    "doctor": "kfcli.cli.doctor",
}


class LazyGroup(TyperGroup):
    def list_commands(self, ctx) -> list[str]:
        return list(GROUPS)

    def get_command(self, ctx, name: str):
        module = GROUPS.get(name)
        if module is None:
            return None
        import importlib

        import typer.main

        command = typer.main.get_command(importlib.import_module(module).app)
        command.name = name
        return command


EPILOG = """Exit codes: 0 success; 1 API error (errcode shown) or some items of a batch failed;
2 invalid input, nothing sent (or a destructive command without --yes and no terminal);
3 configuration or credentials; 4 not found; 5 callback verification failed; 6 network
failure after retries; 7 rate limited after retries; 130 interrupted.

Environment: KFCLI_PROFILE, KFCLI_CORP_ID, KFCLI_SECRET, KFCLI_TOKEN (callback Token),
KFCLI_AES_KEY (EncodingAESKey), KFCLI_BASE_URL, KFCLI_OUTPUT, KFCLI_CONFIG_DIR, KFCLI_SANDBOX,
KFCLI_TIMEOUT, KFCLI_STORE (the message store: sqlite:///PATH or postgresql://…);
HTTPS_PROXY/NO_PROXY; NO_COLOR. Precedence: flag > environment > profile > default.
"""

app = typer.Typer(
    name="kfcli",
    cls=LazyGroup,
    help=HELP,
    epilog=EPILOG,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        state().out.stdout.write(f"kfcli {__version__}\n")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", "-V", callback=_version, is_eager=True,
                     help="Show the version and exit."),
    ] = False,
    profile: Annotated[
        str | None,
        typer.Option("--profile", "-p", help="Profile to use. [env: KFCLI_PROFILE]",
                     show_default=False),
    ] = None,
    sandbox_: Annotated[
        bool,
        typer.Option("--sandbox", envvar="KFCLI_SANDBOX",
                     help="Run against the embedded WeCom simulator (state kept in the user "
                     "data dir)."),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Trace HTTP requests on stderr (secrets redacted).")
    ] = False,
    output: OutputOpt = None,
    json_: JsonOpt = False,
) -> None:
    st = state()
    st.profile = profile
    st.sandbox = sandbox_
    st.debug = debug
    st.set_output(output, json_)


def run(args: list[str]) -> int:
    """Run the CLI; returns the exit code. Expected failures never show a traceback."""
    st = reset_state()
    try:
        rv = app(args=args, prog_name="kfcli", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except KfError as exc:
        _report(exc.to_dict())
        return exc.exit_code
    except click_exceptions.UsageError as exc:
        hint = None
        if exc.ctx is not None:
            hint = f"see `{exc.ctx.command_path} --help`"
        _report({"type": "usage", "errcode": None, "errmsg": None,
                 "message": exc.format_message(), "hint": hint})
        return 2
    except click_exceptions.ClickException as exc:
        _report({"type": "usage", "errcode": None, "errmsg": None,
                 "message": exc.format_message(), "hint": None})
        return exc.exit_code
    except _EXIT as exc:
        return exc.exit_code
    except (*_ABORT, KeyboardInterrupt):
        sys.stderr.write("\ninterrupted\n")
        return 130
    except BrokenPipeError:
        # The reader went away (`kfcli … | head`): not an error worth a message.
        _silence_stdout()
        return 0
    except Exception as exc:  # a bug: say so in one line; the traceback only with --debug
        if st.debug:
            import traceback

            from kfcli.core.redact import redact

            sys.stderr.write(redact(traceback.format_exc()))
        _report({"type": "internal", "errcode": None, "errmsg": None,
                 "message": f"internal error: {type(exc).__name__}: {exc}",
                 "hint": "run again with --debug for the traceback, and please report it"})
        return 1
    finally:
        st.close()


def _report(err: dict) -> None:
    try:
        out = state().out
    except KfError:  # a bad KFCLI_OUTPUT must still get its message out
        from kfcli.render import Output

        out = Output("tsv")
    out.error(err)


def _silence_stdout() -> None:
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
