"""The exception hierarchy of kfcli and the one table of upstream error codes.

Catch broad (`KfError`) or narrow (`NotFoundError`, `RateLimitError`, ...). Every class carries
the process exit code the CLI uses for it (DESIGN.md §5), so the CLI has exactly one place that
maps failures to exit statuses.

`ERRCODES` is the single table errcode -> (exception type, English text, Chinese text, hint).
Codes missing from it keep their raw errcode and errmsg and raise plain `ApiError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class KfError(Exception):
    """Base class of every error kfcli raises on purpose."""

    exit_code = 1
    kind = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.kind,
            "errcode": None,
            "errmsg": None,
            "message": self.message,
            "hint": self.hint,
        }


class UsageError(KfError):
    """Invalid input, detected before anything is sent or written."""

    exit_code = 2
    kind = "usage"


class ValidationError(UsageError):
    """A value breaks one of WeCom's documented limits (the message names field and limit)."""

    kind = "validation"

    def __init__(self, field: str, problem: str, *, hint: str | None = None) -> None:
        super().__init__(f"{field}: {problem}", hint=hint)
        self.field = field
        self.problem = problem


class ConfigError(KfError):
    """Nothing configured, an unknown profile, an unreadable or corrupt config file."""

    exit_code = 3
    kind = "config"


class StoreMissing(ConfigError):
    """A command that only reads found no message store where the settings point (a typo
    in KFCLI_STORE, another profile's path): exit 3, and nothing was created."""


class UnsafeDirectory(ConfigError):
    """A directory kfcli keeps private files in is a symlink, another user's, or writable
    by group or others (kfcli.core.files.ensure_private_dir). Exit 3, never retried."""


class EnvironmentProblem(ConfigError):
    """The local environment fails: a file or directory kfcli needs cannot be read or
    written, or its output cannot be written. Exit 3, like configuration."""

    kind = "environment"


class Interrupted(KfError):
    """Ctrl-C (or SIGINT). `message` says how far the work got."""

    exit_code = 130
    kind = "interrupted"

    def __init__(self, message: str = "interrupted", *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)


class NetworkError(KfError):
    """The server could not be reached, timed out, or answered HTTP 5xx after retries."""

    exit_code = 6
    kind = "network"


class PartialError(KfError):
    """Some items of a batch failed (the others succeeded and were reported)."""

    kind = "partial"

    def __init__(self, message: str, *, exit_code: int = 1, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.exit_code = exit_code


class CallbackError(KfError):
    """A callback failed verification; `reason` is one of the names in DESIGN.md §7."""

    exit_code = 5
    kind = "callback"

    def __init__(self, reason: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "reason": self.reason}


class ApiError(KfError):
    """WeCom answered with a non-zero errcode."""

    kind = "api"

    def __init__(
        self, errcode: int, errmsg: str, *, message: str | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message or f"{errcode} {errmsg}", hint=hint)
        self.errcode = errcode
        self.errmsg = errmsg

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "errcode": self.errcode, "errmsg": self.errmsg}


class ResponseError(ApiError):
    """The server's answer could not be understood: not JSON, not an object, or without a
    field the call needs (a proxy's error page, a wrong base_url, an API change). Exit 1, as
    an unclassified API error; `errcode` is -2, which WeCom never sends."""

    kind = "response"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(-2, "unexpected response", message=message, hint=hint)


class AuthError(ApiError):
    """Credentials, permissions or the API mode are wrong: fix the configuration, not the call."""

    exit_code = 3
    kind = "auth"


class NotFound(KfError):
    """Something named does not exist (exit 4). Catch this for every kind below."""

    exit_code = 4
    kind = "not_found"


class NotFoundError(ApiError, NotFound):
    """WeCom does not know an id (open_kfid, external_userid, userid, media_id)."""

    exit_code = 4
    kind = "not_found"


class NotInStore(NotFound):
    """The message store has nothing to act on (a message, an account's cursor)."""


class NotArchived(NotFound):
    """The message is not in the store, has no media, or its media could not be archived."""


class KnowledgeNotFound(NotFound):
    """A knowledge-base group or intent named on the command line does not exist."""


class ConsumerRunning(KfError):
    """Another process runs the consumer of this name (and account): one at a time."""

    def __init__(self, name: str, open_kfid: str | None) -> None:
        of = open_kfid or "every account"
        super().__init__(f"consumer {name!r} of {of} is already running",
                         hint="one process per consumer name: stop the other, or use "
                         "another --consumer name")


