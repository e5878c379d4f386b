"""`kfcli msg`: send messages to customers and answer event codes."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from kfcli.cli.context import JsonOpt, OutputOpt, new_app, state, with_output
from kfcli.cli.media import upload_file
from kfcli.core import jsontext, limits, messages
from kfcli.core.errors import (
    ApiError,
    NetworkError,
    RateLimitError,
    TokenError,
    UsageError,
    ValidationError,
)
from kfcli.core.sync import ORIGINS, Message

app = new_app("Send messages (and, with `msg sync`, read them).")

FileOpt = Annotated[Path | None, typer.Option(dir_okay=False, show_default=False)]
StrOpt = Annotated[str | None, typer.Option(show_default=False)]
MsgidOpt = Annotated[str | None, typer.Option(
    "--msgid", help="Your own msgid (up to 32 bytes of [0-9a-zA-Z_-]); default: generated. "
    "WeCom refuses a repeated msgid, so retries never deliver twice.", show_default=False)]
DryRunOpt = Annotated[bool, typer.Option(
    "--dry-run", help="Print the request body and send nothing (files are not uploaded).")]


class _Upload:
    """A file to upload as media right before sending (never in --dry-run)."""

    def __init__(self, path: Path, media_type: str) -> None:
        limits.check_media_file(path, media_type)
        self.path, self.media_type = path, media_type


def _resolve(value: Any, dry_run: bool) -> Any:
    """Replace pending uploads in a body by media ids (or placeholders in a dry run)."""
    if isinstance(value, _Upload):
        if dry_run:
            return f"<upload {value.path}>"
        return upload_file(value.path, value.media_type).media_id
    if isinstance(value, dict):
        return {k: _resolve(v, dry_run) for k, v in value.items()}
    return value


def _thumb(thumb: Path | None, thumb_media_id: str | None, what: str) -> Any:
    if (thumb is None) == (thumb_media_id is None):
        raise UsageError(f"{what} needs a cover image: --thumb FILE or --thumb-media-id ID")
    return _Upload(thumb, "image") if thumb else limits.check_media_id(thumb_media_id,
                                                                       "thumb_media_id")


def _check(msgtype: str, body: dict[str, Any], *, on_event: bool = False) -> None:
    """Validate with placeholder media ids where uploads are still pending."""
    probe = {k: ("pending-upload" if isinstance(v, _Upload) else v) for k, v in body.items()}
    messages.validate(msgtype, probe, on_event=on_event)


@app.command("send", epilog="""Examples:

  kfcli msg send wkAbC123 wmXyZ789 --text "您好，请问有什么可以帮您？"

  kfcli msg send wkAbC123 wmXyZ789 --image photo.jpg

  kfcli msg send wkAbC123 wmXyZ789 --link https://example.com --title Offer --thumb cover.png

  kfcli msg send wkAbC123 wmXyZ789 --menu @menu.json

  kfcli msg send wkAbC123 wmXyZ789 --location 39.9042,116.4074 --name "Office"

  kfcli msg send wkAbC123 wmXyZ789 --payload '{"msgtype":"text","text":{"content":"hi"}}'

  kfcli msg send wkAbC123 wmXyZ789 --text hi --dry-run

