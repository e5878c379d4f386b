"""`kfcli state`: session state (会话状态) of a customer with an account (kf-api.md §1.5)."""

from __future__ import annotations

from typing import Annotated

import typer

from kfcli.cli.context import new_app, with_output
from kfcli.cli.context import state as app_state
from kfcli.core import limits

app = new_app("Read and change the session state of a customer.")

NAMES = {v: k for k, v in limits.STATE_NAMES.items()}
MEANING = {
    0: "new: the customer wrote, nobody has answered",
    1: "assistant: handled by the API / a bot",
    2: "pool: waiting in the queue",
    3: "servicer: a human servicer has it",
    4: "ended (or never started)",
}
#: What a msg_code obtained on entering each state allows (kf-api.md §1.6).
CODE_NOTE = {
    2: "valid 48 h, single use, while the session stays queued: one text message",
    3: "valid 48 h, single use, while the servicer has the session: one text message",
    4: "valid 20 s, single use: one text or menu message (closing words, survey)",
}

OpenKfidArg = Annotated[str, typer.Argument(help="The account's open_kfid.")]
CustomerArg = Annotated[str, typer.Argument(help="The customer's external_userid.")]


@app.command("get", epilog="""Examples:

  kfcli state get wkAbC123 wmXyZ789

  kfcli state get wkAbC123 wmXyZ789 -o json

TSV columns: service_state, name, servicer_userid.""")
@with_output
def get(open_kfid: OpenKfidArg, external_userid: CustomerArg) -> None:
    """Show the session state (0-4) and, in state 3, the servicer."""
    result = app_state().client().service_state_get(open_kfid=open_kfid,
                                                     external_userid=external_userid)
    doc = {**result.to_dict(), "name": NAMES.get(result.service_state, "?")}
    out = app_state().out
    if out.machine:
        out.obj(result.to_dict())
    else:
        out.obj(doc, ["service_state", "name", "servicer_userid"])
        if out.fmt == "table":
            out.info(MEANING.get(result.service_state, ""))


@app.command("trans", epilog="""Examples:

  kfcli state trans wkAbC123 wmXyZ789 pool

  kfcli state trans wkAbC123 wmXyZ789 servicer --servicer zhangsan

  kfcli state trans wkAbC123 wmXyZ789 4

STATE: new (0), assistant (1), pool (2), servicer (3), ended (4). Allowed moves: 0 -> 1/2/3/4,
1 -> 2/3/4, 2 -> 3/4, 3 -> 3 (another servicer)/4; WeCom answers 95016 otherwise.
Prints the msg_code WeCom returns (for `kfcli msg send-on-event`), if any.""")
@with_output
def trans(
    open_kfid: OpenKfidArg,
    external_userid: CustomerArg,
    target: Annotated[str, typer.Argument(metavar="STATE", help="Target state: 0-4 or a name.")],
    servicer: Annotated[str | None, typer.Option(
        "--servicer", help="Servicer userid (required for state servicer/3).",
        show_default=False)] = None,
) -> None:
    """Move a session to another state (queue it, assign a servicer, end it)."""
    service_state = limits.parse_state(target)
    limits.check_state_target(service_state, servicer)
    msg_code = app_state().client().service_state_trans(
        open_kfid=open_kfid, external_userid=external_userid, service_state=service_state,
        servicer_userid=servicer)
    if msg_code:  # `msg send-on-event` records its send with this conversation
        from kfcli.core.sends import remember_code

        remember_code(msg_code, open_kfid, external_userid)
    out = app_state().out
    doc = {"open_kfid": open_kfid, "external_userid": external_userid,
           "service_state": service_state, "msg_code": msg_code}
    if out.machine:
        out.obj(doc)
        return
    out.info(f"session is now {service_state} ({NAMES[service_state]})")
    if msg_code:
        out.value(doc, "msg_code")
        out.info(f"msg_code {CODE_NOTE.get(service_state, 'single use')}: "
                 f"kfcli msg send-on-event CODE --text …")