class DoctorFailed(KfError):
    """`kfcli doctor`: at least one check failed; the exit code is the first failure's."""

    kind = "doctor"

    def __init__(self, message: str, *, exit_code: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.exit_code = exit_code


class RateLimitError(ApiError):
    """WeCom's frequency limits (45009, 45033) still applied after bounded backoff."""

    exit_code = 7
    kind = "rate_limit"


class SessionStateError(ApiError):
    """The session's state forbids the operation (95016, 95018, ...)."""

    kind = "session_state"


class TokenError(ApiError):
    """The access token was rejected (40014, 42001); retried once with a fresh token first."""

    kind = "token"


@dataclass(frozen=True)
class ErrorInfo:
    exc: type[ApiError]
    en: str
    zh: str
    hint: str | None = None


_MODE_HINT = (
    "KF can be driven by a self-built app's secret or by the KF console's own secret, not both; "
    "use the secret that matches the mode chosen in 微信客服 → API"  # kf-api.md §1.2
)

#: errcode -> what it means and what the user can do. Source: kf-api.md §5.
ERRCODES: dict[int, ErrorInfo] = {
    -1: ErrorInfo(ApiError, "system busy", "系统繁忙", "retry later"),
    40001: ErrorInfo(
        AuthError,
        "invalid secret",
        "不合法的secret参数",
        "check corp_id and secret (`kfcli config set secret`); repeated wrong secrets can get "
        "this IP banned for an hour",
    ),
    40003: ErrorInfo(NotFoundError, "invalid userid", "无效的UserID"),
    40004: ErrorInfo(ApiError, "invalid media type", "不合法的媒体文件类型"),
    40005: ErrorInfo(ApiError, "invalid file type", "不合法的上传文件类型"),
    40006: ErrorInfo(ApiError, "invalid file size", "不合法的文件长度"),
    40007: ErrorInfo(
        NotFoundError,
        "invalid media_id",
        "不合法的媒体文件id",
        "temporary media expire after 3 days; upload the file again",
    ),
    40008: ErrorInfo(ApiError, "invalid message type", "不合法的消息类型"),
    40009: ErrorInfo(ApiError, "invalid image size", "无效的图片大小"),
    40011: ErrorInfo(ApiError, "invalid video size", "无效的视频大小"),
    40013: ErrorInfo(
        AuthError, "invalid corp_id", "不合法的CorpID", "check corp_id (`kfcli config set corp_id`)"
    ),
    40014: ErrorInfo(TokenError, "invalid access_token", "不合法的access_token"),
    40058: ErrorInfo(ApiError, "invalid parameter", "不合法的参数"),
    40096: ErrorInfo(NotFoundError, "invalid external_userid", "不合法的外部联系人userid"),
    41001: ErrorInfo(ApiError, "access_token missing", "缺少access_token参数"),
    42001: ErrorInfo(TokenError, "access_token expired", "access_token已过期"),
    44001: ErrorInfo(ApiError, "empty media file", "多媒体文件为空"),
    44004: ErrorInfo(ApiError, "empty text content", "文本消息content参数为空"),
    45001: ErrorInfo(ApiError, "media file too large", "多媒体文件大小超过限制"),
    45002: ErrorInfo(ApiError, "content too large", "消息内容大小超过限制"),
    45009: ErrorInfo(
        RateLimitError,
        "API call frequency exceeded",
        "接口调用超过限制",
        "WeCom blocks this API for 60 s after a per-minute overrun: wait a minute and retry",
    ),
    45033: ErrorInfo(
        RateLimitError,
        "too many concurrent calls",
        "接口并发调用超过限制",
        "reduce the number of parallel calls to this API",
    ),
    47001: ErrorInfo(ApiError, "malformed request body", "数据格式错误"),
    48001: ErrorInfo(AuthError, "API not authorised", "api未授权", "grant the app KF permissions"),
    48002: ErrorInfo(
        AuthError,
        "API forbidden",
        "API接口无权限调用",
        "add the app under 微信客服 → 可调用接口的应用 in the WeCom admin console",
    ),
    60020: ErrorInfo(
        AuthError,
        "IP not trusted",
        "不安全的访问IP",
        "add this machine's IP to the app's trusted IPs",
    ),
    60111: ErrorInfo(NotFoundError, "userid not found", "UserID不存在"),
    95000: ErrorInfo(NotFoundError, "invalid open_kfid", "不合法的open_kfid"),
    95001: ErrorInfo(
        SessionStateError,
        "send count limit reached",
        "发送消息条数超过限制",
        "at most 5 messages per customer message within 48 h",  # kf-api.md §1.6
    ),
    95002: ErrorInfo(
        SessionStateError,
        "send time limit exceeded",
        "发送消息超过时间限制",
        "the customer last wrote more than 48 h ago",
    ),
    95003: ErrorInfo(
        ApiError,
        "reception quota reached",
        "客服帐号的接待人数已达上限",
        "verify the corp and bind a WeChat Channels account (`kfcli corp qualification`)",
    ),
    95004: ErrorInfo(
        NotFoundError,
        "open_kfid does not exist",
        "open_kfid不存在",
        "list the accounts with `kfcli account list`",
    ),
    95005: ErrorInfo(ApiError, "too many KF accounts", "客服帐号数超过上限"),
    95006: ErrorInfo(
        ApiError, "invalid account name", "不合法的客服帐号名", "names are 1-16 characters"
    ),
    95007: ErrorInfo(
        ApiError,
        "invalid msg token or code",
        "不合法的msgtoken",
        "event codes are single-use and expire (20 s or 48 h); callback tokens last 10 minutes",
    ),
    95008: ErrorInfo(ApiError, "too many menu items", "菜单消息的菜单项个数超过上限"),
    95009: ErrorInfo(ApiError, "invalid menu item type", "不合法的菜单消息的菜单项类型"),
    95011: ErrorInfo(
        AuthError, "KF is in WeCom mode", "已在企业微信使用微信客服", _MODE_HINT
    ),
    95012: ErrorInfo(
        AuthError, "KF is not in WeCom mode", "未在企业微信使用微信客服", _MODE_HINT
    ),
    95013: ErrorInfo(SessionStateError, "session already ended", "会话已经结束"),
    95014: ErrorInfo(
        ApiError,
        "user is not a servicer",
        "用户不是接待人员",
        "add the user with `kfcli servicer add` and make sure they activated WeCom",
    ),
    95015: ErrorInfo(ApiError, "dedicated service already configured", "已经配置了专属服务"),
    95016: ErrorInfo(
        SessionStateError,
        "state transition not allowed",
        "不允许这种状态转换",
        "check the session with `kfcli state get`; `kfcli state trans --help` lists the "
        "allowed changes",  # kf-api.md §1.5
    ),
    95017: ErrorInfo(
        AuthError,
        "API switch is off for this app",
        "系统应用权限下，api开关处于关闭状态",
        "switch on 通过API管理微信客服账号 in the WeCom admin console",
    ),
    95018: ErrorInfo(
        SessionStateError,
        "session state does not allow sending",
        "发送消息的会话状态无效",
        "messages can be sent only in states 0/1 and within 48 h; see `kfcli state get`",
    ),
    95019: ErrorInfo(ApiError, "servicer stopped or suspended", "接待人员处于停止接待状态"),
    95021: ErrorInfo(ApiError, "upgrade target not configured", "升级服务未配置"),
    95026: ErrorInfo(ApiError, "account usage too low", "客服帐号使用率过低，暂不能创建"),
    95027: ErrorInfo(
        ApiError, "unverified corps may create 10 accounts", "未认证企业只能创建10个客服帐号"
    ),
    95030: ErrorInfo(ApiError, "message type forbidden", "消息类型被禁止"),
    95031: ErrorInfo(ApiError, "customer has not written within 48 h", "用户48小时内未咨询"),
    830002: ErrorInfo(ApiError, "media too large, use Range download", "文件过大，需分块下载"),
}


#: Hints that hold for one API only, added to the errcode's own (path suffix, errcode).
PATH_HINTS = {
    # sync_msg without the callback's Token has a stricter limit (kf-api.md §1.4)
    ("/kf/sync_msg", 45009): "pass the Token of the latest kf_msg_or_event callback (msg sync "
    "--token, or let `kfcli callback serve` pull), which WeCom limits less strictly",
}


def api_error(errcode: int, errmsg: str, *, gettoken: bool = False, path: str = ""
              ) -> ApiError:
    """Build the right `ApiError` subclass for a WeCom errcode (`path`: the API called, for
    hints that hold for it alone)."""
    info = ERRCODES.get(errcode)
    if info is None:
        return ApiError(errcode, errmsg)
    exc = info.exc
    if errcode == 40001 and not gettoken:
        # From a non-gettoken call 40001 means "this token is not valid for you" (peers refresh on
        # it); the caller has already dropped and re-fetched the token once by then.
        exc = TokenError
    message = f"{errcode} {info.en} ({info.zh})"
    detail = errmsg.split(", hint:")[0].strip()
    if detail and detail.lower() not in (info.en.lower(), "ok"):
        message += f": {detail}"
    hint = info.hint
    for (suffix, code), extra in PATH_HINTS.items():
        if code == errcode and path.endswith(suffix):
            hint = f"{hint}; {extra}" if hint else extra
    return exc(errcode, errmsg, message=message, hint=hint)
