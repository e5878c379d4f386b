"""`kfcli msg search`: find stored messages by the text in them (DESIGN.md §10).

Substring search, case-insensitive for Latin script, correct for Chinese without word
segmentation; newest first. The store does the finding (`Store.search`: an FTS5 trigram index
on SQLite, pg_trgm on PostgreSQL); this module parses, and renders: a table with the match
highlighted on a terminal, TSV, or the raw message objects as JSON / JSON lines.
"""

from __future__ import annotations

import json
from typing import Annotated

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
    nicknames,
    note_unseen,
    selection,
    stream_output,
)
from kfcli.core import limits
from kfcli.core.sync import Message

#: Matches shown when --limit is not given (newest first).
DEFAULT_LIMIT = 100
#: The highlight of the matching part on a terminal (plain in TSV and JSON).
HIGHLIGHT = "\x1b[1;7m"  # bold, reverse video


@app.command("search", epilog=f"""Examples:

  kfcli msg search 退款

  kfcli msg search 退 --account wkAbC123 --since 7d

  kfcli msg search refund --customer wmXyZ789 -o jsonl

  kfcli msg search "申请退款" --until 2026-12-01 --limit 500

Looks through the message store (what `msg sync` and `callback serve --sync` pulled): the text
of messages, and the titles and items of menus, links, mini programs and news. TEXT matches
anywhere inside (no word segmentation: 退 finds 退款 and 退货), upper and lower case alike for
Latin script. Newest first, at most {DEFAULT_LIMIT} unless --limit N or --all. On a terminal a
table (time, account, customer, from, text) with the matching part highlighted; -o tsv
columns time, open_kfid, external_userid, origin, sender, type, text, msgid (--columns
chooses); JSON lines when
piped, each exactly the object `msg sync` writes. WHEN is a date (2026-11-30), a local time
(2026-11-30T14:00), a duration ago (90m, 2h, 3d) or unix seconds.

Text of three characters or more is looked up in the index; one or two characters are matched
by reading the messages the other options select (narrow with --account, --customer, --since).

Exit status: 0 done (also when nothing matches: "no messages match" on a terminal), 2 invalid
input (empty TEXT, --since after --until), 3 the store is misconfigured or does not exist
(nothing is created), 6 a PostgreSQL store is unreachable.""")
def search(
    text: Annotated[str, typer.Argument(metavar="TEXT", help="The text to look for.",
                                        show_default=False)],
    account: Annotated[str | None, typer.Option(
        "--account", metavar="OPEN_KFID", help="Only this account's messages.",
        show_default=False)] = None,
    customer: CustomerOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    limit: Annotated[int | None, typer.Option(
        "--limit", metavar="N", help=f"At most N matches, newest first (default "
        f"{DEFAULT_LIMIT}).", min=1, max=10**9, show_default=False)] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every match, however many.")] = False,
    output: StreamOutputOpt = None,
    json_: JsonOpt = False,
    columns: ColumnsOpt = None,
) -> None:
    """Find stored messages containing TEXT (Chinese or Latin), newest first."""
    st = state()
    out = stream_output(st, output, json_, columns)
    check_query(text)
    if account is not None:
        limits.check_open_kfid(account)
    start, end = selection(customer, since, until, st.env.clock())
    exclusive(**{"--limit": limit, "--all": all_})
    cap = None if all_ else (limit or DEFAULT_LIMIT)
    from kfcli.core.store import open_store

    settings = st.settings()
    if not settings.corp_id:
        settings.require("corp_id")
    store = open_store(settings=settings, create=False)
    try:
        rows = store.search(settings.corp_id, text, open_kfid=account, customer=customer,
                            since=start, until=end, limit=None if cap is None else cap + 1)
        try:
            names = nicknames(st, store, settings.corp_id, out) if out.fmt == "table" \
                else None  # the table names customers; TSV and JSON carry ids
            count = _render(out, rows, text, cap, names=names)
        except BrokenPipeError:
            # The reader went away (`| head`): a quiet end (exit 0), as for msg history.
            raise BrokenPipeError("stdout was closed") from None
        if count == 0:
            note_unseen(out, store, settings.corp_id, account, customer)
    finally:
        store.close()
    if count == 0 and (out.fmt == "table" or out.stderr_tty):
        out.info(f"no messages match {text.strip()!r}")


