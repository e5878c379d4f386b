"""`kfcli stats`: daily statistics of an account and its servicers (kf-api.md §2.10)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Annotated

import typer

from kfcli.cli.context import new_app, state, with_output
from kfcli.core import limits
from kfcli.core.errors import ValidationError

app = new_app("Daily statistics (up to 31 days, within the last 180).")

#: WeCom's days start at midnight in China.
CHINA = timezone(timedelta(hours=8))
MAX_DAYS = 31
HISTORY_DAYS = 180

CORP_FIELDS = ["session_cnt", "customer_cnt", "customer_msg_cnt",
               "upgrade_service_customer_cnt", "ai_session_reply_cnt", "ai_transfer_rate",
               "ai_knowledge_hit_rate", "msg_rejected_customer_cnt"]
SERVICER_FIELDS = ["session_cnt", "customer_cnt", "customer_msg_cnt", "reply_rate",
                   "first_reply_average_sec", "satisfaction_investgate_cnt",
                   "satisfaction_participation_rate", "satisfied_rate", "middling_rate",
                   "dissatisfied_rate", "msg_rejected_customer_cnt"]

OpenKfidArg = Annotated[str, typer.Argument(help="The account's open_kfid.")]
SinceOpt = Annotated[str, typer.Option("--since", help="First day, YYYY-MM-DD (China time).")]
UntilOpt = Annotated[str | None, typer.Option(
    "--until", help="Last day, YYYY-MM-DD (default: yesterday, the latest with data).",
    show_default=False)]


def window(since: str, until: str | None, today: date | None = None) -> tuple[int, int]:
    """Check the date window locally; returns (start_time, end_time) as unix midnights."""
    today = today or datetime.now(CHINA).date()
    yesterday = today - timedelta(days=1)

    def parse(flag: str, value: str) -> date:
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValidationError(flag, f"{value!r} is not a date YYYY-MM-DD") from None

    first = parse("--since", since)
    last = parse("--until", until) if until else yesterday
    if first > last:
        raise ValidationError("--since", f"{first} is after --until {last}")
    if last > yesterday:
        raise ValidationError("--until", f"{last} has no data yet; the latest day is "
                              f"yesterday ({yesterday})")
    if first < today - timedelta(days=HISTORY_DAYS):
        raise ValidationError("--since", f"{first} is more than {HISTORY_DAYS} days ago "
                              f"(earliest: {today - timedelta(days=HISTORY_DAYS)})")
    days = (last - first).days + 1
    if days > MAX_DAYS:
        raise ValidationError("--since/--until", f"{days} days, at most {MAX_DAYS} per query")

    def midnight(d: date) -> int:
        return int(datetime(d.year, d.month, d.day, tzinfo=CHINA).timestamp())

    return midnight(first), midnight(last)


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

TSV columns: date, then """ + ", ".join(CORP_FIELDS) + ".")
@with_output
def corp(open_kfid: OpenKfidArg, since: SinceOpt, until: UntilOpt = None) -> None:
    """Sessions, customers, messages and assistant figures of an account, per day."""
    limits.check_open_kfid(open_kfid)
    start, end = window(since, until)
    _render(state().client().corp_statistic(open_kfid, start, end), CORP_FIELDS)


@app.command("servicer", epilog="""Examples:

  kfcli stats servicer wkAbC123 --since 2026-11-01 --servicer zhangsan

  kfcli stats servicer wkAbC123 --since 2026-11-01 -o json   # all servicers

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
    limits.check_open_kfid(open_kfid)
    start, end = window(since, until)
    entries = state().client().servicer_statistic(open_kfid=open_kfid, start_time=start,
                                                  end_time=end, servicer_userid=servicer_userid)
    _render(entries, SERVICER_FIELDS)
