"""WeCom API handlers, one module per API area; importing this package registers them.

Each handler takes a `Request`, applies the rules from `rules`, touches the database through
`Request.db` and returns the response fields (without errcode/errmsg). Later areas (servicer,
service_state, sync_msg, send_msg, customer, upgrade, stats, knowledge, media/get) are added
as further modules here and imported below.
"""

from __future__ import annotations

from . import account, media, token  # noqa: F401
