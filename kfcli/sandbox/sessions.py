"""Sessions between a customer and an account: state, servicers, event codes.

Shared by the API handlers (service_state, send_msg, send_msg_on_event) and the control
endpoints that simulate customers and servicers. The rules are kf-api.md §1.5 and §1.6:

* a session lives 48 h from its last (re)opening — the customer's latest message, or a
  servicer re-opening it from the WeCom client — and then counts as ended (state 4), whatever
  state is stored;
* a customer who never had a session with the account is in state 4 too;
* a servicer of an account is a userid added directly, or any member of a department added
  to it (membership is `directory.department_of`: user001, user012, ... are in department 2,
  user002, user013, ... in 3, and so on; everyone is in department 1). Only direct servicers
  carry a status; department members are always receiving.
"""

from __future__ import annotations

import sqlite3

from . import directory, ids, rules
from .errors import WeComError
from .store import Tx


def get(db: Tx, open_kfid: str, external_userid: str) -> sqlite3.Row | None:
    return db.one(
        "SELECT * FROM sessions WHERE open_kfid = ? AND external_userid = ?",
        (open_kfid, external_userid),
    )


def effective_state(row: sqlite3.Row | None, now: float) -> int:
    """The state WeCom reports: the stored one, or 4 once the session's 48 h have passed."""
    if row is None:
        return rules.STATE_ENDED
    state = int(row["service_state"])
    active_at = row["active_at"]
    if active_at is None:
        active_at = row["window_start"]
    expired = active_at is not None and now >= active_at + rules.SESSION_WINDOW
    return rules.STATE_ENDED if expired else state


def set_state(
    db: Tx,
    open_kfid: str,
    external_userid: str,
    state: int,
    servicer_userid: str = "",
    reopened_at: int | None = None,
) -> None:
    """Store ``state`` (and the servicer in state 3); ``reopened_at`` restarts the 48 h."""
    db.execute(
        """
        INSERT INTO sessions (open_kfid, external_userid, service_state, servicer_userid,
                              active_at)
        VALUES (:kf, :user, :state, :servicer, :at)
        ON CONFLICT (open_kfid, external_userid) DO UPDATE SET
            service_state = :state,
            servicer_userid = :servicer,
            active_at = COALESCE(:at, active_at)
        """,
        {
            "kf": open_kfid,
            "user": external_userid,
            "state": state,
            "servicer": servicer_userid if state == 3 else "",
            "at": reopened_at,
        },
    )


def require_customer(db: Tx, external_userid: str) -> None:
    """40096 for an external_userid that never was a customer of this corp."""
    if db.one("SELECT 1 FROM customers WHERE external_userid = ?", (external_userid,)) is None:
        raise WeComError(40096)


# --- servicers --------------------------------------------------------------------------------


def servicer_status(db: Tx, open_kfid: str, userid: str) -> tuple[int, int] | None:
    """``(status, stop_type)`` when ``userid`` serves the account, else None (§2.3 encoding)."""
    row = db.one(
        "SELECT status, stop_type FROM servicers WHERE open_kfid = ? AND userid = ?",
        (open_kfid, userid),
    )
    if row is not None:
        return int(row["status"]), int(row["stop_type"])
    if not directory.is_member(userid):
        return None
    departments = {
        r[0]
        for r in db.all(
            "SELECT department_id FROM servicers WHERE open_kfid = ? AND department_id IS NOT NULL",
            (open_kfid,),
        )
    }
    if directory.ROOT_DEPARTMENT in departments or directory.department_of(userid) in departments:
        return rules.SERVICER_RECEIVING, 0
    return None


def require_receiving_servicer(db: Tx, open_kfid: str, userid: str) -> None:
    """95014 when ``userid`` does not serve the account, 95019 when stopped or suspended."""
    status = servicer_status(db, open_kfid, userid)
    if status is None:
        raise WeComError(95014)
    if status[0] != rules.SERVICER_RECEIVING:
        raise WeComError(95019, "servicer is suspended" if status[1] else "servicer is stopped")


# --- event codes ------------------------------------------------------------------------------


def issue_code(
    db: Tx, kind: str, open_kfid: str, external_userid: str, state: int, now: int
) -> str:
    """A single-use send_msg_on_event code of ``kind``, valid in ``state`` for its lifetime."""
    code = ids.event_code()
    db.execute(
        "INSERT INTO event_codes (code, kind, open_kfid, external_userid, service_state, "
        "expires_at) VALUES (?, ?, ?, ?, ?, ?)",
        (code, kind, open_kfid, external_userid, state, now + rules.EVENT_CODE_TTL[kind]),
    )
    return code


def welcome_allowed(db: Tx, open_kfid: str, external_userid: str, now: int) -> bool:
    """Whether entering a session earns a welcome_code (kf-api.md §1.6).

    Only when the customer has not messaged the account and has not been sent a welcome
    message in the last 48 h.
    """
    since = now - rules.SESSION_WINDOW
    row = get(db, open_kfid, external_userid)
    if row is not None and row["window_start"] is not None and row["window_start"] > since:
        return False
    welcomed = db.one(
        "SELECT 1 FROM event_codes WHERE kind = ? AND open_kfid = ? AND external_userid = ? "
        "AND used_at IS NOT NULL AND used_at > ?",
        (rules.CODE_WELCOME, open_kfid, external_userid, since),
    )
    return welcomed is None
