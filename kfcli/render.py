"""The only code that writes to stdout: tables, TSV, JSON and JSON lines (DESIGN.md §4).

* `table`: a table on a terminal, laid out to its width (see "table layout" below: ids are
  never cut; narrow terminals get shortened text, hidden columns, or one block per record);
  `wide` is the same table with every column. A result that is one value is printed bare.
  Text from customers or the API is shown as plain text (no markup) with control characters
  removed, so `[/bold]` or an ANSI escape in a nickname cannot restyle or hijack the terminal.
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
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

from kfcli.core import jsontext
from kfcli.core.errors import UsageError
from kfcli.core.redact import redact

#: `wide` is a table with every column, none hidden to fit the terminal.
FORMATS = ("table", "tsv", "json", "jsonl", "wide")

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
        columns: Sequence[str] | None = None,
        environ: Mapping[str, str] | None = None,
        ttys: tuple[bool, bool] | None = None,
    ) -> None:
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        #: The environment variables read here: KFCLI_OUTPUT, COLUMNS, NO_COLOR, TERM.
        self.environ = os.environ if environ is None else environ
        #: Whether stdout and stderr are terminals (default: asked of the streams).
        self.stdout_tty, self.stderr_tty = ttys if ttys is not None else (
            _isatty(self.stdout), _isatty(self.stderr))
        fmt = fmt or self.default_format()
        #: -o wide: a table (fmt "table") with every column, none hidden to fit.
        self.wide = fmt == "wide"
        self.fmt = "table" if self.wide else fmt
        #: --columns: the columns (or an object's fields) to show in tables and TSV.
        self.columns = list(columns) if columns else None
        self._noted = False
        self._status = False  # a progress line is showing on stderr
        #: Errors as JSON on stderr: with -o json/jsonl, not when a stream merely defaults to it.
        self.json_errors = True

    def default_format(self) -> str:
        env = self.environ.get("KFCLI_OUTPUT")
        if env in FORMATS:
            return env
        return "table" if self.stdout_tty else "tsv"

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
        optional: Sequence[str] = (),
        extra: Sequence[str] = (),
        marks: Mapping[str, Callable[[str], str]] | None = None,
    ) -> None:
        """A list of objects: all fields in JSON, `columns` in table and TSV.

        `--columns` chooses among `columns` and `extra` (fields shown only when chosen or with
        -o wide). A table too wide for the terminal hides avatar URLs, then columns empty in
        every row, then the `optional` ones (in that order), before turning into blocks.
        `marks` (key -> function) dresses a column's text in a table once it is laid out
        (a search match highlighted): what it adds must take no room on the screen.
        """
        if self.fmt == "json":
            self._json(list(rows))
        elif self.fmt == "jsonl":
            for row in rows:
                self.line(row)
        else:
            picked = self.columns_for(columns, headers, extra)
            if self.fmt == "tsv":
                out = self.stdout
                for row in rows:
                    out.write("\t".join(tsv_field(row.get(k)) for k, _ in picked) + "\n")
                out.flush()
                return
            if not rows and empty:
                self.info(empty)
                return
            self._table([[_human(r.get(k)) for k, _ in picked] for r in rows],
                        [h for _, h in picked], keys=[k for k, _ in picked], optional=optional,
                        marks=marks)

    def columns_for(self, columns: Sequence[str], headers: Sequence[str] | None = None,
                    extra: Sequence[str] = ()) -> list[tuple[str, str]]:
        """(key, header) of the columns to show: those named by --columns (a usage error
        naming the known ones if one is unknown; commands that act before they list call
        this first), every one with -o wide, else `columns`."""
        spec = list(zip(columns, headers or columns, strict=True)) + [(k, k) for k in extra]
        if self.columns is None:
            return spec if self.wide else spec[:len(columns)]
        names: dict[str, tuple[str, str]] = {}
        for key, header in spec:
            for name in (key, header, header.replace(" ", "_")):
                names.setdefault(name, (key, header))
        unknown = [n for n in self.columns if n not in names]
        if unknown:
            known = ", ".join(dict.fromkeys(h.replace(" ", "_") for _, h in spec))
            raise UsageError(f"--columns: there is no column {unknown[0]!r} here; the columns "
                             f"are: {known}")
        return list(dict.fromkeys(names[n] for n in self.columns))

    def obj(self, obj: dict[str, Any], fields: Sequence[str] | None = None) -> None:
        """One object: JSON as is; TSV as one row of `fields`; a table as `field: value` lines
        (every field with -o wide; --columns chooses among the object's fields)."""
        fields = list(fields or obj.keys())
        if self.fmt in ("json", "jsonl"):
            self._json(obj) if self.fmt == "json" else self.line(obj)
            return
        if self.columns is not None:
            known = list(dict.fromkeys([*fields, *obj]))
            unknown = [c for c in self.columns if c not in known]
            if unknown:  # the command may have acted already: say so, but do not fail it
                self.warning(f"--columns: no field {unknown[0]!r} in this result (fields: "
                             f"{', '.join(known)})")
            else:
                fields = list(dict.fromkeys(self.columns))
        elif self.wide:
            fields = list(dict.fromkeys([*fields, *obj]))
        if self.fmt == "tsv":
            self.stdout.write("\t".join(tsv_field(obj.get(f)) for f in fields) + "\n")
            self.stdout.flush()
        else:
            columns = [Column(f, f, [_human(obj.get(f))]) for f in fields]
            self._write(_blocks(columns, 1, terminal_width(self.stdout, self.environ)))

    def value(self, obj: dict[str, Any], key: str) -> None:
        """A result that is one value (a new id, a URL): bare on a terminal, so that it can be
        copied whole; otherwise as `obj(obj, [key])` (TSV one field, JSON the object)."""
        if self.fmt == "table" and not self.wide and self.columns is None:
            self.stdout.write(clean(_human(obj.get(key))) + "\n")
            self.stdout.flush()
        else:
            self.obj(obj, [key])

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

    def _table(self, cells: list[list[str]], headers: Sequence[str], *, keys: Sequence[str],
               optional: Sequence[str] = (),
               marks: Mapping[str, Callable[[str], str]] | None = None) -> None:
        width = terminal_width(self.stdout, self.environ)
        result = layout(headers, cells, width, keys=keys, wide=self.wide,
                        chosen=self.columns is not None, optional=optional, marks=marks)
        self._write(result.lines)
        if result.hidden and not self._noted and self.stderr_tty:
            self._noted = True
            self.info(f"hidden at {width} columns: {', '.join(result.hidden)} (-o wide "
                      "shows every column; --columns NAME,… chooses)")

    def _write(self, lines: list[tuple[str, bool]]) -> None:
        """Lines to stdout; header lines bold on a terminal (not with NO_COLOR or TERM=dumb)."""
        bold = (self.stdout_tty and not self.environ.get("NO_COLOR")
                and self.environ.get("TERM") != "dumb")
        for text, header in lines:
            self.stdout.write(f"\x1b[1m{text}\x1b[0m\n" if header and bold and text
                              else text + "\n")
        self.stdout.flush()

    # ------------------------------------------------------------------ messages (stderr)

    @property
    def shows_progress(self) -> bool:
        """Progress goes to stderr, and only when it is a terminal (DESIGN.md §4)."""
        return self.stderr_tty

    def status(self, text: str | None) -> None:
        """Show (or with None, clear) the one-line progress status on a terminal's stderr;
        a no-op elsewhere, so logs and pipes never see it."""
        if not self.shows_progress:
            return
        if text is None:
            if self._status:
                self.stderr.write("\r\x1b[K")
                self.stderr.flush()
                self._status = False
            return
        width = max(10, terminal_width(self.stderr, self.environ) - 1)
        line = clean(redact(text))
        if cell_width(line) > width:
            line = _crop(line, width)
        self.stderr.write("\r\x1b[K" + line)
        self.stderr.flush()
        self._status = True

    def info(self, text: str) -> None:
        self._err(text)

    def warning(self, text: str) -> None:
        self._err(f"warning: {text}")

    def error(self, err: dict[str, Any]) -> None:
        """Report a failure: `error: …` / `hint: …`, or one JSON object in machine formats."""
        safe = {k: redact(v) if isinstance(v, str) else v for k, v in err.items()}
        if self.machine and self.json_errors:
            self.stderr.write(jsontext.dumps({"error": safe}) + "\n")
        elif safe.get("type") == "interrupted":  # Ctrl-C is not a failure to explain
            self._err(safe["message"])
        else:
            self._err(f"error: {safe['message']}")
            if safe.get("hint"):
                self._err(f"hint: {safe['hint']}")
        self.stderr.flush()

    def _err(self, text: str) -> None:
        self.status(None)  # a message never lands in the middle of a progress line
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
        self.stdout = stdout
        try:
            self.fd: int | None = stdout.fileno()
        except (AttributeError, OSError, ValueError):  # a stream in memory (a test's)
            self.fd = None
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
        if self.fd is None:
            self.stdout.buffer.write(data)
            return
        if self._poll is None:
            import select

            self._poll = select.poll()
            self._poll.register(self.fd, select.POLLOUT)
        view = memoryview(data)
        while view:
            self._poll.poll()  # wait for room here, never inside write()
            view = view[os.write(self.fd, view):]


# ---------------------------------------------------------------------- table layout
#
# Laid out here rather than by rich.table so that what a terminal shows is predictable: ids
# are never cut or wrapped (an id that lost characters fails with 95000 when pasted back),
# a date with its time never splits, a short value never folds mid-word; long free text is
# shortened with "…"; when even that does not fit, the least useful columns are hidden, and
# when what is left still does not fit, each record becomes a block of `field: value` lines,
# as `kubectl describe` and `gh` do. Widths are display cells: CJK characters count as 2.

GAP = "  "
#: The narrowest a shortened free-text column gets (its "…" included).
SHRINK_MIN = 12
#: Words up to this wide never fold in a wrapped column (a longer one, say a path, does).
WORD_MAX = 16
#: With fewer cells than this beside the labels, a block puts a long value under its label.
BLOCK_MIN = 20

#: Image URLs: the least useful in a table; hidden first when the terminal is too narrow.
_LOW = ("avatar", "headimgurl")
#: Free text, shortened with "…" in a table (wrapped with -o wide and in blocks).
_SHRINK = frozenset({"name", "nickname", "question", "answer", "content", "text", "summary",
                     "title", "desc", "description", "url", *_LOW})
#: A date with its time is one word.
_TOKEN = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(?::\d{2})?|\S+")
#: Words never split, whatever column they are in: dates and times, what looks like an id
#: (16+ letters, digits, `_` or `-`, with both letters and digits), e.g. a corp_id in `auth
#: status` or an external_userid in a message, and URLs (a base_url, a store's URL): a URL
#: broken across lines cannot be copied.
_WHOLE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2})?)?"
                    r"|(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[A-Za-z0-9_-]{16,}"
                    r"|[a-z][a-z0-9+.-]*://\S+", re.ASCII)


