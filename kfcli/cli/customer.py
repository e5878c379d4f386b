"""`kfcli customer`: customer (微信客户) details by external_userid."""

from __future__ import annotations

from typing import Annotated

import typer

from kfcli.cli.context import FromOpt, new_app, read_ids, state, with_output
from kfcli.cli.strict import StrictCommand
from kfcli.cli.text import plural
from kfcli.core import limits
from kfcli.core.errors import PartialError, UsageError

app = new_app("Look up customers.")

GENDER = {0: "unknown", 1: "male", 2: "female"}


@app.command("get", cls=StrictCommand, epilog="""Examples:

  kfcli customer get wmXyZ789

  kfcli customer get wmA wmB wmC --with-context -o json

  kfcli customer get --from ids.txt

Any number of ids (batches of 100). TSV columns: external_userid, nickname, gender, unionid,
scene, scene_param (the last two filled with --with-context, which also adds them to the
table). Unknown ids are reported on stderr and make the exit code 4.""")
@with_output
def get(
    external_userids: Annotated[list[str] | None, typer.Argument(
        help="external_userids.", show_default=False)] = None,
    with_context: Annotated[bool, typer.Option(
        "--with-context", help="Include the last enter-session context (within 48 h).")
    ] = False,
    from_: FromOpt = None,
) -> None:
    """Show customers' nicknames, gender, unionid and how they entered the session."""
    ids = read_ids(external_userids, from_, "external_userid")
    if not ids:
        raise UsageError("give at least one EXTERNAL_USERID (or --from FILE)")
    for uid in ids:
        limits.check_external_userid(uid)
    client = state().client()
    customers, invalid = [], []
    for start in range(0, len(ids), limits.BATCH_IDS):
        batch = client.customer_batchget(ids[start:start + limits.BATCH_IDS],
                                         with_context=with_context)
        customers.extend(batch.customer_list)
        invalid.extend(batch.invalid_external_userid)
    out = state().out
    if out.machine:
        out.obj({"customer_list": customers, "invalid_external_userid": invalid})
    else:
        # --with-context asks for scene and scene_param: on a terminal they are shown even
        # when empty ("-": no session entered in the last 48 h), never hidden to fit; the
        # table gives up gender and unionid first. Without it they are always empty: left out.
        none = "-" if out.fmt == "table" else ""
        rows = []
        for c in customers:
            ctx = c.get("enter_session_context") or {}
            rows.append({**c, "gender": GENDER.get(c.get("gender"), c.get("gender")),
                         "scene": ctx.get("scene") or none,
                         "scene_param": ctx.get("scene_param") or none})
        columns = ["external_userid", "nickname", "gender", "unionid"]
        if with_context or out.fmt != "table":  # TSV keeps its six columns
            columns += ["scene", "scene_param"]
        out.rows(rows, columns, optional=["unionid", "gender"], extra=["avatar"])
    if invalid:
        raise PartialError(f"{plural(len(invalid), 'external_userid')} not found: "
                           f"{', '.join(invalid[:5])}{' …' if len(invalid) > 5 else ''}",
                           exit_code=4)
