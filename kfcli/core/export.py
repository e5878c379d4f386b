"""Stored messages written out for people and spreadsheets (`kfcli msg export`).

Three formats, each written as the rows are read from the store, so memory stays flat
however many messages are exported:

* `csv`: UTF-8 with a byte-order mark (Excel on a Chinese Windows machine reads it as UTF-8
  only with one), a header row, one row per message (`CSV_COLUMNS`). Customer text is
  hostile, to spreadsheets and to terminals (`cat` of the file, `-O -`): control characters
  (C0 but tab, LF and CR; DEL; C1) and bidi controls are removed from every field, and text
  that a spreadsheet could run as a formula gets a leading `'` (`csv_text`, the rule in the
  README's "Security"); a field holding `"`, `,`, `;` or a line break is quoted.
* `jsonl`: each message's stored JSON text, exactly what `msg sync -o jsonl` printed.
* `html`: one self-contained page (inline CSS, nothing fetched), messages grouped by
  conversation (account + customer) with a line for each new day; all text escaped. To group
  without holding messages, a first pass notes the conversations (their ids only), then each
  is read back with the store's per-customer query.

Archived images are inlined as `data:` URIs; with a media directory (`MediaDir`, `msg export
--media-dir`) archived voice, video and files are copied there and linked; other media say
what they are and their size (`[voice 12 KB]`), or that they are not archived (`[image, not
archived: …]`).
"""

from __future__ import annotations

import base64
import contextlib
import html
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from kfcli.core.errors import KfError
from kfcli.core.sync import Message
from kfcli.core.transcript import describe, file_name, iso, origin_name, side, who

if TYPE_CHECKING:
    from kfcli.core.store import Row, Store
    from kfcli.core.store.base import MediaItem

#: kfcli.core.store.base.MEDIA_TYPES
MEDIA_TYPES = ("image", "voice", "video", "file")

FORMATS = ("csv", "jsonl", "html")
CSV_COLUMNS = ("time", "account", "customer", "origin", "sender", "msgtype", "text", "msgid",
               "media_id")
#: The last column of the CSV, filled per batch of lines once the batch's customers are
#: looked up (never a look-up per message).
NAME_COLUMN = "nickname"
BOM = "\ufeff"

class MediaSource(Protocol):
    """The media archive as an export sees it (`archived_media`; tests pass their own)."""

    def item(self, seq: int) -> MediaItem | None:
        """The archive entry of the stored message `seq` (None: not a media message)."""

    def data(self, item: MediaItem) -> bytes:
        """An archived entry's bytes (images only: at most 10 MB, one at a time)."""

    def by_msgid(self, msgids: list[str]) -> dict[str, MediaItem]:
        """The archive entries of these messages (CSV reads messages without their seqs)."""

    def chunks(self, item: MediaItem) -> Iterator[bytes]:
        """An archived entry's bytes, a piece at a time (copied into a media directory)."""

# C0 controls but tab and newline, DEL, C1 controls, bidi overrides: never valid or wanted
# in the page's text.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

# --- CSV text: controls out, formulas defused -------------------------------------------
# What a CSV field may not carry: C0 controls but tab, LF and CR; DEL; C1 controls (U+009B
# is an 8-bit CSI: with ESC they make OSC 52 clipboard writes, OSC 8 links and SGR on a
# terminal that shows the file); bidi marks, embeddings, overrides and isolates (they
# reorder what a reader sees). All are "not printable" to str.isprintable(), which is how
# the hot loop tells, at C speed, that a field needs this regular expression at all.
_CSV_STRIP = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f"
                        "\u202a-\u202e\u2066-\u2069]")
# A spreadsheet runs a cell as a formula when it starts with = + - @, also in their
# full-width (＝＋－＠) and small (﹦﹢﹣) forms that IMEs type, and also after leading
# whitespace or line breaks; tab and CR lead OWASP's list too.
_FORMULA_START = frozenset("=+-@\uff1d\uff0b\uff0d\uff20\ufe66\ufe62\ufe63")
# A field that is plainly a number (a sign, then digits, spaces, dots, hyphens,
# parentheses: +86 138 0013 8000, -5, +1 (555) 010-9999) calls no function and is left
# as it is: no visible ' on every phone number.
_PLAIN_NUMBER = re.compile(r"[+\-\uff0b\uff0d]?[0-9][0-9 ().\-]*")
# First characters that send a field to `csv_text`'s careful path: the formula starts,
# every whitespace character (what str.lstrip() removes) and every stripped control.
_CAREFUL = _FORMULA_START | frozenset(
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"  # str.isspace()
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
) | frozenset(map(chr, (*range(0x20), *range(0x7f, 0xa0))))