def _render(out, rows, query: str, cap: int | None, names=None) -> int:
    """Write the matches; returns how many. One more than `cap` is asked of the store, to
    say on a terminal that there are more."""
    from kfcli.core.transcript import ROW_COLUMNS, ROW_EXTRA, row
    from kfcli.render import LineStream, tsv_field

    needle = query.strip().lower()
    stream = LineStream(out.stdout) if out.fmt != "table" else None
    keys = [key for key, _ in out.columns_for(ROW_COLUMNS, extra=ROW_EXTRA)]
    table = []
    count = 0
    more = False
    for found in rows:
        if cap is not None and count >= cap:
            more = True
            break
        count += 1
        if out.fmt == "jsonl":
            stream.add(found.text + "\n")
        elif out.fmt == "json":
            stream.add(("[\n" if count == 1 else ",\n") + found.text)
        else:
            message = Message.from_api(json.loads(found.text))
            fields = row(message, text=shown_text(message, needle))
            if out.fmt == "tsv":
                stream.add("\t".join(tsv_field(fields[k]) for k in keys) + "\n")
            else:
                table.append(fields)
        if stream is not None and count % 1000 == 0:
            stream.flush()
    if stream is not None:
        if out.fmt == "json":
            stream.add("[]\n" if not count else "\n]\n")
        stream.flush()
    elif table:
        if names is not None:  # a customer is named by their nickname where it is known
            known = names([r["external_userid"] for r in table])
            for r in table:
                if r["origin"] == "customer" and known.get(r["external_userid"]):
                    r["from"] = known[r["external_userid"]]
        # The shared fitter: ids whole, the text shortened to fit, the account (then the
        # sender, then the time) hidden on a narrow terminal, and said so on stderr.
        extra = [k for k in (*ROW_COLUMNS, *ROW_EXTRA) if k not in TABLE]
        color = out.stdout_tty and not out.environ.get("NO_COLOR") \
            and out.environ.get("TERM") != "dumb"
        out.rows(table, TABLE, headers=TABLE_HEADERS, extra=extra,
                 optional=("open_kfid", "from", "time"),
                 marks={"text": lambda text: highlight(text, needle)} if color else None)
    if more and out.fmt in ("table", "tsv") and out.stderr_tty:
        out.info(f"showing the newest {count}; --limit N or --all for more")
    return count


#: The columns of the table on a terminal (-o tsv has kfcli.core.transcript.ROW_COLUMNS).
TABLE = ("time", "open_kfid", "external_userid", "from", "text")
TABLE_HEADERS = ("time", "account", "customer", "from", "text")


def shown_text(message: Message, needle: str) -> str:
    """What the result shows of a message: its summary, and when the match is not in it
    (a menu item, a link's description), the piece of text that holds the match."""
    from kfcli.core.store.base import search_pieces

    summary = message.summary()
    if needle in summary.lower():
        return summary
    for piece in search_pieces(message.raw):
        if needle in piece.lower():
            return f"{summary} · {piece}"
    return summary


def highlight(text: str, needle: str) -> str:
    """`text` with every case-insensitive occurrence of `needle` in bold reverse video."""
    lowered = text.lower()
    if len(lowered) != len(text) or not needle:  # lower() moved positions: show it plain
        return text
    parts = []
    done = 0
    at = lowered.find(needle)
    while at >= 0:
        end = at + len(needle)
        parts += [text[done:at], HIGHLIGHT, text[at:end], "\x1b[0m"]
        done = end
        at = lowered.find(needle, end)
    parts.append(text[done:])
    return "".join(parts)
