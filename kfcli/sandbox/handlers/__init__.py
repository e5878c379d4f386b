"""WeCom API handlers, one module per API area; importing this package registers them.

Each handler takes a `Request`, applies the rules from `rules`, touches the database through
`Request.db` and returns the response fields (without errcode/errmsg), or a `RawResponse`.
Areas: token, account (+ contact way), servicer, session (service_state), send (send_msg,
send_msg_on_event), sync (sync_msg), customer (+ upgrade service), corp, stats, knowledge,
media (upload, get).
"""

from __future__ import annotations

from . import (  # noqa: F401
    account,
    corp,
    customer,
    knowledge,
    media,
    send,
    servicer,
    session,
    stats,
    sync,
    token,
)