def csv_text(text: str) -> str:
    """A text field as kfcli writes it to CSV: controls removed, and a leading `'` when a
    spreadsheet could take it for a formula (unless it is plainly a number)."""
    if not text.isprintable():
        text = _CSV_STRIP.sub("", text)
    if text[:1] not in _CAREFUL:
        return text
    if text[0] in "\t\r":
        return "'" + text
    bare = text.lstrip()
    if bare[:1] in _FORMULA_START and not _PLAIN_NUMBER.fullmatch(bare):
        return "'" + text
    return text


class archived_media:  # noqa: N801 - used as a function
    """The media archive of `store` (kfcli.core.archive) as a MediaSource."""

    def __init__(self, store: Store, corp_id: str) -> None:
        self.store = store
        self.corp_id = corp_id

    def item(self, seq: int) -> MediaItem | None:
        return self.store.media_items(self.corp_id, [seq]).get(seq)

    def data(self, item: MediaItem) -> bytes:
        return b"".join(self.store.media_content(item))

    def by_msgid(self, msgids: list[str]) -> dict[str, MediaItem]:
        return self.store.media_by_msgid(self.corp_id, msgids)

    def chunks(self, item: MediaItem) -> Iterator[bytes]:
        return self.store.media_content(item)


@dataclass(frozen=True)
class MediaDir:
    """`msg export --format html --media-dir DIR`: archived voice, video and file media are
    copied into `path`, and the page links to each one as `href` + its file name (`href` is
    the same directory as seen from the page: relative to the page's directory, with a
    trailing "/"). Images stay inline."""

    path: Path
    href: str


@dataclass(frozen=True)
class Selection:
    """Which stored messages: one account or all of the corp's, optionally one customer's,
    sent in [since, until)."""

    corp_id: str
    open_kfid: str | None = None
    customer: str | None = None
    since: int | None = None
    until: int | None = None

    def rows(self, store: Store, *, open_kfid: str | None = None,
             customer: str | None = None) -> Iterator[Row]:
        return store.messages(self.corp_id, open_kfid or self.open_kfid,
                              customer=self.customer if customer is None else customer,
                              since=self.since, until=self.until)


