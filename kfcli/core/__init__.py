"""kfcli's library: a typed client for the WeCom KF API, plus config, token cache and errors.

    from kfcli.core import KfClient, NotFoundError

    client = KfClient(corp_id, secret)
    for account in client.iter_accounts():
        print(account.open_kfid, account.name)

The message store (`kfcli.core.store`: SQLite by default, PostgreSQL shared between hosts)
holds what was pulled; `open_store()` opens the configured one. The message engine is here
too: `PullLoop` (pull accounts into the store exactly once), `Consumer` (read it by name,
with acknowledgement), `Replier` and `BatchSender` (replies that never go out twice); see
the README's "kfcli from Python" and examples/library_bot.py.

Nothing here imports Typer or rich; HTTP (urllib3), SQLite and psycopg are imported on
first use.
"""

from __future__ import annotations

import importlib
from typing import Any

# Names are imported on first use (PEP 562), so that `from kfcli.core.errors import …` in the
# CLI does not pay for the whole library at start-up.
_EXPORTS = {
    "KfClient": "client",
    "open_store": "store",
    "RetryPolicy": "client",
    "Timeout": "client",
    "ConfigFile": "config",
    "Settings": "config",
    "resolve": "config",
    "ERRCODES": "errors",
    "ApiError": "errors",
    "AuthError": "errors",
    "CallbackError": "errors",
    "ConfigError": "errors",
    "KfError": "errors",
    "NetworkError": "errors",
    "NotFoundError": "errors",
    "RateLimitError": "errors",
    "ResponseError": "errors",
    "Interrupted": "errors",
    "EnvironmentProblem": "errors",
    "SessionStateError": "errors",
    "TokenError": "errors",
    "UsageError": "errors",
    "ValidationError": "errors",
    "Account": "models",
    "MediaUpload": "models",
    "SendResult": "models",
    "TokenCache": "tokens",
    "WeComCrypto": "crypto",
    "MessageStream": "sync",
    "Message": "sync",
    "Consumer": "consume",
    "ConsumerRunning": "errors",
    "NotFound": "errors",
    "Replier": "batch",
    "Outcome": "batch",
    "BatchSender": "batch",
    "SendRecorder": "sends",
    "PullLoop": "pull",
    "Puller": "pull",
}


def __getattr__(name: str) -> Any:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'kfcli.core' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"kfcli.core.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


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
    "ResponseError",
    "Interrupted",
    "EnvironmentProblem",
    "RetryPolicy",
    "SendResult",
    "SessionStateError",
    "Settings",
    "Timeout",
    "TokenCache",
    "TokenError",
    "UsageError",
    "ValidationError",
    "WeComCrypto",
    "MessageStream",
    "Message",
    "open_store",
    "resolve",
    "BatchSender",
    "Consumer",
    "ConsumerRunning",
    "NotFound",
    "Outcome",
    "PullLoop",
    "Puller",
    "Replier",
    "SendRecorder",
]
