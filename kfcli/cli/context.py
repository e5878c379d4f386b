"""What every command shares: the invocation state, the output options, confirmation.

`AppState` is one invocation: its `Environment` (streams, environment variables, clock; see
kfcli/cli/environment.py), the global flags, the resolved settings and the client.
`kfcli.cli.app.run` makes one per run and makes it current for the run's duration (a
context variable, as `decimal`'s context is: no module-global state, two runs in two threads
each see their own); commands reach it with `state()`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

import typer

from kfcli.cli.environment import Environment
from kfcli.core.errors import ConfigError, UsageError
from kfcli.render import FORMATS, Output

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class AppState:
    env: Environment = field(default_factory=Environment)
    profile: str | None = None
    sandbox: bool = False
    debug: bool = False
    output_format: str | None = None
    columns: list[str] | None = None
    #: Long human output on a terminal goes through a pager (kfcli/cli/pager.py).
    paging: bool = True
    _output: Output | None = field(default=None, repr=False)
    _settings: Any = field(default=None, repr=False)
    _client: Any = field(default=None, repr=False)
    _sandbox_server: Any = field(default=None, repr=False)

    def set_output(self, output: str | None, as_json: bool, columns: str | None = None
                   ) -> None:
        output = output_choice(output, as_json, self.output_format)
        if output is not None:
            if output not in FORMATS:
                hint = None
                if "." in output or "/" in output:  # `-o x.csv`: a file was meant
                    hint = ("-o chooses the output format; to save the output, redirect it "
                            "(> FILE) or use -O FILE where the command has it")
                raise UsageError(f"--output: {output!r} is not one of {', '.join(FORMATS)}",
                                 hint=hint)
            self.output_format = output
            self._output = None
        if columns is not None:
            names = [name.strip() for name in columns.split(",") if name.strip()]
            if not names:
                raise UsageError("--columns: give column names separated by commas, "
                                 "e.g. --columns open_kfid,name")
            self.columns = list(dict.fromkeys(names))
            self._output = None

    @property
    def out(self) -> Output:
        if self._output is None:
            fmt = self.output_format
            env = self.env.environ.get("KFCLI_OUTPUT")
            if fmt is None and env:
                if env not in FORMATS:
                    raise ConfigError(f"KFCLI_OUTPUT: {env!r} is not one of "
                                      f"{', '.join(FORMATS)}")
                fmt = env
            self._output = self.output(fmt)
            if self.paging:
                from kfcli.cli import pager

                pager.wrap(self._output, self.env.environ)
        return self._output

    def output(self, fmt: str | None) -> Output:
        """An Output on this invocation's streams (`out` is the one commands share)."""
        env = self.env
        return Output(fmt, columns=self.columns, stdout=env.stdout, stderr=env.stderr,
                      environ=env.environ, ttys=(bool(env.stdout_isatty),
                                                 bool(env.stderr_isatty)))

    def no_pager(self) -> None:
        """No pager for this run (--no-pager, or a command that writes until stopped)."""
        self.paging = False
        if self.end_pager() is not None:
            self._output = None  # made again, on the terminal itself

    def end_pager(self) -> bool | None:
        """Let the pager (if one is running) show the rest and wait until it is quit: True if
        one ran, False if one was set up but never started, None if none was set up."""
        from kfcli.cli.pager import Pager

        stream = self._output.stdout if self._output is not None else None
        if not isinstance(stream, Pager):
            return None
        return stream.finish()

    def stream_out(self) -> Output:
        """Output for message streams: like `out`, but JSON lines (not TSV) when piped."""
        if self.output_format is None and not self.env.environ.get("KFCLI_OUTPUT") \
                and not self.env.stdout_isatty:
            self.output_format = "jsonl"
            self._output = None
            self.out.json_errors = False  # jsonl by default is not "asked for JSON errors"
        return self.out

    def settings(self, **flags: str | None):
        """Credentials and base URL: the embedded sandbox's with --sandbox, else resolved."""
        from kfcli.core.config import resolve

        if self._settings is None or flags:
            overrides = None
            if self.sandbox:
                server = self.sandbox_server()
                overrides = {**server.credentials, "base_url": server.base_url}
                if flags.get("store") is None:
                    # Rehearsals keep their messages apart: KFCLI_STORE if this invocation
                    # names one, else a store of the sandbox's own (never the default
                    # store.db, nor a profile's store, which are production's).
                    from kfcli.core import paths

                    overrides["store"] = (self.env.environ.get("KFCLI_STORE")
                                          or paths.sandbox_store_url())
            self._settings = resolve(profile=self.profile, flags=flags, overrides=overrides,
                                     env=self.env.environ)
        return self._settings

    def sandbox_server(self):
        if self._sandbox_server is None:
            from kfcli.core import paths
            from kfcli.sandbox import start

            self._sandbox_server = start(paths.sandbox_db())
        return self._sandbox_server

    def client(self):
        if self._client is None:
            from kfcli.core.client import KfClient

            trace = self.trace if self.debug else None
            self._client = KfClient.from_settings(self.settings(), trace=trace,
                                                  timeout=_timeout(self.env.environ),
                                                  notify=self.notice)
        return self._client

    def notice(self, level: str, text: str) -> None:
        """What the library has to say (an unusable token cache, retries) goes to stderr:
        warnings always, notices (45009, retrying in 2 s) on a terminal only. From any of
        the client's threads; it never fails the command."""
        import contextlib

        from kfcli.core.notices import WARNING

        with contextlib.suppress(Exception):
            if level == WARNING:
                self.out.warning(text)
            elif self.env.stderr_isatty:
                self.out.info(text)

    def trace(self, line: str) -> None:
        self.out.info(line)

    def close(self) -> None:
        self.end_pager()
        if self._sandbox_server is not None:
            self._sandbox_server.stop()
            self._sandbox_server = None