class Exporter:
    """Writes a selection to a text stream (opened with newline="") in one format.

    `progress(count)` is called every `every` messages; `count` is the number written."""

    def __init__(self, store: Store, selection: Selection, *,
                 media: MediaSource | None = None, media_dir: MediaDir | None = None,
                 names: Callable[[list[str]], dict[str, str]] | None = None,
                 progress: Callable[[int], None] | None = None, every: int = 10_000) -> None:
        self.store = store
        #: Customers' nicknames (kfcli.core.names.Nicknames.get): the HTML page's names
        #: and the CSV's nickname column; None: ids alone.
        self.names = names
        self.selection = selection
        self.media = media or archived_media(store, selection.corp_id)
        self.media_dir = media_dir
        self.progress = progress
        self.every = every
        self.count = 0
        #: HTML: archived voice, video and files copied into the media directory, and
        #: those left out for want of one.
        self.media_written = 0
        self.media_unlinked = 0

    def write(self, fmt: str, stream: IO[str]) -> int:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}")
        getattr(self, f"_{fmt}")(stream)
        return self.count

    def _tick(self) -> None:
        self.count += 1
        if self.progress is not None and self.count % self.every == 0:
            self.progress(self.count)

    # ------------------------------------------------------------------ jsonl

    def _jsonl(self, stream: IO[str]) -> None:
        from kfcli.core.jsontext import escape

        # escape(): the same JSON value, with any terminal-active character (C1, bidi)
        # that a raw server answer stored written as \uXXXX.
        for row in self.selection.rows(self.store):
            stream.write(escape(row.text))
            stream.write("\n")
            self._tick()

    # ------------------------------------------------------------------ csv

    def _csv(self, stream: IO[str]) -> None:
        # The hot loop of a million-row export. Most messages are plain text, and the store
        # hands those over already picked apart (Store.export_rows: SQLite reads the JSON in
        # C), so they cost Python a few string operations. The others are parsed here: text
        # messages read straight from the parsed JSON, the rest through Message and
        # describe(); both kinds of text message share the code below. Lines
        # are built by hand with the csv module's rules (a field holding a quote, comma or
        # line break is quoted, its quotes doubled) and written a thousand at a time.
        stream.write(BOM + ",".join((*CSV_COLUMNS, NAME_COLUMN)) + "\r\n")
        clock = _Clock().iso
        special, careful, strip = _CSV_SPECIAL.search, _CAREFUL, _CSV_STRIP.sub
        lines: list[str] = []
        count, progress = self.count, self.progress
        next_note = count + self.every
        # The time column of the last text message: consecutive messages often share it.
        last_time, stamp = None, ""
        sel = self.selection
        waiting: list[tuple[int, Message]] = []  # media messages of `lines`, by position
        customers: list[Any] = []  # the customer of each of `lines`
        rows = self.store.export_rows(sel.corp_id, sel.open_kfid, customer=sel.customer,
                                      since=sel.since, until=sel.until)
        for text, sent, account, customer, servicer, origin, msgid, content in rows:
            if text is not None:  # not picked apart by the store: read the JSON here
                doc = _loads(text)
                body = doc.get("text") if doc.get("msgtype") == "text" else None
                origin = doc.get("origin")
                content = body.get("content") if type(body) is dict else None
                if type(content) is str and (origin == 3 or origin == 5) \
                        and type(body) is dict and not body.get("menu_id"):
                    # Odd values (numbers for ids, a string send_time) are shown as they
                    # are: str() below, _Clock for the time.
                    sent, msgid = doc.get("send_time"), doc.get("msgid") or ""
                    account = doc.get("open_kfid") or ""
                    customer = doc.get("external_userid") or ""
                    servicer = doc.get("servicer_userid") or ""
                else:
                    content = None
                    m = _message(doc)
                    if m.msgtype in MEDIA_TYPES:  # its size and name: asked per 1,000 lines
                        waiting.append((len(lines), m))
                        fields = None
                    else:
                        fields = _described(m, clock)
                    customer = m.external_userid
            if content is not None:  # a plain text message, from either path
                # csv_text(content), inlined: most texts are printable and start plainly.
                if not content.isprintable() or content[:1] in careful:
                    content = csv_text(content)
                if sent != last_time:
                    last_time, stamp = sent, clock(sent or 0)
                if origin == 3:
                    who, sender = "customer", customer
                else:
                    who, sender = "servicer", servicer
                # Which fields need quoting, asked of the text and of the ids at once (the
                # time never does); `in` is ten times faster than the regular expression.
                ids = f"{account}{customer}{sender}{msgid}"
                if "," in ids or '"' in ids or ";" in ids or not ids.isprintable():
                    # odd ids: the careful way, field by field
                    fields = [strip("", f if type(f) is str else str(f)) for f in (
                        stamp, account, customer, who, sender, "text", content, msgid, "")]
                    line = ",".join(_quote(f) if special(f) else f for f in fields)
                else:
                    if "," in content or '"' in content or "\n" in content \
                            or "\r" in content or ";" in content:
                        content = _quote(content)
                    line = f"{stamp},{account},{customer},{who},{sender},text,{content},{msgid},"
            elif fields is None:
                line = ""  # a media message: filled in below, with its archive entry
            else:
                line = _line(fields)
            lines.append(line)
            customers.append(customer)
            count += 1
            if len(lines) == 1000:
                if waiting:
                    self._media_lines(lines, waiting, clock)
                    waiting = []
                self._name_column(lines, customers)
                customers = []
                lines.append("")
                stream.write("\r\n".join(lines))
                lines = []
                if progress is not None and count >= next_note:
                    next_note += self.every
                    self.count = count
                    progress(count)
        self.count = count
        if waiting:
            self._media_lines(lines, waiting, clock)
        if lines:
            self._name_column(lines, customers)
            lines.append("")
            stream.write("\r\n".join(lines))

    def _who(self, m: Message, where: str) -> str:
        """Who speaks in a bubble: the customer's nickname where known."""
        if where == "customer":
            return getattr(self, "_nicknames", {}).get(m.external_userid) or who(m)
        return who(m)

    def _name_column(self, lines: list[str], customers: list[Any]) -> None:
        """The nickname column of a batch of lines: one look-up for the batch's customers."""
        known = self.names([c for c in set(customers) if type(c) is str]) \
            if self.names is not None else {}
        fields = {c: _field(csv_text(name)) for c, name in known.items()}
        for i, customer in enumerate(customers):
            lines[i] += "," + fields.get(customer, "")

    def _media_lines(self, lines: list[str], waiting: list[tuple[int, Message]],
                     clock: Callable[[int], str]) -> None:
        """The CSV lines of media messages, described with their archive entries (a file's
        name, a size) as every view describes them: one look-up for a batch of lines."""
        items = self.media.by_msgid([m.msgid for _, m in waiting])
        for at, m in waiting:
            lines[at] = _line(_described(m, clock, items.get(m.msgid)))

    # ------------------------------------------------------------------ html

    def _html(self, stream: IO[str]) -> None:
        # Pass 1: the conversations, in order of their first message, and the newest seq
        # (messages stored meanwhile are left out of pass 2, as they were of pass 1).
        conversations: dict[tuple[str, str], None] = {}
        top = 0
        for row in self.selection.rows(self.store):
            m = _message(_loads(row.text))
            conversations.setdefault((m.open_kfid, m.external_userid), None)
            top = row.seq
        stream.write(_page_head(self.selection))
        self._nicknames = self.names([c for _, c in conversations]) \
            if self.names is not None else {}
        if not conversations:
            stream.write('<p class="none">No messages.</p>\n')
        for open_kfid, customer in conversations:
            stream.write(_conversation_head(open_kfid, customer,
                                            self._nicknames.get(customer, "")))
            day = ""
            for row in self.selection.rows(self.store, open_kfid=open_kfid, customer=customer):
                if row.seq > top:
                    continue
                m = _message(_loads(row.text))
                if m.open_kfid != open_kfid:  # events carry ids inside `event`; be exact
                    continue
                t = time.localtime(m.send_time)
                today = time.strftime("%Y-%m-%d %A", t)
                if today != day:
                    day = today
                    stream.write(f'<h3 class="day">{_esc(today)}</h3>\n')
                stream.write(self._message_html(row.seq, m, t))
                self._tick()
            stream.write("</section>\n")
        stream.write(f'<footer>{self.count:,} message{"" if self.count == 1 else "s"} · '
                     f'exported by kfcli {_esc(iso(int(time.time())))}</footer>\n'
                     "</body>\n</html>\n")

    def _message_html(self, seq: int, m: Message, t: time.struct_time) -> str:
        clock = time.strftime("%H:%M:%S", t)
        stamp = f'<time datetime="{_esc(iso(m.send_time))}">{clock}</time>'
        where = side(m)
        if where == "system":
            return f'<div class="event">{stamp} {_esc(describe(m))}</div>\n'
        # The side places the bubble (the company's on the right); the origin's name lets
        # a stylesheet tell a servicer's answers from others on the company's side.
        kind = f"{where} {_esc(origin_name(m))}"
        body = ""
        item = self.media.item(seq) if m.msgtype in MEDIA_TYPES else None
        if item is not None and item.state == "archived" and m.msgtype == "image":
            try:
                data = self.media.data(item)
            except KfError:  # the file went missing: say what it was instead
                item = None
            else:
                mime = item.content_type or ""
                if not re.fullmatch(r"image/[a-z0-9.+-]+", mime):
                    mime = "application/octet-stream"
                body = f'<img alt="image" src="data:{mime};base64,' \
                       f'{base64.b64encode(data).decode("ascii")}">'
        if not body and item is not None and item.state == "archived" \
                and m.msgtype != "image":
            body = self._media_link(m, item)
        if not body:
            body = _esc(describe(m, item))
        return (f'<div class="msg {kind}"><div class="head">{stamp} '
                f'<span class="who">{_esc(self._who(m, where))}</span></div>'
                f'<div class="text">{body}</div></div>\n')


    def _media_link(self, m: Message, item: MediaItem) -> str:
        """An archived voice, video or file as a link to its copy in the media directory
        (written now), or "" without a media directory or when the copy cannot be made."""
        if self.media_dir is None:
            self.media_unlinked += 1
            return ""
        name = media_file_name(m, item)
        target = self.media_dir.path / name
        try:
            _copy(self.media.chunks(item), target)
        except KfError:  # the archived copy went missing: say what it was instead
            return ""
        self.media_written += 1
        from urllib.parse import quote

        href = self.media_dir.href + quote(name)
        return (f'<a class="media" href="{_esc(href)}" download="{_esc(name)}">'
                f"{_esc(describe(m, item))}</a>")