def _whole(word: str) -> bool:
    return _WHOLE.fullmatch(word.strip("()[]{}<>,.;:'\"")) is not None


def column_kind(key: str) -> str:
    """How a column gives way when narrow: "id" never (open_kfid, external_userid, msgid,
    msg_code…), "shrink" with an ellipsis (names, answers, avatar URLs), else "wrap" at spaces."""
    name = key.lower()
    if name.endswith(("id", "_code")) or name == "echostr":
        return "id"
    return "shrink" if name in _SHRINK else "wrap"


def cell_width(text: str) -> int:
    from rich.cells import cell_len

    return cell_len(text)


def _fold(text: str, width: int) -> list[str]:
    """`text` in pieces of at most `width` cells (a wide character is never halved)."""
    from rich.cells import get_character_cell_size

    pieces, current, used = [], [], 0
    for ch in text:
        size = get_character_cell_size(ch)
        if current and used + size > width:
            pieces.append("".join(current))
            current, used = [], 0
        current.append(ch)
        used += size
    pieces.append("".join(current))
    return pieces


def _crop(text: str, width: int) -> str:
    if cell_width(text) <= width:
        return text
    return _fold(text, max(1, width - 1))[0] + "…"


def _wrap(text: str, width: int) -> list[str]:
    """One line of text wrapped at spaces into lines of at most `width` cells; only a word
    wider than that is folded (never a date or an id: that one gets a line of its own)."""
    lines: list[str] = []
    current = ""
    for word in _TOKEN.findall(text):
        if cell_width(word) > width and _whole(word):
            if current:
                lines.append(current)
            lines.append(word)
            current = ""
        elif cell_width(word) > width:
            if current:
                lines.append(current)
            *full, current = _fold(word, width)
            lines.extend(full)
        elif not current:
            current = word
        elif cell_width(current) + 1 + cell_width(word) <= width:
            current += " " + word
        else:
            lines.append(current)
            current = word
    lines.append(current)
    return lines


