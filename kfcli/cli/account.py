"""`kfcli account`: customer-service accounts (客服帐号)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kfcli.cli.context import YesOpt, confirm, exclusive, new_app, state, with_output
from kfcli.cli.text import plural
from kfcli.core import limits
from kfcli.core.errors import UsageError

app = new_app("List, create, rename and delete KF accounts.")

COLUMNS = ["open_kfid", "name", "manage_privilege", "avatar"]

NameOpt = Annotated[
    str | None, typer.Option("--name", help="Account name, 1-16 characters.", show_default=False)
]
AvatarOpt = Annotated[
    Path | None,
    typer.Option("--avatar", help="Avatar image (JPG/PNG, up to 10 MB), uploaded first.",
                 show_default=False, dir_okay=False),
]
MediaIdOpt = Annotated[
    str | None,
    typer.Option("--media-id", help="Avatar as an already uploaded image media_id.",
                 show_default=False),
]


def avatar_media_id(avatar: Path | None, media_id: str | None) -> str | None:
    """Check the avatar options, then upload the file if one was given."""
    exclusive(**{"--avatar": avatar, "--media-id": media_id})
    if media_id is not None:
        return limits.check_media_id(media_id)
    if avatar is None:
        return None
    from kfcli.cli.media import upload_file  # only when uploading: a listing skips it

    return upload_file(avatar, "image").media_id


@app.command("list", epilog="""Examples:

  kfcli account list

  kfcli account list --all -o json

  kfcli account list --limit 10 --offset 20

TSV columns: open_kfid, name, manage_privilege, avatar.""")
@with_output
def list_(
    all_: Annotated[bool, typer.Option("--all", help="Page through every account.")] = False,
    limit: Annotated[int | None, typer.Option(
        "--limit", help="Accounts to show, 1-100 (default 100; not with --all).",
        show_default=False)] = None,
    offset: Annotated[int | None, typer.Option(
        "--offset", help="Accounts to skip (default 0; not with --all).",
        show_default=False)] = None,
) -> None:
    """List KF accounts (POST with offset/limit, so more than 100 accounts are reachable)."""
    exclusive(**{"--all": all_, "--limit": limit})
    exclusive(**{"--all": all_, "--offset": offset})
    limit = limits.ACCOUNT_LIST_LIMIT if limit is None else limit
    offset = offset or 0
    limits.check_limit(limit, limits.ACCOUNT_LIST_LIMIT)
    limits.check_offset(offset)
    client = state().client()
    if all_:
        accounts = list(client.iter_accounts(page_size=limits.ACCOUNT_LIST_LIMIT))
    else:
        accounts = client.account_list(offset=offset, limit=limit)
        if len(accounts) == limit:
            state().out.info(f"showing {plural(limit, 'account')}; there may be more (use --all)")
    rows = [a.to_dict() for a in accounts]
    # TAB completion offers these open_kfids from a local cache, never from a request.
    from kfcli._complete import remember_accounts

    remember_accounts(rows, sandbox=state().sandbox, corp_id=state().settings().corp_id,
                      full=all_ or (offset == 0 and len(rows) < limit))
    state().out.rows(rows, COLUMNS, empty="no accounts yet; create one with `kfcli account add`")


@app.command("add", epilog="""Examples:

  kfcli account add --name Support --avatar logo.png

  kfcli account add --name 售后服务 --media-id 3a8asd892asd8asd

Prints the new open_kfid (TSV) or {"open_kfid", "name", "media_id"} (JSON).""")
@with_output
def add(name: NameOpt = None, avatar: AvatarOpt = None, media_id: MediaIdOpt = None) -> None:
    """Create a KF account with a name and an avatar."""
    if name is None:
        raise UsageError("--name is required")
    limits.check_account_name(name, "--name")
    if avatar is None and media_id is None:
        raise UsageError("an avatar is required: --avatar FILE or --media-id ID")
    media = avatar_media_id(avatar, media_id)
    open_kfid = state().client().account_add(name, media)
    state().out.value({"open_kfid": open_kfid, "name": name, "media_id": media}, "open_kfid")


@app.command("update", epilog="""Examples:

  kfcli account update wkAbC123 --name "After-sales"

  kfcli account update wkAbC123 --avatar new.png""")
@with_output
def update(
    open_kfid: Annotated[str, typer.Argument(help="The account's open_kfid.")],
    name: NameOpt = None,
    avatar: AvatarOpt = None,
    media_id: MediaIdOpt = None,
) -> None:
    """Rename an account or change its avatar."""
    limits.check_open_kfid(open_kfid)
    if name is None and avatar is None and media_id is None:
        raise UsageError("nothing to update: give --name, --avatar or --media-id")
    if name is not None:
        limits.check_account_name(name, "--name")
    media = avatar_media_id(avatar, media_id)
    state().client().account_update(open_kfid, name=name, media_id=media)
    doc = {"open_kfid": open_kfid, "name": name, "media_id": media}
    state().out.done({k: v for k, v in doc.items() if v is not None},
                     f"updated account {open_kfid}")


@app.command("delete", epilog="""Examples:

  kfcli account delete wkAbC123

  kfcli account delete wkAbC123 --yes     # in scripts""")
@with_output
def delete(
    open_kfid: Annotated[str, typer.Argument(help="The account's open_kfid.")],
    yes: YesOpt = False,
) -> None:
    """Delete a KF account. Asks first; scripts must pass --yes."""
    limits.check_open_kfid(open_kfid)
    confirm(f"Delete KF account {open_kfid}? Its contact links stop working.", yes=yes)
    state().client().account_delete(open_kfid)
    state().out.done({"open_kfid": open_kfid, "deleted": True}, f"deleted account {open_kfid}")
