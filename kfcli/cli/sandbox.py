"""`kfcli sandbox`: run the WeCom KF simulator and drive its control endpoints.

`serve` runs a standalone simulator; the other commands talk to the simulator at the resolved
base URL (`--sandbox` for the embedded one, or KFCLI_BASE_URL / a profile's base_url).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer

from kfcli.cli.context import YesOpt, confirm, new_app, state, with_output
from kfcli.core.config import DEFAULT_BASE_URL
from kfcli.core.errors import EnvironmentProblem, KfError, NetworkError, UsageError

app = new_app("The local WeCom KF simulator: serve it, make customers and servicers act, "
              "inject faults.")

FAULTS = ("errcode", "http_status", "disconnect", "delay", "empty_page", "expire_tokens")
#: Faults that act on the database at once: the only ones the embedded simulator can fire.
LASTING_FAULTS = ("expire_tokens",)


@app.command("serve", epilog="""Examples:

  kfcli sandbox serve --port 8765

  kfcli sandbox serve --db /tmp/kf.db --token-ttl 60

Then point kfcli at it:

  export KFCLI_BASE_URL=http://127.0.0.1:8765 KFCLI_CORP_ID=… KFCLI_SECRET=…

The first line on stdout is JSON: {"base_url", "corp_id", "secret", "token", "aes_key"}
(always JSON; -o json makes errors JSON objects too). --db's directory must exist. A
port that cannot be listened on (in use, privileged, an address not of this machine) exits
3.""")
@with_output
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
    import sqlite3

    from kfcli.cli.callback import listen_failed
    from kfcli.core import paths
    from kfcli.sandbox import SandboxServer

    if not 0 <= port <= 65535:
        raise UsageError(f"--port: {port} is out of range 0..65535")
    if db is not None and not db.parent.is_dir():
        raise UsageError(f"--db: directory {db.parent} does not exist",
                         hint="create it first, or give a file in an existing directory")
    out = state().out
    if not is_loopback(host):
        out.warning(f"--host {host} reaches beyond this machine: anyone who can reach the "
                    "port can read the simulator's messages, drive it and point its "
                    "callbacks anywhere (its control endpoints have no authentication); "
                    "keep --host 127.0.0.1 unless other machines must reach it")
    path = db or paths.sandbox_db()
    try:
        server = SandboxServer(path, host, port, token_ttl)
    except sqlite3.DatabaseError as exc:
        raise EnvironmentProblem(f"--db: {path} is not a usable sandbox database ({exc})",
                                 hint="give another file, or remove this one") from None
    except OSError as exc:
        raise listen_failed(host, port, exc) from None
    out.line({"base_url": server.base_url, **server.credentials})
    out.info(f"sandbox listening on {server.base_url} (Ctrl-C to stop)")
    try:
        server.serve_forever()  # Ctrl-C: "interrupted", exit 130, as every command reports it
    finally:
        server.stop()


def is_loopback(host: str) -> bool:
    """Whether `host` (a --host value) is reachable from this machine only."""
    import ipaddress

    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to any address
        return False


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
    errcode = doc.get("errcode", 0)
    if resp.status >= 400 or errcode != 0:
        from kfcli.core.errors import ERRCODES, ApiError

        message = f"sandbox refused: {doc.get('errmsg', resp.status)}"
        info = ERRCODES.get(errcode) if isinstance(errcode, int) else None
        if info is not None and info.exc is not ApiError:  # 95004 unknown account: exit 4
            raise info.exc(errcode, str(doc.get("errmsg", "")), message=message)
        raise KfError(message)
    return doc


@app.command("say", epilog="""Examples:

  kfcli --sandbox sandbox say wkAbC123 "Hello, is anyone there?"

  kfcli --sandbox sandbox say wkAbC123 "again" --customer wmXyZ

  kfcli --sandbox sandbox say wkAbC123 --image photo.png --customer wmXyZ

  kfcli --sandbox sandbox say wkAbC123 --file 报价单.pdf -o json

