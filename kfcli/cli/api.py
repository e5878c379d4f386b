"""`kfcli api`: an authenticated raw call, for anything the other commands do not cover."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer

from kfcli.cli.context import new_app, state, with_output
from kfcli.core import messages
from kfcli.core.errors import UsageError, ValidationError

METHODS = ("GET", "POST")

app = new_app("", group=False)


@app.command("api")
@with_output
def api(
    method: Annotated[str, typer.Argument(metavar="METHOD", help="GET or POST.")],
    path: Annotated[str, typer.Argument(metavar="PATH",
                                        help="API path, e.g. /cgi-bin/kf/account/list.")],
    field: Annotated[list[str] | None, typer.Option(
        "-f", "--field", help="key=value as a string (query parameter for GET, body field for "
        "POST; repeatable).", show_default=False)] = None,
    typed: Annotated[list[str] | None, typer.Option(
        "-F", "--typed-field", help="key=JSON value, e.g. limit=10 or flag=true (repeatable).",
        show_default=False)] = None,
    input_: Annotated[str | None, typer.Option(
        "--input", help="Request body: a JSON FILE or - for stdin.", show_default=False)
    ] = None,
) -> None:
    """Call any WeCom API path with the access token added; prints the JSON response.

    Examples:

      kfcli api POST /cgi-bin/kf/account/list -F offset=0 -F limit=10

      kfcli api GET /cgi-bin/kf/servicer/list -f open_kfid=wkAbC123

      echo '{"open_kfid": "wkAbC123"}' | kfcli api POST /cgi-bin/kf/add_contact_way --input -

    The token is only ever sent to the configured base URL: absolute URLs to other hosts are
    refused. API errors exit with the usual codes (see `kfcli --help`).
    """
    method = method.upper()
    if method not in METHODS:
        raise UsageError(f"method {method!r}: use GET or POST")
    path = _path(path)
    values: dict[str, Any] = {}
    for item in field or []:
        key, value = _pair(item, "-f")
        values[key] = value
    for item in typed or []:
        key, value = _pair(item, "-F")
        try:
            values[key] = json.loads(value)
        except ValueError:
            raise ValidationError("-F", f"{key}: {value!r} is not a JSON value") from None
    body: dict[str, Any] | None = None
    if input_ is not None:
        if method == "GET":
            raise UsageError("--input is for POST bodies")
        body = messages.load_json(input_ if input_ == "-" else "@" + input_, "--input")
        if not isinstance(body, dict):
            raise ValidationError("--input", "the body must be a JSON object")
    params = None
    if method == "GET":
        params = {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}
    else:
        body = {**(body or {}), **values}
    doc = state().client().call(method, path, body, params=params, retry_safe=method == "GET")
    state().out.document(doc)


def _path(value: str) -> str:
    if any(c <= " " or c == "\x7f" for c in value):
        raise UsageError("PATH contains spaces or control characters; percent-encode them")
    if "://" in value:
        parts = urlsplit(value)
        base = urlsplit(state().settings().base_url)
        if (parts.scheme, parts.netloc) != (base.scheme, base.netloc):
            raise UsageError(f"refusing to send the access token to {parts.scheme}://"
                             f"{parts.netloc}: only the configured base URL {base.scheme}://"
                             f"{base.netloc} is allowed")
        value = parts.path + (f"?{parts.query}" if parts.query else "")
    if not value.startswith("/"):
        value = "/cgi-bin/" + value
    if "?" in value:
        raise UsageError("put query parameters in -f key=value, not in the path")
    if "access_token" in value:
        raise UsageError("the access token is added by kfcli; do not put one in the path")
    return value


def _pair(item: str, flag: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ValidationError(flag, f"{item!r} is not key=value")
    return key, value