def output_choice(output: str | None, as_json: bool, earlier: str | None) -> str | None:
    """The format that `-o X` / `--json` ask for. They must agree, with each other and with
    a format given before the command (`kfcli -o tsv account list --json`): exit 2 rather
    than silently printing one of them."""
    if as_json:
        if output not in (None, "json"):
            raise UsageError(f"--json conflicts with -o {output}",
                             hint="--json is short for -o json; give one or the other")
        output = "json"
    if output is not None and earlier is not None and output != earlier:
        given = "--json" if as_json else f"-o {output}"
        raise UsageError(f"{given} conflicts with -o {earlier} given before the command")
    return output


def _timeout(environ):
    """Connect/read timeouts; KFCLI_TIMEOUT (seconds) sets the read timeout."""
    from kfcli.core.client import Timeout

    value = environ.get("KFCLI_TIMEOUT")
    if not value:
        return Timeout()
    try:
        seconds = float(value)
        if not 0 < seconds <= 600:
            raise ValueError
    except ValueError:
        raise ConfigError(f"KFCLI_TIMEOUT: {value!r} is not a number of seconds in (0, 600]"
                         ) from None
    return Timeout(connect=min(5.0, seconds), read=seconds)


_invocation: ContextVar[AppState] = ContextVar("kfcli_invocation")


def state() -> AppState:
    """The running command's invocation."""
    try:
        return _invocation.get()
    except LookupError:
        raise RuntimeError("no kfcli invocation is running (see kfcli.cli.app.run)") from None


@contextmanager
def invocation(st: AppState) -> Iterator[AppState]:
    """`st` is the current invocation inside the block; closed after it."""
    token = _invocation.set(st)
    try:
        yield st
    finally:
        try:
            st.close()
        finally:
            _invocation.reset(token)


# ---------------------------------------------------------------------- shared options

