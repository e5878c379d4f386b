"""`kfcli msg sync` and `kfcli msg history`: messages from WeCom into the store, and out of it.

Both write through `_Rows`: JSON lines (or TSV/JSON) handed to the writer process of
`kfcli.core.syncwriter` together with a record (an outbox id, or a consumer's seq) that the
writer journals once the lines are out, so a killed run and its rerun write each message once.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from kfcli.cli.context import JsonOpt, exclusive, state
from kfcli.cli.msg._group import (
    ColumnsOpt,
    CustomerOpt,
    SinceOpt,
    StreamOutputOpt,
    UntilOpt,
    app,
    check_query,
    corp_of,
    nicknames,
    note_unseen,
    selection,
    stream_output,
)
from kfcli.cli.msg.media import archive_after_pull
from kfcli.cli.text import plural
from kfcli.core import limits
from kfcli.core.errors import (
    Interrupted,
    KfError,
    UsageError,
    ValidationError,
)
from kfcli.core.outage import Outage
from kfcli.core.sync import Message

if TYPE_CHECKING:
    from kfcli.core.store.base import MediaItem

VOICE_FORMATS = {"amr": 0, "silk": 1}



#: kfcli.core.store.base.MEDIA_TYPES (not imported here: `msg` commands start faster).
_MEDIA_TYPES = ("image", "voice", "video", "file")


class _Rows:
    """Writes stored rows (JSON texts) in the output format.

    With a journal the lines go through the writer process and `settle()` hands the records
    of what is surely written to `on_settle`; without one they go straight to stdout. The
    terminal view prints directly (a person reading, not a pipeline).
    """

    def __init__(self, out, *, journal=None,
                 on_settle: Callable[[list[int]], None] | None = None,
                 customer: str | None = None,
                 media: Callable[[int], MediaItem | None] | None = None,
                 live: bool = False,
                 names: Callable[[list[str]], dict[str, str]] | None = None,
                 accounts: bool = False) -> None:
        self.out = out
        #: The view is of every account: the conversation view names each one's messages.
        self.accounts = accounts
        #: Customers' nicknames (kfcli.core.names), asked once per batch of messages: the
        #: transcript names the customer who speaks.
        self.names = names
        #: On a terminal with --columns or -o wide: rows for a table (kfcli.render's
        #: fitter) instead of the transcript, printed at the end, or with `live` (--follow)
        #: as each batch comes.
        self._grid: list[dict] | None = [] if out.fmt == "table" and (
            out.columns is not None or out.wide) else None
        self.live = live
        #: The archive entry of a media message by seq: the terminal view says whether its
        #: media is archived, and how big it is.
        self.media = media
        self.fmt = out.fmt
        self.count = 0
        #: The one customer shown (`--customer`): named once above the conversation, not on
        #: every message.
        self.customer = customer
        self.on_settle = on_settle
        self._pending: list[int] = []
        self._writer = None
        self._stream = None
        self._console = None  # the transcript (kfcli.render), made on first use
        if self.fmt != "table":
            if journal is not None:
                from kfcli.core.syncwriter import WriterProcess

                self._writer = WriterProcess(journal.fd, out.stdout)
                self._journal = journal
            else:
                from kfcli.render import LineStream

                self._stream = LineStream(out.stdout)
        self._opened = False  # "[" of a JSON array goes out with the first data
        #: Called with the running count after each page (progress on a terminal's stderr).
        self.progress: Callable[[int], None] | None = None

    # Sink protocol (kfcli.core.pull)
    def write(self, rows, outbox_id: int | None) -> None:
        self.emit(rows, outbox_id)

    def emit(self, rows, record: int | None) -> None:
        if rows:
            self.out.status(None)  # a "waiting…" line must not run into the messages
        if self._grid is not None:
            self._grid.extend(self._fields(row) for row in rows)
            if self.live:
                self._table()
        elif self.fmt == "table":
            try:
                messages = [(Message.from_api(json.loads(row.text)), row) for row in rows]
                names = {} if self.names is None else self.names(
                    [m.external_userid for m, _ in messages] + [self.customer or ""])
                for message, row in messages:
                    media = None
                    if self.media is not None and message.msgtype in _MEDIA_TYPES:
                        media = self.media(row.seq)
                    self._human(message, media, names)
            except BrokenPipeError:
                raise BrokenPipeError("stdout was closed") from None
        elif rows:
            self._send(self._format(rows), record)
        elif record is not None and self._writer is not None:
            self._send("", record)
        if record is not None and self._writer is None:
            self._pending.append(record)
        self.count += len(rows)
        if rows and self.progress is not None:
            self.progress(self.count)

    def _format(self, rows) -> str:
        if self.fmt == "jsonl":
            return "\n".join(row.text for row in rows) + "\n"
        if self.fmt == "json":
            lead = "\n" if not self.count else ",\n"
            return lead + ",\n".join(row.text for row in rows)
        from kfcli.render import tsv_field

        keys = [key for key, _ in self.picked()]
        lines = []
        for row in rows:
            fields = self._fields(row)
            lines.append("\t".join(tsv_field(fields[k]) for k in keys) + "\n")
        return "".join(lines)

    def picked(self) -> list[tuple[str, str]]:
        """The columns of TSV rows and tables (--columns chooses; a usage error names the
        known ones, so commands ask this before they act)."""
        from kfcli.core.transcript import ROW_COLUMNS, ROW_EXTRA

        return self.out.columns_for(ROW_COLUMNS, extra=ROW_EXTRA)

    def _fields(self, row) -> dict:
        """A stored row as TSV and tables show it (kfcli.core.transcript.row)."""
        from kfcli.core.transcript import row as fields

        message = Message.from_api(json.loads(row.text))
        media = None
        if self.media is not None and message.msgtype in _MEDIA_TYPES and row.seq:
            media = self.media(row.seq)
        return fields(message, media)

    def _send(self, text: str, record: int | None = None) -> None:
        if self.fmt == "json" and not self._opened:
            self._opened = True
            text = "[" + text
        try:
            self._put(text, record)
        except BrokenPipeError:
            # The reader went away (`| head`). Raised without errno, so that it ends the
            # command quietly (exit 0) like every other closed pipe, not as a failure.
            raise BrokenPipeError("stdout was closed") from None

    def _put(self, text: str, record: int | None) -> None:
        if self._writer is not None:
            rec = f"{record}\n".encode() if record is not None else b""
            self._writer.write(text.encode("utf-8"), rec)
        else:
            self._stream.add_block(text, [])
            self._stream.flush()

    def settle(self) -> None:
        """Everything handed over is written: record it (outbox entries done, a consumer's
        position moved), then empty the journal."""
        if self._grid is not None:
            self._table()
        if self._writer is not None:
            # What the writer journaled, not what this process thinks it handed over: an
            # interrupt can land between handing a command over and noting it here.
            self._writer.fence()
            self._pending = self._journal.written()
        if self._pending and self.on_settle is not None:
            self.on_settle(self._pending)
        self._pending = []
        if self._writer is not None:
            self._writer.truncate()

    def _table(self) -> None:
        from kfcli.core.transcript import ROW_COLUMNS, ROW_EXTRA, ROW_OPTIONAL

        if self._grid:
            self.out.rows(self._grid, ROW_COLUMNS, extra=ROW_EXTRA, optional=ROW_OPTIONAL)
            self._grid = []

    def end(self) -> None:
        """Close the output (the JSON array) and settle; raises BrokenPipeError when stdout's
        reader went away."""
        if self._grid is not None:
            self._table()
        if self.fmt == "json":
            self._send(("\n" if self.count else "") + "]\n")
        self.settle()
        if self._writer is not None:
            self._writer.close()

    def abandon(self) -> None:
        """After a failure: let the writer finish what it has; the journal keeps the rest."""
        if self._writer is not None:
            with contextlib.suppress(BrokenPipeError):
                self._writer.close()

    def _human(self, message: Message, media: MediaItem | None = None,
               names: dict[str, str] | None = None) -> None:
        """The transcript view, from the renderer (`kfcli.render.Transcript`); `names`:
        customers' nicknames."""
        if self._console is None:
            from kfcli.render import Transcript

            self._console = Transcript(self.out, customer=self.customer,
                                       accounts=self.accounts,
                                       nickname=(names or {}).get(self.customer or ""))
        self._console.show(message, media, names)


