"""`kfcli knowledge`: the assistant's knowledge base: groups and intents (kf-api.md §2.11)."""

from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import Annotated, Any

import typer

from kfcli.cli.context import YesOpt, confirm, exclusive, new_app, state, with_output
from kfcli.cli.media import upload_file
from kfcli.cli.text import plural
from kfcli.core import limits, messages
from kfcli.core.errors import KnowledgeNotFound, UsageError, ValidationError

app = new_app("Knowledge base: groups and intents (self-built apps only).")
group_app = new_app("Knowledge groups.")
intent_app = new_app("Intents: a question, similar questions and one answer.")
app.add_typer(group_app, name="group")
app.add_typer(intent_app, name="intent")

AllOpt = Annotated[bool, typer.Option("--all", help="Every item (default: the first --limit).")]
LimitOpt = Annotated[int | None, typer.Option(
    "--limit", help="Items to show, 1-1000 (default 500; not with --all).", show_default=False)]


def _limit(all_: bool, limit: int | None) -> int:
    """--limit (also the page size), refused beside --all (which pages by 500)."""
    exclusive(**{"--all": all_, "--limit": limit})
    limit = 500 if limit is None else limit
    limits.check_limit(limit, limits.KNOWLEDGE_LIST_LIMIT)
    return limit


def _list(items, limit: int, all_: bool) -> list[dict]:
    rows = list(items) if all_ else list(islice(items, limit + 1))
    if not all_ and len(rows) > limit:
        rows = rows[:limit]
        state().out.info(f"showing {limit}; there are more (use --all)")
    return rows


@group_app.command("list", epilog="Examples:\n\n  kfcli knowledge group list\n\n"
                   "  kfcli knowledge group list --all -o json\n\n"
                   "TSV columns: group_id, name, is_default.")
@with_output
def group_list(all_: AllOpt = False, limit: LimitOpt = None) -> None:
    """List knowledge groups (the default group is marked)."""
    limit = _limit(all_, limit)
    client = state().client()
    rows = _list(client.knowledge_groups(page_size=limit), limit, all_)
    out = state().out
    if not out.machine:  # WeCom's 0/1 shown like every other yes/no (JSON keeps it raw)
        rows = [{**r, "is_default": bool(r.get("is_default"))} for r in rows]
    out.rows(rows, ["group_id", "name", "is_default"])


@group_app.command("add", epilog="Example:\n\n  kfcli knowledge group add 售后问题")
@with_output
def group_add(name: Annotated[str, typer.Argument(help="Group name, 1-12 characters.")]
              ) -> None:
    """Create a group; prints its group_id."""
    limits.check_text("name", name, max_chars=limits.KNOWLEDGE_GROUP_CHARS)
    group_id = state().client().knowledge_group_add(name)
    state().out.value({"group_id": group_id, "name": name}, "group_id")


@group_app.command("rename", epilog="Example:\n\n  kfcli knowledge group rename GROUP_ID 退换货")
@with_output
def group_rename(group_id: Annotated[str, typer.Argument(help="The group.")],
                 name: Annotated[str, typer.Argument(help="New name, 1-12 characters.")]
                 ) -> None:
    """Rename a group (not the default group)."""
    limits.check_text("name", name, max_chars=limits.KNOWLEDGE_GROUP_CHARS)
    state().client().knowledge_group_rename(group_id, name)
    state().out.done({"group_id": group_id, "name": name}, f"renamed group {group_id}")


@group_app.command("delete", epilog="Example:\n\n  kfcli knowledge group delete GROUP_ID --yes")
@with_output
def group_delete(group_id: Annotated[str, typer.Argument(help="The group.")],
                 yes: YesOpt = False) -> None:
    """Delete a group and its intents (not the default group)."""
    confirm(f"Delete knowledge group {group_id} and all its intents?", yes=yes)
    state().client().knowledge_group_delete(group_id)
    state().out.done({"group_id": group_id, "deleted": True}, f"deleted group {group_id}")


# ---------------------------------------------------------------------- intents

SimilarOpt = Annotated[list[str] | None, typer.Option(
    "--similar", help="A similar question (repeatable; replaces all of them on update).",
    show_default=False)]
AttachOpt = Annotated[list[str] | None, typer.Option(
    "--attachment", help='Attachment JSON, e.g. {"msgtype":"link","link":{…}} or @FILE '
    "(repeatable, up to 4).", show_default=False)]
