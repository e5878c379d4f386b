"""`kfcli stats`: daily statistics of an account and its servicers (kf-api.md §2.10)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

import typer

from kfcli.cli.context import new_app, state, with_output
from kfcli.core import limits
from kfcli.core.statdays import CHINA

app = new_app("Daily statistics of the last 180 days (longer ranges in 31-day calls).")

CORP_FIELDS = ["session_cnt", "customer_cnt", "customer_msg_cnt",
               "upgrade_service_customer_cnt", "ai_session_reply_cnt", "ai_transfer_rate",
               "ai_knowledge_hit_rate", "msg_rejected_customer_cnt"]
SERVICER_FIELDS = ["session_cnt", "customer_cnt", "customer_msg_cnt", "reply_rate",
                   "first_reply_average_sec", "satisfaction_investgate_cnt",
                   "satisfaction_participation_rate", "satisfied_rate", "middling_rate",
                   "dissatisfied_rate", "msg_rejected_customer_cnt"]

OpenKfidArg = Annotated[str, typer.Argument(help="The account's open_kfid.")]
SinceOpt = Annotated[str, typer.Option(
    "--since", metavar="WHEN", help="First day: a date (2026-11-01, China time), a duration "
    "ago (7d, 2w) or unix seconds.", show_default=False)]
UntilOpt = Annotated[str | None, typer.Option(
    "--until", metavar="WHEN", help="Last day, in the same forms (default: yesterday, the "
    "latest with data).", show_default=False)]


def window(since: str, until: str | None, now: float | None = None) -> tuple[date, date]:
    """The days asked for, checked locally (kfcli.core.statdays.days)."""
    from kfcli.core.statdays import days

    return days(since, until, now=now)


def _render(entries: list[dict], fields: list[str]) -> None:
    out = state().out
    if out.machine:
        out.rows(entries, [])
        return
    rows = []
    for entry in entries:
        day = datetime.fromtimestamp(int(entry.get("stat_time", 0)), CHINA).date().isoformat()
        rows.append({"date": day, **(entry.get("statistic") or {})})
    out.rows(rows, ["date", *fields], empty="no statistics for these days")


@app.command("corp", epilog="""Examples:

  kfcli stats corp wkAbC123 --since 2026-11-01 --until 2026-11-23

  kfcli stats corp wkAbC123 --since 2026-11-20 -o json

  kfcli stats corp wkAbC123 --since 90d      # three 31-day calls, one table

WeCom answers at most 31 days per call, for the last 180 days up to yesterday: a longer
range is asked for in 31-day calls and the days joined.
TSV columns: date, then """ + ", ".join(CORP_FIELDS) + ".")
@with_output
def corp(open_kfid: OpenKfidArg, since: SinceOpt, until: UntilOpt = None) -> None:
    """Sessions, customers, messages and assistant figures of an account, per day."""
    from kfcli.core.statdays import joined

    limits.check_open_kfid(open_kfid)
    first, last = window(since, until, state().env.clock())
    client = state().client()
    _render(joined(lambda start, end: client.corp_statistic(open_kfid, start, end),
                   first, last), CORP_FIELDS)


@app.command("servicer", epilog="""Examples:

  kfcli stats servicer wkAbC123 --since 2026-11-01 --servicer zhangsan

  kfcli stats servicer wkAbC123 --since 2026-11-01 -o json   # all servicers

  kfcli stats servicer wkAbC123 --since 7d --servicer zhangsan

Ranges over 31 days are asked for in 31-day calls and joined.
TSV columns: date, then """ + ", ".join(SERVICER_FIELDS) + ".")
@with_output
def servicer(
    open_kfid: OpenKfidArg,
    since: SinceOpt,
    until: UntilOpt = None,
    servicer_userid: Annotated[str | None, typer.Option(
        "--servicer", help="One servicer's userid (default: the account's totals).",
        show_default=False)] = None,
) -> None:
    """Reply rate, first-reply time and satisfaction of servicers, per day."""
    from kfcli.core.statdays import joined

    limits.check_open_kfid(open_kfid)
    first, last = window(since, until, state().env.clock())
    client = state().client()
    entries = joined(lambda start, end: client.servicer_statistic(
        open_kfid=open_kfid, start_time=start, end_time=end, servicer_userid=servicer_userid),
        first, last)
    _render(entries, SERVICER_FIELDS)