def _header_pieces(header: str) -> list[tuple[str, str]]:
    """(separator, piece): a header breaks after an underscore or at a space."""
    return [(" " if i and j == 0 else "", piece)
            for i, word in enumerate(header.split())
            for j, piece in enumerate(re.findall(r"[^_]*_+|[^_]+", word))]


def _header_lines(header: str, width: int) -> list[str]:
    lines: list[str] = []
    current = ""
    for sep, piece in _header_pieces(header):
        if current and cell_width(current + sep + piece) > width:
            lines.append(current)
            current = piece
        else:
            current += sep + piece
    lines.append(current)
    return [part for line in lines for part in _fold(line, width)]


def _pad(text: str, width: int, mark: Callable[[str], str] | None = None) -> str:
    room = " " * (width - cell_width(text))
    return (mark(text) if mark is not None and text else text) + room


class Column:
    """One column of a table: its cells, and how wide it wants to be and can be."""

    def __init__(self, key: str, header: str, cells: list[str], *, wide: bool = False,
                 mark: Callable[[str], str] | None = None) -> None:
        self.key, self.header = key, header
        #: Dresses a laid-out piece of a cell (after its width is counted).
        self.mark = mark
        self.cells = [c.replace("\t", " ") for c in cells]
        self.kind = column_kind(key)
        self.low = key.lower().endswith(_LOW)
        self.empty = bool(cells) and not any(self.cells)
        #: Shortened to one line with "…" (else wrapped, or whole for ids).
        self.crop = self.kind == "shrink" and not wide
        lines = [line for c in self.cells for line in self._lines(c)]
        natural = max(map(cell_width, lines), default=0)
        if self.kind == "id":
            least = natural
        elif self.crop:
            least = min(natural, SHRINK_MIN)
        else:
            words = [w for line in lines for w in _TOKEN.findall(line)]
            whole = max((cell_width(w) for w in words if _whole(w)), default=0)
            other = max((cell_width(w) for w in words if not _whole(w)), default=0)
            least = max(whole, min(other, WORD_MAX))
        pieces = [piece for _, piece in _header_pieces(header)]
        self.natural = max(natural, cell_width(header))
        self.minimum = max(least, max(map(cell_width, pieces), default=0))

    def _lines(self, cell: str) -> list[str]:
        return [" ".join(cell.split("\n"))] if self.crop else cell.split("\n")

    def render(self, cell: str, width: int) -> list[str]:
        if self.kind == "id":
            return cell.split("\n")
        if self.crop:
            return [_crop(line, width) for line in self._lines(cell)]
        return [out for line in cell.split("\n") for out in _wrap(line, width)]