#: A file extension for media whose archive entry names no file.
_EXTENSIONS = {"voice": ".amr", "video": ".mp4", "file": ".bin", "image": ".jpg"}
# What a file name in the media directory may not hold: path separators, controls,
# characters Windows refuses, bidi controls (a name that reads backwards).
_NAME_UNSAFE = re.compile('[\x00-\x1f\x7f-\x9f/\\:*?"<>|\u202a-\u202e\u2066-\u2069]')


def media_file_name(m: Message, item: MediaItem) -> str:
    """The name of a message's media in a media directory: its msgid (unique in the corp)
    and the file's own name, or its type with an extension: `MSGID-合同.pdf`,
    `MSGID-voice.amr`."""
    import mimetypes

    msgid = re.sub(r"[^A-Za-z0-9_-]", "_", m.msgid)[:64] or "message"
    name = file_name(m, item) or item.filename or ""
    name = _NAME_UNSAFE.sub("_", name).strip(" .")[:100]
    if not name:
        ext = mimetypes.guess_extension((item.content_type or "").split(";")[0].strip()) \
            or _EXTENSIONS.get(m.msgtype, ".bin")
        name = m.msgtype + ext
    return f"{msgid}-{name}"


def _copy(chunks: Iterator[bytes], target: Path) -> None:
    """Write the chunks to `target` through a private temporary file beside it."""
    import os
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{target.name[:40]}.", suffix=".tmp",
                               dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            for chunk in chunks:
                file.write(chunk)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


