"""Who a stored message is from: WeCom's `origin` values, and where each one's words go.

WeCom marks every message it returns (kf-api.md §3.1): 3 the customer, 4 the system (events),
5 a servicer from the WeCom client. Every view of the archive (the transcript, TSV rows,
search, CSV and HTML export) asks this table, never the numbers, what to call a message's
origin and which side of a conversation it belongs to. A new origin (kfcli's own sends,
recorded in the store with a value WeCom never uses) is one more entry in `ORIGINS`: its
name, and `side="company"` so that it reads as the company's answer everywhere.
"""

from __future__ import annotations

from typing import NamedTuple


class Origin(NamedTuple):
    """One origin value: `name` is what the origin column says; `side` is "customer",
    "company" (a bubble on the company's side of a conversation) or "system" (a line in the
    middle: events, system messages)."""

    value: int
    name: str
    side: str


CUSTOMER, SYSTEM, SERVICER = 3, 4, 5
#: A message kfcli sent (msg send, --batch, send-on-event, reply, the library's sends),
#: recorded in the store: WeCom's sync_msg never returns them, and never uses this value.
KFCLI = 100

ORIGINS: dict[int, Origin] = {
    CUSTOMER: Origin(CUSTOMER, "customer", "customer"),
    SYSTEM: Origin(SYSTEM, "system", "system"),
    SERVICER: Origin(SERVICER, "servicer", "company"),
    KFCLI: Origin(KFCLI, "kfcli", "company"),
}


def origin_of(value: int) -> Origin:
    """The entry of `value`; an origin kfcli does not know reads as a system line named by
    its number."""
    known = ORIGINS.get(value)
    return known if known is not None else Origin(value, str(value), "system")
