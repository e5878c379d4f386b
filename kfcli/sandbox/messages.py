"""The messages that sync_msg returns: storing them and rendering them as WeCom does.

Each row of ``messages`` keeps the object named after its msgtype as JSON text (``body``).
`render` turns a row into the sync_msg JSON text of kf-api.md §3 by string assembly: the
body is spliced in as stored, never parsed again, so a page of 1000 costs little more than
reading the rows.

Shapes (kf-api.md §3.1): customer (origin 3) and servicer (origin 5, plus
``servicer_userid``) messages carry ``open_kfid`` and ``external_userid`` at the top level;
events (origin 4, msgtype ``event``) carry them only inside ``event``.
"""

from __future__ import annotations

import json
import sqlite3
from json.encoder import encode_basestring  # the C-accelerated string quoter of json.dumps
from typing import Any

from . import ids
from .store import Tx

ORIGIN_CUSTOMER = 3
ORIGIN_EVENT = 4
ORIGIN_SERVICER = 5

# The columns `render` needs, in a SELECT list.
COLUMNS = (
    "seq, msgid, open_kfid, external_userid, send_time, origin, servicer_userid, msgtype, body"
)


def add(
    db: Tx,
    open_kfid: str,
    external_userid: str | None,
    origin: int,
    msgtype: str,
    body: dict[str, Any],
    now: int,
    servicer_userid: str | None = None,
) -> str:
    """Store one message (or event) for sync_msg; returns its msgid."""
    msgid = ids.msgid()
    db.execute(
        "INSERT INTO messages (msgid, open_kfid, external_userid, send_time, origin, "
        "servicer_userid, msgtype, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            msgid,
            open_kfid,
            external_userid,
            now,
            origin,
            servicer_userid,
            msgtype,
            json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        ),
    )
    return msgid


def add_event(
    db: Tx, open_kfid: str, external_userid: str | None, event: dict[str, Any], now: int
) -> str:
    """Store a system event (origin 4); ``event`` holds event_type and its fields."""
    return add(db, open_kfid, external_userid, ORIGIN_EVENT, "event", event, now)


def render(row: sqlite3.Row | tuple[Any, ...]) -> str:
    """One message as the JSON text sync_msg puts in ``msg_list`` (row as in `COLUMNS`)."""
    _, msgid, open_kfid, external_userid, send_time, origin, servicer, msgtype, body = row
    if origin == ORIGIN_EVENT:
        return (
            f'{{"msgid":{encode_basestring(msgid)},"send_time":{send_time},'
            f'"origin":4,"msgtype":"event","event":{body}}}'
        )
    servicer_part = (
        f'"servicer_userid":{encode_basestring(servicer)},' if origin == ORIGIN_SERVICER else ""
    )
    quoted_type = encode_basestring(msgtype)
    return (
        f'{{"msgid":{encode_basestring(msgid)},"open_kfid":{encode_basestring(open_kfid)},'
        f'"external_userid":{encode_basestring(external_userid or "")},'
        f'"send_time":{send_time},"origin":{origin},{servicer_part}'
        f'"msgtype":{quoted_type},{quoted_type}:{body}}}'
    )
