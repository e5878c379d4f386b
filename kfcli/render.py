"""The only code that writes to stdout: tables, TSV, JSON and JSON lines (DESIGN.md §4).

* `table`: a rich table on a terminal. Text from customers or the API is shown as plain
  text (no markup) with control characters removed, so `[/bold]` or an ANSI escape in a
  nickname cannot restyle or hijack the terminal.
* `tsv`: the default when stdout is not a terminal; no header, no borders, no truncation; tabs,
  newlines and backslashes in values are escaped as `\\t`, `\\n`, `\\\\` so that one record is one
  line, and other control characters are removed.
* `json`: one document; lists are arrays of objects with the API's own field names.
* `jsonl`: one object per line, flushed as written.

Progress, warnings and errors go to stderr; every message passes through `redact()`.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import IO, Any

from kfcli.core import jsontext
from kfcli.core.redact import redact

FORMATS = ("table", "tsv", "json", "jsonl")

# C0 controls except tab/newline, DEL and C1 controls (which include the 8-bit CSI).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROL_ALL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Unicode bidi overrides can reorder what a terminal shows.
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")


def clean(text: str, *, keep_newlines: bool = False) -> str:
    """Text safe to show a human: no control characters (newlines kept only if asked)."""
    pattern = _CONTROL if keep_newlines else _CONTROL_ALL
    return _BIDI.sub("", pattern.sub("", text))


def tsv_field(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    text = str(value)
    text = text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return _BIDI.sub("", _CONTROL_ALL.sub("", text))


def _human(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return clean(str(value), keep_newlines=True)


class Output:
    """Renders results in one format to one pair of streams."""

    def __init__(
        self,
        fmt: str | None = None,
        *,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
    ) -> None:
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.fmt = fmt or self.default_format()
        #: Errors as JSON on stderr: with -o json/jsonl, not when a stream merely defaults to it.
        self.json_errors = True

    def default_format(self) -> str:
        env = os.environ.get("KFCLI_OUTPUT")
        if env in FORMATS:
            return env
        return "table" if _isatty(self.stdout) else "tsv"

    @property
    def machine(self) -> bool:
        return self.fmt in ("json", "jsonl")

    # ------------------------------------------------------------------ data (stdout)

    def rows(
        self,
        rows: Sequence[dict[str, Any]],
        columns: Sequence[str],
        *,
        headers: Sequence[str] | None = None,
        empty: str | None = None,
    ) -> None:
        """A list of objects: all fields in JSON, `columns` in table and TSV."""
        if self.fmt == "json":
            self._json(list(rows))
        elif self.fmt == "jsonl":
            for row in rows:
                self.line(row)
        elif self.fmt == "tsv":
            out = self.stdout
            for row in rows:
                out.write("\t".join(tsv_field(row.get(c)) for c in columns) + "\n")
            out.flush()
        else:
            if not rows and empty:
                self.info(empty)
                return
            self._table([[_human(r.get(c)) for c in columns] for r in rows], headers or columns)

    def obj(self, obj: dict[str, Any], fields: Sequence[str] | None = None) -> None:
        """One object: JSON as is; TSV as one row of `fields`; a table as field/value lines."""
        fields = list(fields or obj.keys())
        if self.fmt in ("json", "jsonl"):
            self._json(obj) if self.fmt == "json" else self.line(obj)
        elif self.fmt == "tsv":
            self.stdout.write("\t".join(tsv_field(obj.get(f)) for f in fields) + "\n")
            self.stdout.flush()
        else:
            self._table([[f, _human(obj.get(f))] for f in fields], None)

    def binary(self, data: bytes) -> None:
        """Raw bytes (a downloaded file) to stdout."""
        self.stdout.flush()
        stream = getattr(self.stdout, "buffer", None)
        if stream is None:
            raise TypeError("stdout cannot take bytes")
        stream.write(data)
        stream.flush()

    def document(self, doc: Any) -> None:
        """A JSON document whatever the format (request bodies shown by --dry-run)."""
        self.line(doc) if self.fmt == "jsonl" else self._json(doc)

    def done(self, doc: dict[str, Any], message: str) -> None:
        """An action's outcome: the object in JSON formats, else a message on stderr (so a
        script's stdout stays empty for commands that produce no data)."""
        if self.machine:
            self.obj(doc)
        else:
            self.info(message)

    def line(self, obj: Any) -> None:
        """One JSON line, flushed at once (streams)."""
        self.stdout.write(jsontext.dumps(obj) + "\n")
        self.stdout.flush()

    def _json(self, doc: Any) -> None:
        self.stdout.write(jsontext.dumps(doc, indent=2) + "\n")
        self.stdout.flush()

    def _table(self, cells: Iterable[Sequence[str]], headers: Sequence[str] | None) -> None:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        console = Console(file=self.stdout, highlight=False, markup=False, emoji=False)
        table = Table(show_header=headers is not None, box=None, pad_edge=False,
                      header_style="bold")
        for h in headers or ("", ""):
            if h.endswith("id"):  # open_kfid, external_userid, msgid…: never split an id
                table.add_column(Text(h), no_wrap=True, overflow="ignore")
            elif h in ("avatar", "url"):
                table.add_column(Text(h), no_wrap=True, overflow="ellipsis")
            else:
                table.add_column(Text(h), overflow="fold")
        for row in cells:
            table.add_row(*(Text(c) for c in row))
        console.print(table)

    # ------------------------------------------------------------------ messages (stderr)

    def info(self, text: str) -> None:
        self._err(text)

    def warning(self, text: str) -> None:
        self._err(f"warning: {text}")

    def error(self, err: dict[str, Any]) -> None:
        """Report a failure: `error: …` / `hint: …`, or one JSON object in machine formats."""
        safe = {k: redact(v) if isinstance(v, str) else v for k, v in err.items()}
        if self.machine and self.json_errors:
            self.stderr.write(jsontext.dumps({"error": safe}) + "\n")
        else:
            self._err(f"error: {safe['message']}")
            if safe.get("hint"):
                self._err(f"hint: {safe['hint']}")
        self.stderr.flush()

    def _err(self, text: str) -> None:
        self.stderr.write(clean(redact(text), keep_newlines=True) + "\n")
        self.stderr.flush()


