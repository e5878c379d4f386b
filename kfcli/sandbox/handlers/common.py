"""Lookups shared by API areas: accounts, customers, usable media, query fields, cursors."""

from __future__ import annotations

import base64
import hashlib
import hmac
import sqlite3
from collections.abc import Callable

from .. import rules, sessions
from ..errors import WeComError
from ..params import optional_uint, required_str
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


def media_checker(db: Tx, now: float) -> Callable[[str, str], object]:
    """`rules.MediaCheck` bound to this transaction: 40007 unless the media is usable."""
    return lambda media_id, media_type: usable_media(db, media_id, media_type, now)


def required_query(request: Request, field: str) -> str:
    """A required query parameter of a GET endpoint (40058 when absent or empty)."""
    value = request.query.get(field, "")
    if not value:
        raise WeComError(40058, f"field {field} missing or unexpected empty string")
    return value


def customer_from_body(request: Request, db: Tx, field: str = "external_userid") -> str:
    """The external_userid in ``field``: 40058 missing, 40096 never a customer of the corp."""
    external_userid = required_str(request.body, field)
    sessions.require_customer(db, external_userid)
    return external_userid


def limit_from_body(request: Request, default: int, maximum: int, *,
                    zero_is_default: bool = False) -> int:
    """An optional ``limit`` of 1..maximum (absent: ``default``; 0 too with
    `zero_is_default`); anything else is 40058."""
    limit = optional_uint(request.body, "limit")
    if limit is None or (limit == 0 and zero_is_default):
        return default
    if not 1 <= limit <= maximum:
        raise WeComError(40058, f"limit must be 1..{maximum}")
    return limit


# --- cursors ----------------------------------------------------------------------------------
# Cursors (sync_msg, knowledge lists) are opaque to callers: a position (the seq of the last
# row returned) plus a tag that binds it to one list, so a cursor from another account or
# list, or an edited one, is refused with 40058 instead of silently reading elsewhere.


def encode_cursor(request: Request, scope: str, position: int) -> str:
    raw = f"{position}.{_cursor_tag(request, scope, position)}".encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(request: Request, scope: str, cursor: str) -> int:
    """The position in ``cursor``; 40058 for anything `encode_cursor` did not make."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        text, tag = raw.split(".")
        position = int(text)
    except ValueError:  # also binascii.Error and UnicodeDecodeError
        raise WeComError(40058, "invalid cursor") from None
    if position < 0 or not hmac.compare_digest(tag, _cursor_tag(request, scope, position)):
        raise WeComError(40058, "invalid cursor")
    return position


def _cursor_tag(request: Request, scope: str, position: int) -> str:
    key = request.server.credentials["aes_key"].encode()
    return hmac.new(key, f"{scope}/{position}".encode(), hashlib.sha256).hexdigest()[:12]
