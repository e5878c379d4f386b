"""The `kfcli msg` group and the options its commands share (one declaration each)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kfcli.cli.context import new_app

app = new_app("Send messages; pull them into the store (`msg sync`) and read it (`msg history`).")

#: -o for message streams: JSON lines (not TSV) when stdout is not a terminal.
StreamOutputOpt = Annotated[str | None, typer.Option(
    "--output", "-o", help="Output format: table, tsv, json or jsonl. Default: table on a "
    "terminal, jsonl otherwise. [env: KFCLI_OUTPUT]", show_default=False)]

#: --columns for message rows (kfcli.core.transcript.ROW_COLUMNS and ROW_EXTRA).
ColumnsOpt = Annotated[str | None, typer.Option(
    "--columns", metavar="NAME,…", help="Columns of -o tsv and tables, comma-separated, in "
    "this order: time, open_kfid, external_userid, origin, sender, type, text, msgid, from, "
    "send_time, servicer_userid, media_id (JSON keeps each message whole).",
    show_default=False)]

# The message options `msg send` and `msg reply` share (one declaration each).
TextOpt = Annotated[str | None, typer.Option(
    "--text", help="Text, up to 2048 bytes; @FILE or - (stdin) to read it, @@ for a "
    "leading @.", show_default=False)]
ImageOpt = Annotated[Path | None, typer.Option("--image", help="Image file (JPG/PNG).",
                                               dir_okay=False, show_default=False)]
VoiceOpt = Annotated[Path | None, typer.Option("--voice", help="Voice file (AMR, 2 MB).",
                                               dir_okay=False, show_default=False)]
VideoOpt = Annotated[Path | None, typer.Option("--video", help="Video file (MP4, 10 MB).",
                                               dir_okay=False, show_default=False)]
AttachmentOpt = Annotated[Path | None, typer.Option("--file", help="Any file, up to 20 MB.",
                                                    dir_okay=False, show_default=False)]
MenuOpt = Annotated[str | None, typer.Option(
    "--menu", help="Menu JSON: @FILE, - (stdin) or the JSON itself.", show_default=False)]
PayloadOpt = Annotated[str | None, typer.Option(
    "--payload", help='Raw body {"msgtype": …, <msgtype>: {…}} as JSON, @FILE or -.',
    show_default=False)]

CustomerOpt = Annotated[str | None, typer.Option(
    "--customer", metavar="EXTERNAL_USERID", help="Only this customer's messages.",
    show_default=False)]
SinceOpt = Annotated[str | None, typer.Option(
    "--since", metavar="WHEN", help="Messages sent at or after WHEN.", show_default=False)]
UntilOpt = Annotated[str | None, typer.Option(
    "--until", metavar="WHEN", help="Messages sent before WHEN.", show_default=False)]


def selection(customer: str | None, since: str | None, until: str | None,
              now: float) -> tuple[int | None, int | None]:
    """--customer, --since and --until checked: the span in unix seconds (either end open)."""
    from kfcli.core import limits
    from kfcli.core.errors import ValidationError
    from kfcli.core.when import parse_when

    if customer is not None:
        limits.check_external_userid(customer)
    start = parse_when(since, option="--since", now=now) if since is not None else None
    end = parse_when(until, option="--until", now=now) if until is not None else None
    if start is not None and end is not None and end <= start:
        raise ValidationError("--until", "must be later than --since")
    return start, end


def check_query(text: str, option: str = "TEXT") -> str:
    """The search text, or ValidationError (exit 2) when it is empty or only blanks."""
    from kfcli.core import limits
    from kfcli.core.errors import ValidationError

    if not text.strip():
        raise ValidationError(option, "give the text to look for (it is empty)")
    limits.check_text(option, text, max_bytes=1024)
    return text


def stream_output(st, output: str | None, json_: bool, columns: str | None):
    """The output of a message stream (JSON lines when piped), --columns checked first."""
    st.set_output(output, json_, columns)
    out = st.stream_out()
    check_columns(out)
    return out


def check_columns(out) -> None:
    """--columns checked before anything is done: a usage error (exit 2) names the known
    columns."""
    if out.columns is not None and out.fmt in ("table", "tsv"):
        from kfcli.core.transcript import ROW_COLUMNS, ROW_EXTRA

        out.columns_for(ROW_COLUMNS, extra=ROW_EXTRA)


def note_unseen(out, store, corp_id: str, open_kfid: str | None, customer: str | None
                ) -> None:
    """After a read that found nothing: one line on stderr when the account or the
    customer asked for is one the store has never seen, so that a mistyped id does not
    look like an empty answer (exit 0 all the same)."""

    def seen(**which) -> bool:
        return next(iter(store.messages(corp_id, open_kfid, limit=1, **which)), None) \
            is not None

    if open_kfid is not None and not seen():
        out.info(f"no stored messages for account {open_kfid} (`kfcli msg sync {open_kfid}` "
                 "pulls them)")
    elif customer is not None and not seen(customer=customer):
        of = f" of account {open_kfid}" if open_kfid is not None else ""
        out.info(f"no stored messages for customer {customer}{of}")


def nicknames(st, store, corp_id: str, out):
    """Customers' nicknames for a view (`kfcli.core.names.Nicknames.get`): the store's cache,
    refreshed from WeCom with one try per call and a short connect timeout (a view never
    waits out an outage, or retries, for names: it shows the ids instead)."""
    from kfcli.core.names import Nicknames

    def client():
        from kfcli.core.client import KfClient, RetryPolicy, Timeout

        return KfClient.from_settings(st.settings(), retry=RetryPolicy(max_retries=0),
                                      timeout=Timeout(connect=3.0, read=10.0),
                                      notify=st.notice)

    return Nicknames(store, corp_id, client=client, now=st.env.clock, warn=out.warning).get


def corp_of(settings) -> str:
    """The corp_id the store's rows are kept under (ConfigError, exit 3, when unset)."""
    settings.require("corp_id")
    return str(settings.corp_id)