class LineStream:
    """Lines in whole-line chunks of up to PIPE_BUF (4 KiB), each handed to a sink together
    with its record (the keys of its lines, one per line). With the default sink the chunk
    is written to stdout after waiting with poll() for room, so one write() puts all of it in
    a pipe or none of it; `kfcli.core.syncwriter` is the sink that makes this exactly-once."""

    CHUNK = 4096

    def __init__(self, stdout: IO[str], sink: Callable[[bytes, bytes], None] | None = None,
                 *, chunk: int = CHUNK) -> None:
        stdout.flush()
        self.chunk = chunk
        self.fd = stdout.fileno()
        self.sink = sink or self._write
        self._parts: list[bytes] = []
        self._keys: list[str] = []
        self._size = 0
        self._poll = None

    def add(self, line: str, key: str | None = None) -> None:
        data = line.encode("utf-8")
        if self._size and self._size + len(data) > self.chunk:
            self.flush()
        self._parts.append(data)
        if key is not None:
            self._keys.append(key)
        self._size += len(data)

    def add_block(self, text: str, keys: list[str]) -> None:
        """Many whole lines at once (for a sink that takes any size, e.g. the sync writer)."""
        if not text:
            return
        data = text.encode("utf-8")
        if self._size and self._size + len(data) > self.chunk:
            self.flush()
        self._parts.append(data)
        self._keys.extend(keys)
        self._size += len(data)

    def flush(self) -> None:
        if not self._parts:
            return
        record = ("\n".join(self._keys) + "\n").encode("utf-8") if self._keys else b""
        data = b"".join(self._parts)
        self._parts, self._keys, self._size = [], [], 0
        self.sink(data, record)

    def _write(self, data: bytes, record: bytes) -> None:
        if self._poll is None:
            import select

            self._poll = select.poll()
            self._poll.register(self.fd, select.POLLOUT)
        view = memoryview(data)
        while view:
            self._poll.poll()  # wait for room here, never inside write()
            view = view[os.write(self.fd, view):]


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
