"""Encrypted ``kf_msg_or_event`` callbacks to the URL set with POST /sandbox/callback.

Hook only for now: firing callbacks (kf-api.md §4.3; encrypt with §4.4, retry 3 times with
a 5 s timeout) arrives in a later issue. Everything that creates messages a client should
hear about calls `notify_new_messages` after its transaction has committed, so the
implementation only has to fill in this function.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import ids, rules

if TYPE_CHECKING:
    from .server import SandboxServer
    from .store import Tx


def callback_config(server: SandboxServer) -> dict[str, str] | None:
    """The stored callback target, or None when none is configured."""
    db = server.store
    url = db.meta("callback_url")
    if not url:
        return None
    return {
        "url": url,
        "token": db.meta("callback_token") or "",
        "aes_key": db.meta("callback_aes_key") or "",
    }


def notify_new_messages(server: SandboxServer, open_kfid: str) -> None:
    """New messages are waiting for ``open_kfid``: fire the callback (not yet implemented).

    Must not block the request that triggered it: the real implementation should issue a
    sync_msg token into ``sync_tokens`` and post the encrypted callback from a worker thread.
    """
    return None


def issue_sync_token(db: Tx, open_kfid: str, now: int) -> str:
    """A callback ``Token`` for ``open_kfid``, accepted by sync_msg for 10 minutes (§2.5).

    The control endpoints that create messages issue one and return it, so that callers can
    pass a valid ``token`` to sync_msg before callbacks are delivered.
    """
    token = ids.sync_token()
    db.execute("DELETE FROM sync_tokens WHERE expires_at <= ?", (now,))
    db.execute(
        "INSERT INTO sync_tokens (token, open_kfid, expires_at) VALUES (?, ?, ?)",
        (token, open_kfid, now + rules.SYNC_TOKEN_TTL),
    )
    return token