def _callback_tokens(source: str, open_kfid: str):
    """Tokens from `kfcli callback serve` JSON lines for this account, as they arrive. The
    file is opened here, before any request, so a wrong path is a usage error (exit 2)."""
    if source == "-":
        return _tokens_in(state().env.stdin, open_kfid)
    try:
        stream = open(source, encoding="utf-8")  # noqa: SIM115 - closed by _tokens_in
    except OSError as exc:
        raise UsageError(f"--tokens-from: cannot read {source} ({exc.strerror})") from None
    return _tokens_in(stream, open_kfid)


def _tokens_in(stream, open_kfid: str):
    with stream:
        for line in stream:
            try:
                doc = json.loads(line)
            except (ValueError, RecursionError):
                continue
            if isinstance(doc, dict) and doc.get("OpenKfId") == open_kfid and doc.get("Token"):
                yield str(doc["Token"])


def _store_outage(out) -> Outage:
    return Outage("the message store", out.warning, then="trying again")


def _open_store(settings, outage: Outage | None, *, create: bool = True):
    """The store; a follower's (`outage` given) is waited for while it cannot be reached, and
    its failures are raised as StoreUnavailable, to be ridden out. `create=False` (a command
    that only reads): a store that does not exist is exit 3, and is not created."""
    from kfcli.core.store import open_store

    if outage is None:
        return open_store(settings=settings, create=create)
    from kfcli.core.outage import guarded, open_waiting

    return guarded(open_waiting(lambda: open_store(settings=settings), outage))