class Layout:
    """What a table turns into at a given width: lines (each flagged when it is part of the
    header), the headers of the columns left out, and whether records became blocks."""

    def __init__(self, lines: list[tuple[str, bool]], hidden: list[str], blocks: bool) -> None:
        self.lines, self.hidden, self.blocks = lines, hidden, blocks

    @property
    def text(self) -> str:
        return "".join(line + "\n" for line, _ in self.lines)


def layout(headers: Sequence[str], cells: Sequence[Sequence[str]], width: int, *,
           keys: Sequence[str] | None = None, wide: bool = False, chosen: bool = False,
           optional: Sequence[str] = (),
           marks: Mapping[str, Callable[[str], str]] | None = None) -> Layout:
    """Lay out a table in `width` cells. Unless `wide` (every column, text wrapped) or the
    columns were `chosen`, columns are hidden to make it fit: avatar URLs first, then columns
    empty in every row, then `optional` ones in that order."""
    keys = list(keys or headers)
    columns = [Column(k, h, [row[i] for row in cells], wide=wide, mark=(marks or {}).get(k))
               for i, (k, h) in enumerate(zip(keys, headers, strict=True))]
    shown = list(columns)
    if not (wide or chosen):
        if not _fits(shown, width, natural=True):  # empty columns give way before any
            shown = [c for c in shown if not c.empty] or shown  # text is wrapped
        order = [c for c in columns if c.low and c in shown]
        order += [c for c in reversed(shown) if c.empty and c not in order]
        order += [c for k in optional for c in shown if c.key == k and c not in order]
        dropped: list[Column] = []
        for column in order:
            if _fits(shown, width) or len(shown) == 1:
                break
            shown.remove(column)
            dropped.append(column)
        if _fits(shown, width):
            for column in reversed(dropped):  # one hidden early may fit after all
                trial = [c for c in columns if c in shown or c is column]
                if not column.empty and _fits(trial, width):
                    shown = trial
        else:  # blocks: room for every column but images and columns with nothing in them
            shown = [c for c in columns if not (c.low or c.empty)] or columns
    if _fits(shown, width):
        lines, blocks = _table(shown, len(cells), width), False
    else:
        lines, blocks = _blocks(shown, len(cells), width), True
    return Layout(lines, [c.header for c in columns if c not in shown], blocks)


