"""The WeCom callback receiver: a WSGI application built on `kfcli.core.crypto`.

`kfcli callback serve` runs it on the standard library's server. Any WSGI server can run it
too, through the factory that reads the same settings as kfcli (KFCLI_TOKEN, KFCLI_AES_KEY,
KFCLI_CORP_ID, then the profile):

    gunicorn --workers 4 -b 0.0.0.0:8000 'kfcli.callback:app_from_env()'
    gunicorn --workers 4 -b 0.0.0.0:8000 'kfcli.callback:app_from_env(sync=True)'

With `sync=True` the cursors, pending pulls and what is still to be written live in the
message store (KFCLI_STORE; default SQLite in the user state dir, or PostgreSQL shared between
hosts), so any number of workers and hosts may run it: each message is emitted once, by the
worker whose transaction stored it.

or from code:

    from kfcli.callback import Dispatcher, make_app
    app = make_app(token, aes_key, corp_id, on_event=Dispatcher(my_handler))

Records written by the default handler are described in `kfcli.callback.worker`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from kfcli.callback.app import MAX_BODY, CallbackApp, make_app
from kfcli.callback.worker import CATCH_UP, CallbackHandler, Dispatcher, LineWriter

__all__ = [
    "MAX_BODY",
    "CallbackApp",
    "CallbackHandler",
    "Dispatcher",
    "LineWriter",
    "app_from_env",
    "make_app",
]


def app_from_env(*, sync: bool = False, open_kfids: Collection[str] | None = None,
                 profile: str | None = None, history: bool = False, media: bool = True,
                 emit: Callable[[dict[str, Any]], None] | None = None) -> CallbackApp:
    """A ready receiver configured like the CLI (env vars > profile): every callback (and with
    `sync=True` every message pulled with sync_msg, which needs KFCLI_SECRET too) is written as
    one JSON line to stdout, or passed to `emit`.

    With `sync=True` messages are pulled into the message store (KFCLI_STORE or the profile's
    `store`); any number of worker processes and hosts sharing the store emit each message
    once. On start it catches up on every account the store has a cursor for. `history`: on an
    account's first pull, emit what WeCom still keeps from before its first callback too.
    `media`: after each pull, fetch the media of new messages into the store's archive.
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
    client = store = None
    if sync:
        from kfcli.core.client import KfClient
        from kfcli.core.store import open_store

        client = KfClient.from_settings(settings)
        store = open_store(settings=settings)
    if emit is None:
        emit = LineWriter()
    handler = CallbackHandler(emit, client=client, store=store, open_kfids=open_kfids,
                              history=history, media=media)
    dispatcher = Dispatcher(handler, before=handler.record)
    handler.requeue = dispatcher.put
    if sync:
        dispatcher.put({"type": CATCH_UP})
    return make_app(token, aes_key, settings.get("corp_id") or "", on_event=dispatcher)
