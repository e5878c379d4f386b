"""The WeCom callback receiver: a WSGI application built on `kfcli.core.crypto`.

`kfcli callback serve` runs it on the standard library's server. Any WSGI server can run it
too, through the factory that reads the same settings as kfcli (KFCLI_TOKEN, KFCLI_AES_KEY,
KFCLI_CORP_ID, then the profile):

    gunicorn --workers 1 --threads 8 -b 0.0.0.0:8000 'kfcli.callback:app_from_env()'
    gunicorn --workers 1 --threads 8 -b 0.0.0.0:8000 'kfcli.callback:app_from_env(sync=True)'

or from code:

    from kfcli.callback import Dispatcher, make_app
    app = make_app(token, aes_key, corp_id, on_event=Dispatcher(my_handler))

Records written by the default handler are described in `kfcli.callback.worker`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from kfcli.callback.app import MAX_BODY, CallbackApp, make_app
from kfcli.callback.worker import CallbackHandler, Dispatcher

__all__ = [
    "MAX_BODY",
    "CallbackApp",
    "CallbackHandler",
    "Dispatcher",
    "app_from_env",
    "make_app",
]


def app_from_env(*, sync: bool = False, open_kfids: Collection[str] | None = None,
                 profile: str | None = None,
                 emit: Callable[[dict[str, Any]], None] | None = None) -> CallbackApp:
    """A ready receiver configured like the CLI (env vars > profile): every callback (and with
    `sync=True` every message pulled with sync_msg, which needs KFCLI_SECRET too) is written as
    one JSON line to stdout, or passed to `emit`.

    With `sync=True` run a single worker process (`--workers 1 --threads N`): cursors are kept
    in memory per process, so several processes would each pull the same messages.
    """
    from kfcli.core.config import ENV_VARS, resolve
    from kfcli.core.errors import ConfigError
    from kfcli.core.redact import register_secret

    settings = resolve(profile=profile)
    missing = [k for k in ("token", "aes_key", "corp_id") if settings.get(k) is None]
    if missing:
        envs = ", ".join(ENV_VARS[k] for k in missing)
        raise ConfigError(f"callback receiver: {', '.join(missing)} not configured (set {envs})",
                          hint=f"set {envs} in the server's environment, or use a profile")
    token, aes_key = settings.get("token") or "", settings.get("aes_key") or ""
    register_secret(token)
    register_secret(aes_key)
    client = None
    if sync:
        from kfcli.core.client import KfClient

        client = KfClient.from_settings(settings)
    if emit is None:
        from kfcli.render import Output

        emit = Output("jsonl").line
    handler = CallbackHandler(emit, client=client, open_kfids=open_kfids)
    return make_app(token, aes_key, settings.get("corp_id") or "", on_event=Dispatcher(handler))
