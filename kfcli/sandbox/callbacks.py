"""Encrypted ``kf_msg_or_event`` callbacks to the URL set with POST /sandbox/callback.

Hook only for now: firing callbacks (kf-api.md §4.3; encrypt with §4.4, retry 3 times with
a 5 s timeout) arrives in a later issue. Everything that creates messages a client should
hear about calls `notify_new_messages` after its transaction has committed, so the
implementation only has to fill in this function.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .server import SandboxServer


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
