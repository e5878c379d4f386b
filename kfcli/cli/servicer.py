"""`kfcli servicer`: the people (接待人员) and departments that receive an account's chats."""

from __future__ import annotations

from typing import Annotated

import typer

from kfcli.cli.context import FromOpt, YesOpt, confirm, new_app, read_ids, state, with_output
from kfcli.cli.text import plural
from kfcli.core import limits
from kfcli.core.errors import (
    Interrupted,
    KfError,
    PartialError,
    UsageError,
    ValidationError,
)

app = new_app("List, add and remove servicers of a KF account.")

OpenKfidArg = Annotated[str, typer.Argument(help="The account's open_kfid.")]
UseridsArg = Annotated[list[str] | None, typer.Argument(help="Member userids.",
                                                        show_default=False)]
DeptOpt = Annotated[list[str] | None, typer.Option(
    "--department", "-d", help="Department id (repeatable).", show_default=False)]

STATUS = {(0, None): "receiving", (1, 0): "stopped", (1, 1): "suspended"}


@app.command("list", epilog="""Examples:

  kfcli servicer list wkAbC123

  kfcli servicer list wkAbC123 -o json

TSV columns: userid, department_id, status (receiving, stopped, suspended).""")
@with_output
def list_(open_kfid: OpenKfidArg) -> None:
    """List the servicers of an account."""
    limits.check_open_kfid(open_kfid)
    servicers = state().client().servicer_list(open_kfid)
    rows = []
    for s in servicers:
        row = s.to_dict()
        if s.userid is not None:
            row["status_name"] = STATUS.get((s.status or 0, s.stop_type if s.status else None),
                                            str(s.status))
        rows.append(row)
    out = state().out
    if out.machine:
        out.rows([s.to_dict() for s in servicers], [])
    else:
        out.rows(rows, ["userid", "department_id", "status_name"],
                 headers=["userid", "department_id", "status"],
                 empty="no servicers; add some with `kfcli servicer add`")


def _departments(values: list[str] | None) -> list[int]:
    ids = []
    for value in values or []:
        if not value.isdigit() or int(value) < 1:
            raise ValidationError("--department", f"{value!r} is not a department id "
                                  "(a positive integer)")
        ids.append(int(value))
    return list(dict.fromkeys(ids))


def _apply(op: str, open_kfid: str, userids: list[str], departments: list[int]) -> None:
    limits.check_open_kfid(open_kfid)
    if not userids and not departments:
        raise UsageError("give at least one USERID or --department (or --from FILE)")
    if not state().out.machine:
        state().out.columns_for(REPORT_COLUMNS)  # a bad --columns fails before any change
    for uid in userids:
        limits.check_text("userid", uid, max_bytes=64)
    client = state().client()
    call = client.servicer_add if op == "add" else client.servicer_delete
    out = state().out
    size = limits.BATCH_IDS
    total = len(userids) + len(departments)
    # TSV and JSON lines are written batch by batch, so an interrupt or a failure keeps the
    # record of what was done; a table and a JSON document need every row first.
    streaming = out.fmt in ("tsv", "jsonl")
    results, pending, done = [], [], 0
    verb = "added" if op == "add" else "removed"
    try:
        # One request per batch of up to 100 userids and 100 departments (WeCom's limit).
        for start in range(0, max(len(userids), len(departments)), size):
            batch_users = userids[start:start + size]
            batch_depts = departments[start:start + size]
            out.status(f"servicer {'add' if op == 'add' else 'remove'}: {done} of {total} "
                       f"done, sending {len(batch_users) + len(batch_depts)}…")
            batch = call(open_kfid=open_kfid, userids=batch_users, department_ids=batch_depts)
            done += len(batch_users) + len(batch_depts)
            results.extend(batch)
            if streaming:
                _report(batch)
            else:
                pending.extend(batch)
    except KeyboardInterrupt:
        out.status(None)
        _report(pending)
        raise Interrupted(f"interrupted after {done} of {total} ({done} {verb} or reported "
                          "above)", hint="run the same command again to do the rest: ids "
                          "already done are reported as ignored") from None
    except KfError:
        out.status(None)
        _report(pending)  # what earlier batches did must not vanish with the error
        raise
    out.status(None)
    _report(pending)
    failed = [r for r in results if not r.ok]
    if failed:
        first = failed[0]
        raise PartialError(
            f"{len(failed)} of {len(results)} items failed (first: "
            f"{first.userid or first.department_id}: {first.errcode} {first.errmsg})",
            hint="userids must be members of the corp and inside the app's visible range",
        )


REPORT_COLUMNS = ["id", "result", "errcode", "errmsg"]


def _report(results) -> None:
    if not results and state().out.fmt in ("tsv", "jsonl"):
        return
    rows = []
    for r in results:
        row = r.to_dict()
        row["id"] = r.userid if r.userid is not None else r.department_id
        row["result"] = "ok" if r.ok and r.errmsg != "ignored" else (
            "ignored" if r.ok else "failed")
        rows.append(row)
    out = state().out
    if out.machine:
        out.rows([r.to_dict() for r in results], [])
    else:
        out.rows(rows, REPORT_COLUMNS)


@app.command("add", epilog="""Examples:

  kfcli servicer add wkAbC123 zhangsan lisi

  kfcli servicer add wkAbC123 --department 2 --department 7

  cut -f1 team.tsv | kfcli servicer add wkAbC123 --from -

Any number of ids: sent in batches of 100. Prints one result per id; exits 1 if any failed.""")
@with_output
def add(open_kfid: OpenKfidArg, userids: UseridsArg = None, department: DeptOpt = None,
        from_: FromOpt = None) -> None:
    """Add members or departments as servicers of an account."""
    _apply("add", open_kfid, read_ids(userids, from_, "userid"), _departments(department))


@app.command("remove", epilog="""Examples:

  kfcli servicer remove wkAbC123 zhangsan --yes

  kfcli servicer remove wkAbC123 --department 7 --yes""")
@with_output
def remove(open_kfid: OpenKfidArg, userids: UseridsArg = None, department: DeptOpt = None,
           from_: FromOpt = None, yes: YesOpt = False) -> None:
    """Remove servicers from an account. Asks first; scripts must pass --yes."""
    ids = read_ids(userids, from_, "userid")
    departments = _departments(department)
    if not ids and not departments:
        raise UsageError("give at least one USERID or --department (or --from FILE)")
    confirm(f"Remove {plural(len(ids) + len(departments), 'servicer')} from {open_kfid}?",
            yes=yes)
    _apply("del", open_kfid, ids, departments)