def _migrate_cursor(store, settings, open_kfid: str, out) -> None:
    """A cursor saved by kfcli before the store (a file per profile and account) moves into
    the store once; the file is kept, renamed `.migrated`."""
    from kfcli.core.sync import SyncState

    corp_id = settings.corp_id or ""
    old = SyncState(settings.profile, corp_id, open_kfid)
    if not old.path.exists() or store.cursor(corp_id, open_kfid) is not None:
        return
    try:
        old.load()
    except KfError:
        return
    if old.cursor:
        store.set_cursor(corp_id, open_kfid, old.cursor)
        out.info(f"moved the saved cursor of {open_kfid} into the store")
    old.path.rename(old.path.with_name(old.path.name + ".migrated"))


# ---------------------------------------------------------------------- sync

@app.command("sync", epilog="""Examples:

  kfcli msg sync wkAbC123                   # new messages since the last pull

  kfcli msg sync wkAbC123 -o jsonl > new.jsonl

  kfcli msg sync wkAbC123 --follow --interval 5

  kfcli callback serve | kfcli msg sync wkAbC123 --tokens-from -

  kfcli msg sync wkAbC123 --no-save --all   # all WeCom keeps; store untouched

Messages go into the message store (see `kfcli store status`) and those new to the store are
written out: a live list on a terminal; JSON lines when piped (one message per line, flushed);
-o tsv columns: time, open_kfid, external_userid, origin, sender, type, text, msgid
(--columns chooses). Each page and its cursor commit in
one transaction, so a crashed or interrupted run can simply be started again: across a kill
and a rerun every message is written exactly once. Several `msg sync` runs and receivers
(`callback serve --sync`) may pull the same account: each message is written by one of them.
Messages already in the store are not written again: `kfcli msg history` reads them.
After each pull the media of new image, voice, video and file messages are fetched into the
store's archive (`kfcli msg media MSGID` writes one out, also after WeCom's copy expired);
one that cannot be fetched is reported on stderr and tried again later, never failing the
sync. --no-media leaves them for later. --follow (and --tokens-from) waits out outages of
WeCom and of the store (a PostgreSQL restart, a full disk): one line on stderr when each
begins and one when it ends; what failed to commit is pulled again.""")
def sync(
    open_kfid: Annotated[str, typer.Argument(help="The account's open_kfid.")],
    token: Annotated[str | None, typer.Option(
        "--token", help="Token from the latest kf_msg_or_event callback (valid 10 minutes); "
        "without one WeCom rate-limits sync_msg strictly.", show_default=False)] = None,
    cursor: Annotated[str | None, typer.Option(
        "--cursor", help="Pull from this cursor instead of the saved one.",
        show_default=False)] = None,
    limit: Annotated[int, typer.Option("--limit", help="Messages per request, 1-1000.")] = 1000,
    all_: Annotated[bool, typer.Option(
        "--all", help="Pull from the earliest message WeCom keeps (3 days) instead of the "
        "saved cursor; messages already stored are not written again.")] = False,
    follow: Annotated[bool, typer.Option(
        "--follow", "-f", help="Keep polling for new messages until interrupted.")] = False,
    interval: Annotated[float, typer.Option(
        "--interval", help="Seconds between polls with --follow (backs off up to 60 s while "
        "idle, rate limited or offline).", min=0.1)] = 2.0,
    tokens_from: Annotated[str | None, typer.Option(
        "--tokens-from", help="Read `kfcli callback serve` lines from FILE or - and pull "
        "right away with each callback's Token.", show_default=False)] = None,
    voice_format: Annotated[str | None, typer.Option(
        "--voice-format", help="amr (default) or silk.", show_default=False)] = None,
    no_save: Annotated[bool, typer.Option(
        "--no-save", help="Leave the store alone: read from --cursor (or the start) and write "
        "everything read.")] = False,
    no_media: Annotated[bool, typer.Option(
        "--no-media", help="Do not fetch media into the archive now (they stay due: a later "
        "msg sync or `kfcli store media --retry` fetches them).")] = False,
    output: StreamOutputOpt = None,
    json_: JsonOpt = False,
    columns: ColumnsOpt = None,
) -> None:
    """Pull messages and events with sync_msg into the store, writing out each new one once."""
    st = state()
    out = stream_output(st, output, json_, columns)
    limits.check_open_kfid(open_kfid)
    limits.check_limit(limit, limits.SYNC_LIMIT)
    if voice_format is not None and voice_format not in VOICE_FORMATS:
        raise ValidationError("--voice-format", f"{voice_format!r} is not amr or silk")
    exclusive(**{"--cursor": cursor, "--all": all_})
    if cursor is not None:
        limits.check_text("cursor", cursor, max_bytes=64)
    if token is not None:
        limits.check_text("token", token, max_bytes=128)
    tokens = _callback_tokens(tokens_from, open_kfid) if tokens_from else None
    client = st.client()
    settings = st.settings()
    voice = VOICE_FORMATS.get(voice_format or "amr")
    if no_save:
        _read_only(client, out, open_kfid, cursor=cursor, token=token, limit=limit,
                   voice=voice)
        return

    _pull_into_store(out, client, settings, open_kfid, token=token, cursor=cursor, all_=all_,
                     follow=follow, tokens=tokens, interval=interval, limit=limit, voice=voice,
                     no_media=no_media)


