"""`kfcli msg send` and `kfcli msg send-on-event`: messages to customers, one or a batch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from kfcli.cli.context import exclusive, state, with_output
from kfcli.cli.media import upload_file
from kfcli.cli.msg._group import (
    AttachmentOpt,
    ImageOpt,
    MenuOpt,
    PayloadOpt,
    TextOpt,
    VideoOpt,
    VoiceOpt,
    app,
)
from kfcli.cli.strict import StrictCommand
from kfcli.core import limits, messages
from kfcli.core.errors import (
    UsageError,
    ValidationError,
)
from kfcli.core.limits import Where

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
    exclusive(**{"--thumb": thumb, "--thumb-media-id": thumb_media_id})
    if thumb is None and thumb_media_id is None:
        raise UsageError(f"{what} needs a cover image: --thumb FILE or --thumb-media-id ID")
    return _Upload(thumb, "image") if thumb else limits.check_media_id(thumb_media_id,
                                                                       "--thumb-media-id")


#: The message options of `msg send`, with what kind of message each one makes.
MESSAGE_OPTIONS = {
    "--text": "a text message", "--image": "an image message", "--voice": "a voice message",
    "--video": "a video message", "--file": "a file message", "--link": "a link message",
    "--miniprogram": "a mini program message", "--menu": "a menu message",
    "--location": "a location message", "--ca-link": "a customer-acquisition link message",
    "--payload": "a raw message",
}
#: Options that only complete some message options (anything else refuses them).
DETAIL_OPTIONS = {
    "--title": ("--link", "--miniprogram"), "--desc": ("--link",),
    "--pagepath": ("--miniprogram",), "--thumb": ("--link", "--miniprogram"),
    "--thumb-media-id": ("--link", "--miniprogram"), "--name": ("--location",),
    "--address": ("--location",),
}
#: A body field built from a flag -> the flag, so errors name what the user typed.
_FLAG_OF_FIELD = {
    "text.content": "--text", "link.title": "--title", "link.desc": "--desc",
    "link.url": "--link", "link.thumb_media_id": "--thumb-media-id",
    "miniprogram.appid": "--miniprogram", "miniprogram.title": "--title",
    "miniprogram.pagepath": "--pagepath", "miniprogram.thumb_media_id": "--thumb-media-id",
    "location.latitude": "--location (latitude)", "location.longitude": "--location (longitude)",
    "location.name": "--name", "location.address": "--address", "ca_link.link_url": "--ca-link",
}


def _refuse_details(option: str, details: dict[str, Any]) -> None:
    """An option that does not belong to the chosen message would be ignored: refuse it."""
    for flag, value in details.items():
        owners = DETAIL_OPTIONS[flag]
        if value is not None and option not in owners:
            raise UsageError(f"{flag} does not apply to {MESSAGE_OPTIONS[option]} ({option}); "
                             f"it goes with {' or '.join(owners)}")


def _check(msgtype: str, body: dict[str, Any], *, on_event: bool = False) -> None:
    """Validate a body built from flags, with placeholder media ids where uploads are still
    pending; errors name the flag the field came from."""
    probe = {k: ("pending-upload" if isinstance(v, _Upload) else v) for k, v in body.items()}
    try:
        messages.validate(msgtype, probe, on_event=on_event)
    except ValidationError as exc:
        flag = _FLAG_OF_FIELD.get(exc.field)
        if flag is None:
            raise
        raise ValidationError(flag, exc.message[len(exc.field) + 2:], hint=exc.hint) from None


@app.command("send", cls=StrictCommand, epilog="""Examples:

  kfcli msg send wkAbC123 wmXyZ789 --text "您好，请问有什么可以帮您？"

  kfcli msg send wkAbC123 wmXyZ789 --text @reply.txt

  kfcli msg send wkAbC123 wmXyZ789 --image photo.jpg

  kfcli msg send wkAbC123 wmXyZ789 --link https://example.com --title Offer \\
      --thumb cover.png

  kfcli msg send wkAbC123 wmXyZ789 --menu @menu.json

  kfcli msg send wkAbC123 wmXyZ789 --location 39.9042,116.4074 --name "Office"

  kfcli msg send wkAbC123 wmXyZ789 \\
      --payload '{"msgtype":"text","text":{"content":"hi"}}'

  kfcli msg send wkAbC123 wmXyZ789 --text hi --dry-run

  kfcli msg send wkAbC123 wmXyZ789 --text "已收到" --reply-to 6F0Bc4Tr3aa8x

  kfcli msg history wkAbC123 -f --consumer bot --ack replies -o jsonl \\
      | ./my-bot | kfcli msg send --batch -