ImageOpt = Annotated[list[Path] | None, typer.Option(
    "--image", help="Image file to attach (uploaded; repeatable).", dir_okay=False,
    show_default=False)]


def _question(text: str) -> dict[str, Any]:
    limits.check_text("question", text, max_chars=limits.KNOWLEDGE_QUESTION_CHARS)
    return {"text": {"content": text}}


def _similar(items: list[str]) -> dict[str, Any]:
    return {"items": [{"text": {"content": q}} for q in items]}


def _answer(text: str, attachments: list[str], images: list[Path]) -> list[dict[str, Any]]:
    parsed = []
    for n, source in enumerate(attachments, 1):
        # Shape and fields checked with their JSON path: `--attachment #2: link.url: …`.
        label = "--attachment" if len(attachments) == 1 else f"--attachment #{n}"
        parsed.append(limits.check_attachment(messages.load_json(source, label),
                                              limits.Where(label)))
    total = len(parsed) + len(images)
    if total > limits.KNOWLEDGE_ATTACHMENTS_MAX:
        raise ValidationError("attachments", f"{total} attachments, at most "
                              f"{limits.KNOWLEDGE_ATTACHMENTS_MAX}")
    for path in images:
        limits.check_media_file(path, "image")
    answer: dict[str, Any] = {"text": {"content": text}}
    if total:
        answer["attachments"] = parsed  # images are uploaded once everything is checked
    return [answer]


def _upload_images(answers: list[dict[str, Any]], images: list[Path]) -> None:
    for path in images:
        media_id = upload_file(path, "image").media_id
        answers[0].setdefault("attachments", []).append(
            {"msgtype": "image", "image": {"media_id": media_id}})


@intent_app.command("list", epilog="""Examples:

  kfcli knowledge intent list --group GROUP_ID

  kfcli knowledge intent list --all -o json

TSV columns: intent_id, group_id, question, answer. A --group or --intent that does not exist
exits 4.""")
@with_output
def intent_list(
    group: Annotated[str | None, typer.Option("--group", help="Only this group.",
                                              show_default=False)] = None,
    intent: Annotated[str | None, typer.Option("--intent", help="Only this intent.",
                                               show_default=False)] = None,
    all_: AllOpt = False,
    limit: LimitOpt = None,
) -> None:
    """List intents with their question and answer."""
    limit = _limit(all_, limit)
    client = state().client()
    rows = _list(client.knowledge_intents(group_id=group, intent_id=intent, page_size=limit),
                 limit, all_)
    if not rows:
        _require(client, group, intent)  # WeCom lists nothing for an unknown id: say so
    out = state().out
    if out.machine:
        out.rows(rows, [])
        return
    flat = [{"intent_id": r.get("intent_id"), "group_id": r.get("group_id"),
             "question": ((r.get("question") or {}).get("text") or {}).get("content", ""),
             "answer": (((r.get("answers") or [{}])[0].get("text") or {}).get("content", ""))}
            for r in rows]
    where = f" in group {group}" if group else ""
    out.rows(flat, ["intent_id", "group_id", "question", "answer"], optional=["group_id"],
             empty=f"no intents{where}; add one with `kfcli knowledge intent add`")


def _require(client, group: str | None, intent: str | None) -> None:
    if group and not any(True for _ in client.knowledge_groups(group_id=group)):
        raise KnowledgeNotFound(f"knowledge group {group!r} not found",
                       hint="`kfcli knowledge group list` shows the groups")
    if intent:
        where = f" in group {group!r}" if group else ""
        raise KnowledgeNotFound(f"intent {intent!r} not found{where}",
                       hint="`kfcli knowledge intent list` shows the intents")


@intent_app.command("add", epilog="""Examples:

  kfcli knowledge intent add --group GROUP_ID --question "如何退货？" \\
      --answer "七天内可退。"

  kfcli knowledge intent add --group G --question "营业时间" \\
      --similar "几点开门" --answer "9:00-18:00" --image hours.png

Prints the intent_id. Limits: question and similar questions 200 characters, up to 100 similar
questions, answer 500 characters, up to 4 attachments.""")
@with_output
def intent_add(
    group: Annotated[str, typer.Option("--group", help="The group.")],
    question: Annotated[str, typer.Option("--question", help="The question.")],
    answer: Annotated[str, typer.Option("--answer", help="The answer text.")],
    similar: SimilarOpt = None,
    attachment: AttachOpt = None,
    image: ImageOpt = None,
) -> None:
    """Add an intent to a group."""
    body = {"question": _question(question), "similar_questions": _similar(similar or []),
            "answers": _answer(answer, attachment or [], image or [])}
    limits.check_intent(body)
    _upload_images(body["answers"], image or [])
    intent_id = state().client().knowledge_intent_add(
        group, body["question"], body["answers"], body["similar_questions"] if similar else None)
    state().out.value({"intent_id": intent_id, "group_id": group}, "intent_id")


