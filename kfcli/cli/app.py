"""The root `kfcli` command: global options, the command groups, and the one place that turns
exceptions into messages and exit codes (DESIGN.md §5)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Annotated

import typer
from typer.core import TyperGroup

from kfcli.cli.context import AppState, JsonOpt, OutputOpt, invocation, state
from kfcli.cli.environment import Environment
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
Global options go before or after the command (kfcli account list -p prod).
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
    "completion": "kfcli.cli.completion",
}


class ReaderGone(Exception):
    """stdout's reader went away. Not an OSError, so Click's own EPIPE handling (exit 1)
    never sees it."""


class LazyGroup(TyperGroup):
    def get_params(self, ctx):
        # Typer's --install-completion/--show-completion stay (scripts installed by older
        # kfcli versions still speak Typer's protocol) but hidden: `kfcli completion install`
        # installs the fast scripts.
        from kfcli.cli.text import plain_params

        params = super().get_params(ctx)
        for param in params:
            if param.name in ("install_completion", "show_completion"):
                param.hidden = True
        return plain_params(params, ctx)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            raise ReaderGone() from None
        except KeyboardInterrupt:
            # Typer would turn it into a silent exit 130: report it as every command does.
            from kfcli.core.errors import Interrupted

            raise Interrupted() from None

    def parse_args(self, ctx, args):
        from kfcli.cli.strict import refuse_repeated_options

        refuse_repeated_options(self, ctx, args)  # `-p a -p b`: which one was meant?
        return super().parse_args(ctx, args)

    def list_commands(self, ctx) -> list[str]:
        return list(GROUPS)

    def resolve_command(self, ctx, args):
        try:
            return super().resolve_command(ctx, args)
        except click_exceptions.UsageError as exc:
            from kfcli.cli.anywhere import did_you_mean, suggest

            if args:
                # `kfcli history`: a command of a group (the static completion tree knows
                # them without importing every group)
                from kfcli.cli._tree import TREE

                did_you_mean(exc, [f"{group} {args[0]}" for group, node
                                   in TREE["commands"].items()
                                   if args[0] in node.get("commands", {})])
            suggest(exc, list(GROUPS), args)  # `kfcli acount`
            raise

    def get_command(self, ctx, name: str):
        module = GROUPS.get(name)
        if module is None:
            return None
        import importlib

        import typer.main

        from kfcli.cli.text import keep_examples

        command = typer.main.get_command(importlib.import_module(module).app)
        command.name = name
        return keep_examples(command)  # examples in help are never rewrapped


EPILOG = """Examples:

  kfcli --sandbox account add --name Support --avatar examples/avatar.png

  kfcli --sandbox account list -o json

  kfcli config set corp_id ww0123456789abcdef && kfcli config set secret

Exit codes: 0 success; 1 API error (errcode shown) or some items of a batch failed;
2 invalid input, nothing sent (or a destructive command without --yes and no terminal);
3 configuration or credentials (also a proxy's); 4 not found; 5 callback verification
failed; 6 network failure after retries; 7 rate limited after retries; 130 interrupted.

Environment: KFCLI_PROFILE, KFCLI_CORP_ID, KFCLI_SECRET, KFCLI_TOKEN (callback Token),
KFCLI_AES_KEY (EncodingAESKey), KFCLI_BASE_URL, KFCLI_OUTPUT, KFCLI_CONFIG_DIR, KFCLI_SANDBOX,
KFCLI_TIMEOUT, KFCLI_STORE (the message store: sqlite:///PATH or postgresql://…);
HTTPS_PROXY/HTTP_PROXY/ALL_PROXY/NO_PROXY; KFCLI_CA_BUNDLE (extra CA certificates, PEM; else
REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE); NO_COLOR. Precedence: flag > profile named with -p >
environment > current profile > default.
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
        from kfcli._about import version_line

        state().out.stdout.write(version_line() + "\n")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", "-V", callback=_version, is_eager=True,
                     help="Show the version, the store schema it writes (and the commit, from a "
                     "checkout), and exit."),
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
    no_pager: Annotated[
        bool, typer.Option("--no-pager", help="Do not page long output on a terminal (the "
                           "pager: KFCLI_PAGER, else PAGER, else less -FRX).")
    ] = False,
    output: OutputOpt = None,
    json_: JsonOpt = False,
) -> None:
    st = state()
    if profile is not None:
        from kfcli.cli.anywhere import check_profile

        check_profile(profile)
    st.profile = profile
    st.sandbox = sandbox_
    st.debug = debug
    if no_pager:
        st.no_pager()
    st.set_output(output, json_)


@dataclass
class Outcome:
    """How a run ended: the exit code, and what it wrote when its environment's streams were
    in memory (`Environment.captured`; else empty)."""

    code: int
    out: str = ""
    err: str = ""


def run(args: list[str], env: Environment | None = None) -> Outcome:
    """Run one kfcli command in this process, in `env` (default: the process's own streams,
    environment and clock). Expected failures never show a traceback."""
    if env is None:
        _setup_streams()
        env = Environment()
    with _click_streams(env), invocation(AppState(env=env)) as st:
        try:
            code = _invoke(st, args)
        except KeyboardInterrupt:  # Ctrl-C after the command, while its pager was up
            code = 130
        code = _finish(env, code)
    out, err = env.captured_output()
    return Outcome(code, out, err)


@contextlib.contextmanager
def _click_streams(env: Environment):
    """Click writes help and reads prompts through `sys`: while the run lasts, those are the
    environment's streams (a no-op for the process's own)."""
    import sys

    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = env.stdin, env.stdout, env.stderr
    try:
        yield
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved


def _invoke(st, args: list[str]) -> int:
    from kfcli.core.errors import Interrupted

    try:
        rv = app(args=_utf8_args(args), prog_name="kfcli", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except KfError as exc:
        _report(exc.to_dict())
        return exc.exit_code
    except click_exceptions.UsageError as exc:
        from kfcli.cli.usage import misplaced_global, output_file_hint, show_group_help

        if show_group_help(exc):  # `kfcli account`: what the group holds, as --help shows
            return 0
        hint = output_file_hint(exc)
        if hint is None and exc.ctx is not None:
            hint = f"see `{exc.ctx.command_path} --help`"
        message = misplaced_global(exc, args)
        if message is not None:
            hint = None
        _json_asked(st, args)
        _report({"type": "usage", "errcode": None, "errmsg": None,
                 "message": message or exc.format_message(), "hint": hint})
        return 2
    except click_exceptions.ClickException as exc:
        _json_asked(st, args)
        _report({"type": "usage", "errcode": None, "errmsg": None,
                 "message": exc.format_message(), "hint": None})
        return exc.exit_code
    except _EXIT as exc:
        return exc.exit_code
    except (*_ABORT, KeyboardInterrupt):
        _report(Interrupted().to_dict())
        return 130
    except (BrokenPipeError, ReaderGone):
        # The reader went away (`kfcli … | head`): not an error worth a message.
        _silence_stdout(st.env)
        return 0
    except OSError as exc:  # the machine, not kfcli: a file, a directory, the output
        problem = _environment(exc)
        _report(problem.to_dict())
        return problem.exit_code
    except Exception as exc:  # a bug: say so in one line; the traceback only with --debug
        if st.debug:
            import traceback

            from kfcli.core.redact import redact

            st.env.stderr.write(redact(traceback.format_exc()))
        _report({"type": "internal", "errcode": None, "errmsg": None,
                 "message": f"internal error: {type(exc).__name__}: {exc}",
                 "hint": "run again with --debug for the traceback, and please report it"})
        return 1


def _json_asked(st, args: list[str]) -> None:
    """A usage error stopped parsing before `-o json`/`--json` took effect: the error is
    still one JSON object when the command line asked for JSON (DESIGN.md §5)."""
    from kfcli.cli.usage import format_in

    fmt = format_in(args)
    if fmt in ("json", "jsonl") and st.output_format is None:
        with contextlib.suppress(KfError):
            st.set_output(fmt, False)


def _finish(env: Environment, code: int) -> int:
    """Flush stdout here, where a failure can still be reported (at interpreter exit it would
    be a traceback-like "Exception ignored" and exit status 120)."""
    try:
        env.stdout.flush()
    except BrokenPipeError:
        _silence_stdout(env)
    except OSError as exc:
        _silence_stdout(env)
        if code == 0:
            problem = _environment(exc, output=True)
            _report(problem.to_dict())
            code = problem.exit_code
    return code


def _environment(exc: OSError, *, output: bool = False):
    """A clear one-line error for an OSError that escaped a command."""
    import errno as errnos

    from kfcli.core.errors import EnvironmentProblem

    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is not None:
        return EnvironmentProblem(f"cannot use {exc.filename}: {reason}",
                                  hint="check that the path exists and is writable (or point "
                                  "KFCLI_CONFIG_DIR / XDG_*_HOME elsewhere)")
    output = output or _from_render(exc)
    if output:
        return EnvironmentProblem(f"cannot write the output: {reason}",
                                  hint="check the file or device stdout is redirected to")
    name = errnos.errorcode.get(exc.errno or 0, "")
    return EnvironmentProblem(f"{reason}{f' ({name})' if name else ''}")


def _from_render(exc: BaseException) -> bool:
    """Whether the error was raised writing output."""
    from pathlib import Path

    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return False
    code = tb.tb_frame.f_code  # render.py writes data; Click's echo() writes help text
    return Path(code.co_filename).name == "render.py" or code.co_name == "echo"


def _setup_streams() -> None:
    """Data on stdout is UTF-8 whatever the locale (`LC_ALL=C` included); stdin is read as
    UTF-8 too; messages on stderr never fail to encode."""
    import sys

    for stream, kwargs in ((sys.stdout, {"encoding": "utf-8"}),
                           (sys.stdin, {"encoding": "utf-8"}),
                           (sys.stderr, {"errors": "backslashreplace"})):
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        if encoding != "utf8" and hasattr(stream, "reconfigure"):
            with contextlib.suppress(OSError, ValueError):  # a closed or odd stream
                stream.reconfigure(**kwargs)


def _utf8_args(args: list[str]) -> list[str]:
    """Arguments as UTF-8 text, also under a non-UTF-8 locale (where Python decodes them to
    surrogate escapes: `LC_ALL=C kfcli account add --name 客服`)."""
    import os

    fixed = []
    for arg in args:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            try:
                arg = os.fsencode(arg).decode("utf-8")
            except UnicodeError:
                from kfcli.core.errors import UsageError

                raise UsageError(f"argument {arg.encode('utf-8', 'backslashreplace')!r:.60} "
                                 "is not UTF-8 text") from None
        fixed.append(arg)
    return fixed


def _report(err: dict) -> None:
    # The pager first shows what came before and is quit: a message must not land on its
    # screen. Ctrl-C while it was up needs no message at all.
    if state().end_pager() and err.get("type") == "interrupted":
        return
    try:
        out = state().out
    except KfError:  # a bad KFCLI_OUTPUT must still get its message out
        out = state().output("tsv")
    with contextlib.suppress(OSError):  # stderr itself is gone (`2>/dev/full`): exit status
        out.error(err)


def _silence_stdout(env: Environment) -> None:
    """The reader went away: later writes (at exit too) go nowhere."""
    import os

    try:
        fd = env.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # a stream in memory: nothing to do
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