def _fits(columns: list[Column], width: int, *, natural: bool = False) -> bool:
    need = sum(c.natural if natural else c.minimum for c in columns)
    return need + len(GAP) * (len(columns) - 1) <= width


def _widths(columns: list[Column], width: int) -> list[int]:
    """Natural widths if they fit; else each column's minimum plus a fair share of the room
    left, columns that need little first, images last."""
    room = width - len(GAP) * (len(columns) - 1)
    if sum(c.natural for c in columns) <= room:
        return [c.natural for c in columns]
    widths = {id(c): c.minimum for c in columns}
    extra = room - sum(widths.values())
    for group in ([c for c in columns if not c.low], [c for c in columns if c.low]):
        needy = sorted((c for c in group if c.natural > c.minimum),
                       key=lambda c: c.natural - c.minimum)
        for i, column in enumerate(needy):
            give = min(column.natural - column.minimum, extra // (len(needy) - i))
            widths[id(column)] += give
            extra -= give
    return [widths[id(c)] for c in columns]


def _table(columns: list[Column], count: int, width: int) -> list[tuple[str, bool]]:
    widths = _widths(columns, width)

    def join(blocks: list[list[str]], header: bool, top: bool) -> list[tuple[str, bool]]:
        height = max(map(len, blocks))
        if top:
            blocks = [b + [""] * (height - len(b)) for b in blocks]
        else:  # headers sit on the line above the data
            blocks = [[""] * (height - len(b)) + b for b in blocks]
        cells = list(zip(blocks, widths, marks, strict=True))
        return [(GAP.join(_pad(b[i], w, mark) for b, w, mark in cells).rstrip(), header)
                for i in range(height)]

    pairs = list(zip(columns, widths, strict=True))
    marks: list[Callable[[str], str] | None] = [None] * len(columns)
    lines = join([_header_lines(c.header, w) for c, w in pairs], True, False)
    marks = [c.mark for c in columns]
    for row in range(count):
        lines += join([c.render(c.cells[row], w) for c, w in pairs], False, True)
    return lines


def _blocks(columns: list[Column], count: int, width: int) -> list[tuple[str, bool]]:
    """One record per block: `field: value` lines, a blank line between records. Values wrap
    beside their labels (or below them when that leaves too little room); ids stay whole."""
    label = max(cell_width(c.header) for c in columns) + 1
    room = width - label - 1
    lines: list[tuple[str, bool]] = []
    for row in range(count):
        if row:
            lines.append(("", False))
        for column in columns:
            name = _pad(column.header + ":", label)
            value = column.cells[row]
            if cell_width(value) <= room and "\n" not in value:
                field = [name + " " + value]
            elif column.kind == "id":
                indent = "  " if cell_width(value) + 2 <= width else ""
                field = [column.header + ":", indent + value]
            elif room >= max(BLOCK_MIN, _widest_whole(value)):
                parts = [p for line in value.split("\n") for p in _wrap(line, room)]
                field = [name + " " + parts[0], *(" " * (label + 1) + p for p in parts[1:])]
            else:
                field = [column.header + ":", *("  " + p for line in value.split("\n")
                                                for p in _wrap(line, width - 2))]
            lines += [(line.rstrip(), False) for line in field]
    return lines


def _widest_whole(text: str) -> int:
    return max((cell_width(w) for w in _TOKEN.findall(text) if _whole(w)), default=0)


def rich_console(out: Output, **kwargs: Any) -> Any:
    """A rich Console writing to `out`'s stdout that sees the terminal `out` was told of (the
    invocation's environment), not one rich would guess from this process's streams."""
    from rich.console import Console

    return Console(file=out.stdout, highlight=False, markup=False, emoji=False,
                   force_terminal=out.stdout_tty, no_color=bool(out.environ.get("NO_COLOR")),
                   width=terminal_width(out.stdout, out.environ), **kwargs)


def terminal_width(stream: IO[str], environ: Mapping[str, str] | None = None) -> int:
    """COLUMNS if set (as rich and shutil read it), else the size of the stream's terminal,
    else 80."""
    value = (os.environ if environ is None else environ).get("COLUMNS", "")
    if value.isdigit() and int(value) > 0:
        return int(value)
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        columns = 0
    return columns or 80


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Transcript:
    """The conversation view of messages on a terminal (`msg history`, `msg sync`): a line
    for each new day, then per message its time, the customer (unless the view is of one
    `customer`, named once above), who spoke (`customer`, the servicer's userid, `system`,
    kfcli's sends) and what was said. Untrusted text is cleaned of control characters; what
    a customer wrote never starts a line of its own."""

    def __init__(self, out: Output, *, customer: str | None = None,
                 nickname: str | None = None, accounts: bool = False) -> None:
        from rich.text import Text

        self.console = rich_console(out)
        self.customer = customer
        #: A view of several accounts: a line names the account where it changes.
        self.accounts = accounts
        self._account = ""
        self._day = ""
        if customer is not None:
            head = Text("conversation with customer ", style="bold")
            head.append(customer, style="bold green")
            if nickname:
                head.append(f" ({clean(nickname)})", style="bold")
            self.console.print(head)

    def show(self, message: Any, media: Any = None,
             names: Mapping[str, str] | None = None) -> None:
        """One message (`kfcli.core.sync.Message`), with its archived media entry if any;
        `names`: customers' nicknames (the customer who speaks is named by theirs)."""
        import time

        from rich.text import Text

        from kfcli.core.transcript import describe, side, who

        console = self.console
        if message.send_time:
            stamp = time.localtime(message.send_time)
            day = time.strftime("%Y-%m-%d %A", stamp)
            if day != self._day:
                self._day = day
                console.print(Text(f"── {day} ──", style="dim"))
            clock = time.strftime("%H:%M:%S", stamp)
        else:
            clock = "--:--:--"
        if self.accounts and message.open_kfid != self._account:
            self._account = message.open_kfid
            console.print(Text(f"── account {clean(self._account)} ──", style="dim"))
        # The time alone is dim: a style given to Text() itself would be the whole line's
        # base style, and dim every message that fits on its line.
        line = Text()
        line.append(f"{clock}  ", style="dim")
        if self.customer is None and message.external_userid:
            line.append(clean(message.external_userid) + "  ", style="green")
        where = side(message)
        nickname = (names or {}).get(message.external_userid) if where == "customer" else None
        speaker = clean(nickname or who(message))
        style = {"customer": "bold green", "company": "bold cyan"}.get(where, "magenta")
        # Padded in terminal cells: a Chinese nickname's characters are two cells wide.
        line.append(speaker + " " * max(0, 8 - cell_width(speaker)) + "  ", style=style)
        event = where == "system"
        # What a customer wrote never starts a line of its own: text that has line breaks or
        # does not fit goes below, every line indented, so it cannot pass for a message.
        text = clean(describe(message, media).replace("\t", " "), keep_newlines=True)
        body = Text(text, style="italic" if event else "")
        if "\n" not in text and line.cell_len + body.cell_len <= console.width:
            console.print(line + body)
        else:
            from rich.padding import Padding

            line.rstrip()
            console.print(line)
            console.print(Padding(body, (0, 0, 0, 4), expand=False))