def _pull_into_store(out, client, settings, open_kfid: str, *, token, cursor, all_, follow,
                     tokens, interval: float, limit: int, voice, no_media: bool) -> None:
    """`msg sync` without --no-save: the library's pull loop, writing through `_Rows` (the
    writer process journals what is out, so a killed run's rerun writes each message once)."""
    from kfcli.core.pull import Journal, Puller, PullLoop

    following = follow or tokens is not None
    # A follower rides out outages of the store and of WeCom (a line when each begins and
    # ends); a single run fails with the error.
    outage = _store_outage(out) if following else None
    wecom = Outage(f"sync_msg for {open_kfid}", out.warning, then="pulling again",
                   first=interval * 4, longest=60.0) if following else None
    store = _open_store(settings, outage)
    corp_id = settings.corp_id or ""
    _migrate_cursor(store, settings, open_kfid, out)
    journal = Journal(store, corp_id, open_kfid, purpose="sync")
    rows = _Rows(out, journal=journal, on_settle=store.outbox_done)
    puller = Puller(client, store, corp_id, owner=journal.owner,
                    owner_prefix=journal.owner_prefix, sink=rows, claim=journal.claim,
                    limit=limit, voice_format=voice, history=True, log=out.warning)

    def recover(account: str) -> None:  # dead runs' journals, then what they never wrote
        journal.recover(store.outbox_done)
        puller.leftovers(account)

    loop = PullLoop(puller, recover=recover)
    if out.shows_progress and not out.stdout_tty:  # `msg sync … > file` on a terminal
        rows.progress = lambda n: out.status(f"msg sync {open_kfid}: {plural(n, 'message')}")
    settled = False
    try:
        loop.run(open_kfid, token=token, follow=follow, tokens=tokens, interval=interval,
                 start=cursor if cursor is not None else ("" if all_ else None),
                 store_outage=outage, wecom_outage=wecom,
                 archive=None if no_media else lambda account: archive_after_pull(
                     out, loop, account),
                 on_wait=lambda: out.info(f"waiting: another process is pulling {open_kfid} "
                                          "(a msg sync or a receiver); pulling once it is "
                                          "done"),
                 on_idle=lambda delay: out.status(
                     f"{plural(rows.count, 'message')} so far; waiting for new ones, next "
                     f"look in {delay:.0f} s (Ctrl-C stops)"))
        rows.end()
        settled = True
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted after {plural(rows.count, 'message')}; every message "
                          "written is saved, and the next run continues after it") from None
    finally:
        out.status(None)
        if not settled:
            rows.abandon()
        journal.close(settled=settled)
        store.close()
    if out.fmt in ("table", "tsv") and not follow:
        out.info(f"{plural(rows.count, 'new message')}")


