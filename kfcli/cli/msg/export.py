"""`kfcli msg export`: stored messages to a CSV, JSON lines or HTML file (or stdout).

The formats are written by `kfcli.core.export`; this module parses the options, opens the
target and reports. A file is written beside its final name and renamed into place once
complete, so an interrupted export never leaves half a file under that name.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path
from typing import IO, Annotated

import typer

from kfcli.cli.context import state
from kfcli.cli.msg._group import (
    CustomerOpt,
    SinceOpt,
    UntilOpt,
    app,
    corp_of,
    nicknames,
    note_unseen,
    selection,
)
from kfcli.core import limits
from kfcli.core.errors import Interrupted, KfError, UsageError, ValidationError

#: Progress on a terminal's stderr every this many messages.
PROGRESS_EVERY = 10_000


class _Borrowed(io.RawIOBase):
    """Writes into a binary stream that it leaves open when closed."""

    def __init__(self, target: IO[bytes]) -> None:
        self._target = target

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        self._target.write(data)
        return len(data)

    def flush(self) -> None:
        self._target.flush()


class _Target:
    """Where the export goes: stdout (`-`), a device or FIFO (written into, with --force
    only), or a file (written to a private temporary file in the same directory, mode 0600,
    then renamed over it)."""

    def __init__(self, name: str, *, force: bool) -> None:
        self.name = name
        self.path: Path | None = None
        self._tmp: str | None = None
        self._raw: IO[bytes]
        if name == "-":
            # A duplicate of stdout's descriptor: closing it (also after the reader went
            # away) leaves stdout itself open for the error report.
            stdout = state().env.stdout
            stdout.flush()
            self.shown = "stdout"
            try:
                fd = stdout.fileno()
            except (AttributeError, OSError, ValueError):  # in memory (a test's)
                self._raw = _Borrowed(stdout.buffer)
            else:
                self._raw = os.fdopen(os.dup(fd), "wb", buffering=1 << 16)
        else:
            self.path = Path(name)
            self.shown = name
            self._raw = self._open(force)
        # newline="": the csv module writes its own line ends; other formats write "\n".
        self.stream = io.TextIOWrapper(self._raw, encoding="utf-8", newline="",
                                       write_through=False)

    def _open(self, force: bool) -> IO[bytes]:
        from kfcli.core.files import check_output

        path = self.path
        assert path is not None
        exists = check_output(path, force=force)
        if exists and not path.is_file():
            # A FIFO or a device named with --force (`-O /dev/null --force`): write into
            # it; never replace it.
            try:
                return open(path, "wb")  # noqa: SIM115 - closed by finish()/abort()
            except OSError as exc:
                raise UsageError(f"-O: cannot write {path} ({exc.strerror})") from None
        try:
            fd, self._tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                             dir=path.parent)
        except OSError as exc:
            raise UsageError(f"-O: cannot write {path} ({exc.strerror})") from None
        return os.fdopen(fd, "wb", buffering=1 << 20)

    @property
    def raw(self) -> IO[bytes]:
        """The binary stream under `stream` (for bytes: media)."""
        return self._raw

    def finish(self) -> None:
        """Everything is written: flush, and put the file in place."""
        self.stream.flush()
        if self._tmp is not None:
            os.fsync(self._raw.fileno())
        self.stream.close()
        if self._tmp is not None:
            os.replace(self._tmp, self.path)  # type: ignore[arg-type]
            self._tmp = None

    def abort(self) -> None:
        """Something failed: leave no temporary file behind (and no file under the name)."""
        with contextlib.suppress(OSError, ValueError):
            self.stream.close()
        with contextlib.suppress(OSError, ValueError):
            self._raw.close()  # when closing the wrapper failed (a broken pipe)
        if self._tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._tmp)
            self._tmp = None


@app.command("export", epilog="""Examples:

  kfcli msg export --format csv -O week.csv --since 7d

  kfcli msg export --customer wmXyZ789 --format html -O chat.html

  kfcli msg export --format html -O chats.html --media-dir chats-media

  kfcli msg export --format jsonl -O - | gzip > archive.jsonl.gz

Writes messages from the store (what `msg sync` and `callback serve --sync` pulled) of every
account of the corp, or of --account, oldest first. WHEN is a date (2026-11-30), a local
time (2026-11-30T14:00), a duration ago (90m, 2h, 3d) or unix seconds.

csv: UTF-8 with a BOM, so Excel (also on a Chinese Windows) opens it correctly; a header row
and one row per message: time (ISO 8601, local, with its offset), account, customer
(external_userid), origin (customer, servicer or system), sender, msgtype, text (what a
non-text message is, e.g. "[image]" or "transferred to user001"; line breaks kept), msgid,
media_id. Control and bidi characters are removed; text that a spreadsheet could run as a
formula (= + - @ first, also after spaces or line breaks, also full-width) gets a leading ',
plain numbers such as +86 138 0013 8000 excepted; fields with " , ; or line breaks are
quoted. jsonl: each message exactly as `msg sync -o jsonl` writes it. html: one page,
nothing loaded from elsewhere, one section per conversation with a line for each new day,
archived images inline; with --media-dir DIR, archived voice, video and files are copied
into DIR (as MSGID-NAME) and the page links to them (relative links: keep DIR where it is
beside the page, or move both together).

