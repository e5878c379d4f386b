"""The invocation's world, as one object passed down (httpie's `Environment`): the three
streams and whether each is a terminal, the environment variables, the config directory and
the clock. The CLI reads none of these from `sys` or `os.environ` itself.

`Environment()` is the process's own; `Environment.captured(...)` is an invocation held in
memory — stdin from a string, stdout and stderr collected — for running commands in-process
(`kfcli.cli.app.run(args, env=...)`), as the tests do.
"""

from __future__ import annotations

import io
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


@dataclass
class Environment:
    stdin: IO[str] = field(default_factory=lambda: sys.stdin)
    stdout: IO[str] = field(default_factory=lambda: sys.stdout)
    stderr: IO[str] = field(default_factory=lambda: sys.stderr)
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    #: Unix seconds now (`time.time`); a test passes its own.
    clock: Callable[[], float] = time.time
    #: None: asked of the stream.
    stdin_isatty: bool | None = None
    stdout_isatty: bool | None = None
    stderr_isatty: bool | None = None

    def __post_init__(self) -> None:
        if self.stdin_isatty is None:
            self.stdin_isatty = _isatty(self.stdin)
        if self.stdout_isatty is None:
            self.stdout_isatty = _isatty(self.stdout)
        if self.stderr_isatty is None:
            self.stderr_isatty = _isatty(self.stderr)

    @classmethod
    def captured(cls, input: str | bytes = "", *, environ: Mapping[str, str] | None = None,
                 clock: Callable[[], float] | None = None, terminal: bool = False
                 ) -> Environment:
        """stdin holds `input`; stdout and stderr are collected (`captured_output`). No
        stream is a terminal, unless `terminal`: then stdout and stderr count as one (its
        width is COLUMNS in `environ`), stdin still does not."""
        data = input.encode("utf-8") if isinstance(input, str) else input
        stdin = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")  # newlines as a file's
        return cls(stdin=stdin, stdout=_memory(), stderr=_memory(),
                   environ=dict(os.environ if environ is None else environ),
                   clock=clock or time.time, stdin_isatty=False, stdout_isatty=terminal,
                   stderr_isatty=terminal)

    def captured_output(self) -> tuple[str, str]:
        """(stdout, stderr) of a `captured` environment, as text."""
        return _text(self.stdout), _text(self.stderr)

    @property
    def config_dir(self) -> Path:
        """KFCLI_CONFIG_DIR, else the platform's user config directory for kfcli."""
        from kfcli.core import paths

        return paths.config_dir(self.environ)

    @property
    def is_process(self) -> bool:
        """Whether the streams are the process's own (file descriptors 0-2)."""
        return self.stdout is sys.stdout or self.stdout is sys.__stdout__


def _memory() -> IO[str]:
    """A text stream collected in memory (with `.buffer`, as sys.stdout has), UTF-8, every
    character as written."""
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", newline="", write_through=True)


def _text(stream: IO[str]) -> str:
    stream.flush()
    buffer = getattr(stream, "buffer", None)
    if isinstance(buffer, io.BytesIO):
        return buffer.getvalue().decode("utf-8", "replace")
    return ""
