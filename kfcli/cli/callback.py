"""`kfcli callback serve`: receive WeCom callbacks and stream them as JSON lines (DESIGN.md §7)."""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
from typing import Annotated, Any

import typer

from kfcli.cli.context import new_app, state, with_output

app = new_app("Receive WeCom callbacks (kf_msg_or_event) and stream them as JSON lines.")


class _Stop(BaseException):
    """SIGTERM, raised in the main thread wherever it is: a BaseException, so that no
    `except Exception` on the way (socketserver's handling of a request error, for one)
    swallows it and leaves the server running."""


def _silence_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _stop(*_args: object) -> None:
    raise _Stop


def listen_failed(host: str, port: int, exc: OSError):
    """The error for a port that cannot be listened on (in use, privileged, a foreign
    address): the local environment, exit 3, for `callback serve` and `sandbox serve` alike."""
    import errno

    from kfcli.core.errors import EnvironmentProblem

    hint = "pick another --port (--port 0 picks a free one)"
    if exc.errno == errno.EADDRINUSE:
        hint = "another process is listening there: stop it, or " + hint
    elif exc.errno == errno.EACCES:
        hint = "ports below 1024 need privileges: " + hint
    elif exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
        hint = "--host must be an address of this machine, e.g. 127.0.0.1 or 0.0.0.0"
    return EnvironmentProblem(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                              hint=hint)


