"""The knowledge base: /cgi-bin/kf/knowledge/* groups and intents (kf-api.md §2.11).

A default group (is_default 1, "默认分组") always exists (created with the database) and
cannot be renamed or deleted. Deleting a group deletes its intents. Intents are stored the
way list_intent shows them: image and video attachments keep only the uploaded file's
``name``, as WeCom lists them, so nothing depends on the 3-day media afterwards.

Error codes: kf-api.md names none for the knowledge base, so every broken rule — limits,
duplicates, unknown or default group_id, unknown intent_id — is 40058 with an errmsg that
says which; an unusable attachment media_id is 40007 as everywhere else.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from .. import ids, rules
from ..errors import WeComError
from ..params import optional_str, required_str
from ..routing import API, Request
from ..store import Tx
from .common import decode_cursor, encode_cursor, limit_from_body, media_checker

# --- groups -------------------------------------------------------------------------------


@API.route("POST", "/cgi-bin/kf/knowledge/add_group")
def add_group(request: Request) -> dict[str, Any]:
    name = required_str(request.body, "name")
    rules.check_group_name(name)
    with request.db.write() as db:
        count = db.scalar("SELECT COUNT(*) FROM knowledge_groups")
        if int(count or 0) >= rules.MAX_GROUPS:
            raise WeComError(40058, f"knowledge base already has {rules.MAX_GROUPS} groups")
        _check_name_free(db, name)
        group_id = ids.knowledge_id()
        db.execute("INSERT INTO knowledge_groups (group_id, name) VALUES (?, ?)", (group_id, name))
    return {"group_id": group_id}


@API.route("POST", "/cgi-bin/kf/knowledge/del_group")
def del_group(request: Request) -> dict[str, Any]:
    group_id = required_str(request.body, "group_id")
    with request.db.write() as db:
        _editable_group(db, group_id)
        db.execute("DELETE FROM knowledge_intents WHERE group_id = ?", (group_id,))
        db.execute("DELETE FROM knowledge_groups WHERE group_id = ?", (group_id,))
    return {}


@API.route("POST", "/cgi-bin/kf/knowledge/mod_group")
def mod_group(request: Request) -> dict[str, Any]:
    group_id = required_str(request.body, "group_id")
    name = required_str(request.body, "name")
    rules.check_group_name(name)
    with request.db.write() as db:
        group = _editable_group(db, group_id)
        if name != group["name"]:
            _check_name_free(db, name)
            db.execute("UPDATE knowledge_groups SET name = ? WHERE group_id = ?", (name, group_id))
    return {}


@API.route("POST", "/cgi-bin/kf/knowledge/list_group")
def list_group(request: Request) -> dict[str, Any]:
    limit = limit_from_body(request, rules.KNOWLEDGE_LIST_DEFAULT, rules.KNOWLEDGE_LIST_MAX)
    after = _cursor(request, "knowledge/groups")
    group_id = optional_str(request.body, "group_id")
    sql = "SELECT seq, group_id, name, is_default FROM knowledge_groups WHERE seq > ?"
    params: list[Any] = [after]
    if group_id is not None:  # a filter that matches nothing lists nothing
        sql += " AND group_id = ?"
        params.append(group_id)
    rows = request.db.query(sql + " ORDER BY seq LIMIT ?", (*params, limit + 1))
    page = rows[:limit]
    return {
        **_paging(request, "knowledge/groups", after, page, len(rows) > limit),
        "group_list": [
            {"group_id": r["group_id"], "name": r["name"], "is_default": r["is_default"]}
            for r in page
        ],
    }


# --- intents ------------------------------------------------------------------------------


@API.route("POST", "/cgi-bin/kf/knowledge/add_intent")
def add_intent(request: Request) -> dict[str, Any]:
    body = request.body
    group_id = required_str(body, "group_id")
    with request.db.write() as db:
        _group(db, group_id)
        question = _question(body)
        similar = _similar_questions(body)
        if "answers" not in body:
            raise WeComError(40058, "field answers missing")
        answers = _answers(db, body, request.now)
        count = db.scalar("SELECT COUNT(*) FROM knowledge_intents WHERE group_id = ?", (group_id,))
        if int(count or 0) >= rules.MAX_INTENTS_PER_GROUP:
            raise WeComError(40058, f"group already has {rules.MAX_INTENTS_PER_GROUP} intents")
        _check_question_free(db, question, None)
        intent_id = ids.knowledge_id()
        db.execute(
            "INSERT INTO knowledge_intents (intent_id, group_id, question, similar_questions, "
            "answers) VALUES (?, ?, ?, ?, ?)",
            (intent_id, group_id, question, _dump(similar or {"items": []}), _dump(answers)),
        )
    return {"intent_id": intent_id}


@API.route("POST", "/cgi-bin/kf/knowledge/del_intent")
def del_intent(request: Request) -> dict[str, Any]:
    intent_id = required_str(request.body, "intent_id")
    with request.db.write() as db:
        _intent(db, intent_id)
        db.execute("DELETE FROM knowledge_intents WHERE intent_id = ?", (intent_id,))
    return {}


@API.route("POST", "/cgi-bin/kf/knowledge/mod_intent")
def mod_intent(request: Request) -> dict[str, Any]:
    # Each section present is replaced wholesale; absent sections are kept (§2.11).
    body = request.body
    intent_id = required_str(body, "intent_id")
    with request.db.write() as db:
        _intent(db, intent_id)
        if body.get("question") is not None:
            question = _question(body)
            _check_question_free(db, question, intent_id)
            db.execute(
                "UPDATE knowledge_intents SET question = ? WHERE intent_id = ?",
                (question, intent_id),
            )
        similar = _similar_questions(body)
        if similar is not None:
            db.execute(
                "UPDATE knowledge_intents SET similar_questions = ? WHERE intent_id = ?",
                (_dump(similar), intent_id),
            )
        if body.get("answers") is not None:
            db.execute(
                "UPDATE knowledge_intents SET answers = ? WHERE intent_id = ?",
                (_dump(_answers(db, body, request.now)), intent_id),
            )
    return {}


@API.route("POST", "/cgi-bin/kf/knowledge/list_intent")
def list_intent(request: Request) -> dict[str, Any]:
    limit = limit_from_body(request, rules.KNOWLEDGE_LIST_DEFAULT, rules.KNOWLEDGE_LIST_MAX)
    after = _cursor(request, "knowledge/intents")
    sql = (
        "SELECT seq, intent_id, group_id, question, similar_questions, answers "
        "FROM knowledge_intents WHERE seq > ?"
    )
    params: list[Any] = [after]
    for field in ("group_id", "intent_id"):
        value = optional_str(request.body, field)
        if value is not None:
            sql += f" AND {field} = ?"
            params.append(value)
    rows = request.db.query(sql + " ORDER BY seq LIMIT ?", (*params, limit + 1))
    page = rows[:limit]
    return {
        **_paging(request, "knowledge/intents", after, page, len(rows) > limit),
        "intent_list": [
            {
                "group_id": r["group_id"],
                "intent_id": r["intent_id"],
                "question": {"text": {"content": r["question"]}},
                "similar_questions": json.loads(r["similar_questions"]),
                "answers": json.loads(r["answers"]),
            }
            for r in page
        ],
    }


# --- helpers ------------------------------------------------------------------------------


def _group(db: Tx, group_id: str) -> sqlite3.Row:
    row = db.one("SELECT * FROM knowledge_groups WHERE group_id = ?", (group_id,))
    if row is None:
        raise WeComError(40058, "group_id not found")
    return row


def _editable_group(db: Tx, group_id: str) -> sqlite3.Row:
    row = _group(db, group_id)
    if row["is_default"]:
        raise WeComError(40058, "the default group cannot be modified or deleted")
    return row


def _intent(db: Tx, intent_id: str) -> sqlite3.Row:
    row = db.one("SELECT * FROM knowledge_intents WHERE intent_id = ?", (intent_id,))
    if row is None:
        raise WeComError(40058, "intent_id not found")
    return row


def _check_name_free(db: Tx, name: str) -> None:
    if db.one("SELECT 1 FROM knowledge_groups WHERE name = ?", (name,)):
        raise WeComError(40058, "group name already exists")


def _check_question_free(db: Tx, question: str, intent_id: str | None) -> None:
    row = db.one("SELECT intent_id FROM knowledge_intents WHERE question = ?", (question,))
    if row is not None and row["intent_id"] != intent_id:
        raise WeComError(40058, "question already exists")


def _question(body: dict[str, Any]) -> str:
    return rules.check_text_content(body.get("question"), "question", rules.MAX_QUESTION_CHARS)


def _similar_questions(body: dict[str, Any]) -> dict[str, Any] | None:
    section = body.get("similar_questions")
    if section is None:
        return None
    items = section.get("items") if isinstance(section, dict) else None
    if items is None:
        items = []
    if not isinstance(items, list):
        raise WeComError(40058, "field similar_questions.items must be an array")
    if len(items) > rules.MAX_SIMILAR_QUESTIONS:
        raise WeComError(
            40058, f"similar_questions has more than {rules.MAX_SIMILAR_QUESTIONS} items"
        )
    contents = [
        rules.check_text_content(item, f"similar_questions.items[{n}]", rules.MAX_QUESTION_CHARS)
        for n, item in enumerate(items)
    ]
    return {"items": [{"text": {"content": content}} for content in contents]}


def _answers(db: Tx, body: dict[str, Any], now: float) -> list[dict[str, Any]]:
    answers = body.get("answers")
    if not isinstance(answers, list) or len(answers) != rules.MAX_ANSWERS:
        raise WeComError(40058, "answers must hold exactly 1 answer")
    [answer] = answers
    content = rules.check_text_content(answer, "answers[0]", rules.MAX_ANSWER_CHARS)
    attachments = answer.get("attachments") or []
    if not isinstance(attachments, list):
        raise WeComError(40058, "field answers[0].attachments must be an array")
    if len(attachments) > rules.MAX_ATTACHMENTS:
        raise WeComError(40058, f"an answer has at most {rules.MAX_ATTACHMENTS} attachments")
    check_media = media_checker(db, now)
    stored = []
    for n, attachment in enumerate(attachments):
        clean = rules.check_attachment(attachment, f"answers[0].attachments[{n}]", check_media)
        kind = clean["msgtype"]
        if kind in ("image", "video"):
            # Listed by name only (kf-api.md §2.11): keep the uploaded file's name.
            media_id = clean[kind]["media_id"]
            name = db.scalar("SELECT filename FROM media WHERE media_id = ?", (media_id,))
            clean = {"msgtype": kind, kind: {"name": name}}
        stored.append(clean)
    result: dict[str, Any] = {"text": {"content": content}}
    if stored:
        result["attachments"] = stored
    return [result]


def _cursor(request: Request, scope: str) -> int:
    cursor = optional_str(request.body, "cursor")
    return 0 if cursor is None else decode_cursor(request, scope, cursor)


def _paging(
    request: Request, scope: str, after: int, page: list[sqlite3.Row], has_more: bool
) -> dict[str, Any]:
    position = page[-1]["seq"] if page else after
    return {"next_cursor": encode_cursor(request, scope, position), "has_more": int(has_more)}


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