Sending works in session states 0/1, within 48 h of the customer's last message and at most
5 messages per customer message (kf-api.md §1.6). Prints the msgid.""")
@with_output
def send(
    open_kfid: Annotated[str, typer.Argument(help="The account's open_kfid.")],
    external_userid: Annotated[str, typer.Argument(help="The customer's external_userid.")],
    text: Annotated[str | None, typer.Option("--text", help="Text, up to 2048 bytes.",
                                             show_default=False)] = None,
    image: Annotated[Path | None, typer.Option("--image", help="Image file (JPG/PNG).",
                                               dir_okay=False, show_default=False)] = None,
    voice: Annotated[Path | None, typer.Option("--voice", help="Voice file (AMR, 2 MB).",
                                               dir_okay=False, show_default=False)] = None,
    video: Annotated[Path | None, typer.Option("--video", help="Video file (MP4, 10 MB).",
                                               dir_okay=False, show_default=False)] = None,
    file: Annotated[Path | None, typer.Option("--file", help="Any file, up to 20 MB.",
                                              dir_okay=False, show_default=False)] = None,
    link: Annotated[str | None, typer.Option("--link", help="Link URL (with --title, --thumb, "
                                             "--desc).", show_default=False)] = None,
    miniprogram: Annotated[str | None, typer.Option(
        "--miniprogram", help="Mini program appid (with --title, --pagepath, --thumb).",
        show_default=False)] = None,
    menu: Annotated[str | None, typer.Option(
        "--menu", help="Menu JSON: @FILE, - (stdin) or the JSON itself.",
        show_default=False)] = None,
    location: Annotated[str | None, typer.Option(
        "--location", help="LAT,LNG (with --name, --address).", show_default=False)] = None,
    ca_link: Annotated[str | None, typer.Option(
        "--ca-link", help="Customer-acquisition link URL (获客链接).", show_default=False)] = None,
    payload: Annotated[str | None, typer.Option(
        "--payload", help='Raw body {"msgtype": …, <msgtype>: {…}} as JSON, @FILE or -.',
        show_default=False)] = None,
    title: Annotated[str | None, typer.Option("--title", help="Title for --link / "
                                              "--miniprogram.", show_default=False)] = None,
    desc: Annotated[str | None, typer.Option("--desc", help="Description for --link.",
                                             show_default=False)] = None,
    pagepath: Annotated[str | None, typer.Option("--pagepath", help="Page for --miniprogram.",
                                                 show_default=False)] = None,
    thumb: Annotated[Path | None, typer.Option("--thumb", help="Cover image file for --link / "
                                               "--miniprogram.", dir_okay=False,
                                               show_default=False)] = None,
    thumb_media_id: Annotated[str | None, typer.Option(
        "--thumb-media-id", help="Cover as an uploaded media_id.", show_default=False)] = None,
    name: Annotated[str | None, typer.Option("--name", help="Place name for --location.",
                                             show_default=False)] = None,
    address: Annotated[str | None, typer.Option("--address", help="Address for --location.",
                                                show_default=False)] = None,
    msgid: MsgidOpt = None,
    dry_run: DryRunOpt = False,
) -> None:
    """Send a message to a customer."""
    limits.check_open_kfid(open_kfid)
    limits.check_external_userid(external_userid)
    given = {k: v for k, v in {
        "--text": text, "--image": image, "--voice": voice, "--video": video, "--file": file,
        "--link": link, "--miniprogram": miniprogram, "--menu": menu, "--location": location,
        "--ca-link": ca_link, "--payload": payload}.items() if v is not None}
    if len(given) != 1:
        raise UsageError("give exactly one message: --text, --image, --voice, --video, --file, "
                         "--link, --miniprogram, --menu, --location, --ca-link or --payload"
                         + (f" (got {', '.join(given)})" if given else ""))
    if payload is not None:
        # The payload's own routing fields must agree with the command line, and its msgid is
        # kept (a rerun of the same file must not get a new msgid and deliver twice).
        doc = load_payload(payload)
        for key, value in (("touser", external_userid), ("open_kfid", open_kfid)):
            if key in doc and doc[key] != value:
                raise ValidationError("--payload", f"{key} {doc[key]!r} differs from the "
                                      f"command line's {value!r}")
        if msgid is None and "msgid" in doc:
            msgid = str(doc["msgid"])
        payload = json.dumps(doc)
    if msgid is not None:
        limits.check_msgid(msgid)
    msgtype, body = _build(text=text, image=image, voice=voice, video=video, file=file,
                           link=link, miniprogram=miniprogram, menu=menu, location=location,
                           ca_link=ca_link, payload=payload, title=title, desc=desc,
                           pagepath=pagepath, thumb=thumb, thumb_media_id=thumb_media_id,
                           name=name, address=address)
    _check(msgtype, body)
    out = state().out
    if dry_run:
        request = {"touser": external_userid, "open_kfid": open_kfid, "msgid": msgid or
                   "<generated>", "msgtype": msgtype, msgtype: _resolve(body, True)}
        out.document(request)
        return
    content = _resolve(body, False)
    client = state().client()
    sent = client.send_msg(external_userid, open_kfid, msgtype, content, msgid=msgid)
    if client.already_delivered and msgid:
        out.info(f"msgid {msgid} was delivered before; WeCom did not deliver it again")
    out.obj({"msgid": sent, "open_kfid": open_kfid, "touser": external_userid,
             "msgtype": msgtype}, ["msgid"])


def _build(*, text, image, voice, video, file, link, miniprogram, menu, location, ca_link,
           payload, title, desc, pagepath, thumb, thumb_media_id, name,
           address) -> tuple[str, dict[str, Any]]:
    if text is not None:
        return "text", messages.text(text)
    for media_type, path in (("image", image), ("voice", voice), ("video", video),
                             ("file", file)):
        if path is not None:
            return media_type, {"media_id": _Upload(path, media_type)}
    if link is not None:
        if title is None:
            raise UsageError("--link needs --title")
        return "link", messages.link(link, title, _thumb(thumb, thumb_media_id, "--link"), desc)
    if miniprogram is not None:
        if title is None or pagepath is None:
            raise UsageError("--miniprogram needs --title and --pagepath")
        return "miniprogram", messages.miniprogram(
            miniprogram, title, pagepath, _thumb(thumb, thumb_media_id, "--miniprogram"))
    if menu is not None:
        return "msgmenu", messages.load_json(menu, "--menu")
    if location is not None:
        lat, lng = messages.parse_location(location)
        return "location", messages.location(lat, lng, name, address)
    if ca_link is not None:
        return "ca_link", messages.ca_link(ca_link)
    doc = load_payload(payload)
    return doc["msgtype"], doc[doc["msgtype"]]


def load_payload(source: str) -> dict[str, Any]:
    doc = messages.load_json(source, "--payload")
    if not isinstance(doc, dict) or not isinstance(doc.get("msgtype"), str):
        raise ValidationError("--payload", 'must be an object like {"msgtype": "text", '
                              '"text": {"content": "…"}}')
    msgtype = doc["msgtype"]
    if msgtype not in doc:
        raise ValidationError("--payload", f"has msgtype {msgtype!r} but no {msgtype!r} object")
    unknown = set(doc) - {"msgtype", msgtype, "msgid", "touser", "open_kfid"}
    if unknown:
        raise ValidationError("--payload", f"unexpected keys: {', '.join(sorted(unknown))}")
    return doc


@app.command("send-on-event", epilog="""Examples:

  kfcli msg send-on-event MSG_CODE --text "欢迎咨询！"

  kfcli msg send-on-event MSG_CODE --menu @survey.json