--text @FILE reads the text from FILE (UTF-8) and --text - from stdin, without the final
line break; write @@ for a text that starts with @ (--text @@all sends "@all"). Options that
do not belong to the message (--thumb with --text) are refused, as is an option given twice.

Sending works in session states 0/1, within 48 h of the customer's last message and at most
5 messages per customer message (WeCom's rules:
https://developer.work.weixin.qq.com/document/path/96427). Prints the msgid.

Never twice: every send carries a msgid, which WeCom refuses to deliver again. --reply-to
MSGID (the customer message answered; --reply-number N for its Nth answer) derives the msgid
from it, so the same reply sent again, by a rerun or a restarted bot, is reported as already
sent and not delivered.

--batch FILE (- for stdin) sends one message per line of JSON lines, each sent as soon as it
is read (a pipe that stays open works): {"open_kfid", "external_userid" (or "touser"),
"msgtype", <msgtype>: {…} as in --payload, "msgid"?, "reply_to"?}; {"reply_to": MSGID,
"no_reply": true} marks a message the bot leaves unanswered. "reply_to" may be a list of the
customer's msgids (up to 100), all answered by the one send (a backlog answered within
WeCom's 5 sends per message). A line without msgid gets one
derived from reply_to and the reply's position among the batch's replies to that message,
else from the line's number and content: running a batch again never delivers twice. Writes
one JSON line per input line, flushed: {"line", "msgid", "status": "sent", "already_sent",
"failed" or "skipped", "errcode", "message"} (an unreadable line, or one whose reply_to the
store knows as another account's or customer's message: "failed" with "invalid": true,
nothing sent or recorded). Where the message store holds the customer's messages, a line
that would break WeCom's reply window (5 messages within 48 h of the customer's last one) is
skipped with the errcode WeCom would answer, and one already delivered is reported
already_sent, without a request.
--parallel N sends N at once, one customer's messages always in input order; a rate limit met
by one holds them all back. When the store goes away mid-batch (a PostgreSQL restart, a full
disk), sending goes on and what was sent is recorded once it is back (the batch waits for
that before it ends); a store that is misconfigured stops the batch before the first send.

