"""Statistics: /cgi-bin/kf/get_corp_statistic and /get_servicer_statistic (kf-api.md §2.10).

The window rules are `rules.check_stats_window`. Figures are derived from what the
simulator stored, so they are deterministic for a given history:

* a *session* is a customer who wrote to the account that day (customer-day);
* the assistant replied to a session when send_msg delivered to that customer that day;
* a session reached a human when a servicer wrote to that customer that day
  (POST /sandbox/servicer_message);
* first reply time is from the customer's first message of the day to the first servicer
  message after it; upgrades come from pending upgrade_service recommendations.

Surveys, knowledge hits and rejections are not simulated: their counts are 0 and their
rates absent, as WeCom omits rates it cannot compute (§2.10).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from .. import directory, rules
from ..errors import WeComError
from ..params import optional_str, optional_uint
from ..routing import API, Request
from ..store import Tx
from .common import account_from_body


@dataclass
class _Day:
    # customer -> (messages, first message time)
    customers: dict[str, tuple[int, int]] = field(default_factory=dict)
    # (customer, servicer) -> sorted servicer message times
    servicer_msgs: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    api_replied: set[str] = field(default_factory=set)
    upgrades: list[dict[str, Any]] = field(default_factory=list)


@API.route("POST", "/cgi-bin/kf/get_corp_statistic")
def get_corp_statistic(request: Request) -> dict[str, Any]:
    start, end = _window(request)
    with request.db.read() as db:
        open_kfid = account_from_body(request, db)["open_kfid"]
        days = _activity(db, open_kfid, start, end)
    return {
        "statistic_list": [
            {"stat_time": day, "statistic": _corp_figures(days[day])} for day in _days(start, end)
        ]
    }


@API.route("POST", "/cgi-bin/kf/get_servicer_statistic")
def get_servicer_statistic(request: Request) -> dict[str, Any]:
    start, end = _window(request)
    servicer = optional_str(request.body, "servicer_userid")
    if servicer is not None and not directory.is_member(servicer):
        raise WeComError(rules.USERID_NOT_FOUND)
    with request.db.read() as db:
        open_kfid = account_from_body(request, db)["open_kfid"]
        days = _activity(db, open_kfid, start, end)
    return {
        "statistic_list": [
            {"stat_time": day, "statistic": _servicer_figures(days[day], servicer)}
            for day in _days(start, end)
        ]
    }


def _window(request: Request) -> tuple[int, int]:
    values = []
    for name in ("start_time", "end_time"):
        value = optional_uint(request.body, name)
        if value is None:
            raise WeComError(40058, f"field {name} missing")
        values.append(value)
    return rules.check_stats_window(values[0], values[1], request.now)


def _days(start: int, end: int) -> range:
    return range(start, end + rules.DAY, rules.DAY)


def _activity(db: Tx, open_kfid: str, start: int, end: int) -> defaultdict[int, _Day]:
    days: defaultdict[int, _Day] = defaultdict(_Day)
    span = (open_kfid, start, end + rules.DAY)
    day_sql = f"(send_time - (send_time + {rules.STATS_TZ_OFFSET}) % {rules.DAY})"
    for row in db.all(
        f"SELECT {day_sql} AS day, external_userid, COUNT(*) AS n, MIN(send_time) AS first "
        "FROM messages WHERE open_kfid = ? AND origin = 3 AND send_time >= ? AND send_time < ? "
        "GROUP BY day, external_userid",
        span,
    ):
        days[row["day"]].customers[row["external_userid"]] = (row["n"], row["first"])
    for row in db.all(
        f"SELECT {day_sql} AS day, external_userid, servicer_userid, send_time FROM messages "
        "WHERE open_kfid = ? AND origin = 5 AND send_time >= ? AND send_time < ? ORDER BY seq",
        span,
    ):
        key = (row["external_userid"], row["servicer_userid"])
        days[row["day"]].servicer_msgs.setdefault(key, []).append(row["send_time"])
    for row in db.all(
        f"SELECT DISTINCT {day_sql.replace('send_time', 'sent_at')} AS day, external_userid "
        "FROM sent_messages WHERE open_kfid = ? AND api = 'send_msg' "
        "AND sent_at >= ? AND sent_at < ?",
        span,
    ):
        days[row["day"]].api_replied.add(row["external_userid"])
    for row in db.all(
        "SELECT external_userid, upgrade FROM sessions WHERE open_kfid = ? AND upgrade IS NOT NULL",
        (open_kfid,),
    ):
        record = {**json.loads(row["upgrade"]), "customer": row["external_userid"]}
        if start <= record["at"] < end + rules.DAY:
            days[rules.stats_day(record["at"])].upgrades.append(record)
    return days


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _with_rates(figures: dict[str, Any], rates: dict[str, float | None]) -> dict[str, Any]:
    figures.update({name: value for name, value in rates.items() if value is not None})
    return figures


def _corp_figures(day: _Day) -> dict[str, Any]:
    sessions = len(day.customers)
    to_human = {customer for customer, _ in day.servicer_msgs if customer in day.customers}
    figures: dict[str, Any] = {
        "session_cnt": sessions,
        "customer_cnt": sessions,
        "customer_msg_cnt": sum(n for n, _ in day.customers.values()),
        "upgrade_service_customer_cnt": len({u["customer"] for u in day.upgrades}),
        "ai_session_reply_cnt": len(day.api_replied & day.customers.keys()),
        "msg_rejected_customer_cnt": 0,
    }
    return _with_rates(
        figures,
        {
            "ai_transfer_rate": _rate(len(to_human), sessions),
            "ai_knowledge_hit_rate": 0.0 if sessions else None,
        },
    )


def _servicer_figures(day: _Day, servicer: str | None) -> dict[str, Any]:
    served: dict[str, list[int]] = {}
    for (customer, userid), times in day.servicer_msgs.items():
        if servicer is None or userid == servicer:
            served.setdefault(customer, []).extend(times)
    wrote = {c: day.customers[c] for c in served if c in day.customers}
    delays = []
    for customer, (_, first) in wrote.items():
        after = [t for t in served[customer] if t >= first]
        if after:
            delays.append(min(after) - first)
    member_invites = sum(1 for u in day.upgrades if u["type"] == rules.UPGRADE_MEMBER)
    group_invites = sum(1 for u in day.upgrades if u["type"] == rules.UPGRADE_GROUPCHAT)
    if servicer is not None:  # recommendations are made by API, not by a servicer
        member_invites = group_invites = 0
    figures: dict[str, Any] = {
        "session_cnt": len(served),
        "customer_cnt": len(served),
        "customer_msg_cnt": sum(n for n, _ in wrote.values()),
        "satisfaction_investgate_cnt": 0,  # (sic) the field name WeCom uses
        "upgrade_service_customer_cnt": member_invites + group_invites,
        "upgrade_service_member_invite_cnt": member_invites,
        "upgrade_service_member_customer_cnt": 0,
        "upgrade_service_groupchat_invite_cnt": group_invites,
        "upgrade_service_groupchat_customer_cnt": 0,
        "msg_rejected_customer_cnt": 0,
    }
    average = round(sum(delays) / len(delays), 2) if delays else None
    return _with_rates(
        figures,
        {
            "reply_rate": _rate(len(delays), len(wrote)),
            "first_reply_average_sec": float(average) if average is not None else None,
        },
    )
