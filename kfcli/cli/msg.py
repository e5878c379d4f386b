"""`kfcli msg`: send messages to customers and answer event codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from kfcli.cli.context import new_app, state, with_output
from kfcli.cli.media import upload_file
from kfcli.core import limits, messages
from kfcli.core.errors import (
    UsageError,
    ValidationError,
)

app = new_app("Send messages; pull them into the store (`msg sync`) and read it (`msg history`).")

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
    result = state().client().send_message(external_userid, open_kfid, msgtype, content,
                                           msgid=msgid)
    _note_delivered_before(out, result, msgid)
    out.obj({"msgid": result.msgid, "open_kfid": open_kfid, "touser": external_userid,
             "msgtype": msgtype}, ["msgid"])


def _note_delivered_before(out, result, msgid: str | None) -> None:
    """Say so when the user's --msgid had been delivered by an earlier command. Not after our
    own retry (`result.retried`): then the lost first attempt may be what delivered it, and
    the send simply succeeded. A generated msgid cannot have been used before."""
    if result.already_delivered and msgid and not result.retried:
        out.info(f"msgid {msgid} was delivered before; WeCom did not deliver it again")


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
    result = state().client().send_message_on_event(code, msgtype, body, msgid=msgid)
    _note_delivered_before(out, result, msgid)
    out.obj({"msgid": result.msgid, "msgtype": msgtype}, ["msgid"])


# `msg sync` and `msg history` live in their own module; importing it registers them.
from kfcli.cli import msg_stream as _msg_stream  # noqa: E402,F401
