"""Long human output on a terminal goes through a pager, as gh and git page theirs.

The pager is `KFCLI_PAGER`, else `PAGER`, else `less -FRX` (LESS=FRX is set when LESS is
unset, as git does: less quits at once when the output fits on the screen, keeps colours and
leaves the text on the terminal). An empty value or `cat` turns paging off; so does
`--no-pager`.

Only human formats (table, wide) on a terminal are paged: never TSV, JSON or JSON lines,
never a stdout that is not a terminal, never a command that runs until interrupted (`--follow`,
`--batch`, the servers). The pager starts at the first write to stdout, so a command that
prints nothing, or asks a question first, shows no pager before it has something to show.

Quitting the pager early ends kfcli quietly (the next write finds the pipe closed: exit 0, as
`| head` does); Ctrl-C ends it quietly too (exit 130, no message over the pager's screen). kfcli
always waits for the pager to exit, so the shell prompt never lands inside it.
"""

from __future__ import annotations

import contextlib
import io
import shlex
import shutil
import signal
import subprocess
from collections.abc import Mapping
from typing import IO, Any

#: Commands that write to stdout until they are stopped: never paged.
SERVERS = {"kfcli sandbox serve", "kfcli callback serve"}
#: Options of commands that make them run until stopped or stream as they go.
STREAMING = ("follow", "batch", "consumer")


def command(environ: Mapping[str, str]) -> list[str] | None:
    """The pager to run (argv), or None for none."""
    for name in ("KFCLI_PAGER", "PAGER"):
        value = environ.get(name)
        if value is not None:
            value = value.strip()
            if not value or value == "cat":
                return None
            try:
                return shlex.split(value)
            except ValueError:  # unbalanced quotes: no pager rather than a failure
                return None
    return ["less", "-FRX"]


def streams(ctx: Any) -> bool:
    """Whether the command being run writes until it is stopped (no pager for it)."""
    if ctx.command_path in SERVERS:
        return True
    return any(ctx.params.get(name) for name in STREAMING)


class Pager(io.TextIOBase):
    """A text stream that starts the pager at its first write and feeds it; to the renderer
    it is the terminal (isatty, and the terminal's size through `fileno`)."""

    def __init__(self, argv: list[str], terminal: IO[str], environ: Mapping[str, str]
                 ) -> None:
        super().__init__()
        self.argv = argv
        self.terminal = terminal
        self.environ = environ
        self.proc: subprocess.Popen | None = None
        self._pipe: IO[str] | None = None
        self._failed = False
        self._finishing = False
        self._sigint: Any = None

    # What the renderer asks of its stdout.
    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:
        return self.terminal.fileno()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    @property
    def started(self) -> bool:
        return self.proc is not None

    def write(self, text: str) -> int:
        pipe = self._pipe or self._start()
        if pipe is None:
            return self.terminal.write(text)
        pipe.write(text)  # BrokenPipeError: the pager was quit; the run ends quietly
        return len(text)

    def flush(self) -> None:
        if self._pipe is not None:
            self._pipe.flush()
        else:
            self.terminal.flush()

    def _start(self) -> IO[str] | None:
        if self._failed:
            return None
        env = dict(self.environ)
        env.setdefault("LESS", "FRX")
        env.setdefault("LV", "-c")
        self.terminal.flush()
        try:
            executable = shutil.which(self.argv[0], path=env.get("PATH"))
            if executable is None:
                raise FileNotFoundError(self.argv[0])
            self.proc = subprocess.Popen([executable, *self.argv[1:]], stdin=subprocess.PIPE,
                                         stdout=self.terminal, env=env)
        except OSError:  # no such pager: write to the terminal as if none was asked for
            self._failed = True
            return None
        assert self.proc.stdin is not None
        self._catch_sigint()
        self._pipe = io.TextIOWrapper(self.proc.stdin, encoding="utf-8", errors="replace",
                                      line_buffering=False, write_through=False)
        return self._pipe

    def finish(self) -> bool:
        """Close the pager's input and wait for it to exit (the user reads, then quits):
        Ctrl-C meanwhile is the pager's, not ours. True if a pager ran."""
        self._finishing = True
        if self.proc is None:
            return False
        if self._pipe is not None:
            with contextlib.suppress(OSError, ValueError):  # quit early: the pipe is closed
                self._pipe.close()
            self._pipe = None
        with contextlib.suppress(OSError):
            self.proc.wait()
        self.proc = None
        if self._sigint is not None:
            signal.signal(signal.SIGINT, self._sigint)
            self._sigint = None
        return True

    def _catch_sigint(self) -> None:
        """Ctrl-C reaches kfcli and the pager together. While the command still writes, it
        interrupts it (KeyboardInterrupt, reported quietly); once kfcli is only waiting for
        the pager to be quit, it is the pager's alone."""
        def interrupt(_signum: int, _frame: Any) -> None:
            if not self._finishing:
                raise KeyboardInterrupt

        try:
            self._sigint = signal.signal(signal.SIGINT, interrupt)
        except ValueError:  # not the main thread (a run in a test's thread)
            self._sigint = None


def wrap(out: Any, environ: Mapping[str, str]) -> None:
    """Route `out`'s stdout through a pager when paging applies (a human format, stdout a
    terminal, a pager configured)."""
    terminal = out.stdout
    if out.fmt != "table" or isinstance(terminal, Pager) or not out.stdout_tty:
        return
    argv = command(environ)
    if argv:
        out.stdout = Pager(argv, terminal, environ)
