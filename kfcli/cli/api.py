"""`kfcli api`: an authenticated raw call, for anything the other commands do not cover."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer

from kfcli.cli.context import new_app, state, with_output
from kfcli.core import messages
from kfcli.core.errors import UsageError, ValidationError

METHODS = ("GET", "POST")

app = new_app("", group=False)


@app.command("api", epilog="""Examples:

  kfcli api POST /cgi-bin/kf/account/list -F offset=0 -F limit=10

  kfcli api GET kf/servicer/list -f open_kfid=wkAbC123

  echo '{"open_kfid": "wkAbC123"}' | \\
      kfcli api POST /cgi-bin/kf/add_contact_way --input -

  kfcli api GET /cgi-bin/media/get -f media_id=MEDIA_ID -O photo.jpg

PATH may leave out the leading /cgi-bin/ (kf/account/list). -f sends its value as a string;
-F sends it as JSON when it is a JSON value (10, true, null, "x", [..], {..}) and as a string
otherwise (wkAbC123); a value that starts like an array or object but is not valid JSON is
refused rather than sent as a string. The token is only ever sent to the configured base
URL: absolute URLs to other hosts are refused. A binary answer (a media download) needs -O
FILE; `kfcli media get` does the same with checks. API errors exit with the usual codes (see
`kfcli --help`).""")
@with_output
def api(
    method: Annotated[str, typer.Argument(metavar="METHOD", help="GET or POST.")],
    path: Annotated[str, typer.Argument(metavar="PATH",
                                        help="API path, e.g. /cgi-bin/kf/account/list.")],
    field: Annotated[list[str] | None, typer.Option(
        "-f", "--field", help="key=value as a string (query parameter for GET, body field for "
        "POST; repeatable).", show_default=False)] = None,
    typed: Annotated[list[str] | None, typer.Option(
        "-F", "--typed-field", help="key=value as JSON when it is JSON (limit=10, flag=true), "
        "else as a string, as gh api -F does (repeatable).",
        show_default=False)] = None,
    input_: Annotated[str | None, typer.Option(
        "--input", help="Request body: a JSON FILE or - for stdin.", show_default=False)
    ] = None,
    output_file: Annotated[str | None, typer.Option(
        "-O", "--output-file", help="Write the answer to FILE ('-' for stdout): needed for "
        "binary answers such as /cgi-bin/media/get's.", show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing -O file.")
                     ] = False,
) -> None:
    """Call any WeCom API path with the access token added; prints the JSON response."""
    method = method.upper()
    if method not in METHODS:
        raise UsageError(f"method {method!r}: use GET or POST")
    path = _path(path)
    target = _output_file(output_file, force)
    if target is None and path in BINARY_PATHS:
        raise UsageError(f"{path} answers with a file's bytes: add -O FILE (or - for a pipe)",
                         hint="`kfcli media get MEDIA_ID -O FILE` downloads media with checks")
    values: dict[str, Any] = {}
    for item in field or []:
        key, value = _pair(item, "-f")
        values[key] = value
    for item in typed or []:
        key, value = _pair(item, "-F")
        values[key] = _typed(key, value)
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
    # Only with -O is a non-JSON answer expected (raw): otherwise it means a wrong base_url.
    answer = state().client().call(method, path, body, params=params,
                                   retry_safe=method == "GET", raw=target is not None)
    if target is None:
        state().out.document(answer)
    elif isinstance(answer, dict):
        from kfcli.core import jsontext

        _write(target, (jsontext.dumps(answer, indent=2) + "\n").encode(), "application/json")
    else:
        _write(target, answer.body, answer.content_type)

#: Paths whose successful answer is a file, not JSON.
BINARY_PATHS = ("/cgi-bin/media/get", "/cgi-bin/media/get/jssdk")


def _output_file(value: str | None, force: bool) -> Path | str | None:
    """The -O target, checked before anything is sent."""
    if value is None:
        return None
    if value == "-":
        if state().env.stdout_isatty:
            raise UsageError("-O -: refusing to write an answer's bytes to a terminal; "
                             "use a pipe or -O FILE")
        return "-"
    from kfcli.core.files import check_output

    target = Path(value)
    check_output(target, force=force)
    return target


def _write(target: Path | str, data: bytes, content_type: str) -> None:
    out = state().out
    if target == "-":
        out.binary(data)
        return
    from kfcli.core.files import write_atomic

    try:
        write_atomic(Path(target), data, mode=0o600)
    except OSError as exc:
        raise UsageError(f"-O: cannot write {target} ({exc.strerror})") from None
    out.done({"path": str(target), "bytes": len(data), "content_type": content_type},
             f"wrote {len(data)} bytes ({content_type or 'unknown type'}) to {target}")


def _typed(key: str, value: str) -> Any:
    """An -F value: JSON when it is JSON, else the string itself (gh api -F); a broken array or
    object is refused, since sending it as a string would hide the mistake."""
    try:
        return json.loads(value)
    except RecursionError:  # nested too deeply to be meant
        raise ValidationError("-F", f"{key}: {value[:40]!r}… is not a JSON value "
                              "(nested too deeply)") from None
    except ValueError as exc:
        if value.lstrip().startswith(("[", "{")):
            raise ValidationError("-F", f"{key}: {value[:60]!r} is not a JSON value ({exc})",
                                  hint="-f key=value sends a string as it is") from None
        return value


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
        # `cgi-bin/kf/account/list` and `kf/account/list` both mean /cgi-bin/kf/account/list.
        value = "/" + value if value.startswith("cgi-bin/") else "/cgi-bin/" + value
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