Codes come from the enter_session event (welcome_code, valid 20 s), from `kfcli state trans`
(queue/servicer codes valid 48 h, closing code valid 20 s) or from session_status_change
events. Each code is single use.""")
@with_output
def send_on_event(
    code: Annotated[str, typer.Argument(help="The event's code.")],
    text: Annotated[str | None, typer.Option("--text", help="Text, up to 2048 bytes.",
                                             show_default=False)] = None,
    menu: Annotated[str | None, typer.Option("--menu", help="Menu JSON: @FILE, - or JSON.",
                                             show_default=False)] = None,
    msgid: MsgidOpt = None,
    dry_run: DryRunOpt = False,
) -> None:
    """Answer an event code: a welcome message, a queue notice, closing words."""
    if (text is None) == (menu is None):
        raise UsageError("give exactly one of --text or --menu")
    if msgid is not None:
        limits.check_msgid(msgid)
    limits.check_text("code", code, max_bytes=128)
    msgtype, body = ("text", messages.text(text)) if text is not None else (
        "msgmenu", messages.load_json(menu, "--menu"))
    messages.validate(msgtype, body, on_event=True)
    out = state().out
    if dry_run:
        out.document({"code": code, "msgid": msgid or "<generated>", "msgtype": msgtype,
                   msgtype: body})
        return
    sent = state().client().send_msg_on_event(code, msgtype, body, msgid=msgid)
    out.obj({"msgid": sent, "msgtype": msgtype}, ["msgid"])


# ---------------------------------------------------------------------- sync

VOICE_FORMATS = {"amr": 0, "silk": 1}


class _Emitter:
    """Writes messages as they arrive in the chosen format and saves cursors behind them.

    Machine formats with a saved cursor go through the writer process of
    `kfcli.core.syncwriter`, which owns stdout and the msgid journal (see there why); the
    terminal view prints and journals one message at a time.
    """

    def __init__(self, out, saved=None) -> None:
        self.out = out
        self.count = 0
        self._saved = saved
        self._console = None
        self._lines = None
        self._writer = None
        if out.fmt != "table":
            from kfcli.render import LineStream

            sink, chunk = None, LineStream.CHUNK
            if saved is not None:
                from kfcli.core.syncwriter import COMMAND_BYTES, WriterProcess

                # The writer finishes whatever it is handed, so its chunks need not be
                # pipe-atomic: hand it large ones.
                self._writer = WriterProcess(saved.path, saved.journal_path)
                sink, chunk = self._to_writer, COMMAND_BYTES
            self._lines = LineStream(out.stdout, sink, chunk=chunk)

    def _to_writer(self, data: bytes, record: bytes) -> None:
        self._writer.write(data, record)

    def start(self) -> None:
        if self.out.fmt == "json":
            self._lines.add("[")

    @property
    def blocks(self) -> bool:
        """Whole pages may go out as one block: JSON lines through the writer process."""
        return self._writer is not None and self.out.fmt == "jsonl"

    def emit_page(self, lines: list[str], msgids: list[str]) -> None:
        """A page of JSON lines (texts as received, one message each), joined once."""
        if any("\n" in line for line in lines):
            lines = [jsontext.dumps(json.loads(line)) if "\n" in line else line
                     for line in lines]
        self._lines.add_block("\n".join(lines) + "\n" if lines else "", msgids)
        self.count += len(lines)

    def emit_raw(self, line: str, msgid: str) -> None:
        """The fast path of the JSON formats: the message's JSON text as WeCom sent it."""
        if "\n" in line:  # pretty-printed by the server: one message must stay one line
            line = jsontext.dumps(json.loads(line))
        if self.out.fmt == "jsonl":
            self._lines.add(line + "\n", msgid)
        else:
            self._lines.add(("\n" if not self.count else ",\n") + line, msgid)
        self.count += 1

    def emit(self, message) -> None:
        from kfcli.render import tsv_field

        fmt = self.out.fmt
        if fmt == "tsv":
            fields = (_when(message.send_time), ORIGINS.get(message.origin, message.origin),
                      message.sender, message.event_type or message.msgtype, message.summary(),
                      message.msgid)
            line = "\t".join(tsv_field(f) for f in fields) + "\n"
        else:
            self._human(message)
            if self._saved is not None:
                self._saved.emitted([message.msgid])
            self.count += 1
            return
        self._lines.add(line, message.msgid)
        self.count += 1

    def checkpoint(self, cursor: str) -> None:
        """Everything emitted so far is covered by `cursor`: write it out, then save it."""
        if self._lines is not None:
            self._lines.flush()
        if self._saved is None:
            return
        if self._writer is not None:
            self._writer.save(self._saved.state_bytes(cursor))
        else:
            self._saved.save(cursor)

    def _human(self, message) -> None:
        from rich.console import Console
        from rich.text import Text

        from kfcli.render import clean

        if self._console is None:
            self._console = Console(file=self.out.stdout, highlight=False, markup=False,
                                    emoji=False)
        line = Text(f"{_when(message.send_time)}  ", style="dim")
        line.append(f"{ORIGINS.get(message.origin, message.origin):<8} ", style="cyan")
        line.append(clean(message.sender)[:34].ljust(34) + " ", style="bold")
        line.append(f"{message.event_type or message.msgtype:<10} ", style="magenta")
        line.append(clean(message.summary(), keep_newlines=True))
        self._console.print(line)

    def end(self) -> None:
        if self.out.fmt == "json":
            self._lines.add(("\n" if self.count else "") + "]\n")
        if self._lines is not None:
            self._lines.flush()
        if self._writer is not None:
            self._writer.close()