Exit status: 0 sent (with --batch: every line sent, already sent or skipped); 1 a send failed;
2 invalid input (with --batch: an unreadable line, the others still sent); 3 configuration;
4 an unknown id; 6 the network.""")
@with_output
def send(
    open_kfid: Annotated[str | None, typer.Argument(
        help="The account's open_kfid (not with --batch).", show_default=False)] = None,
    external_userid: Annotated[str | None, typer.Argument(
        help="The customer's external_userid (not with --batch).", show_default=False)] = None,
    text: TextOpt = None,
    image: ImageOpt = None,
    voice: VoiceOpt = None,
    video: VideoOpt = None,
    file: AttachmentOpt = None,
    link: Annotated[str | None, typer.Option("--link", help="Link URL (with --title, --thumb, "
                                             "--desc).", show_default=False)] = None,
    miniprogram: Annotated[str | None, typer.Option(
        "--miniprogram", help="Mini program appid (with --title, --pagepath, --thumb).",
        show_default=False)] = None,
    menu: MenuOpt = None,
    location: Annotated[str | None, typer.Option(
        "--location", help="LAT,LNG (with --name, --address).", show_default=False)] = None,
    ca_link: Annotated[str | None, typer.Option(
        "--ca-link", help="Customer-acquisition link URL (获客链接).", show_default=False)] = None,
    payload: PayloadOpt = None,
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
    reply_to: Annotated[str | None, typer.Option(
        "--reply-to", metavar="MSGID", help="The customer message this answers: the msgid is "
        "derived from it, so sending the same reply again never delivers twice.",
        show_default=False)] = None,
    reply_number: Annotated[int, typer.Option(
        "--reply-number", metavar="N", min=1, max=5, help="With --reply-to: which answer to "
        "that message this is (WeCom allows 5).")] = 1,
    batch: Annotated[str | None, typer.Option(
        "--batch", metavar="FILE", help="Send one message per JSON line of FILE (- for "
        "stdin) as the lines arrive; one JSON result line each.", show_default=False)] = None,
    parallel: Annotated[int, typer.Option(
        "--parallel", metavar="N", min=1, max=16, help="With --batch: sends at once (one "
        "customer's messages stay in order).")] = 4,
    dry_run: DryRunOpt = False,
) -> None:
    """Send a message to a customer, or one per JSON line with --batch."""
    if batch is not None:
        _refuse_with_batch(open_kfid, external_userid, msgid, reply_to, dry_run,
                           text=text, image=image, voice=voice, video=video, file=file,
                           link=link, miniprogram=miniprogram, menu=menu, location=location,
                           ca_link=ca_link, payload=payload, title=title, desc=desc,
                           pagepath=pagepath, thumb=thumb, thumb_media_id=thumb_media_id,
                           name=name, address=address)
        _send_batch(batch, parallel)
        return
    _check_ids(open_kfid, external_userid, msgid, reply_to)
    assert open_kfid is not None and external_userid is not None
    msgtype, body, msgid = _message(
        msgid, open_kfid, external_userid, text=text, image=image, voice=voice, video=video,
        file=file, link=link, miniprogram=miniprogram, menu=menu, location=location,
        ca_link=ca_link, payload=payload, title=title, desc=desc, pagepath=pagepath,
        thumb=thumb, thumb_media_id=thumb_media_id, name=name, address=address)
    if reply_to is not None:
        from kfcli.core.batch import derive_msgid

        msgid = derive_msgid(open_kfid, external_userid, reply_to=reply_to,
                             position=reply_number)
    out = state().out
    if dry_run:
        request = {"touser": external_userid, "open_kfid": open_kfid, "msgid": msgid or
                   "<generated>", "msgtype": msgtype, msgtype: _resolve(body, True)}
        out.document(request)
        return
    content = _resolve(body, False)
    result = recording_client().send_message(open_kfid=open_kfid,
                                             external_userid=external_userid,
                                             msgtype=msgtype, content=content, msgid=msgid)
    _note_delivered_before(out, result, msgid)
    out.value({"msgid": result.msgid, "open_kfid": open_kfid, "touser": external_userid,
               "msgtype": msgtype}, "msgid")


def send_journal():
    """The journal of sends the store could not take (`kfcli.core.sends`), of the store
    this command uses."""
    from kfcli.core.sends import SendJournal
    from kfcli.core.store import display_url, resolve_url

    return SendJournal(display_url(resolve_url(state().settings())[0]))


def recording_client():
    """The client, recording each send in the store (DESIGN.md §9): the store is opened
    first (a misconfigured one stops the command before anything is sent; one that cannot
    be written now is not waited for: sends are journaled and recorded on a later run)."""
    from kfcli.core.sends import SendRecorder
    from kfcli.core.store import open_store

    st = state()
    settings = st.settings()
    recorder = SendRecorder(lambda: open_store(settings=settings), settings.corp_id or "",
                            journal=send_journal(), warn=st.out.warning)
    recorder.open()
    client = st.client()
    client.recorder = recorder
    return client


def _check_ids(open_kfid: str | None, external_userid: str | None, msgid: str | None,
               reply_to: str | None) -> None:
    """`msg send`'s account, customer, --msgid and --reply-to checked together."""
    if open_kfid is None or external_userid is None:
        raise UsageError("give OPEN_KFID and EXTERNAL_USERID (or --batch FILE)")
    limits.check_open_kfid(open_kfid)
    limits.check_external_userid(external_userid)
    if reply_to is not None:
        limits.check_msgid(reply_to)
        if msgid is not None:
            raise UsageError("give --msgid or --reply-to, not both: --reply-to derives the "
                             "msgid")


def _message(msgid: str | None, open_kfid: str, external_userid: str, *, text, image, voice,
             video, file, link, miniprogram, menu, location, ca_link, payload, title, desc,
             pagepath, thumb, thumb_media_id, name,
             address) -> tuple[str, dict[str, Any], str | None]:
    """The one message of `msg send`'s options: (msgtype, its object, the msgid: --msgid,
    or a --payload's own)."""
    given = [flag for flag, value in (
        ("--text", text), ("--image", image), ("--voice", voice), ("--video", video),
        ("--file", file), ("--link", link), ("--miniprogram", miniprogram), ("--menu", menu),
        ("--location", location), ("--ca-link", ca_link), ("--payload", payload))
        if value is not None]
    if len(given) != 1:
        raise UsageError("give exactly one message: --text, --image, --voice, --video, --file, "
                         "--link, --miniprogram, --menu, --location, --ca-link or --payload"
                         + (f" (got {', '.join(given)})" if given else ""))
    option = given[0]
    _refuse_details(option, {"--title": title, "--desc": desc, "--pagepath": pagepath,
                             "--thumb": thumb, "--thumb-media-id": thumb_media_id,
                             "--name": name, "--address": address})
    if msgid is not None:
        limits.check_msgid(msgid)
    if payload is not None:
        # The payload's own routing fields must agree with the command line, and its msgid is
        # kept (a rerun of the same file must not get a new msgid and deliver twice).
        doc = load_payload(payload)
        for key, value in (("touser", external_userid), ("open_kfid", open_kfid),
                           ("msgid", msgid)):
            if value is not None and key in doc and doc[key] != value:
                raise ValidationError("--payload", f"{key} {doc[key]!r} differs from the "
                                      f"command line's {value!r}")
        if msgid is None and "msgid" in doc:
            msgid = limits.check_msgid(doc["msgid"])
        msgtype, body = doc["msgtype"], doc[doc["msgtype"]]
    else:
        msgtype, body = _build(text=text, image=image, voice=voice, video=video, file=file,
                               link=link, miniprogram=miniprogram, menu=menu,
                               location=location, ca_link=ca_link, title=title, desc=desc,
                               pagepath=pagepath, thumb=thumb, thumb_media_id=thumb_media_id,
                               name=name, address=address)
    return msgtype, body, msgid


