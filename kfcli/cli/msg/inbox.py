"""`kfcli msg inbox` (who is waiting for an answer) and `kfcli msg reply` (answer a stored
message without pasting two ids). The work is in kfcli.core.inbox and msg send."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kfcli.cli.context import exclusive, state, with_output
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
from kfcli.core import limits

#: Conversations listed when neither --limit nor --all is given (most urgent first).
DEFAULT_LIMIT = 100


@app.command("inbox", epilog=f"""Examples:

  kfcli msg inbox

  kfcli msg inbox wkAbC123 -o json

  kfcli msg inbox --all -o jsonl

The conversations waiting for an answer, from the message store (what `msg sync` or the
receiver pulled, and every send kfcli recorded): the customer's last message is followed by
no send and no servicer message. For each: how long the customer has waited, what is left of
WeCom's reply window (5 sends within 48 h of their last message, on WeCom's clock), and the
session state where the store's events tell it (3 with a servicer, 4 ended: WeCom refuses
sends then). Most urgent first: the windows closing soonest, then sessions kfcli cannot
answer, then closed windows; at most {DEFAULT_LIMIT} unless --limit N or --all (stderr says
how many more wait). Answer one with `kfcli msg reply MSGID --text …`.

-o json/jsonl: open_kfid, external_userid, msgid, send_time, waited and closes_in (seconds),
window_left, state (null when open or unknown), answerable, text.

Exit status: 0 done (also when nobody waits), 2 invalid input, 3 no store where the
settings point (a read creates none) or it is misconfigured, 6 a PostgreSQL store is
unreachable.""")
@with_output
def inbox(
    open_kfid: Annotated[str | None, typer.Argument(
        help="The account's open_kfid (default: every account).", show_default=False)] = None,
    limit: Annotated[int | None, typer.Option(
        "--limit", metavar="N", help=f"At most N conversations, most urgent first (default "
        f"{DEFAULT_LIMIT}).", min=1, max=10**9, show_default=False)] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every waiting conversation.")] = False,
) -> None:
    """Conversations waiting for an answer, most urgent first."""
    from kfcli.core.inbox import COLUMNS, FIELDS, HEADERS, inbox, table_row
    from kfcli.core.store import open_store

    if open_kfid is not None:
        limits.check_open_kfid(open_kfid)
    exclusive(**{"--limit": limit, "--all": all_})
    cap = None if all_ else (limit or DEFAULT_LIMIT)
    st = state()
    out = st.out
    settings = st.settings()
    if not settings.corp_id:
        settings.require("corp_id")
    with open_store(settings=settings, create=False) as store:
        entries, waiting = inbox(store, settings.corp_id or "", open_kfid, now=st.env.clock(),
                                 limit=cap)
    if waiting > len(entries):
        out.info(f"{waiting - len(entries)} more waiting (--limit N or --all shows them)")
    if out.machine:
        out.rows([{k: e[k] for k in FIELDS} for e in entries], FIELDS)
        return
    out.rows([table_row(e) for e in entries], COLUMNS, headers=HEADERS,
             extra=[k for k in FIELDS if k not in COLUMNS], optional=("open_kfid", "state"),
             empty="nobody is waiting for an answer")


FileOpt = Annotated[Path | None, typer.Option(dir_okay=False, show_default=False)]


@app.command("reply", cls=StrictCommand, epilog="""Examples:

  kfcli msg reply 6F0Bc4Tr3aa8x --text "已收到，马上处理"

  kfcli msg reply 6F0Bc4Tr3aa8x --image photo.jpg

  kfcli msg reply 6F0Bc4Tr3aa8x --text "还有一件事" --reply-number 2

Answers a customer message in the store (`kfcli msg inbox` lists those waiting): the account
and the customer are the message's, and the msgid is derived from MSGID and --reply-number
(as `msg send --reply-to`), so the same reply sent again is reported as already sent and not
delivered; a second, different answer to the same message takes --reply-number 2. The send is
recorded in the store with the conversation.

Exit status: 0 sent; 1 the send failed; 2 invalid input; 3 configuration; 4 MSGID is not in
the store (run `kfcli msg sync` first); 6 the network.""")
@with_output
def reply(
    msgid: Annotated[str, typer.Argument(metavar="MSGID", help="The customer message answered.",
                                         show_default=False)],
    text: TextOpt = None,
    image: ImageOpt = None,
    voice: VoiceOpt = None,
    video: VideoOpt = None,
    file: AttachmentOpt = None,
    menu: MenuOpt = None,
    payload: PayloadOpt = None,
    reply_number: Annotated[int, typer.Option(
        "--reply-number", metavar="N", min=1, max=5, help="Which answer to that message "
        "this is (WeCom allows 5).")] = 1,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the request body and send nothing.")] = False,
) -> None:
    """Answer a stored customer message: its account and customer, a derived msgid."""
    from kfcli.cli.msg.send import send
    from kfcli.core.inbox import answered
    from kfcli.core.store import open_store

    limits.check_msgid(msgid)
    settings = state().settings()
    if not settings.corp_id:
        settings.require("corp_id")
    with open_store(settings=settings, create=False) as store:
        open_kfid, customer = answered(store, settings.corp_id or "", msgid)
    send.__wrapped__(open_kfid, customer, text=text, image=image, voice=voice,  # type: ignore[attr-defined]
                     video=video, file=file, menu=menu, payload=payload, reply_to=msgid,
                     reply_number=reply_number, dry_run=dry_run)
