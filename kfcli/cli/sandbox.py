"""`kfcli sandbox`: run the WeCom KF simulator and drive its control endpoints.

`serve` runs a standalone simulator; the other commands talk to the simulator at the resolved
base URL (`--sandbox` for the embedded one, or KFCLI_BASE_URL / a profile's base_url).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from kfcli.cli.context import YesOpt, confirm, new_app, state, with_output
from kfcli.core.config import DEFAULT_BASE_URL
from kfcli.core.errors import KfError, NetworkError, UsageError

app = new_app("The local WeCom KF simulator: serve it, make customers talk, inject faults.")

FAULTS = ("errcode", "http_status", "disconnect", "delay", "expire_tokens")


@app.command("serve", epilog="""Examples:

  kfcli sandbox serve --port 8765

  kfcli sandbox serve --db /tmp/kf.db --token-ttl 60

Then point kfcli at it:

  export KFCLI_BASE_URL=http://127.0.0.1:8765 KFCLI_CORP_ID=… KFCLI_SECRET=…

The first line on stdout is JSON: {"base_url", "corp_id", "secret", "token", "aes_key"}.""")
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port (0 picks a free one).")] = 8765,
    db: Annotated[Path | None, typer.Option(
        "--db", help="SQLite file for the state (default: the one --sandbox uses).",
        show_default=False, dir_okay=False)] = None,
    token_ttl: Annotated[int, typer.Option(
        "--token-ttl", help="Seconds an access token lives.", min=1)] = 7200,
) -> None:
    """Serve the simulator in the foreground until interrupted."""
    from kfcli.core import paths
    from kfcli.sandbox import SandboxServer

    if not 0 <= port <= 65535:
        raise UsageError(f"--port: {port} is out of range 0..65535")
    try:
        server = SandboxServer(db or paths.sandbox_db(), host, port, token_ttl)
    except OSError as exc:
        raise NetworkError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    out = state().out
    out.line({"base_url": server.base_url, **server.credentials})
    out.info(f"sandbox listening on {server.base_url} (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        out.info("sandbox stopped")
    finally:
        server.stop()


def _control(method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    import json

    from kfcli import __version__
    from kfcli.core.http import Http, HttpError

    st = state()
    base = st.settings().base_url
    if base == DEFAULT_BASE_URL:
        raise UsageError(
            "sandbox commands need a simulator: use `kfcli --sandbox sandbox …` or set "
            "KFCLI_BASE_URL to a `kfcli sandbox serve` address"
        )
    data = json.dumps(body).encode() if body is not None else None
    if st.debug:
        st.trace(f"> {method} {base}{path} {data.decode() if data else ''}")
    http = Http(base, connect_timeout=5, read_timeout=60, user_agent=f"kfcli/{__version__}")
    try:
        resp = http.request(method, path, body=data,
                            headers={"Content-Type": "application/json"} if data else None)
    except HttpError as exc:
        raise NetworkError(f"sandbox at {base}: {exc.reason}") from None
    finally:
        http.close()
    try:
        doc = resp.json()
    except ValueError:
        raise NetworkError(f"{base}{path}: not a kfcli sandbox (HTTP {resp.status})") from None
    if resp.status >= 400 or doc.get("errcode", 0) != 0:
        raise KfError(f"sandbox refused: {doc.get('errmsg', resp.status)}")
    return doc


@app.command("say", epilog="""Examples:

  kfcli --sandbox sandbox say wkAbC123 "Hello, is anyone there?"

  kfcli --sandbox sandbox say wkAbC123 "again" --external-userid wmXyZ""")
@with_output
def say(
    open_kfid: Annotated[str, typer.Argument(help="The account the customer writes to.")],
    text: Annotated[str, typer.Argument(help="The customer's message.")],
    external_userid: Annotated[str | None, typer.Option(
        "--external-userid", help="The customer (default: a new one).", show_default=False)
    ] = None,
) -> None:
    """Make a simulated customer send a text message (opens the session and the 48 h window)."""
    body = {"open_kfid": open_kfid, "text": text}
    if external_userid:
        body["external_userid"] = external_userid
    doc = _control("POST", "/sandbox/customer_message", body)
    state().out.obj({"msgid": doc.get("msgid"), "external_userid": doc.get("external_userid")},
                    ["external_userid", "msgid"])


@app.command("seed", epilog="Example:\n\n  kfcli --sandbox sandbox seed wkAbC123 --count 5000")
@with_output
def seed(
    open_kfid: Annotated[str, typer.Argument(help="The account to fill.")],
    count: Annotated[int, typer.Option("--count", help="How many customer messages.",
                                       min=1, max=1_000_000)] = 100,
) -> None:
    """Add many customer messages at once (for trying `msg sync`)."""
    doc = _control("POST", "/sandbox/seed_messages", {"open_kfid": open_kfid, "count": count})
    state().out.obj({"count": doc.get("count", count)})


@app.command("fault", epilog="""Examples:

  kfcli sandbox fault errcode --errcode 45009 --path /cgi-bin/kf/account/list

  kfcli sandbox fault http_status --status 500 --times 2

  kfcli sandbox fault disconnect --path /cgi-bin/kf/send_msg

  kfcli sandbox fault expire_tokens