_DECODER = json.JSONDecoder()


def _loads(text: str) -> Any:
    """json.loads for a stored row (one JSON object, no surrounding whitespace) through the
    decoder's public raw_decode, which skips json.loads' type checks and trailing-whitespace
    scan. Anything else goes to json.loads, which judges it exactly as usual."""
    try:
        doc, end = _DECODER.raw_decode(text)
    except ValueError:
        return json.loads(text)
    return doc if end == len(text) else json.loads(text)


def _message(doc: dict[str, Any]) -> Message:
    """Message.from_api, also for a stored object whose send_time or origin is not a number
    (WeCom's never are; kfcli stores whatever it was given): those count as 0."""
    try:
        return Message.from_api(doc)
    except (TypeError, ValueError):
        fixed = dict(doc)
        for key in ("send_time", "origin"):
            try:
                fixed[key] = int(doc.get(key) or 0)
            except (TypeError, ValueError):
                fixed[key] = 0
        return Message.from_api(fixed)


#: A CSV field holding one of these is quoted: `;` too, the list separator where the decimal
#: separator is a comma (Excel in much of Europe splits on it).
_CSV_SPECIAL = re.compile('[",;\r\n]')


def _quote(field: str) -> str:
    return '"' + field.replace('"', '""') + '"'


def _field(text: str) -> str:
    """One CSV field: quoted when it holds a quote, a separator or a line break."""
    return _quote(text) if _CSV_SPECIAL.search(text) else text


def _line(fields: list[Any]) -> str:
    """A CSV line of _described() fields: controls out, quoted where needed."""
    try:
        line = ",".join(fields)
    except TypeError:  # a field of another type than WeCom documents
        fields = [str(f) for f in fields]
        line = ",".join(fields)
    if not line.isprintable():
        fields = [_CSV_STRIP.sub("", f) for f in fields]
        line = ",".join(fields)
    if line.count(",") != len(CSV_COLUMNS) - 1 or '"' in line or ";" in line \
            or "\n" in line or "\r" in line:
        line = ",".join(_quote(f) if _CSV_SPECIAL.search(f) else f for f in fields)
    return line