def _read_only(client, out, open_kfid: str, *, cursor, token, limit, voice) -> None:
    """--no-save: page from `cursor` and write everything, touching no store."""
    from kfcli.core.store.base import Row, json_line

    rows = _Rows(out)
    stream = client.sync_messages(open_kfid, cursor=cursor or None, token=token, limit=limit,
                                  voice_format=voice)
    stream.keep_text = True
    for page in stream.pages():
        texts = page.msg_texts or [None] * len(page.msg_list)
        rows.emit([Row(0, json_line(doc, text))
                   for doc, text in zip(page.msg_list, texts, strict=True)], None)
    rows.end()
    if out.fmt in ("table", "tsv"):
        out.info(plural(rows.count, "message"))


# ---------------------------------------------------------------------- history

@app.command("history", epilog="""Examples:

  kfcli msg history wkAbC123 --customer wmXyZ789     # one customer

  kfcli msg history wkAbC123 --since 2026-11-01 --until 2026-12-01

  kfcli msg history wkAbC123 --limit 20                # the last 20

  kfcli msg history wkAbC123 --customer wmXyZ789 --grep 退款

  kfcli msg history wkAbC123 --follow --consumer bot -o jsonl | ./my-bot

  kfcli msg history -f --consumer bot -o jsonl | ./my-bot    # every account

Reads the message store (what `msg sync` and `callback serve --sync` pulled, from any host
sharing it), oldest first: a conversation view on a terminal; JSON lines when piped, each
exactly the object `msg sync` writes; -o tsv has msg sync's columns, --columns chooses (on a
terminal it makes the view a table). WHEN is a date (2026-11-30), a local time
(2026-11-30T14:00), a duration ago (90m, 2h, 3d) or unix seconds. --follow keeps writing
messages as they are stored. --consumer NAME keeps a durable position in the store: a
restarted consumer resumes right after the last message it wrote (exactly once, also across
kill -9); a new consumer starts after the newest stored message unless --since is given.
--grep TEXT keeps only the messages `msg search TEXT` finds (substring, any case); with
--limit N, the newest N of them. With --customer on a terminal, the view ends (on stderr)
with WeCom's reply window as the store knows it: "reply window: 3 of 5 left, closes in 41 h".
--ack replies (with --consumer) resumes from the oldest customer message of the last 48 h
that `msg send --batch` never answered or marked no_reply.
Without OPEN_KFID (or with --all-accounts): every account of the corp in one stream, in the
order they were stored; a consumer of every account also takes in accounts that appear
later, from their first stored message, and keeps a position per account (`store status`).

With --follow, an outage of the store (a PostgreSQL restart, a full disk) is waited out: one
line on stderr when it begins and one when it ends; the follower goes on after the last
message it wrote, and a consumer records its position once the store is back.

Exit status: 0 done (also when the reader closes the pipe), 1 the consumer NAME is already
running, 2 invalid input, 3 the store is misconfigured, or does not exist (without --follow
or --consumer, nothing is created), 6 a PostgreSQL store is unreachable (without --follow),
130 interrupted. An account or customer never stored: a note on stderr, exit 0.""")
def history(
    open_kfid: Annotated[str | None, typer.Argument(
        help="The account's open_kfid (default: every account).", show_default=False)] = None,
    customer: CustomerOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    limit: Annotated[int | None, typer.Option(
        "--limit", metavar="N", help="At most N messages: the newest N (still oldest first); with "
        "--consumer, N per run.", min=1, max=10**9, show_default=False)] = None,
    follow: Annotated[bool, typer.Option(
        "--follow", "-f", help="Keep writing messages as they are stored, until "
        "interrupted.")] = False,
    consumer: Annotated[str | None, typer.Option(
        "--consumer", metavar="NAME", help="Resume after the last message this named "
        "consumer wrote, and record what it writes.", show_default=False)] = None,
    interval: Annotated[float, typer.Option(
        "--interval", help="Seconds between looks at the store with --follow.", min=0.05)
    ] = 1.0,
    grep: Annotated[str | None, typer.Option(
        "--grep", metavar="TEXT", help="Only messages containing TEXT, as `msg search` "
        "finds them (substring, any case).", show_default=False)] = None,
    ack: Annotated[str | None, typer.Option(
        "--ack", metavar="replies", help="With --consumer: resume from the oldest customer "
        "message (of the last 48 h) that `msg send --batch` has not answered or marked "
        "no_reply.", show_default=False)] = None,
    all_accounts: Annotated[bool, typer.Option(
        "--all-accounts", help="Every account of the corp (the default without "
        "OPEN_KFID), also those that appear later.")] = False,
    output: StreamOutputOpt = None,
    json_: JsonOpt = False,
    columns: ColumnsOpt = None,
) -> None:
    """Messages from the store, oldest first: a conversation, or JSON lines."""
    st = state()
    out = stream_output(st, output, json_, columns)
    start, end = selection(customer, since, until, st.env.clock())
    _check_reading(open_kfid, all_accounts, consumer, ack, grep, follow)
    settings = st.settings()
    corp_id = corp_of(settings)
    # A follower rides out store outages (a line on stderr when one begins and ends).
    outage = _store_outage(out) if follow else None
    # Reads never create a store (a typo in KFCLI_STORE is exit 3, not an empty answer);
    # a follower or a consumer waits for messages, so it may create it.
    store = _open_store(settings, outage, create=follow or consumer is not None)
    try:
        if consumer is not None:
            _consume(store, out, corp_id, open_kfid, consumer, customer=customer, since=start,
                     until=end, limit=limit, follow=follow, interval=interval,
                     ack=ack is not None, outage=outage)
            return
        rows = _Rows(out, customer=customer, live=follow, accounts=open_kfid is None,
                     media=lambda seq: store.media_items(corp_id, [seq]).get(seq),
                     # the conversation view names customers (JSON and TSV: ids)
                     names=nicknames(st, store, corp_id, out) if out.fmt == "table" else None)
        if outage is not None:
            from kfcli.core.consume import follow as follow_store

            follow_store(store, corp_id, open_kfid, lambda part: rows.emit(part, None),
                         customer=customer, since=start, until=end, limit=limit,
                         outage=outage, interval=interval,
                         # A human view looks up each message's media as it prints it: one
                         # at a time, so a failure never prints one twice.
                         one_by_one=rows.fmt == "table",
                         on_idle=lambda: out.status(_WAITING))
            return
        _list(store, rows, out, corp_id, open_kfid, customer=customer, since=start, until=end,
              limit=limit, grep=grep)
    finally:
        store.close()


