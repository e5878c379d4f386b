"""GET /cgi-bin/gettoken (kf-api.md §1.2).

Tokens are stored in the database so that every process serving the same file accepts them,
and gettoken hands back the current token while it is valid, as WeCom does: calling it again
returns the same token with ``expires_in`` counting down.
"""

from __future__ import annotations

import hmac
from typing import Any

from .. import ids
from ..errors import WeComError
from ..routing import API, Request


@API.route("GET", "/cgi-bin/gettoken", auth=False)
def gettoken(request: Request) -> dict[str, Any]:
    corpid = request.query.get("corpid", "")
    secret = request.query.get("corpsecret", "")
    if not corpid:
        raise WeComError(41002)
    if not secret:
        raise WeComError(41004)
    credentials = request.server.credentials
    if corpid != credentials["corp_id"]:
        raise WeComError(40013)
    if not hmac.compare_digest(secret.encode(), credentials["secret"].encode()):
        raise WeComError(40001)

    now = request.now
    # IMMEDIATE: two processes asking at once with no valid token must end up with one token.
    with request.db.write() as db:
        row = db.one(
            "SELECT token, expires_at FROM access_tokens WHERE expires_at > ? "
            "ORDER BY expires_at DESC LIMIT 1",
            (now,),
        )
        if row is not None:
            token, expires_at = row["token"], row["expires_at"]
        else:
            token, expires_at = ids.access_token(), now + request.server.token_ttl
            db.execute(
                "INSERT INTO access_tokens (token, issued_at, expires_at) VALUES (?, ?, ?)",
                (token, now, expires_at),
            )
    return {"access_token": token, "expires_in": max(1, int(expires_at - now))}
