"""The WeCom callback receiver: a WSGI application built on `kfcli.core.crypto`.

`kfcli callback serve` runs it on the standard library's server. Any WSGI server can run it
too, through the factory that reads the same settings as kfcli (KFCLI_TOKEN, KFCLI_AES_KEY,
KFCLI_CORP_ID, then the profile):

    gunicorn -k gthread --threads 8 --workers 4 -b 0.0.0.0:8000 'kfcli.callback:app_from_env()'
    gunicorn -k gthread --threads 8 --workers 4 -b 0.0.0.0:8000 \\
        'kfcli.callback:app_from_env(sync=True)'

(threaded workers: a slow client holds one thread, not a whole worker). /healthz, /readyz and
/metrics are served on the same port; the log is the `kfcli.callback` logger
(`kfcli.callback.logs`).

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

from collections.abc import Callable, Collection, Mapping
from typing import Any

from kfcli.callback.app import MAX_BODY, MAX_SKEW, CallbackApp, Duplicate, Unavailable, make_app
from kfcli.callback.logs import DEFAULT_TRUSTED
from kfcli.callback.worker import CallbackHandler, Dispatcher, Emitter, LineWriter

__all__ = [
    "MAX_BODY",
    "MAX_SKEW",
    "CallbackApp",
    "CallbackHandler",
    "Dispatcher",
    "Duplicate",
    "Emitter",
    "LineWriter",
    "Unavailable",
    "app_from_env",
    "make_app",
]


def app_from_env(*, sync: bool = False, open_kfids: Collection[str] | None = None,
                 profile: str | None = None, history: bool = False, media: bool = True,
                 emit: Callable[[dict[str, Any]], None] | None = None, no_emit: bool = False,
                 max_skew: int = MAX_SKEW, safety_pull: int | None = None,
                 trusted_proxies: Collection[str] = DEFAULT_TRUSTED,
                 log_format: str | None = None, log_level: str | None = None,
                 routes: Mapping[str, str] | None = None) -> Any:
    """A ready receiver configured like the CLI (env vars > profile): every callback (and with
    `sync=True` every message pulled with sync_msg, which needs KFCLI_SECRET too) is written as
    one JSON line to stdout, or passed to `emit`; `no_emit=True` writes nothing (consumers
    read the store, `msg history --consumer`).

    With `sync=True` messages are pulled into the message store (KFCLI_STORE or the profile's
    `store`); any number of worker processes and hosts sharing the store emit each message
    once. On start it catches up on every account the store has a cursor for. `history`: on an
    account's first pull, emit what WeCom still keeps from before its first callback too.
    `media`: after each pull, fetch the media of new messages into the store's archive.

    Operations (DESIGN.md §7): GET /healthz, /readyz and /metrics on the same port.
    `max_skew`: the freshness window for a callback's timestamp, in seconds (0: off).
    `safety_pull`: seconds between pulls of an account without a callback (default 300; 0:
    none). `trusted_proxies`: addresses or networks whose X-Forwarded-For names the client
    in the log. `log_format` (text, json) and `log_level` configure the `kfcli.callback`
    logger; left out, it logs text at info on stderr unless logging is configured already.

    Key rotation: the settings `token_previous` and `aes_key_previous` (KFCLI_TOKEN_PREVIOUS,
    KFCLI_AES_KEY_PREVIOUS) are accepted beside the current pair. Several corps: `routes`
    maps a path to a profile (`{"/corp-a": "a", "/corp-b": "b"}`): each profile's callbacks on
    its path, with its corp, secret, Token and key; other paths answer 404.
    """
    from kfcli.callback.logs import configure_default
    from kfcli.callback.receiver import SAFETY_PULL, from_settings, router_from_profiles
    from kfcli.core.config import resolve

    configure_default(log_format, log_level)
    if no_emit:
        emit = None
    elif emit is None:
        emit = LineWriter()
    options: dict[str, Any] = dict(
        open_kfids=open_kfids, history=history, media=media, max_skew=max_skew,
        safety=SAFETY_PULL if safety_pull is None else safety_pull,
        trusted_proxies=trusted_proxies)
    if routes:
        router = router_from_profiles(dict(routes), sync=sync, emit=emit, **options)
        router.start()
        return router
    receiver = from_settings(resolve(profile=profile), sync=sync, emit=emit, **options)
    receiver.start()
    app = receiver.app
    app.receiver = receiver  # type: ignore[attr-defined]
    return app
