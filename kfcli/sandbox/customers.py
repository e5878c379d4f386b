"""What happens in the simulated corp when a WeChat customer acts.

Customers, their sessions and the messages they send. The control endpoints use this now;
later simulations (entering a session from a contact-way link, menu clicks) build on it.
Session rules (kf-api.md §1.5, §1.6): a customer message opens a session that is ended or
never started (state 4 -> 0), and a session older than 48 h counts as ended; every customer
message restarts the 48 h window and allows 5 more messages from the enterprise.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Sequence

from . import ids, rules
from .store import Tx

_NICKNAMES = (
    "小明", "阿花", "Lucy", "王先生", "陈女士", "Tom", "李雷", "韩梅梅", "张三", "老周",
    "Amy", "小鱼儿", "Jack", "林小姐", "深夜食堂", "Kevin",
)  # fmt: skip


def ensure_customer(db: Tx, external_userid: str | None, now: int) -> str:
    """The customer's id, creating the customer (with a fresh ``wm…`` id if none given).

    The profile (nickname, avatar, gender, unionid) is derived from the id, so a customer
    looks the same in every database and test run.
    """
    if external_userid is not None:
        if db.one("SELECT 1 FROM customers WHERE external_userid = ?", (external_userid,)):
            return external_userid
    else:
        external_userid = ids.external_userid()
    digest = hashlib.sha256(external_userid.encode()).digest()
    db.execute(
        "INSERT INTO customers (external_userid, nickname, avatar, gender, unionid, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (
            external_userid,
            _NICKNAMES[digest[0] % len(_NICKNAMES)],
            f"http://wx.qlogo.cn/mmhead/{digest[:16].hex()}/0",
            digest[1] % 3,  # 0 unknown, 1 male, 2 female
            "o" + base64.urlsafe_b64encode(digest[2:23]).decode()[:27],
            now,
        ),
    )
    return external_userid


def customer_spoke(db: Tx, open_kfid: str, external_userid: str, now: int) -> None:
    """Open (or keep) the session and restart the 48 h / 5-message window."""
    expired_before = now - rules.SESSION_WINDOW
    db.execute(
        """
        INSERT INTO sessions (open_kfid, external_userid, service_state, window_start,
                              active_at)
        VALUES (:kf, :user, 0, :now, :now)
        ON CONFLICT (open_kfid, external_userid) DO UPDATE SET
            service_state = CASE WHEN service_state = 4
                                   OR COALESCE(active_at, window_start) IS NULL
                                   OR COALESCE(active_at, window_start) <= :expired THEN 0
                                 ELSE service_state END,
            servicer_userid = CASE WHEN service_state = 4
                                     OR COALESCE(active_at, window_start) IS NULL
                                     OR COALESCE(active_at, window_start) <= :expired THEN ''
                                   ELSE servicer_userid END,
            window_start = :now,
            window_sent = 0,
            active_at = :now
        """,
        {"kf": open_kfid, "user": external_userid, "now": now, "expired": expired_before},
    )


def add_text_messages(
    db: Tx, open_kfid: str, messages: Iterable[tuple[str, str]], now: int
) -> list[str]:
    """Store customer text messages ``(external_userid, text)`` in order; return msgids."""
    msgids: list[str] = []

    def rows() -> Iterable[tuple[object, ...]]:
        for external_userid, text in messages:
            msgid = ids.msgid()
            msgids.append(msgid)
            body = json.dumps({"content": text}, ensure_ascii=False)
            yield (msgid, open_kfid, external_userid, now, 3, "text", body)

    db.executemany(
        "INSERT INTO messages (msgid, open_kfid, external_userid, send_time, origin, msgtype, "
        "body) VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows(),
    )
    return msgids


def session_customers(db: Tx, open_kfid: str, wanted: int, now: int) -> Sequence[str]:
    """Up to ``wanted`` customers for seeding: this account's first ones, topped up."""
    found = [
        row["external_userid"]
        for row in db.all(
            "SELECT external_userid FROM sessions WHERE open_kfid = ? ORDER BY rowid LIMIT ?",
            (open_kfid, wanted),
        )
    ]
    while len(found) < wanted:
        found.append(ensure_customer(db, None, now))
    return found
