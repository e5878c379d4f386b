"""The days a statistics query covers (kf-api.md §2.10): WeCom answers per China day, at most
31 days per call, for the last 180 days, up to yesterday. A longer range is split into
31-day calls here and the answers joined, so `kfcli stats … --since 68d` and Python code ask
for the days they want and never meet the per-call limit.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from typing import Any

from kfcli.core.errors import ValidationError

#: WeCom's days start at midnight in China.
CHINA = timezone(timedelta(hours=8))
MAX_DAYS = 31
HISTORY_DAYS = 180

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def days(since: str, until: str | None, *, now: float | None = None
         ) -> tuple[date, date]:
    """(first day, last day) for `--since`/`--until` in any form `kfcli.core.when` takes: a
    date (a China day), a duration ago (7d), a time or unix seconds (the China day it falls
    on). `until` defaults to yesterday, the latest day with data; a relative `until` later
    than that is yesterday. ValidationError (exit 2) for a window WeCom cannot answer."""
    from kfcli.core.when import parse_when

    moment = datetime.now(CHINA) if now is None else datetime.fromtimestamp(now, CHINA)
    today = moment.date()
    yesterday = today - timedelta(days=1)

    def day(option: str, value: str) -> tuple[date, bool]:
        text = value.strip()
        if _DATE.fullmatch(text):
            try:
                return date.fromisoformat(text), True
            except ValueError:
                raise ValidationError(option, f"{value!r} is not a date") from None
        seconds = parse_when(text, option=option, now=moment.timestamp())
        return datetime.fromtimestamp(seconds, CHINA).date(), False

    first, _ = day("--since", since)
    if until:
        last, exact = day("--until", until)
        if last > yesterday and not exact:
            last = yesterday
    else:
        last = yesterday
    if last > yesterday:
        raise ValidationError("--until", f"{last} has no data yet; the latest day is "
                              f"yesterday ({yesterday})")
    if first > last:
        raise ValidationError("--since", f"{first} is after --until {last}")
    earliest = today - timedelta(days=HISTORY_DAYS)
    if first < earliest:
        raise ValidationError("--since", f"{first} is more than {HISTORY_DAYS} days ago: "
                              f"WeCom keeps {HISTORY_DAYS} days of statistics (earliest: "
                              f"{earliest})")
    return first, last


def midnight(day: date) -> int:
    """The unix time of `day`'s midnight in China (what WeCom's start_time/end_time are)."""
    return int(datetime(day.year, day.month, day.day, tzinfo=CHINA).timestamp())


def windows(first: date, last: date) -> list[tuple[int, int]]:
    """[first, last] as (start_time, end_time) pairs of at most MAX_DAYS days each."""
    out = []
    while first <= last:
        end = min(last, first + timedelta(days=MAX_DAYS - 1))
        out.append((midnight(first), midnight(end)))
        first = end + timedelta(days=1)
    return out


def joined(fetch: Callable[[int, int], list[dict[str, Any]]], first: date, last: date
           ) -> list[dict[str, Any]]:
    """`fetch(start_time, end_time)` for each window of [first, last], the answers in order."""
    entries: list[dict[str, Any]] = []
    for start, end in windows(first, last):
        entries.extend(fetch(start, end))
    return entries
