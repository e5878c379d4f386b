"""Who is waiting for an answer (`kfcli msg inbox`, DESIGN.md §9).

A conversation waits when the customer's last message (origin 3) is followed by no send kfcli
recorded (any command, process or host) and no servicer message (origin 5). For each: how
long the customer has waited and how much of WeCom's reply window is left (48 h and 5 sends
after their last message, on WeCom's clock: the stored send_times), and the session state
where the store's events tell it (3: with a servicer, 4: ended; WeCom refuses sends then).

Most urgent first: conversations kfcli can still answer, the window closing soonest first;
then those in a session state that refuses sends; then those whose window has closed.
"""

from __future__ import annotations

import json
from typing import Any

from kfcli.core.store.base import CLOSED_STATES, WINDOW_SENDS, Waiting

#: The fields of an inbox entry (JSON keeps them all; tables show COLUMNS).
FIELDS = ("open_kfid", "external_userid", "msgid", "send_time", "waited", "window_left",
          "closes_in", "state", "answerable", "text")
COLUMNS = ("external_userid", "open_kfid", "waited", "window", "state", "text")
HEADERS = ("customer", "account", "waited", "window", "state", "last message")


def inbox(store: Any, corp_id: str, open_kfid: str | None, *, now: float,
          limit: int | None = None) -> tuple[list[dict[str, Any]], int]:
    """The conversations waiting for an answer, most urgent first (the first `limit` of
    them; None: all), and how many wait in all. `now`: this host's clock (WeCom's is
    estimated from what the store holds, never earlier than it). Only the entries returned
    read their last message's text."""
    entries = [_entry(store, corp_id, w, now) for w in store.waiting(corp_id, open_kfid)]
    entries.sort(key=_urgency)
    shown = entries if limit is None else entries[:limit]
    for entry in shown:
        del entry["seq"]
        entry["text"] = _summary(store, corp_id, entry["msgid"])
    return shown, len(entries)


def _entry(store: Any, corp_id: str, waiting: Waiting, local: float) -> dict[str, Any]:
    window = waiting.window
    now = window.now(local)
    left = window.left(now)
    closes_in = max(0, int(window.closes() - now))
    state = window.state if window.state in CLOSED_STATES else None
    return {"open_kfid": waiting.open_kfid, "external_userid": waiting.external_userid,
            "msgid": waiting.msgid, "send_time": waiting.send_time,
            "waited": max(0, int(now - waiting.send_time)), "window_left": left,
            "closes_in": closes_in, "state": state,
            "answerable": state is None and left > 0, "seq": waiting.seq, "text": ""}


def _urgency(entry: dict[str, Any]) -> tuple[int, int, int]:
    """Answerable first, then sessions WeCom refuses sends in, then closed windows; within
    each, the customer who wrote first (whose window closes first) first."""
    rank = 0 if entry["answerable"] else 1 if entry["state"] is not None else 2
    return rank, entry["send_time"], entry["seq"]


def _summary(store: Any, corp_id: str, msgid: str) -> str:
    found = store.message(corp_id, msgid)
    if found is None:
        return ""
    from kfcli.core.sync import Message

    try:
        return Message.from_api(json.loads(found[0].text)).summary()
    except (ValueError, TypeError, AttributeError):
        return ""


def duration(seconds: int) -> str:
    """2d3h, 5h12m, 7m, 40s."""
    if seconds >= 86400:
        return f"{seconds // 86400}d{seconds % 86400 // 3600}h"
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def table_row(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry as a table shows it: durations in words, the window and state in short."""
    if entry["state"] is not None:
        window = "-"
    elif entry["window_left"]:
        window = f"{entry['window_left']}/{WINDOW_SENDS}, {duration(entry['closes_in'])}"
    else:
        window = "closed"
    state = f"{entry['state']} {CLOSED_STATES[entry['state']]}" if entry["state"] else ""
    return {**entry, "waited": duration(entry["waited"]), "window": window, "state": state}


def answered(store: Any, corp_id: str, msgid: str) -> tuple[str, str]:
    """(open_kfid, external_userid) of the stored customer message `msgid` (`msg reply`):
    NotInStore (exit 4) when the store does not have it, UsageError when it is not a
    customer's message."""
    from kfcli.core.errors import NotInStore, UsageError
    from kfcli.core.origins import CUSTOMER, origin_of

    found = store.message(corp_id, msgid)
    if found is None:
        raise NotInStore(f"message {msgid} is not in the store",
                         hint="`kfcli msg sync OPEN_KFID` pulls the latest messages into it; "
                         "`kfcli msg inbox` lists those waiting for an answer")
    doc = json.loads(found[0].text)
    if doc.get("origin") != CUSTOMER:
        raise UsageError(f"message {msgid} is not a customer's (it is from the "
                         f"{origin_of(int(doc.get('origin') or 0)).name}): only customer "
                         "messages are answered")
    return str(doc.get("open_kfid") or ""), str(doc.get("external_userid") or "")