Needs a long-running simulator (`kfcli sandbox serve`): faults live in its memory.""")
@with_output
def fault(
    kind: Annotated[str, typer.Argument(help=f"One of: {', '.join(FAULTS)}.")],
    errcode: Annotated[int | None, typer.Option("--errcode", help="For errcode faults.",
                                                show_default=False)] = None,
    status: Annotated[int | None, typer.Option("--status", help="For http_status faults.",
                                               show_default=False)] = None,
    seconds: Annotated[float | None, typer.Option("--seconds", help="For delay faults.",
                                                  show_default=False)] = None,
    path: Annotated[str | None, typer.Option("--path", help="API path (default: any).",
                                             show_default=False)] = None,
    times: Annotated[int, typer.Option("--times", help="How many requests fail.", min=1)] = 1,
) -> None:
    """Make the next matching requests fail in a chosen way."""
    if kind not in FAULTS:
        raise UsageError(f"fault {kind!r} is not one of {', '.join(FAULTS)}")
    body: dict[str, Any] = {"fault": kind}
    if kind != "expire_tokens":
        body["times"] = times
        if path:
            body["path"] = path
    needs = {"errcode": ("errcode", errcode), "http_status": ("status", status),
             "delay": ("seconds", seconds)}
    if kind in needs:
        key, value = needs[kind]
        if value is None:
            raise UsageError(f"fault {kind} needs --{key}")
        body[key] = value
    _control("POST", "/sandbox/faults", body)
    state().out.obj(body)


@app.command("stats", epilog="Example:\n\n  kfcli sandbox stats -o json")
@with_output
def stats() -> None:
    """Requests the simulator has served, per API path."""
    doc = _control("GET", "/sandbox/stats")
    rows = [{"path": p, "requests": n} for p, n in sorted(doc.get("requests", {}).items())]
    out = state().out
    if out.machine:
        out.obj(doc.get("requests", {}))
    else:
        out.rows(rows, ["path", "requests"])


@app.command("reset", epilog="Example:\n\n  kfcli sandbox reset --yes")
@with_output
def reset(yes: YesOpt = False) -> None:
    """Delete the embedded simulator's state (accounts, messages, credentials)."""
    from kfcli.core import paths

    db = paths.sandbox_db()
    confirm(f"Delete the sandbox state in {db}?", yes=yes)
    removed = 0
    for suffix in ("", "-wal", "-shm"):
        target = db.with_name(db.name + suffix)
        if target.exists():
            target.unlink()
            removed += 1
    state().out.info(f"removed {db}" if removed else f"nothing to remove at {db}")