_WAITING = "waiting for new messages in the store (Ctrl-C stops)"


def _check_reading(open_kfid: str | None, all_accounts: bool, consumer: str | None,
                   ack: str | None, grep: str | None, follow: bool) -> None:
    """`msg history`'s OPEN_KFID, --consumer, --ack and --grep, checked together."""
    if open_kfid is not None:
        if all_accounts:
            raise UsageError("give an OPEN_KFID or --all-accounts, not both")
        limits.check_open_kfid(open_kfid)
    if consumer is not None:
        limits.check_consumer(consumer)
    if ack is not None:
        if ack != "replies":
            raise ValidationError("--ack", f"{ack!r}: the only kind is replies")
        if consumer is None:
            raise UsageError("--ack replies goes with --consumer NAME")
    if grep is not None:
        check_query(grep, "--grep")
        if follow or consumer is not None:
            raise UsageError("--grep reads what is stored: not with --follow or --consumer")


def _list(store, rows: _Rows, out, corp_id: str, open_kfid: str | None, *, customer, since,
          until, limit, grep) -> None:
    """`msg history` without --follow/--consumer: what is stored (or what --grep finds),
    then, for one customer on a terminal, the reply window as the store knows it."""
    start, end = since, until
    if grep is not None:  # the newest `limit` matches (from `msg search`), oldest first
        found = store.search(corp_id, grep, open_kfid=open_kfid, customer=customer,
                             since=start, until=end, limit=limit,
                             oldest_first=limit is None)
        matches = found if limit is None else reversed(list(found))
    else:
        matches = store.messages(corp_id, open_kfid, customer=customer, since=start,
                                 until=end, limit=limit, newest=limit is not None)
    # A few hundred rows at a time: the conversation view names the customers of a batch
    # with one look-up (kfcli.core.names), not one per message.
    batch = []
    for row in matches:
        batch.append(row)
        if len(batch) == 500:
            rows.emit(batch, None)
            batch = []
    if batch:
        rows.emit(batch, None)
    rows.end()
    if not rows.count:
        note_unseen(out, store, corp_id, open_kfid, customer)
    if customer is not None and open_kfid is not None and out.fmt == "table":
        window = store.reply_window(corp_id, open_kfid, customer)
        if window is not None:  # sends recorded by `msg send --batch` count
            out.info(window.describe(state().env.clock()))


