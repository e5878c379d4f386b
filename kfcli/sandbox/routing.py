"""The router tables and the request context handed to every handler.

An API handler is a function ``(Request) -> dict`` registered with ``@API.route(method,
path)``; the framework (`dispatch`) adds ``errcode: 0`` / ``errmsg: "ok"`` to what it returns
and turns a raised `WeComError` into WeCom's error envelope. A handler that must control the
bytes of a successful answer returns a `RawResponse` instead. Control handlers register on
`CONTROL` and return their whole JSON answer. Adding an endpoint is one handler module entry:
no edits to the server.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from email.message import Message

    from .server import SandboxServer
    from .store import Store

JSON_TYPE = "application/json; charset=UTF-8"


@dataclass
class RawResponse:
    """What a handler returns instead of a dict to answer with exact bytes on success.

    media/get answers with the file itself, and sync_msg assembles its JSON from the stored
    message texts without parsing them again. Errors are still raised as `WeComError`.
    """

    body: bytes
    content_type: str = JSON_TYPE
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)


Handler = Callable[["Request"], "dict[str, Any] | RawResponse"]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    auth: bool = True  # requires ?access_token= (every /cgi-bin path except gettoken)
    body: str = "json"  # "json": POST body parsed as a JSON object; "raw": left to the handler


class Router:
    def __init__(self) -> None:
        self._routes: dict[str, dict[str, Route]] = {}

    def route(
        self, method: str, path: str, *, auth: bool = True, body: str = "json"
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            by_method = self._routes.setdefault(path, {})
            if method in by_method:
                raise ValueError(f"route registered twice: {method} {path}")
            by_method[method] = Route(method, path, handler, auth, body)
            return handler

        return register

    def lookup(self, path: str) -> dict[str, Route] | None:
        """The routes for ``path`` by HTTP method, or None for an unknown path."""
        return self._routes.get(path)

    def paths(self) -> list[str]:
        return sorted(self._routes)


API = Router()  # WeCom's /cgi-bin/... endpoints
CONTROL = Router()  # the sandbox's own /sandbox/... endpoints


@dataclass
class Request:
    """Everything a handler may look at. ``body`` is the parsed JSON object (POST) or {}."""

    method: str
    path: str
    query: dict[str, str]
    headers: Message
    raw_body: bytes
    client_ip: str
    server: SandboxServer
    body: dict[str, Any] = field(default_factory=dict)
    corp_id: str | None = None  # the caller's corp, set once the access token is accepted
    _now: float | None = None

    @property
    def db(self) -> Store:
        return self.server.store

    @property
    def now(self) -> float:
        """The simulator clock, read once per request so one request sees one instant."""
        if self._now is None:
            self._now = self.server.store.now()
        return self._now

    @property
    def now_int(self) -> int:
        return int(self.now)