def _when(ts: int) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else ""


def _callback_tokens(source: str, open_kfid: str):
    """Tokens from `kfcli callback serve` JSON lines for this account, as they arrive. The
    file is opened here, before any request, so a wrong path is a usage error (exit 2)."""
    if source == "-":
        return _tokens_in(sys.stdin, open_kfid)
    try:
        stream = open(source, encoding="utf-8")  # noqa: SIM115 - closed by _tokens_in
    except OSError as exc:
        raise UsageError(f"--tokens-from: cannot read {source} ({exc.strerror})") from None
    return _tokens_in(stream, open_kfid)


def _tokens_in(stream, open_kfid: str):
    with stream:
        for line in stream:
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict) and doc.get("OpenKfId") == open_kfid and doc.get("Token"):
                yield str(doc["Token"])


@app.command("sync", epilog="""Examples:

  kfcli msg sync wkAbC123                       # new messages since the last run

  kfcli msg sync wkAbC123 --all -o jsonl > all.jsonl   # everything WeCom still has (3 days)

  kfcli msg sync wkAbC123 --follow --interval 5

  kfcli callback serve | kfcli msg sync wkAbC123 --tokens-from -

Output: a live list on a terminal; JSON lines when piped (one message per line, flushed);
-o tsv columns: time, origin, sender, type, summary, msgid. The cursor is saved per profile
and account after each page is written, and msgids already written are skipped, so a crashed
or interrupted run can simply be started again.""")
def sync(
    open_kfid: Annotated[str, typer.Argument(help="The account's open_kfid.")],
    token: Annotated[str | None, typer.Option(
        "--token", help="Token from the latest kf_msg_or_event callback (valid 10 minutes); "
        "without one WeCom rate-limits sync_msg strictly.", show_default=False)] = None,
    cursor: Annotated[str | None, typer.Option(
        "--cursor", help="Start at this cursor instead of the saved one.", show_default=False)
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="Messages per request, 1-1000.")] = 1000,
    all_: Annotated[bool, typer.Option(
        "--all", help="Start from the earliest message WeCom keeps (3 days), ignoring the "
        "saved cursor.")] = False,
    follow: Annotated[bool, typer.Option(
        "--follow", "-f", help="Keep polling for new messages until interrupted.")] = False,
    interval: Annotated[float, typer.Option(
        "--interval", help="Seconds between polls with --follow (backs off up to 60 s while "
        "idle, rate limited or offline).", min=0.1)] = 2.0,
    tokens_from: Annotated[str | None, typer.Option(
        "--tokens-from", help="Read `kfcli callback serve` lines from FILE or - and pull "
        "right away with each callback's Token.", show_default=False)] = None,
    voice_format: Annotated[str | None, typer.Option(
        "--voice-format", help="amr (default) or silk.", show_default=False)] = None,
    no_save: Annotated[bool, typer.Option(
        "--no-save", help="Do not read or update the saved cursor.")] = False,
    output: OutputOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Pull messages and events with sync_msg, exactly once across runs."""
    from kfcli.core.sync import SyncState

    st = state()
    st.set_output(output, json_)
    out = st.stream_out()
    limits.check_open_kfid(open_kfid)
    limits.check_limit(limit, limits.SYNC_LIMIT)
    if voice_format is not None and voice_format not in VOICE_FORMATS:
        raise ValidationError("--voice-format", f"{voice_format!r} is not amr or silk")
    if cursor is not None and all_:
        raise UsageError("give --cursor or --all, not both")
    if cursor is not None:
        limits.check_text("cursor", cursor, max_bytes=64)
    if token is not None:
        limits.check_text("token", token, max_bytes=128)
    tokens = _callback_tokens(tokens_from, open_kfid) if tokens_from else None
    client = st.client()
    settings = st.settings()
    saved = None
    if not no_save:
        saved = SyncState(settings.profile, settings.corp_id or "", open_kfid).acquire()
        try:
            saved.load()
        except BaseException:
            saved.close()
            raise
        if all_:
            saved.reset()
    start = cursor if cursor is not None else ("" if all_ or saved is None else saved.cursor)
    raw = out.fmt in ("json", "jsonl")
    stream = client.sync_messages(open_kfid, cursor=start or None, token=token, limit=limit,
                                  voice_format=VOICE_FORMATS.get(voice_format or "amr"))
    stream.keep_text = raw
    emitter = _Emitter(out, saved)
    following = follow or tokens is not None
    delay = interval
    trouble = 0  # consecutive failed pulls while following
    emitter.start()
    try:
        while True:
            before = emitter.count
            try:
                for page in stream.pages():
                    texts = page.msg_texts or [None] * len(page.msg_list)
                    if emitter.blocks and page.msg_texts is not None:
                        ids = [str(doc.get("msgid", "")) for doc in page.msg_list]
                        keep = [i for i, m in enumerate(ids) if saved.claim(m)]
                        emitter.emit_page([texts[i] for i in keep], [ids[i] for i in keep])
                        emitter.checkpoint(page.next_cursor or stream.cursor)
                        continue
                    for doc, text in zip(page.msg_list, texts, strict=True):
                        msgid = str(doc.get("msgid", ""))
                        if saved is not None and not saved.claim(msgid):
                            continue
                        if raw:
                            emitter.emit_raw(text or jsontext.dumps(doc), msgid)
                        else:
                            emitter.emit(Message.from_api(doc))
                    # Every message the new cursor covers is handed over: now it may be saved.
                    emitter.checkpoint(page.next_cursor or stream.cursor)
                trouble = 0
            except (RateLimitError, NetworkError, TokenError) as exc:
                if not following:
                    raise
                # A follower outlives rate limits (WeCom blocks a minute) and network trouble:
                # back off, doubling up to 60 s, and pull again from the saved position.
                trouble += 1
                wait = min(60.0, interval * 4 * 2 ** (trouble - 1))
                out.warning(f"{exc.message}; pulling again in {wait:.1f} s")
                time.sleep(wait)
                continue
            except ApiError as exc:
                if following and exc.errcode == 95007 and stream.token:
                    out.warning("the callback token was refused (expired?); pulling without it")
                    stream.token = None
                    continue
                raise
            if tokens is not None:
                next_token = next(tokens, None)
                if next_token is None:
                    break
                stream.token = next_token
                continue
            if not follow:
                break
            delay = interval if emitter.count > before else min(delay * 2, 60.0)
            time.sleep(delay)
            stream.token = None  # callback tokens expire after 10 minutes
    finally:
        emitter.end()
        if saved is not None:
            saved.close()
    if out.fmt in ("table", "tsv") and not follow:
        out.info(f"{emitter.count} new message(s)")
