"""Reading messages: POST /cgi-bin/kf/sync_msg (kf-api.md §2.5, §3).

One cursor per account: it encodes the ``seq`` of the last message returned (see
`common.encode_cursor`), so paging is an index range scan on ``(open_kfid, seq)`` and a page
costs the same wherever it is in the history. Only messages of the last 3 days (simulator
clock) are returned. The response is assembled from the stored message texts
(`messages.render`) without parsing them.

The ``empty_page`` fault (POST /sandbox/faults) makes an answer carry no messages, has_more 1
and a next_cursor that resumes where the request's cursor was — WeCom may do that (§2.5).
"""

from __future__ import annotations

from typing import Any

from .. import messages, rules
from ..errors import WeComError
from ..params import optional_str, optional_uint, required_str
from ..routing import API, RawResponse, Request
from ..store import Tx
from .common import account_by_id, decode_cursor, encode_cursor, limit_from_body

PATH = "/cgi-bin/kf/sync_msg"


@API.route("POST", PATH)
def sync_msg(request: Request) -> RawResponse:
    body = request.body
    open_kfid = required_str(body, "open_kfid")
    cursor = optional_str(body, "cursor")
    token = optional_str(body, "token")
    # 0 is the default 1000 (DESIGN.md §8): WeCom documents 1000 as the default, and the Go
    # SDK (kf-api.md §6.1) sends "limit": 0 whenever its caller leaves the limit unset.
    limit = limit_from_body(request, rules.SYNC_MAX_LIMIT, rules.SYNC_MAX_LIMIT,
                            zero_is_default=True)
    voice_format = optional_uint(body, "voice_format")
    if voice_format is not None and voice_format not in rules.VOICE_FORMATS:
        raise WeComError(40058, "voice_format must be 0 (AMR) or 1 (SILK)")
    if cursor is not None and len(cursor.encode()) > rules.MAX_CURSOR_BYTES:
        raise WeComError(40058, f"cursor exceeds {rules.MAX_CURSOR_BYTES} bytes")
    scope = f"sync/{open_kfid}"
    with request.db.read() as db:
        account_by_id(db, open_kfid)
        if token is not None:
            _check_token(db, token, request.now)
        after = decode_cursor(request, scope, cursor) if cursor is not None else 0
        if request.server.faults.take_kind("empty_page", PATH) is not None:
            return _page(encode_cursor(request, scope, after), True, [])
        cutoff = request.now_int - rules.SYNC_HISTORY
        rows = db.all(
            f"SELECT {messages.COLUMNS} FROM messages "
            "WHERE open_kfid = ? AND seq > ? AND send_time >= ? ORDER BY seq LIMIT ?",
            (open_kfid, after, cutoff, limit + 1),
        )
        has_more = len(rows) > limit
        rows = rows[:limit]
        if rows:
            position = rows[-1][0]
        else:
            # Nothing new: point past everything stored so far (older messages are gone).
            last = db.scalar("SELECT MAX(seq) FROM messages WHERE open_kfid = ?", (open_kfid,))
            position = max(after, int(last or 0))
    return _page(encode_cursor(request, scope, position), has_more, rows)


def _check_token(db: Tx, token: str, now: float) -> None:
    """95007 for a token the simulator did not issue, or issued over 10 minutes ago.

    A token is accepted for any account of the corp: WeCom does not document whether it is
    bound to the callback's OpenKfId (verify), and a lenient check cannot break a client that
    passes the token of the account it syncs.
    """
    if len(token.encode()) > rules.MAX_SYNC_TOKEN_BYTES:
        raise WeComError(95007, "token too long")
    row = db.one("SELECT expires_at FROM sync_tokens WHERE token = ?", (token,))
    if row is None or now >= row["expires_at"]:
        raise WeComError(95007)


def _page(next_cursor: str, has_more: bool, rows: list[Any]) -> RawResponse:
    head = (
        f'{{"errcode":0,"errmsg":"ok","next_cursor":"{next_cursor}",'
        f'"has_more":{int(has_more)},"msg_list":['
    )
    text = head + ",".join(map(messages.render, rows)) + "]}"
    return RawResponse(text.encode())
