"""From a parsed HTTP request to a response: faults, stats, routing, auth, JSON, errors.

This is the framework part of the simulator. It knows WeCom's envelope rules (HTTP 200 with
``errcode``/``errmsg`` for every API outcome, access-token checks, method checks, the
wrong-JSON error) but nothing about individual endpoints, which live in `handlers`.
"""

from __future__ import annotations

import json
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from . import control, handlers  # noqa: F401  (importing registers the routes)
from .errors import ControlError, WeComError, decorate_errmsg
from .routing import API, CONTROL, JSON_TYPE, RawResponse, Request, Route

if TYPE_CHECKING:
    from email.message import Message

    from .server import SandboxServer

__all__ = ["JSON_TYPE", "Response", "handle", "json_response"]


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = JSON_TYPE
    headers: list[tuple[str, str]] = field(default_factory=list)
    disconnect: bool = False  # drop the connection without answering (the disconnect fault)


def json_response(payload: dict[str, Any], status: int = 200) -> Response:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(status=status, body=body)


class RequestStats:
    """Requests received per API path since this server process started (/sandbox/stats)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def count(self, path: str) -> None:
        with self._lock:
            self._counts[path] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    # API requests being handled right now (a stalled one included): a test waits for 0
    # instead of guessing how long the server takes.
    in_flight = 0

    def begin(self) -> None:
        with self._lock:
            self.in_flight += 1

    def end(self) -> None:
        with self._lock:
            self.in_flight -= 1


def handle(
    server: SandboxServer,
    method: str,
    target: str,
    headers: Message,
    raw_body: bytes,
    client_ip: str,
) -> Response:
    url = urlsplit(target)
    # Later duplicates win, as in most web stacks; blank values are kept so that
    # "?access_token=" is "given but empty" rather than absent (both are 41001 anyway).
    query = dict(parse_qsl(url.query, keep_blank_values=True))
    request = Request(method, url.path, query, headers, raw_body, client_ip, server)
    if url.path.startswith("/cgi-bin/"):
        server.stats.begin()
        try:
            return _handle_api(request)
        finally:
            server.stats.end()
    if url.path.startswith("/sandbox/"):
        return _handle_control(request)
    return _not_found(url.path)


# --- WeCom API ----------------------------------------------------------------------------


def _handle_api(request: Request) -> Response:
    server = request.server
    server.stats.count(request.path)
    for seconds in server.faults.take_delays(request.path):
        time.sleep(seconds)
    fault = server.faults.take(request.path)
    # errcode / http_status faults fail before the request takes effect (DESIGN.md §8).
    if fault is not None and fault.fault == "errcode":
        return _wecom_error(request, WeComError(int(fault.errcode or -1)))
    if fault is not None and fault.fault == "http_status":
        status = int(fault.status or 500)
        # What a gateway in front of WeCom sends: an HTML page, not the JSON envelope.
        page = f"<html><body><h1>{status}</h1>sandbox injected HTTP error</body></html>"
        return Response(status=status, body=page.encode(), content_type="text/html")

    response = _run_api(request)
    if fault is not None and fault.fault == "disconnect":
        # The request has taken effect (committed); the caller never hears about it.
        return Response(disconnect=True)
    return response


def _run_api(request: Request) -> Response:
    routes = API.lookup(request.path)
    if routes is None:
        return _not_found(request.path)
    route = routes.get(request.method)
    if route is None:
        # 43001 "require GET method" / 43002 "require POST method" (global error page).
        return _wecom_error(request, WeComError(43001 if "GET" in routes else 43002))
    try:
        if route.auth:
            _authenticate(request)
        request.body = _json_body(request, route)
        result = route.handler(request)
    except WeComError as exc:
        return _wecom_error(request, exc)
    except Exception:  # a simulator bug: answer as WeCom does when it fails internally
        server = request.server
        (server.log or _stderr)(traceback.format_exc())
        return _wecom_error(request, WeComError(-1))
    if isinstance(result, RawResponse):
        return Response(result.status, result.body, result.content_type, list(result.headers))
    return json_response({"errcode": 0, "errmsg": "ok", **result})


def _authenticate(request: Request) -> None:
    token = request.query.get("access_token", "")
    if not token:
        raise WeComError(41001)
    row = (
        request.db.conn()
        .execute("SELECT expires_at FROM access_tokens WHERE token = ?", (token,))
        .fetchone()
    )
    if row is None:  # never issued, or invalidated by the expire_tokens fault
        raise WeComError(40014)
    if row[0] <= request.now:
        raise WeComError(42001)
    request.corp_id = request.server.credentials["corp_id"]


def _json_body(request: Request, route: Route) -> dict[str, Any]:
    if route.body != "json" or request.method != "POST":
        return {}
    if not request.raw_body.strip():
        # Some SDKs POST nothing at all to account/list (kf-api.md §2.2, `PW`); treat it as {}.
        return {}
    try:
        body = json.loads(request.raw_body)
    except (ValueError, UnicodeDecodeError):
        raise WeComError(47001) from None
    if not isinstance(body, dict):
        raise WeComError(47001)
    return body


def _wecom_error(request: Request, exc: WeComError) -> Response:
    errmsg = decorate_errmsg(exc.errcode, exc.text, request.client_ip)
    return json_response({"errcode": exc.errcode, "errmsg": errmsg})


def _not_found(path: str) -> Response:
    return json_response({"errcode": 404, "errmsg": f"sandbox: no such API path {path}"}, 404)


# --- control endpoints --------------------------------------------------------------------


def _handle_control(request: Request) -> Response:
    routes = CONTROL.lookup(request.path)
    if routes is None:
        return json_response(
            {"errcode": 404, "errmsg": f"sandbox: no such control path {request.path}"}, 404
        )
    route = routes.get(request.method)
    if route is None:
        allowed = ", ".join(sorted(routes))
        response = json_response(
            {"errcode": 405, "errmsg": f"sandbox: {request.path} accepts {allowed}"}, 405
        )
        response.headers.append(("Allow", allowed))
        return response
    try:
        if request.method == "POST" and request.raw_body.strip():
            try:
                body = json.loads(request.raw_body)
            except (ValueError, UnicodeDecodeError):
                raise ControlError("body is not valid JSON") from None
            if not isinstance(body, dict):
                raise ControlError("body must be a JSON object")
            request.body = body
        return json_response(route.handler(request))
    except ControlError as exc:
        return json_response({"errcode": exc.errcode, "errmsg": exc.message}, exc.status)


def _stderr(text: str) -> None:
    import sys

    sys.stderr.write(text if text.endswith("\n") else text + "\n")