@intent_app.command("update", epilog="""Examples:

  kfcli knowledge intent update INTENT_ID --answer "十天内可退。"

  kfcli knowledge intent update INTENT_ID \\
      --similar "怎么退" --similar "退货流程"

Each section given (question, similar questions, answer with its attachments) replaces that
section wholesale, as WeCom does. A new --answer without --attachment or --image would remove
the answer's attachments: kfcli asks first (--yes drops them without asking), or keeps them
with --keep-attachments (also beside new ones, up to 4 in all).""")
@with_output
def intent_update(
    intent_id: Annotated[str, typer.Argument(help="The intent.")],
    question: Annotated[str | None, typer.Option("--question", help="New question.",
                                                 show_default=False)] = None,
    answer: Annotated[str | None, typer.Option("--answer", help="New answer text.",
                                               show_default=False)] = None,
    similar: SimilarOpt = None,
    attachment: AttachOpt = None,
    image: ImageOpt = None,
    keep: Annotated[bool, typer.Option(
        "--keep-attachments", help="Keep the answer's current attachments with the new "
        "--answer.")] = False,
    yes: YesOpt = False,
) -> None:
    """Replace the question, the similar questions or the answer of an intent."""
    if (attachment or image) and answer is None:
        raise UsageError("attachments belong to the answer: give --answer with them")
    if keep and answer is None:
        raise UsageError("--keep-attachments goes with a new --answer")
    sections: dict[str, Any] = {}
    if question is not None:
        sections["question"] = _question(question)
    if similar is not None:
        sections["similar_questions"] = _similar(similar)
    if answer is not None:
        sections["answers"] = _answer(answer, attachment or [], image or [])
    if not sections:
        raise UsageError("nothing to update: give --question, --similar or --answer")
    limits.check_intent(sections, partial=True)
    if answer is not None and (keep or not (attachment or image)):
        current = _current_attachments(intent_id)
        if keep:
            new = sections["answers"][0]
            new["attachments"] = [*current, *new.get("attachments", [])]
            if not new["attachments"]:
                del new["attachments"]
            limits.check_intent(sections, partial=True)
        elif current:
            _confirm_drop(intent_id, current, yes=yes)
    if answer is not None:
        _upload_images(sections["answers"], image or [])
    state().client().knowledge_intent_update(intent_id, **sections)
    state().out.done({"intent_id": intent_id, "updated": sorted(sections)},
                     f"updated intent {intent_id}")


def _current_attachments(intent_id: str) -> list[dict[str, Any]]:
    """The attachments of the intent's answer as WeCom has them now."""
    current = next(state().client().knowledge_intents(intent_id=intent_id), None)
    answers = (current or {}).get("answers") or [{}]
    return list(answers[0].get("attachments") or [])


def _confirm_drop(intent_id: str, current: list[dict[str, Any]], *, yes: bool) -> None:
    """WeCom replaces an answer with its attachments: ask before a new --answer drops them."""
    kinds = ", ".join(a.get("msgtype", "?") for a in current)
    what = f"{plural(len(current), 'attachment')} ({kinds})"
    try:
        confirm(f"The new answer removes intent {intent_id}'s {what}. Go ahead?", yes=yes)
    except UsageError as exc:
        exc.hint = ("--keep-attachments keeps them, --attachment/--image give new ones, "
                    "--yes removes them")
        raise


@intent_app.command("delete", epilog="Example:\n\n  kfcli knowledge intent delete INTENT_ID --yes")
@with_output
def intent_delete(intent_id: Annotated[str, typer.Argument(help="The intent.")],
                  yes: YesOpt = False) -> None:
    """Delete an intent."""
    confirm(f"Delete intent {intent_id}?", yes=yes)
    state().client().knowledge_intent_delete(intent_id)
    state().out.done({"intent_id": intent_id, "deleted": True}, f"deleted intent {intent_id}")
