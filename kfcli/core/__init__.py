"""kfcli's library: a typed client for the WeCom KF API, plus config, token cache and errors.

    from kfcli.core import KfClient, NotFoundError

    client = KfClient(corp_id, secret)
    for account in client.iter_accounts():
        print(account.open_kfid, account.name)

Nothing here imports Typer or rich; `requests` is imported on the first request.
"""

from __future__ import annotations

from kfcli.core.client import KfClient, RetryPolicy, Timeout
from kfcli.core.config import ConfigFile, Settings, resolve
from kfcli.core.errors import (
    ERRCODES,
    ApiError,
    AuthError,
    CallbackError,
    ConfigError,
    KfError,
    NetworkError,
    NotFoundError,
    RateLimitError,
    SessionStateError,
    TokenError,
    UsageError,
    ValidationError,
)
from kfcli.core.models import Account, MediaUpload
from kfcli.core.tokens import TokenCache

__all__ = [
    "ERRCODES",
    "Account",
    "ApiError",
    "AuthError",
    "CallbackError",
    "ConfigError",
    "ConfigFile",
    "KfClient",
    "KfError",
    "MediaUpload",
    "NetworkError",
    "NotFoundError",
    "RateLimitError",
    "RetryPolicy",
    "SessionStateError",
    "Settings",
    "Timeout",
    "TokenCache",
    "TokenError",
    "UsageError",
    "ValidationError",
    "resolve",
]