@app.command("serve", epilog="""Examples:

  kfcli callback serve --port 8000

  kfcli callback serve --sync | jq -c 'select(.type == "message")'

  kfcli callback serve --sync --no-emit --log-format json

  kfcli --sandbox callback serve --port 0 --sync

Needs the callback Token, the EncodingAESKey and the CorpID (KFCLI_TOKEN, KFCLI_AES_KEY,
KFCLI_CORP_ID or the profile); --sync also needs the secret. Put it behind your HTTPS
reverse proxy at the URL entered in WeCom's callback settings.

GET answers URL verification with the bare decrypted echostr. POST is verified, decrypted,
answered 200 "success" at once, and written to stdout by a worker thread, one JSON object per
line: {"type": "callback", "ToUserName", "CreateTime", "MsgType", "Event", "Token",
"OpenKfId"}; with --sync each message pulled with sync_msg follows as {"type": "message",
...the sync_msg message...}. Refusals: 403 bad signature or a timestamp outside the
--max-skew window (a replay), 413 body over 64 KiB, 400 malformed or undecryptable, 503 the
store cannot take it now (WeCom retries); each is logged on stderr with its cause and the
client's address. A callback taken before within the window is answered "success" again and
nothing else happens.

Operations on the same port, never logged: GET /healthz (alive), GET /readyz (200 while the
store can be written and the worker runs, else 503 with the reason), GET /metrics
(Prometheus). Log lines carry time, level and pid (--log-format json: one object per line).

With --sync, messages go into the message store (`kfcli store status`; KFCLI_STORE, default
SQLite in the user state dir) and only those new to it are written: on start the receiver
catches up on every account the store has a cursor for, so a receiver restarted after an
outage writes what arrived meanwhile, once. Cursors live in the store, not in the process.
Storing never waits for stdout: a reader that stops reading delays only the writing, which
catches up from the store. Every --safety-pull seconds an account that no callback announced
is pulled anyway (a callback WeCom gave up on); resuming an account after more than 3 days
(WeCom's retention) is logged as a possible gap and shown by `kfcli store status`.

Several corps (or self-built apps) on one receiver: --route /corp-a=a --route /corp-b=b
serves each profile on its path (enter https://HOST/corp-a in corp a's callback settings).
Key rotation: the settings token_previous and aes_key_previous (KFCLI_TOKEN_PREVIOUS,
KFCLI_AES_KEY_PREVIOUS) are accepted beside the current pair while WeCom switches over.

Any WSGI server can run the same receiver (configured from the same env vars / profile), with
any number of worker processes; several hosts share a PostgreSQL store
(KFCLI_STORE=postgresql://kfcli@db.internal:5432/kfcli): each message is written once, by the
worker that stored it. Use threaded workers (a slow client then holds a thread, not a
worker), or a buffering proxy such as nginx in front:

  gunicorn -k gthread --threads 8 -w 4 -b 0.0.0.0:8000 \\
      'kfcli.callback:app_from_env(sync=True)'

Stdout is always JSON lines; -o json makes errors JSON objects on stderr too. A port that
cannot be listened on (in use, privileged, an address not of this machine) exits 3.""")
@with_output
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(
        "--port", min=0, max=65535, help="Port to listen on; 0 picks a free one (the URL is "
        "printed on stderr).")] = 8000,
    sync: Annotated[bool, typer.Option(
        "--sync", help="Also pull the announced messages with sync_msg into the message "
        "store and emit those new to it (needs the secret).")] = False,
    open_kfid: Annotated[list[str] | None, typer.Option(
        "--open-kfid", help="With --sync, pull only for this account (repeatable). Default: "
        "every account a callback names.", show_default=False)] = None,
    history: Annotated[bool, typer.Option(
        "--history", help="With --sync, also emit older messages on the first pull of an "
        "account the store has never pulled (WeCom keeps 3 days). Default: from the messages "
        "its first callback announces.")] = False,
    no_media: Annotated[bool, typer.Option(
        "--no-media", help="With --sync, do not fetch the media of new messages into the "
        "store's archive (`kfcli store media --retry` can, later).")] = False,
    no_emit: Annotated[bool, typer.Option(
        "--no-emit", help="With --sync, write nothing to stdout: consumers read the store "
        "(`kfcli msg history --consumer`).")] = False,
    max_skew: Annotated[int, typer.Option(
        "--max-skew", min=0, max=86400, metavar="SECONDS", help="Refuse callbacks whose "
        "timestamp is further than this from now (replays); 0 turns the check off.")] = 600,
    safety_pull: Annotated[int, typer.Option(
        "--safety-pull", min=0, max=86400, metavar="SECONDS", help="With --sync, pull an "
        "account no callback announced for this long; 0: never.")] = 300,
    trusted_proxy: Annotated[list[str] | None, typer.Option(
        "--trusted-proxy", metavar="CIDR", help="A proxy whose X-Forwarded-For names the "
        "client in the log (repeatable). Default: 127.0.0.1 and ::1.",
        show_default=False)] = None,
    log_format: Annotated[str, typer.Option(
        "--log-format", metavar="text|json", help="Log lines on stderr as text or JSON "
        "objects.")] = "text",
    log_level: Annotated[str, typer.Option(
        "--log-level", metavar="LEVEL", help="debug, info, warning or error.")] = "info",
    corp_id: Annotated[str | None, typer.Option(
        "--corp-id", help="Receive id: the CorpID for KF. [env: KFCLI_CORP_ID]",
        show_default=False)] = None,
    route: Annotated[list[str] | None, typer.Option(
        "--route", metavar="/PATH=PROFILE", help="Serve this profile's callbacks (its corp, "
        "secret, Token and key) on PATH; repeatable, for several corps or apps. Other paths "
        "answer 404.", show_default=False)] = None,
    access_log: Annotated[bool, typer.Option(
        "--access-log", help="Log every request on stderr (probes excepted).")] = False,
) -> None:
    """Run a callback receiver: answer WeCom, print each callback as a JSON line."""
    from kfcli.callback import logs
    from kfcli.callback.server import make_server, url_of

    trusted, routes = _check_serve(open_kfid, sync=sync, no_media=no_media, no_emit=no_emit,
                                   log_format=log_format, log_level=log_level,
                                   trusted_proxy=trusted_proxy, route=route, corp_id=corp_id)
    st = state()
    emit = _Emit(st.out)
    options = dict(open_kfids=open_kfid, history=history, media=not no_media,
                   max_skew=max_skew, safety=safety_pull, trusted_proxies=trusted)
    receiver, serving = _receiver(st, routes, corp_id, sync=sync,
                                  emit=None if no_emit else emit, options=options)
    logs.configure(log_format, log_level, stream=st.env.stderr)
    quiet = {"/healthz", "/readyz", "/metrics"}

    def access(line: str) -> None:
        if not any(f" {path} " in line or f" {path}?" in line for path in quiet):
            logs.log.info(line)

    try:
        server = make_server(host, port, receiver if routes else receiver.app,
                             access_log=access if access_log else None, log=logs.log.warning)
    except OSError as exc:
        raise listen_failed(host, port, exc) from None
    emit.server = server
    server.on_busy = lambda: receiver.metrics.inc("kfcli_callbacks", result="busy")
    # The first line, as scripts read it (the URL is its third word); log lines follow.
    st.out.info(f"listening on {url_of(server)} ({serving}; " + (
        "messages into the store, nothing on stdout)" if no_emit else
        "callbacks and messages as JSON lines on stdout)" if sync else
        "callbacks as JSON lines on stdout)"))
    _serve(server, receiver, routes)


