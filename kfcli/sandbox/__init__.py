"""kfcli's WeCom KF simulator: a real HTTP server on loopback with its state in SQLite.

Public API (DESIGN.md §8)::

    from kfcli.sandbox import start, SandboxServer

    srv = start(db_path)          # serves in a daemon thread; returns at once
    srv.base_url, srv.credentials
    srv.stop()

Layout: `server` (HTTP plumbing), `dispatch` (envelope, auth, faults, routing), `routing`
(router tables, request context), `handlers/` (WeCom endpoints by API area), `control`
(/sandbox/* endpoints), `rules` (WeCom's limits), `store` (schema, transactions, clock),
`customers` (what simulated customers do), `callbacks` (encrypted kf_msg_or_event callbacks),
`cipher` (the simulator's own callback encryption),
`faults`, `directory`, `ids`, `params`, `errors`.

The simulator deliberately shares no code with `kfcli.core`: it is an independent
implementation of WeCom's rules, so a validation bug in the client cannot hide behind the
same bug in the simulator.
"""

from __future__ import annotations

from .errors import WeComError
from .server import SandboxServer, start

__all__ = ["SandboxServer", "WeComError", "start"]