def _consume(store, out, corp_id: str, open_kfid: str | None, name: str, *, customer, since,
             until, limit, follow: bool, interval: float, ack: bool = False,
             outage: Outage | None = None) -> None:
    """`msg history --consumer NAME`: a `kfcli.core.consume.Consumer` whose batches go out
    through the writer process, which journals each position before it is recorded in the
    store (exactly once across kill -9)."""
    from kfcli.core.consume import Consumer
    from kfcli.core.pull import Journal

    journal = Journal(store, corp_id, open_kfid or "*", purpose=f"consumer-{name}")
    consumer = Consumer(store, corp_id, name, open_kfid, customer=customer, since=since,
                        until=until, ack=ack, outage=outage, journal=journal, log=out.info,
                        clock=state().env.clock)
    settled = False
    rows = None
    try:
        consumer.start()
        rows = _Rows(out, journal=journal, on_settle=consumer.record)

        def deliver(batch, position: int) -> None:
            rows.emit(batch, position)
            # The position moves once the lines are out. If the store fails here, the journal
            # keeps it, and a later round (or the next run) records it.
            rows.settle()

        consumer.run(deliver, follow=follow, interval=interval, limit=limit,
                     on_idle=lambda: out.status(_WAITING))
        rows.end()
        settled = True
    finally:
        if rows is not None and not settled:
            rows.abandon()
        journal.close(settled=settled or rows is None)  # nothing written: nothing to keep
        consumer.close()