def _check_serve(open_kfid, *, sync, no_media, no_emit, log_format, log_level, trusted_proxy,
                 route, corp_id) -> tuple[list[str], dict[str, str]]:
    """`callback serve`'s options checked together: (trusted proxies, routes)."""
    from kfcli.callback import logs
    from kfcli.callback import receiver as receivers
    from kfcli.core import limits
    from kfcli.core.errors import UsageError

    for kfid in open_kfid or ():
        limits.check_open_kfid(kfid)
    for flag, given in (("--no-media", no_media), ("--no-emit", no_emit)):
        if given and not sync:
            raise UsageError(f"{flag} goes with --sync (without it nothing is pulled or "
                             "stored)")
    if log_format not in logs.FORMATS:
        raise UsageError(f"--log-format must be text or json, not {log_format!r}")
    if log_level.lower() not in logs.LEVELS:
        raise UsageError(f"--log-level must be one of {', '.join(logs.LEVELS)}, not "
                         f"{log_level!r}")
    trusted = trusted_proxy if trusted_proxy is not None else list(logs.DEFAULT_TRUSTED)
    try:
        logs.parse_networks(trusted)
    except ValueError as exc:
        raise UsageError(f"--trusted-proxy: {exc}") from None
    try:
        routes = receivers.parse_routes(route or ())
    except ValueError as exc:
        raise UsageError(f"--route: {exc}") from None
    if routes and corp_id is not None:
        raise UsageError("--corp-id goes without --route (each route's profile names its corp)")
    return trusted, routes


class _Emit:
    """The receiver's stdout: one JSON line per record, from several emitter threads (one
    per route). A reader that went away (`… | head`) stops the server rather than have it
    acknowledge callbacks nobody will see; WeCom retries what it cannot deliver."""

    def __init__(self, out) -> None:
        self.out = out
        self.server = None
        self.gone = threading.Event()
        self.writing = threading.Lock()

    def __call__(self, record: dict) -> None:
        from kfcli.callback import logs

        if self.gone.is_set():
            return
        try:
            with self.writing:
                self.out.line(record)
        except BrokenPipeError:
            self.gone.set()
            _silence_stdout()
            logs.log.warning("stdout closed; stopping")
            if self.server is not None:
                threading.Thread(target=self.server.shutdown, daemon=True).start()


def _receiver(st, routes: dict[str, str], corp_id: str | None, *, sync: bool, emit,
              options: dict[str, Any]) -> tuple[Any, str]:
    """(the receiver, what it serves, for the first line)."""
    from kfcli.callback import receiver as receivers
    from kfcli.cli.callback_verify import credentials

    if routes:  # each profile's corp on its own path; no current profile needed
        router = receivers.router_from_profiles(routes, sync=sync, emit=emit, **options)
        return router, "routes " + ", ".join(f"{p} ({n})" for p, n in routes.items())
    # Secrets only from the environment or the profile: a long-running process would show
    # flags to every user of the machine (ps) for as long as it runs.
    creds = credentials(corp_id=corp_id, options=("corp_id",))
    client = st.client() if sync else None  # fails now (exit 3) without the secret
    store = None
    if sync:
        from kfcli.core.store import open_store

        store = open_store(settings=st.settings())  # a broken store fails now (exit 3/6)
    receiver = receivers.Receiver(
        creds.token, creds.aes_key, creds.receive_id, emit=emit, client=client, store=store,
        previous=receivers.previous_pair(st.settings()), **options)
    return receiver, f"receive id {creds.receive_id!r}"


def _serve(server, receiver, routes: dict[str, str]) -> None:
    """Serve until SIGTERM (exit 0 once the queue is written out) or Ctrl-C."""
    receiver.start()
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever(poll_interval=0.2)
    except _Stop:
        pass  # SIGTERM: a normal stop (exit 0) after the queue is written out
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.server_close()
        receiver.close()
        for one in (receiver.routes.values() if routes else [receiver]):
            if one.store is not None:
                one.store.close()
