"""Lookups shared by several API areas: accounts by open_kfid, usable temporary media."""

from __future__ import annotations

import sqlite3

from .. import rules
from ..errors import WeComError
from ..params import required_str
from ..routing import Request
from ..store import Tx


def account_from_body(request: Request, db: Tx, field: str = "open_kfid") -> sqlite3.Row:
    """The live account named by ``field``: 40058 missing, 95000 malformed, 95004 unknown."""
    open_kfid = required_str(request.body, field)
    return account_by_id(db, open_kfid)


def account_by_id(db: Tx, open_kfid: str) -> sqlite3.Row:
    rules.check_open_kfid_format(open_kfid)
    row = db.one("SELECT * FROM accounts WHERE open_kfid = ? AND deleted_at IS NULL", (open_kfid,))
    if row is None:
        # Deleted accounts and other corps' ids look the same: 95004 (kf-api.md §5).
        raise WeComError(95004)
    return row


def usable_media(db: Tx, media_id: str, media_type: str, now: float) -> sqlite3.Row:
    """A temporary media of ``media_type`` that still lives; otherwise 40007.

    40007 covers every way a media_id can be wrong where it is used: too long (over 128
    bytes), never uploaded, another type, or older than 3 days (kf-api.md §2.12, §5).
    """
    if len(media_id.encode()) > rules.MAX_MEDIA_ID_BYTES:
        raise WeComError(40007, f"media_id exceeds {rules.MAX_MEDIA_ID_BYTES} bytes")
    row = db.one("SELECT media_id, type, created_at FROM media WHERE media_id = ?", (media_id,))
    if row is None or row["type"] != media_type or now >= row["created_at"] + rules.MEDIA_TTL:
        raise WeComError(40007)
    return row
