"""Errors raised inside the simulator and how WeCom words them.

`WeComError` is what an API handler raises to answer with a WeCom error envelope (HTTP 200,
non-zero ``errcode``). `ControlError` is the same for the sandbox's own control endpoints,
which answer with a real HTTP error status. `ERRMSG` holds the English texts WeCom uses, so a
client that (wrongly) matches on ``errmsg`` sees what it would see upstream.
"""

from __future__ import annotations

import secrets
import time

# English texts as WeCom returns them (global error-code page, DOC:90313, via `GWX errcodes`).
ERRMSG: dict[int, str] = {
    -1: "system busy",
    40001: "invalid credential",
    40004: "invalid media type",
    40005: "invalid file type",
    40006: "invalid file size",
    40007: "invalid media_id",
    40008: "invalid message type",
    40009: "invalid image size",
    40011: "invalid video size",
    40013: "invalid corpid",
    40014: "invalid access_token",
    40058: "invalid Request Parameter",
    40096: "invalid external userid",
    41001: "access_token missing",
    41002: "corpid missing",
    41004: "corpsecret missing",
    41005: "media data missing",
    41006: "media_id missing",
    42001: "access_token expired",
    43001: "require GET method",
    43002: "require POST method",
    44001: "empty media data",
    44004: "empty content",
    45001: "media size out of limit",
    45002: "content size out of limit",
    45009: "api freq out of limit",
    45033: "api concurrent out of limit",
    # kancloud mirror of the old KF error page: the text that clients grep for.
    47001: "data format error, Warning: wrong json format. invalid Request Parameter",
    48002: "api forbidden",
    60111: "userid not found",
    60123: "invalid department_id",
    95000: "invalid open_kfid",
    95001: "send msg count limit",
    95002: "send msg time limit",
    95004: "open_kfid not exist",
    95005: "kf account count exceed limit",
    95006: "invalid kf account name",
    95007: "invalid msg token",
    95008: "msgmenu item count exceed limit",
    95009: "invalid msgmenu item type",
    95010: "servicer count exceed limit",  # sandbox choice, see rules.SERVICER_LIMIT_ERRCODE
    95014: "user is not servicer",
    95016: "invalid service state transition",
    95018: "send msg session status invalid",
    95019: "servicer is not receiving",
    95021: "upgrade service target not configured",
}


class WeComError(Exception):
    """An upstream-style API error: answered as HTTP 200 with this errcode."""

    def __init__(self, errcode: int, detail: str | None = None) -> None:
        self.errcode = errcode
        base = ERRMSG.get(errcode, "sandbox injected error")
        # WeCom prefixes parameter errors with the offending field, e.g. "field open_kfid
        # unexpected empty string. invalid Request Parameter" (ISSUE silenceper/wechat#672).
        self.text = f"{detail}. {base}" if detail else base
        super().__init__(f"{errcode}: {self.text}")


class ControlError(Exception):
    """A rejected control-endpoint request (not WeCom): a real HTTP error status."""

    def __init__(self, message: str, *, status: int = 400, errcode: int = 40058) -> None:
        self.status = status
        self.errcode = errcode
        self.message = message
        super().__init__(message)


def decorate_errmsg(errcode: int, text: str, client_ip: str) -> str:
    """Wrap an error text the way WeCom does: hint id, caller IP and the lookup URL."""
    hint = f"[{int(time.time())}_{secrets.randbelow(200)}_{secrets.token_hex(16)}]"
    return (
        f"{text}, hint: {hint}, from ip: {client_ip}, "
        f"more info at https://open.work.weixin.qq.com/devtool/query?e={errcode}"
    )