def _refuse_with_batch(open_kfid, external_userid, msgid, reply_to, dry_run,
                       **options: Any) -> None:
    """--batch takes its messages from the lines: nothing on the command line may say
    otherwise."""
    if open_kfid is not None or external_userid is not None:
        raise UsageError("--batch takes open_kfid and external_userid from each line, not "
                         "from the command line")
    extra = [f"--{name.replace('_', '-')}" for name, value in options.items()
             if value is not None]
    extra += [flag for flag, value in (("--msgid", msgid), ("--reply-to", reply_to),
                                       ("--dry-run", dry_run or None)) if value is not None]
    if extra:
        raise UsageError(f"--batch takes each message from its line: not with "
                         f"{', '.join(extra)}")


def _send_batch(source: str, parallel: int) -> None:
    """`msg send --batch`: results as JSON lines on stdout, a summary on stderr."""
    import contextlib

    from kfcli.core.batch import BatchSender, Ledger, decoded
    from kfcli.core.errors import Interrupted, PartialError

    st = state()
    out = st.out
    if source == "-":
        stream = st.env.stdin.buffer  # bytes: a line that is not UTF-8 is refused alone
    else:
        try:
            stream = open(source, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise UsageError(f"--batch: cannot read {source} ({exc.strerror})") from None
    client = st.client()
    settings = st.settings()

    def open_store():
        from kfcli.core.store import open_store

        return open_store(settings=settings)

    ledger = Ledger(open_store, settings.corp_id or "", out.warning, journal=send_journal())
    sender = BatchSender(client, out.line, parallel=parallel, ledger=ledger)
    try:
        with stream, contextlib.closing(ledger):
            ledger.open()  # a misconfigured store stops the batch before anything is sent
            summary = sender.run(decoded(stream))
            ledger.finish()  # what was sent while the store was away, recorded
    except KeyboardInterrupt:
        done = sender.summary
        unrecorded = len(ledger.backlog)
        kept = ledger.journal.pending() if ledger.journal is not None else 0
        raise Interrupted(f"interrupted after {done.sent + done.already_sent} sent"
                          + (f" ({unrecorded} results not recorded: the store was away)"
                             if unrecorded else "")
                          + (f" ({kept} sends kept in {ledger.journal.path}, recorded on the "
                             "next run)" if kept and ledger.journal is not None else "")
                          + "; running the same batch again sends only what is missing"
                          ) from None
    if ledger.kept and ledger.journal is not None:
        out.warning(f"{ledger.kept} send{'s' if ledger.kept != 1 else ''} could not be recorded "
                    f"in the store: kept in {ledger.journal.path}, recorded on the next run")
    total = summary.sent + summary.already_sent + summary.failed + summary.skipped + \
        summary.invalid
    text = (f"{total} line{'s' if total != 1 else ''}: {summary.sent} sent, "
            f"{summary.already_sent} already sent, {summary.skipped} skipped, "
            f"{summary.failed} failed, {summary.invalid} invalid")
    if summary.exit_code:
        raise PartialError(text, exit_code=summary.exit_code,
                           hint="each failed line is in the output with its reason; run the "
                           "same batch again to retry them (what was sent is not sent again)")
    out.info(text)


def _note_delivered_before(out, result, msgid: str | None) -> None:
    """Say so when the user's --msgid had been delivered by an earlier command. Not after our
    own retry (`result.retried`): then the lost first attempt may be what delivered it, and
    the send simply succeeded. A generated msgid cannot have been used before."""
    if result.already_delivered and msgid and not result.retried:
        out.info(f"msgid {msgid} was delivered before; WeCom did not deliver it again")


def _build(*, text, image, voice, video, file, link, miniprogram, menu, location, ca_link,
           title, desc, pagepath, thumb, thumb_media_id, name,
           address) -> tuple[str, dict[str, Any]]:
    """The message the flags describe, checked (media files are uploaded later, if at all)."""
    if menu is not None:
        return "msgmenu", load_menu(menu)
    if text is not None:
        msgtype, body = "text", messages.text(messages.load_text(text, "--text"))
    elif link is not None:
        if title is None:
            raise UsageError("--link needs --title")
        msgtype, body = "link", messages.link(link, title, _thumb(thumb, thumb_media_id,
                                                                  "--link"), desc)
    elif miniprogram is not None:
        if title is None or pagepath is None:
            raise UsageError("--miniprogram needs --title and --pagepath")
        msgtype, body = "miniprogram", messages.miniprogram(
            miniprogram, title, pagepath, _thumb(thumb, thumb_media_id, "--miniprogram"))
    elif location is not None:
        lat, lng = messages.parse_location(location, "--location")
        msgtype, body = "location", messages.location(lat, lng, name, address)
    elif ca_link is not None:
        msgtype, body = "ca_link", messages.ca_link(ca_link)
    else:
        msgtype, path = next((t, p) for t, p in (("image", image), ("voice", voice),
                                                  ("video", video), ("file", file))
                             if p is not None)
        body = {"media_id": _Upload(path, msgtype)}
    _check(msgtype, body)
    return msgtype, body


def load_menu(source: str) -> dict[str, Any]:
    """A menu from --menu (JSON, @FILE or -), its shape checked, errors as
    `--menu: list[0].click.id: …` (JSON paths, counted from 0)."""
    doc = messages.load_json(source, "--menu")
    messages.validate_menu(doc, Where("--menu"))
    return doc


def load_payload(source: str) -> dict[str, Any]:
    """A raw message from --payload: {"msgtype": T, T: {…}} plus optional msgid, touser,
    open_kfid; every field checked, errors as `--payload: text.content: …`."""
    where = Where("--payload")
    doc = limits.expect_object(messages.load_json(source, "--payload"), where,
                               'an object like {"msgtype": "text", "text": {"content": "…"}}')
    msgtype = doc.get("msgtype")
    if not isinstance(msgtype, str):
        raise where.key("msgtype").error(
            f"expected one of {', '.join(messages.MSGTYPES)}, got {limits.kind_of(msgtype)}")
    if msgtype not in messages.MSGTYPES:
        raise where.key("msgtype").error(
            f"{msgtype!r} is not one of {', '.join(messages.MSGTYPES)}")
    if msgtype not in doc:
        raise where.error(f"has msgtype {msgtype!r} but no {msgtype!r} object")
    unknown = set(doc) - {"msgtype", msgtype, "msgid", "touser", "open_kfid"}
    if unknown:
        raise where.error(f"unexpected keys: {', '.join(sorted(unknown))}")
    for key in ("msgid", "touser", "open_kfid"):
        if key in doc and not isinstance(doc[key], str):
            raise where.key(key).error(f"expected a string, got {limits.kind_of(doc[key])}")
    messages.validate(msgtype, doc[msgtype], where=where.key(msgtype))
    return doc


@app.command("send-on-event", cls=StrictCommand, epilog="""Examples:

  kfcli msg send-on-event MSG_CODE --text "欢迎咨询！"

  kfcli msg send-on-event MSG_CODE --menu @survey.json

Codes come from the enter_session event (welcome_code, valid 20 s), from `kfcli state trans`
(queue/servicer codes valid 48 h, closing code valid 20 s) or from session_status_change
events. Each code is single use.""")
@with_output
def send_on_event(
    code: Annotated[str, typer.Argument(help="The event's code.")],
    text: TextOpt = None,
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
    if text is not None:
        msgtype, body = "text", messages.text(messages.load_text(text, "--text"))
        _check(msgtype, body, on_event=True)
    else:
        msgtype, body = "msgmenu", load_menu(menu)
    out = state().out
    if dry_run:
        out.document({"code": code, "msgid": msgid or "<generated>", "msgtype": msgtype,
                   msgtype: body})
        return
    result = recording_client().send_message_on_event(code, msgtype, body, msgid=msgid)
    _note_delivered_before(out, result, msgid)
    out.value({"msgid": result.msgid, "msgtype": msgtype}, "msgid")