def _described(m: Message, clock: Callable[[int], str],
               media: MediaItem | None = None) -> list[Any]:
    """The CSV fields of any message but plain text: what describe() says of it (with the
    archive entry of a media message). Fields may be of other types than str when the
    stored object has them."""
    summary = csv_text(describe(m, media))
    return [clock(m.send_time), m.open_kfid, m.external_userid, origin_name(m), m.sender,
            m.msgtype, summary, m.msgid, str(m.body.get("media_id") or "")]


class _Clock:
    """`iso()` of many timestamps, computing local time once per minute (UTC offsets change
    on whole minutes)."""

    def __init__(self) -> None:
        self._start = 0  # the current minute's first second, and its iso() around the second
        whole = iso(0)
        self._head, self._tail = whole[:17], whole[19:]

    def iso(self, ts: int) -> str:
        second = ts - self._start if type(ts) is int else -1
        if 0 <= second < 60 and ts:  # the current minute: the common case, kept short
            return self._head + _SECONDS[second] + self._tail
        if not ts or type(ts) is not int:
            return iso(int(ts)) if ts and str(ts).isdigit() else ""
        second = ts % 60
        self._start = ts - second
        whole = iso(self._start)
        self._head, self._tail = whole[:17], whole[19:]
        return self._head + _SECONDS[second] + self._tail


_SECONDS = [f"{s:02d}" for s in range(60)]


def _esc(text: str) -> str:
    return html.escape(_UNSAFE.sub("", text), quote=True)


_CSS = """
body{font:15px/1.5 -apple-system,"Segoe UI","PingFang SC","Microsoft YaHei",sans-serif;
margin:0 auto;max-width:860px;padding:1em;color:#222;background:#f6f6f6}
header h1{font-size:1.4em;margin:.2em 0}
header p,footer{color:#666;font-size:.9em}
section.conversation{background:#fff;border:1px solid #ddd;border-radius:8px;
margin:1.5em 0;padding:.5em 1em 1em}
section.conversation h2{font-size:1.1em;border-bottom:1px solid #eee;padding-bottom:.4em}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9em}
h3.day{text-align:center;color:#888;font-size:.85em;font-weight:normal;margin:1em 0 .5em}
.msg{margin:.4em 0;max-width:80%}
.msg .head{font-size:.8em;color:#888}
.msg .text{white-space:pre-wrap;overflow-wrap:anywhere;padding:.4em .7em;border-radius:6px;
display:inline-block}
.msg.customer .text{background:#eef3ff}
.msg.company{margin-left:auto;text-align:right}
.msg.company .text{background:#e9f8ec;text-align:left}
.msg img{max-width:100%;max-height:480px;display:block}
.msg a.media{color:#0645ad}
.event{text-align:center;color:#777;font-size:.85em;margin:.5em 0}
.event time{margin-right:.4em}
""".strip()


#: The page's Content-Security-Policy: no script runs, nothing is fetched (images are
#: inline data: URIs, the style is inline), no form goes anywhere; should escaping ever miss
#: something in a customer's text, the browser still runs none of it.
CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; "
       "form-action 'none'")


def _page_head(selection: Selection) -> str:
    what = [f"corp <code>{_esc(selection.corp_id)}</code>"]
    if selection.open_kfid:
        what.append(f"account <code>{_esc(selection.open_kfid)}</code>")
    if selection.customer:
        what.append(f"customer <code>{_esc(selection.customer)}</code>")
    if selection.since is not None:
        what.append(f"from {_esc(iso(selection.since))}")
    if selection.until is not None:
        what.append(f"before {_esc(iso(selection.until))}")
    return ('<!DOCTYPE html>\n<html lang="zh">\n<head>\n<meta charset="utf-8">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            "<title>WeCom customer service conversations</title>\n"
            f"<style>\n{_CSS}\n</style>\n</head>\n<body>\n"
            "<header><h1>WeCom customer service conversations</h1>"
            f"<p>{' · '.join(what)}</p></header>\n")


def _conversation_head(open_kfid: str, customer: str, nickname: str = "") -> str:
    title = f"customer <code>{_esc(customer)}</code>" if customer else "account events"
    if customer and nickname:
        title = f'<span class="nickname">{_esc(nickname)}</span> · {title}'
    return (f'<section class="conversation" data-account="{_esc(open_kfid)}" '
            f'data-customer="{_esc(customer)}">\n'
            f"<h2>{title} · account <code>{_esc(open_kfid)}</code></h2>\n")