An existing file, FIFO or device is only written with --force (-O - is stdout). The file
appears once it is complete (an interrupted export leaves no partial file), readable by you
only (it holds customers' words). Memory stays the same however many messages are exported.

Exit status: 0 done, 2 invalid input, an existing file without --force or an unwritable
path, 3 the store is misconfigured or does not exist (nothing is created), 6 a PostgreSQL
store is unreachable, 130 interrupted.""")
def export(
    fmt: Annotated[str, typer.Option(
        "--format", metavar="csv|jsonl|html", help="What to write: csv (for spreadsheets), "
        "jsonl (the raw messages) or html (a page to read).", show_default=False)],
    output_file: Annotated[str, typer.Option(
        "-O", "--output-file", metavar="FILE", help="Write to FILE ('-': stdout).",
        show_default=False)],
    account: Annotated[str | None, typer.Option(
        "--account", metavar="OPEN_KFID", help="Only this account (default: every account "
        "of the corp).", show_default=False)] = None,
    customer: CustomerOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing FILE.")] = False,
    media_dir: Annotated[str | None, typer.Option(
        "--media-dir", metavar="DIR", help="With --format html: copy archived voice, video "
        "and files into DIR (created if missing) and link the page to them.",
        show_default=False)] = None,
) -> None:
    """Write stored messages to a CSV, JSON lines or HTML file."""
    from kfcli.core.export import Exporter, Selection
    from kfcli.core.store import open_store

    st = state()
    out = st.out
    fmt = _check_export(fmt, account, output_file, media_dir)
    start, end = selection(customer, since, until, state().env.clock())
    corp_id = corp_of(st.settings())
    store = open_store(settings=st.settings(), create=False)
    target = None
    try:
        target = _Target(output_file, force=force)
        exporter = Exporter(store, Selection(corp_id, account, customer, start, end),
                            media_dir=_media_dir(media_dir, output_file)
                            if media_dir is not None else None,
                            # CSV and HTML name customers; JSON lines are the raw objects
                            names=nicknames(st, store, corp_id, out)
                            if fmt != "jsonl" else None,
                            every=PROGRESS_EVERY,
                            progress=lambda n: out.status(f"exporting: {n:,} messages"))
        try:
            exporter.write(fmt, target.stream)
            target.finish()
            if not exporter.count:
                note_unseen(out, store, corp_id, account, customer)
        except BrokenPipeError:
            raise BrokenPipeError("stdout was closed") from None  # `| head`: exit 0
        except OSError as exc:
            left = "" if target.path is None else f"; nothing was written to {target.path}"
            raise KfError(f"writing {target.shown} failed ({exc.strerror or exc}){left}"
                          ) from None
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; nothing was written to {output_file}") from None
    finally:
        out.status(None)
        if target is not None:
            target.abort()
        store.close()
    _exported(out, exporter, target.shown, media_dir)


def _check_export(fmt: str, account: str | None, output_file: str,
                  media_dir: str | None) -> str:
    """`msg export`'s options checked together; the format, normalised."""
    from kfcli.core.export import FORMATS

    fmt = fmt.strip().lower()
    if fmt not in FORMATS:
        raise ValidationError("--format", f"{fmt!r} is not one of {', '.join(FORMATS)}")
    if account is not None:
        limits.check_open_kfid(account)
    if not output_file:
        raise UsageError("-O: give a file name, or - for stdout")
    if media_dir is not None and fmt != "html":
        raise UsageError("--media-dir goes with --format html (CSV and JSON lines name each "
                         "message's media_id; `kfcli msg media MSGID` writes one out)")
    if media_dir is not None and not media_dir:
        raise UsageError("--media-dir: give a directory")
    return fmt


def _exported(out, exporter, shown: str, media_dir: str | None) -> None:
    """What `msg export` wrote, on stderr."""
    count = exporter.count
    out.info(f"exported {count:,} message{'' if count == 1 else 's'} to {shown}")
    if exporter.media_written:
        out.info(f"copied {exporter.media_written:,} media file"
                 f"{'' if exporter.media_written == 1 else 's'} to {media_dir}")
    if exporter.media_unlinked:
        out.info(f"{exporter.media_unlinked:,} archived voice, video or file message"
                 f"{' is' if exporter.media_unlinked == 1 else 's are'} named but not linked: "
                 "--media-dir DIR copies them beside the page")


def _media_dir(name: str, output_file: str):
    """--media-dir: the directory (created, 0700: it holds customers' files) and how the
    page links to it (relative to the page's directory; with -O -, to the current one)."""
    from kfcli.core.export import MediaDir

    path = Path(name)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--media-dir: {name} exists and is not a directory")
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--media-dir: cannot create {name} ({exc.strerror})") from None
    page_dir = Path.cwd() if output_file == "-" else Path(output_file).resolve().parent
    href = os.path.relpath(path.resolve(), page_dir).replace(os.sep, "/")
    return MediaDir(path, "" if href == "." else href + "/")