OutputOpt = Annotated[
    str | None,
    typer.Option(
        "--output",
        "-o",
        help="Output format: table, wide (a table with every column), tsv, json or jsonl. "
        "Default: table on a terminal, tsv otherwise. [env: KFCLI_OUTPUT]",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Short for --output json.")]
ColumnsOpt = Annotated[
    str | None,
    typer.Option(
        "--columns",
        help="Columns to show, comma-separated, in this order (table and tsv; JSON keeps "
        "every field).",
        show_default=False,
    ),
]
YesOpt = Annotated[
    bool, typer.Option("--yes", "-y", help="Do not ask for confirmation (needed in scripts).")
]


def with_output(func: F) -> F:
    """Give a command the `-o/--output`, `--json` and `--columns` options (accepted after the
    command)."""
    sig = inspect.signature(func, eval_str=True)
    extra = [
        inspect.Parameter("output", inspect.Parameter.KEYWORD_ONLY, default=None,
                          annotation=OutputOpt),
        inspect.Parameter("json_", inspect.Parameter.KEYWORD_ONLY, default=False,
                          annotation=JsonOpt),
        inspect.Parameter("columns_", inspect.Parameter.KEYWORD_ONLY, default=None,
                          annotation=ColumnsOpt),
    ]

    @functools.wraps(func)
    def wrapper(*args: Any, output: str | None = None, json_: bool = False,
                columns_: str | None = None, **kwargs: Any):
        state().set_output(output, json_, columns_)
        return func(*args, **kwargs)

    wrapper.__signature__ = sig.replace(parameters=[*sig.parameters.values(), *extra])
    wrapper.__annotations__ = {}
    return wrapper  # type: ignore[return-value]


def exclusive(**given: Any) -> None:
    """Refuse options that exclude each other, one way everywhere (exit 2, nothing sent):
    `exclusive(**{"--all": all_, "--limit": limit})` → "give --all or --limit, not both".
    An option counts as given when its value is not None or False."""
    named = [name for name, value in given.items() if value is not None and value is not False]
    if len(named) > 1:
        raise UsageError(f"give {' or '.join(named)}, not both" if len(named) == 2 else
                         f"give one of {', '.join(named)}, not several")


def confirm(question: str, *, yes: bool) -> None:
    """Ask before a destructive action; without a terminal, demand --yes (exit 2)."""
    if yes:
        return
    env = state().env
    if not (env.stdin_isatty and env.stderr_isatty):
        raise UsageError(f"{question} needs confirmation: pass --yes (no terminal to ask on)")
    try:
        answer = typer.confirm(question, default=False, err=True)
    except typer.Abort as exc:
        if isinstance(exc.__context__, EOFError):  # Ctrl-D: an answer, and it is not "yes"
            answer = False
        else:
            raise
    if not answer:
        raise UsageError("not confirmed: nothing was changed",
                         hint="answer y to go ahead, or pass --yes")


def read_secret(prompt: str) -> str:
    """A secret from a hidden prompt on a terminal, else the one line on stdin."""
    if state().env.stdin_isatty:
        value = typer.prompt(prompt, hide_input=True, err=True)
    else:
        lines = read_text(prompt, "-").splitlines()
        while lines and not lines[-1]:
            lines.pop()
        if len(lines) > 1:  # which line was meant? Storing the first would hide a mistake
            raise UsageError(f"{prompt}: stdin has {len(lines)} lines; a value is one line",
                             hint="pipe exactly the value, e.g. printf '%s' \"$VALUE\"")
        value = lines[0] if lines else ""
    if not value:
        raise UsageError(f"{prompt}: no value given (type it at the prompt or pipe it on stdin)")
    return value


def read_text(option: str, source: str) -> str:
    """The text of FILE, or of stdin for '-': UTF-8 (a leading BOM dropped). Unreadable or
    not UTF-8 → a usage error naming the file and where the first bad byte is."""
    name = "stdin" if source == "-" else source
    try:
        if source == "-":
            stdin = state().env.stdin
            data = stdin.buffer.read() if hasattr(stdin, "buffer") else \
                stdin.read().encode("utf-8")
        else:
            with open(source, "rb") as fh:
                data = fh.read()
    except OSError as exc:
        raise UsageError(f"{option}: cannot read {name} ({exc.strerror})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise UsageError(f"{option}: {name} is not UTF-8 text (byte 0x{data[exc.start]:02x} "
                         f"on line {line})",
                         hint="convert it first, e.g. `iconv -f GBK -t UTF-8`") from None


def read_ids(values: list[str] | None, source: str | None, what: str) -> list[str]:
    """Ids from arguments plus, with `--from FILE|-`, one per line (blank lines and #-comments
    skipped), in order, without duplicates."""
    ids = list(values or [])
    if source is not None:
        ids.extend(line.strip() for line in read_text("--from", source).splitlines())
    ids = [i for i in ids if i and not i.startswith("#")]
    return list(dict.fromkeys(ids))


FromOpt = Annotated[
    str | None,
    typer.Option("--from", help="Also read ids from FILE, one per line ('-' for stdin).",
                 show_default=False),
]


class _Typer(typer.Typer):
    """Commands refuse a single-value option given twice (`--text a --text b`): Click would
    silently keep the last one."""

    def command(self, name: str | None = None, *, cls: Any = None, **kwargs: Any):
        from kfcli.cli.strict import StrictCommand

        return super().command(name, cls=cls or StrictCommand, **kwargs)


def new_app(help: str, *, group: bool = True) -> typer.Typer:
    """A command-group app with kfcli's settings: plain help (no rich import), -h, and a
    group even when it holds a single command (`kfcli corp qualification`)."""
    from kfcli.cli.anywhere import Group

    app = _Typer(help=help, cls=Group, no_args_is_help=group, rich_markup_mode=None,
                      add_completion=False, pretty_exceptions_enable=False,
                      context_settings={"help_option_names": ["-h", "--help"]})
    if group:
        app.callback()(_group)
    return app


def _group() -> None:
    pass