Give TEXT or one of --image (JPG or PNG, up to 2 MB), --voice (AMR, up to 2 MB), --video
(MP4, up to 10 MB) or --file (anything, up to 20 MB): the sizes WeCom delivers from
customers. The message arrives in `kfcli msg sync` shaped as WeCom sends it (a media_id;
`kfcli media get MEDIA_ID -O FILE` downloads it, with the file's name). Like WeCom's, the
media expires 3 days later on the simulator's clock: `kfcli sandbox clock --advance 3d`.
Prints external_userid and msgid (-o json adds media_id for media).""")
@with_output
def say(
    open_kfid: Annotated[str, typer.Argument(help="The account the customer writes to.")],
    text: Annotated[str | None, typer.Argument(
        help="The customer's text message (or give a media option).", show_default=False)
    ] = None,
    image: Annotated[Path | None, typer.Option(
        "--image", help="Send this JPG or PNG file as an image message.", metavar="FILE",
        show_default=False)] = None,
    voice: Annotated[Path | None, typer.Option(
        "--voice", help="Send this AMR file as a voice message.", metavar="FILE",
        show_default=False)] = None,
    video: Annotated[Path | None, typer.Option(
        "--video", help="Send this MP4 file as a video message.", metavar="FILE",
        show_default=False)] = None,
    file: Annotated[Path | None, typer.Option(
        "--file", help="Send this file as a file message.", metavar="FILE",
        show_default=False)] = None,
    customer: Annotated[str | None, typer.Option(
        "--customer", "--external-userid", help="The customer's external_userid (default: "
        "a new customer).", metavar="EXTERNAL_USERID", show_default=False)] = None,
) -> None:
    """Make a simulated customer send a text, image, voice, video or file message."""
    media = {kind: path for kind, path in
             (("image", image), ("voice", voice), ("video", video), ("file", file))
             if path is not None}
    if (text is not None) + len(media) != 1:
        given = ["TEXT"] * (text is not None) + [f"--{kind}" for kind in media]
        raise UsageError(
            "give the message as TEXT or as one of --image, --voice, --video, --file"
            + (f" (not {' and '.join(given)})" if given else ""),
            hint="one message per command: `kfcli sandbox say OPEN_KFID --image photo.png`")
    body: dict[str, Any] = {"open_kfid": open_kfid}
    if customer:
        body["external_userid"] = customer
    if text is not None:
        if not text.strip():
            raise UsageError("TEXT is empty")
        body["text"] = text
    else:
        ((kind, path),) = media.items()
        body.update(msgtype=kind, filename=path.name, media_base64=_media_base64(kind, path))
    doc = _control("POST", "/sandbox/customer_message", body)
    result = {"external_userid": doc.get("external_userid"), "msgid": doc.get("msgid")}
    if doc.get("media_id"):
        result["media_id"] = doc["media_id"]
    state().out.obj(result, ["external_userid", "msgid"])


def _media_base64(kind: str, path: Path) -> str:
    """The file's bytes in base64, checked as the simulator will (exit 2 naming the file)."""
    import base64

    from kfcli.sandbox import rules

    option = f"--{kind} {path}"
    cap = rules.CUSTOMER_MEDIA_MAX_BYTES[kind]
    try:
        if not path.is_file():
            problem = "no such file" if not path.exists() else "not a regular file"
            raise UsageError(f"{option}: cannot read it ({problem})")
        size = path.stat().st_size
        if size > cap:  # refused before the file is read into memory
            raise UsageError(f"{option}: the file is {size / rules.MB:.1f} MB; WeCom delivers "
                             f"{kind} messages from customers up to {cap // rules.MB} MB")
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{option}: cannot read it ({exc.strerror or exc})") from None
    problem = rules.customer_media_problem(kind, data)
    if problem is not None:
        raise UsageError(f"{option}: {problem[1]}")
    return base64.b64encode(data).decode("ascii")


#: `sandbox clock --advance` units.
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION_RE = re.compile(r"(?:\d+[smhdw])+|\d+")
#: Ten years: far enough for any expiry rule, small enough to stay a sane date.
MAX_ADVANCE = 3650 * 86400


def parse_duration(value: str) -> int:
    """Seconds in `3d`, `72h`, `1d12h`, `90m` or plain `259200` (UsageError otherwise)."""
    text = value.strip().lower()
    if not _DURATION_RE.fullmatch(text):
        raise UsageError(f"--advance: {value!r} is not a duration (for example 3d, 72h, 90m, "
                         "1d12h or 259200 seconds)")
    if text.isdigit():
        seconds = int(text)
    else:
        seconds = sum(int(n) * _DURATION_UNITS[unit]
                      for n, unit in re.findall(r"(\d+)([smhdw])", text))
    if seconds > MAX_ADVANCE:
        raise UsageError(f"--advance: {value!r} is more than 3650 days")
    return seconds


@app.command("clock", epilog="""Examples:

  kfcli --sandbox sandbox clock

  kfcli --sandbox sandbox clock --advance 3d

  kfcli --sandbox sandbox clock --advance 72h -o json

The simulator's clock is the real one plus an offset that only moves forward. Everything
that expires follows it: access tokens (2 h), welcome codes (20 s), the 48 h reply window,
sessions, and media (3 days: after `--advance 3d`, `kfcli media get` of an earlier
media_id exits 4, as WeCom's 40007). Prints the simulated time, as unix seconds (now) and
local time (time), and the offset in seconds.""")
@with_output
def clock(
    advance: Annotated[str | None, typer.Option(
        "--advance", help="Move the clock forward: 3d, 72h, 90m, 1d12h or seconds.",
        metavar="DURATION", show_default=False)] = None,
) -> None:
    """Show the simulator's clock, or move it forward (to let tokens, windows, media expire)."""
    from datetime import datetime

    if advance is None:
        doc = _control("GET", "/sandbox/clock")
    else:
        doc = _control("POST", "/sandbox/clock", {"advance": parse_duration(advance)})
    now = int(doc.get("now", 0))
    offset = float(doc.get("offset", 0))
    state().out.obj({"time": datetime.fromtimestamp(now).astimezone().isoformat(), "now": now,
                     "offset": int(offset) if offset.is_integer() else offset},
                    ["time", "now", "offset"])


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


@app.command("enter", epilog="""Examples:

  kfcli --sandbox sandbox enter wkAbC123 --scene sale --scene-param order=42

  kfcli --sandbox msg sync wkAbC123   # enter_session, with a welcome_code

  kfcli --sandbox msg send-on-event WELCOME_CODE --text "欢迎光临"

What WeCom does when a customer opens a contact link (`kfcli link create`): an
enter_session event with the link's scene and scene_param, and a welcome_code (valid 20 s,
single use, for `msg send-on-event`) unless the customer wrote to the account or was
welcomed in the last 48 h. Prints external_userid and welcome_code (empty when none).""")
@with_output
def enter(
    open_kfid: Annotated[str, typer.Argument(help="The account whose chat the customer "
                                             "opens.")],
    external_userid: Annotated[str | None, typer.Option(
        "--external-userid", help="The customer (default: a new one).", show_default=False)
    ] = None,
    scene: Annotated[str | None, typer.Option(
        "--scene", help="The link's scene: up to 32 bytes of [0-9a-zA-Z_-].",
        show_default=False)] = None,
    scene_param: Annotated[str | None, typer.Option(
        "--scene-param", help="The link's scene_param (up to 128 bytes).",
        show_default=False)] = None,
) -> None:
    """Make a simulated customer enter an account's chat from a link (welcome_code event)."""
    body = {"open_kfid": open_kfid, "external_userid": external_userid, "scene": scene,
            "scene_param": scene_param}
    doc = _control("POST", "/sandbox/enter_session",
                   {k: v for k, v in body.items() if v is not None})
    state().out.obj({"external_userid": doc.get("external_userid"),
                     "welcome_code": doc.get("welcome_code") or ""},
                    ["external_userid", "welcome_code"])


@app.command("servicer-say", epilog="""Examples:

  kfcli --sandbox sandbox servicer-say wkAbC123 wmXyZ789 "我来帮您" \\
      --servicer user001

  kfcli --sandbox msg sync wkAbC123   # session_status_change, the message

What WeCom reports when a servicer answers from the WeCom app: the servicer takes the
session (state 3; a session_status_change event says how) and the message arrives in
sync_msg with origin 5. The servicer must be one of the account's (`kfcli servicer add`).
Prints the msgid.""")
@with_output
def servicer_say(
    open_kfid: Annotated[str, typer.Argument(help="The account.")],
    external_userid: Annotated[str, typer.Argument(help="The customer written to.")],
    text: Annotated[str, typer.Argument(help="The servicer's message.")],
    servicer: Annotated[str, typer.Option("--servicer", help="The servicer's userid.",
                                          show_default=False)],
) -> None:
    """Make a servicer send a text message from the WeCom app (takes the session)."""
    doc = _control("POST", "/sandbox/servicer_message",
                   {"open_kfid": open_kfid, "external_userid": external_userid,
                    "userid": servicer, "text": text})
    state().out.obj({"msgid": doc.get("msgid")}, ["msgid"])


#: servicer-status STATUS -> /sandbox/servicer_status's (status, stop_type).
SERVICER_STATUSES = {"receiving": (0, 0), "stopped": (1, 0), "suspended": (1, 1)}


@app.command("servicer-status", epilog="""Examples:

  kfcli --sandbox sandbox servicer-status wkAbC123 user001 suspended

  kfcli --sandbox servicer list wkAbC123      # user001: stopped

  kfcli --sandbox sandbox servicer-status wkAbC123 user001 receiving

What WeCom reports when a servicer changes their reception status in the WeCom app:
servicer/list shows it, and a servicer_status_change event arrives in sync_msg. Only
servicers added by userid have a status.""")
@with_output
def servicer_status(
    open_kfid: Annotated[str, typer.Argument(help="The account.")],
    userid: Annotated[str, typer.Argument(help="The servicer.")],
    status: Annotated[str, typer.Argument(
        help="receiving, stopped or suspended.", metavar="STATUS")],
) -> None:
    """Set a servicer receiving, stopped or suspended, as if from the WeCom app."""
    if status not in SERVICER_STATUSES:
        raise UsageError(f"STATUS {status!r} is not one of {', '.join(SERVICER_STATUSES)}")
    code, stop_type = SERVICER_STATUSES[status]
    _control("POST", "/sandbox/servicer_status",
             {"open_kfid": open_kfid, "userid": userid, "status": code,
              "stop_type": stop_type})
    state().out.done({"open_kfid": open_kfid, "userid": userid, "status": status},
                     f"servicer {userid} of {open_kfid} is now {status}")


@app.command("corp", epilog="""Examples:

  kfcli --sandbox sandbox corp --wechat-channels-binding

  kfcli --sandbox corp qualification        # wechat_channels_binding: yes

  kfcli --sandbox sandbox corp --no-wechat-channels-binding

Sets what the simulated corp's get_corp_qualification answers (`kfcli corp
qualification`).""")
@with_output
def corp(
    binding: Annotated[bool | None, typer.Option(
        "--wechat-channels-binding/--no-wechat-channels-binding",
        help="Whether a WeChat Channels account is bound to the corp.",
        show_default=False)] = None,
) -> None:
    """Change facts about the simulated corp (a bound WeChat Channels account)."""
    if binding is None:
        raise UsageError("give --wechat-channels-binding or --no-wechat-channels-binding",
                         hint="`kfcli corp qualification` shows the current value")
    doc = _control("POST", "/sandbox/corp", {"wechat_channels_binding": binding})
    value = bool(doc.get("wechat_channels_binding", binding))
    state().out.done({"wechat_channels_binding": value},
                     f"WeChat Channels binding is now {'on' if value else 'off'}")


@app.command("callback", epilog="""Examples:

  kfcli --sandbox sandbox callback http://127.0.0.1:8000/

  kfcli sandbox callback http://127.0.0.1:8000/kf

  kfcli sandbox callback -o json        (the current target, secrets masked)

  kfcli sandbox callback --off

Try the whole loop locally (two terminals, or background the first):

  kfcli --sandbox callback serve --port 8000 --sync

  kfcli --sandbox sandbox callback http://127.0.0.1:8000/

  kfcli --sandbox sandbox say wkAbC123 "hello"

From then on, whenever a customer (or a servicer) writes, the simulator POSTs an encrypted
kf_msg_or_event callback to URL as WeCom does: msg_signature/timestamp/nonce in the query,
the event XML with a fresh sync_msg Token (valid 10 minutes) encrypted for the CorpID, a 5 s
timeout and 3 attempts. Messages that arrive close together share one callback.

The callbacks are signed with the simulator's own Token and EncodingAESKey (the "token" and
"aes_key" that `kfcli sandbox serve` printed; with --sandbox, what every command gets), so a
receiver started with those accepts them; your production pair is never used unless you
ask with --configured-keys (KFCLI_TOKEN / KFCLI_AES_KEY or the profile). The pair is shown
masked. URL must be reachable from the simulator's host.""")
@with_output
def callback(
    url: Annotated[str | None, typer.Argument(
        help="The receiver's http(s) URL. Omit it to show the current target.",
        metavar="URL", show_default=False)] = None,
    configured_keys: Annotated[bool, typer.Option(
        "--configured-keys", help="Sign with the configured Token and EncodingAESKey "
        "(KFCLI_TOKEN / KFCLI_AES_KEY or the profile) instead of the simulator's own.")
    ] = False,
    token: Annotated[str | None, typer.Option(
        "--token", hidden=True, help="Deprecated: a secret on the command line.",
        show_default=False)] = None,
    aes_key: Annotated[str | None, typer.Option(
        "--aes-key", hidden=True, help="Deprecated: a secret on the command line.",
        show_default=False)] = None,
    off: Annotated[bool, typer.Option("--off", help="Stop sending callbacks.")] = False,
) -> None:
    """Send encrypted kf_msg_or_event callbacks to URL when new messages arrive."""
    from kfcli.cli.secret_flags import warn_secret_flags

    out = state().out
    warn_secret_flags({"--token": token, "--aes-key": aes_key},
                      instead="the simulator's own pair (the default) or --configured-keys")
    keyed = token is not None or aes_key is not None or configured_keys
    if off:
        if url is not None or keyed:
            raise UsageError("--off takes no URL or keys")
        doc = _control("POST", "/sandbox/callback", {"url": ""})
        out.info("callbacks off")
        out.obj(_shown(doc))
        return
    if url is None:
        if keyed:
            raise UsageError("the keys go with a URL: kfcli sandbox callback URL "
                             "[--configured-keys]")
        out.obj(_shown(_control("GET", "/sandbox/callback")))
        return
    if not _URL_RE.fullmatch(url):
        raise UsageError(f"URL: {url!r} is not an http:// or https:// URL "
                         "(for example http://127.0.0.1:8000/)")
    body: dict[str, str] = {"url": url}
    if keyed:
        body.update(_callback_keys(token, aes_key))
    doc = _control("POST", "/sandbox/callback", body)
    out.info(f"callbacks for new messages now go to {url}, signed with "
             + ("the simulator's own Token and EncodingAESKey" if doc.get("keys") == "sandbox"
                else "the given Token and EncodingAESKey"))
    out.obj(_shown(doc))


def _shown(doc: dict[str, Any]) -> dict[str, Any]:
    """The target as the simulator answers it (its pair masked), without `errcode`."""
    return {key: doc.get(key, "") for key in ("url", "token", "aes_key", "keys")}


_URL_RE = re.compile(r"https?://[^\s/?#]+([/?#]\S*)?")


def _callback_keys(token: str | None, aes_key: str | None) -> dict[str, str]:
    """{"token", "aes_key"}: the (deprecated) flags, else the resolved settings (unset:
    exit 3)."""
    from kfcli.core.config import callback_values

    return callback_values(state().settings(), {"token": token, "aes_key": aes_key},
                           keys=("token", "aes_key"), options=())


@app.command("fault", epilog="""Examples:

  kfcli sandbox fault errcode --errcode 45009 --path /cgi-bin/kf/account/list

  kfcli sandbox fault http_status --status 500 --times 2

  kfcli sandbox fault disconnect --path /cgi-bin/kf/send_msg

  kfcli sandbox fault empty_page --times 3

  kfcli --sandbox sandbox fault expire_tokens

Faults other than expire_tokens live in the memory of a long-running simulator (`kfcli
sandbox serve`, with KFCLI_BASE_URL pointing at it): the one --sandbox embeds stops when the
command ends, so with --sandbox they are refused (exit 2). empty_page makes sync_msg answer
empty pages with has_more 1.""")
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
    if state().sandbox and kind not in LASTING_FAULTS:
        raise UsageError(
            f"the embedded simulator cannot fire {kind} faults: they live in a running "
            "simulator's memory, and --sandbox's stops when this command ends",
            hint="run `kfcli sandbox serve` and point KFCLI_BASE_URL (with its KFCLI_CORP_ID "
            "and KFCLI_SECRET) at it, then `kfcli sandbox fault` without --sandbox")
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


@app.command("reset", epilog="""Example:

  kfcli sandbox reset --yes

Refused (exit 3) while a simulator uses the file: a `kfcli sandbox serve` on it, or another
`kfcli --sandbox` command still running. Stop those first.""")
@with_output
def reset(yes: YesOpt = False) -> None:
    """Delete the embedded simulator's state (accounts, messages, credentials)."""
    from kfcli.core import paths

    db = paths.sandbox_db()
    if _in_use(db):
        raise EnvironmentProblem(
            f"a simulator is using {db}: resetting it now would break that simulator",
            hint="stop `kfcli sandbox serve` (or the running `kfcli --sandbox` command) on "
            "this file, then reset")
    confirm(f"Delete the sandbox state in {db}?", yes=yes)
    removed = 0
    for suffix in ("", "-wal", "-shm"):
        target = db.with_name(db.name + suffix)
        if target.exists():
            target.unlink()
            removed += 1
    state().out.info(f"removed {db}" if removed else f"nothing to remove at {db}")


def _in_use(db: Path) -> bool:
    """Whether another process has the database open. The simulator keeps it in WAL mode,
    and SQLite lets a connection leave WAL mode only when it is the file's only one."""
    import sqlite3

    if not db.exists():
        return False
    try:
        conn = sqlite3.connect(db.resolve().as_uri() + "?mode=rw", uri=True, timeout=0,
                               isolation_level=None)
    except sqlite3.Error:
        return False
    try:
        conn.execute("PRAGMA journal_mode=DELETE").fetchone()
    except sqlite3.OperationalError as exc:
        return "locked" in str(exc) or "busy" in str(exc)
    except sqlite3.DatabaseError:  # not a database at all: nothing can be using it
        return False
    finally:
        conn.close()
    return False
