"""`kfcli callback serve`: receive WeCom callbacks and stream them as JSON lines (DESIGN.md §7)."""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
from typing import Annotated

import typer

from kfcli.cli.context import new_app, state, with_output

app = new_app("Receive WeCom callbacks (kf_msg_or_event) and stream them as JSON lines.")


class _Stop(Exception):
    pass


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

  kfcli --sandbox callback serve --port 0 --sync

Needs the callback Token, the EncodingAESKey and the CorpID (KFCLI_TOKEN, KFCLI_AES_KEY,
KFCLI_CORP_ID or the profile); --sync also needs the secret. Put it behind your HTTPS
reverse proxy at the URL entered in WeCom's callback settings.

GET answers URL verification with the bare decrypted echostr. POST is verified, decrypted,
answered 200 "success" at once, and written to stdout by a worker thread, one JSON object per
line: {"type": "callback", "ToUserName", "CreateTime", "MsgType", "Event", "Token",
"OpenKfId"}; with --sync each message pulled with sync_msg follows as {"type": "message",
...the sync_msg message...}. Refusals: 403 bad signature, 413 body over 64 KiB, 400 malformed
or undecryptable, 503 queue full; each is logged on stderr.

With --sync, messages go into the message store (`kfcli store status`; KFCLI_STORE, default
SQLite in the user state dir) and only those new to it are written: on start the receiver
catches up on every account the store has a cursor for, so a receiver restarted after an
outage writes what arrived meanwhile, once. Cursors live in the store, not in the process.

Any WSGI server can run the same receiver (configured from the same env vars / profile), with
any number of worker processes; several hosts share a PostgreSQL store
(KFCLI_STORE=postgresql://kfcli@db.internal:5432/kfcli): each message is written once, by the
worker that stored it.

  gunicorn -w 4 -b 0.0.0.0:8000 'kfcli.callback:app_from_env()'

  gunicorn -w 4 -b 0.0.0.0:8000 'kfcli.callback:app_from_env(sync=True)'

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
    corp_id: Annotated[str | None, typer.Option(
        "--corp-id", help="Receive id: the CorpID for KF. [env: KFCLI_CORP_ID]",
        show_default=False)] = None,
    access_log: Annotated[bool, typer.Option(
        "--access-log", help="Log every request on stderr.")] = False,
) -> None:
    """Run a callback receiver: answer WeCom, print each callback as a JSON line."""
    from kfcli.cli.callback_verify import credentials
    from kfcli.core import limits

    for kfid in open_kfid or ():
        limits.check_open_kfid(kfid)
    if no_media and not sync:
        from kfcli.core.errors import UsageError

        raise UsageError("--no-media goes with --sync (without it nothing is pulled or "
                         "archived)")
    # Secrets only from the environment or the profile: a long-running process would show
    # flags to every user of the machine (ps) for as long as it runs.
    creds = credentials(corp_id=corp_id, options=("corp_id",))
    st = state()
    client = st.client() if sync else None  # fails now (exit 3) when the secret is missing

    from kfcli.callback import CallbackHandler, Dispatcher, make_app
    from kfcli.callback.server import make_server, url_of

    out = st.out
    reader_gone = threading.Event()

    def emit(record: dict) -> None:
        if reader_gone.is_set():
            return
        try:
            out.line(record)
        except BrokenPipeError:
            # The reader went away (`… | head`): stop rather than acknowledge callbacks that
            # nobody will see; WeCom retries what it cannot deliver.
            reader_gone.set()
            _silence_stdout()
            out.warning("stdout closed; stopping")
            threading.Thread(target=server.shutdown, daemon=True).start()

    store = None
    if sync:
        from kfcli.core.store import open_store

        store = open_store(settings=st.settings())  # a broken store fails now (exit 3/6)
    handler = CallbackHandler(emit, client=client, store=store, open_kfids=open_kfid,
                              log=out.warning, history=history, media=not no_media)
    dispatcher = Dispatcher(handler, log=out.warning, before=handler.record)
    handler.requeue = dispatcher.put
    wsgi = make_app(creds.token, creds.aes_key, creds.receive_id, on_event=dispatcher,
                    log=out.warning)
    try:
        server = make_server(host, port, wsgi, access_log=out.info if access_log else None,
                             log=out.warning)
    except OSError as exc:
        raise listen_failed(host, port, exc) from None
    out.info(f"listening on {url_of(server)} (receive id {creds.receive_id!r}; "
             f"{'callbacks and messages' if sync else 'callbacks'} as JSON lines on stdout)")
    if sync:
        from kfcli.callback.worker import CATCH_UP

        dispatcher.put({"type": CATCH_UP})
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever(poll_interval=0.2)
    except _Stop:
        pass  # SIGTERM: a normal stop (exit 0) after the queue is written out
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.server_close()
        dispatcher.close()
        if store is not None:
            store.close()
