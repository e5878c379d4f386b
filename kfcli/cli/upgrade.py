"""`kfcli upgrade`: recommend a dedicated member or a customer group (升级服务)."""

from __future__ import annotations

from typing import Annotated

import typer

from kfcli.cli.context import new_app, state, with_output
from kfcli.cli.strict import StrictCommand
from kfcli.core import limits

app = new_app("Upgrade service: dedicated members and customer groups.")

OpenKfidArg = Annotated[str, typer.Argument(help="The account's open_kfid.")]
CustomerArg = Annotated[str, typer.Argument(help="The customer's external_userid.")]
WordingOpt = Annotated[str | None, typer.Option(
    "--wording", help="Recommendation text shown to the customer.", show_default=False)]


@app.command("config", epilog="Example:\n\n  kfcli upgrade config -o json")
@with_output
def config() -> None:
    """Show which members and groups are configured in 微信客服 → 升级服务."""
    doc = state().client().upgrade_service_config()
    out = state().out
    if out.machine:
        out.obj(doc)
        return
    member = doc.get("member_range", {})
    group = doc.get("groupchat_range", {})
    rows = [{"kind": "member", "id": u} for u in member.get("userid_list", [])]
    rows += [{"kind": "department", "id": d} for d in member.get("department_id_list", [])]
    rows += [{"kind": "groupchat", "id": c} for c in group.get("chat_id_list", [])]
    out.rows(rows, ["kind", "id"], empty="nothing configured in 微信客服 → 升级服务")


def _check_ids(open_kfid: str, external_userid: str) -> None:
    limits.check_open_kfid(open_kfid)
    limits.check_external_userid(external_userid)


def _upgrade(open_kfid: str, external_userid: str, **target) -> None:
    # Every id is checked before the client exists: an empty --userid must be exit 2, never
    # a request (an empty member id once went out as a group-chat upgrade).
    _check_ids(open_kfid, external_userid)
    if "member_userid" in target:
        limits.check_userid(target["member_userid"], "--userid")
    else:
        limits.check_chat_id(target["chat_id"], "--chat-id")
    if target.get("wording") is not None:
        limits.check_text("--wording", target["wording"], max_bytes=1024)
    state().client().upgrade_service(open_kfid=open_kfid, external_userid=external_userid,
                                     **target)
    doc = {"open_kfid": open_kfid, "external_userid": external_userid,
           **{k: v for k, v in target.items() if v}}
    state().out.done(doc, f"recommended to {external_userid}")


@app.command("member", cls=StrictCommand, epilog="""Example:

  kfcli upgrade member wkAbC123 wmXyZ789 --userid zhangsan \\
      --wording "Your advisor"
""")
@with_output
def member(open_kfid: OpenKfidArg, external_userid: CustomerArg,
           userid: Annotated[str, typer.Option("--userid", help="The dedicated member.")],
           wording: WordingOpt = None) -> None:
    """Recommend a dedicated member to the customer (type 1)."""
    _upgrade(open_kfid, external_userid, member_userid=userid, wording=wording)


@app.command("group", cls=StrictCommand, epilog="""Example:

  kfcli upgrade group wkAbC123 wmXyZ789 \\
      --chat-id wrOgQhDgAAcwMTB7YmDkbeBsgT_AAAAA
""")
@with_output
def group(open_kfid: OpenKfidArg, external_userid: CustomerArg,
          chat_id: Annotated[str, typer.Option("--chat-id", help="The customer group chat.")],
          wording: WordingOpt = None) -> None:
    """Recommend a customer group to the customer (type 2)."""
    _upgrade(open_kfid, external_userid, chat_id=chat_id, wording=wording)


@app.command("cancel", cls=StrictCommand,
             epilog="Example:\n\n  kfcli upgrade cancel wkAbC123 wmXyZ789")
@with_output
def cancel(open_kfid: OpenKfidArg, external_userid: CustomerArg) -> None:
    """Withdraw the recommendation."""
    _check_ids(open_kfid, external_userid)
    state().client().cancel_upgrade_service(open_kfid=open_kfid,
                                            external_userid=external_userid)
    state().out.done({"open_kfid": open_kfid, "external_userid": external_userid,
                      "cancelled": True},
                     f"cancelled the upgrade recommendation for {external_userid}")
