"""WeCom's documented limits, checked locally before anything is sent (kf-api.md §2, §8.3).

Every check raises `ValidationError` whose message names the field and the limit. Bytes are
counted in UTF-8, characters as Unicode code points, as WeCom does.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from kfcli.core.errors import ValidationError

ACCOUNT_NAME_CHARS = 16
MEDIA_ID_BYTES = 128
OPEN_KFID_BYTES = 64
SCENE_BYTES = 32
SCENE_PARAM_BYTES = 128
ACCOUNT_LIST_LIMIT = 100
EXTERNAL_USERID_BYTES = 64
MSGID_BYTES = 32
USERID_BYTES = 64
CHAT_ID_BYTES = 128
SYNC_LIMIT = 1000
#: Ids per call for servicer add/del and customer batchget: kfcli batches beyond this.
BATCH_IDS = 100
KNOWLEDGE_GROUP_CHARS = 12
KNOWLEDGE_LIST_LIMIT = 1000
KNOWLEDGE_QUESTION_CHARS = 200
KNOWLEDGE_SIMILAR_MAX = 100
KNOWLEDGE_ANSWER_CHARS = 500
KNOWLEDGE_ATTACHMENTS_MAX = 4
SERVICER_STATE = 3
STATE_NAMES = {"new": 0, "assistant": 1, "pool": 2, "servicer": 3, "ended": 4}

_SCENE = re.compile(r"[0-9a-zA-Z_-]*")
#: A consumer's name (`msg history --consumer NAME`, `kfcli.core.Consumer`).
_CONSUMER = re.compile(r"[A-Za-z0-9_.-]{1,64}")

#: Temporary media: largest size per type, and the formats WeCom accepts (kf-api.md §2.12).
MEDIA_MAX_BYTES = {
    "image": 10 * 1024 * 1024,
    "voice": 2 * 1024 * 1024,
    "video": 10 * 1024 * 1024,
    "file": 20 * 1024 * 1024,
}
MEDIA_MIN_BYTES = 6  # "all files > 5 bytes"
#: Older KF pages said 2 MB for images; WeCom accepts 10 MB now, but warn.
IMAGE_WARN_BYTES = 2 * 1024 * 1024
MEDIA_TYPES = tuple(MEDIA_MAX_BYTES)


def utf8_len(value: str) -> int:
    return len(value.encode("utf-8"))


class Where:
    """Where a value sits in what the user gave, for error messages: the option (or label) it
    came from and a JSON path indexed from 0, as in JSON: `--menu: list[0].type`."""

    __slots__ = ("label", "path")

    def __init__(self, label: str = "", path: str = "") -> None:
        self.label = label
        self.path = path

    def key(self, name: str) -> Where:
        return Where(self.label, f"{self.path}.{name}" if self.path else name)

    def item(self, index: int) -> Where:
        return Where(self.label, f"{self.path}[{index}]")

    def __str__(self) -> str:
        if self.label and self.path:
            return f"{self.label}: {self.path}"
        return self.label or self.path or "value"

    def error(self, problem: str) -> ValidationError:
        return ValidationError(str(self), problem)


def kind_of(value: object) -> str:
    """A JSON value's kind in words ("an array", "a string", ...), for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def expect_object(value: object, where: Where, what: str = "an object") -> dict[str, Any]:
    """`value` if it is a JSON object; else a `ValidationError` naming `where`."""
    if isinstance(value, dict):
        return value
    if value is None:
        raise where.error(f"is required ({what})")
    raise where.error(f"expected {what}, got {kind_of(value)}")


def expect_list(value: object, where: Where, what: str = "an array") -> list[Any]:
    if isinstance(value, list):
        return value
    if value is None:
        raise where.error(f"is required ({what})")
    raise where.error(f"expected {what}, got {kind_of(value)}")


def check_text(
    field: str,
    value: str,
    *,
    max_bytes: int | None = None,
    max_chars: int | None = None,
    min_len: int = 1,
) -> str:
    if not isinstance(value, str):
        raise ValidationError(field, f"expected a string, got {kind_of(value)}")
    if len(value) < min_len:
        raise ValidationError(field, "must not be empty")
    if max_chars is not None and len(value) > max_chars:
        raise ValidationError(
            field, f"{len(value)} characters, the limit is {max_chars} characters"
        )
    if max_bytes is not None and utf8_len(value) > max_bytes:
        raise ValidationError(
            field, f"{utf8_len(value)} bytes in UTF-8, the limit is {max_bytes} bytes"
        )
    return value


def check_not_blank(field: str, value: str) -> str:
    """A name or id made only of spaces passes a length check but WeCom refuses it (95006
    for an account name): refuse it here, before any upload."""
    if isinstance(value, str) and value and not value.strip():
        raise ValidationError(field, "must not be blank (only whitespace)")
    return value


def check_account_name(name: str, field: str = "name") -> str:
    check_text(field, name, max_chars=ACCOUNT_NAME_CHARS)
    return check_not_blank(field, name)


def check_userid(value: str, field: str = "userid") -> str:
    """A member's userid (1-64 bytes)."""
    check_text(field, value, max_bytes=USERID_BYTES)
    return check_not_blank(field, value)


def check_chat_id(value: str, field: str = "chat_id") -> str:
    """A customer group's chat_id. WeCom documents no length; 128 bytes is generous (verify)."""
    check_text(field, value, max_bytes=CHAT_ID_BYTES)
    return check_not_blank(field, value)


def check_media_id(media_id: str, field: str = "media_id") -> str:
    return check_text(field, media_id, max_bytes=MEDIA_ID_BYTES)


def check_consumer(name: str, option: str = "--consumer") -> str:
    if not isinstance(name, str) or not _CONSUMER.fullmatch(name):
        raise ValidationError(option, "a name of 1-64 characters [A-Za-z0-9_.-]")
    return name


def check_open_kfid(open_kfid: str) -> str:
    check_text("open_kfid", open_kfid, max_bytes=OPEN_KFID_BYTES)
    return check_not_blank("open_kfid", open_kfid)


def check_scene(scene: str) -> str:
    check_text("scene", scene, max_bytes=SCENE_BYTES, min_len=0)
    if not _SCENE.fullmatch(scene):
        raise ValidationError(
            "scene", f"{scene!r} may contain only [0-9a-zA-Z_-] (at most {SCENE_BYTES} bytes)"
        )
    return scene


def check_scene_param(scene_param: str, scene: str | None) -> str:
    if not scene:
        raise ValidationError(
            "scene_param", "needs a non-empty --scene (WeCom returns it only with a scene)"
        )
    return check_text("scene_param", scene_param, max_bytes=SCENE_PARAM_BYTES)


def check_external_userid(value: str, field: str = "external_userid") -> str:
    check_text(field, value, max_bytes=EXTERNAL_USERID_BYTES)
    return check_not_blank(field, value)


def check_msgid(msgid: str) -> str:
    check_text("msgid", msgid, max_bytes=MSGID_BYTES)
    if not _SCENE.fullmatch(msgid):
        raise ValidationError("msgid", f"{msgid!r} may contain only [0-9a-zA-Z_-] "
                              f"(at most {MSGID_BYTES} bytes)")
    return msgid


def check_batch(field: str, items: list[Any], maximum: int) -> None:
    if not items:
        raise ValidationError(field, "give at least one")
    if len(items) > maximum:
        raise ValidationError(field, f"{len(items)} items, at most {maximum} per call")


def check_servicer_batch(userids: list[str] | None, department_ids: list[int] | None
                         ) -> None:
    if not userids and not department_ids:
        raise ValidationError("servicer", "give at least one userid or department id")
    userids, department_ids = userids or [], department_ids or []
    for field, items in (("userid_list", userids), ("department_id_list", department_ids)):
        if len(items) > BATCH_IDS:
            raise ValidationError(field, f"{len(items)} items, at most {BATCH_IDS} per call")
    for uid in userids:
        check_userid(uid)
    for dep in department_ids:
        if not isinstance(dep, int) or dep < 1 or dep >= 2**32:
            raise ValidationError("department_id", f"{dep!r} is not a positive integer")


def parse_state(value: str) -> int:
    """A session state given as 0-4 or as a name (new, assistant, pool, servicer, ended)."""
    key = value.strip().lower()
    if key in STATE_NAMES:
        return STATE_NAMES[key]
    if key.isdigit() and int(key) in STATE_NAMES.values():
        return int(key)
    names = ", ".join(f"{n} ({v})" for n, v in STATE_NAMES.items())
    raise ValidationError("state", f"{value!r} is not a session state; use one of {names}")


def check_state_target(state: int, servicer_userid: str | None) -> None:
    if state not in STATE_NAMES.values():
        raise ValidationError("service_state", f"{state} is out of range 0..4")
    if state == SERVICER_STATE and not servicer_userid:
        raise ValidationError("servicer_userid", "required when the target state is "
                              "servicer (3): pass --servicer USERID")


def check_intent(body: dict[str, Any], *, partial: bool = False,
                 where: Where | None = None) -> None:
    """Knowledge-base intent limits and shapes (kf-api.md §2.11): `question` and each of
    `similar_questions.items` are {"text": {"content": …}}, `answers` holds exactly one answer
    with its text and up to 4 attachments. `partial`: only the sections present (mod_intent
    replaces whole sections)."""
    where = where or Where()
    body = expect_object(body, where)
    question = body.get("question")
    if question is not None or not partial:
        _text_content(question, where.key("question"), KNOWLEDGE_QUESTION_CHARS)
    similar = body.get("similar_questions")
    if similar is not None:
        at = where.key("similar_questions")
        similar = expect_object(similar, at, 'an object {"items": [...]}')
        items = similar.get("items")
        items = [] if items is None else expect_list(items, at.key("items"))
        if len(items) > KNOWLEDGE_SIMILAR_MAX:
            raise at.key("items").error(f"{len(items)} items, at most {KNOWLEDGE_SIMILAR_MAX}")
        for i, item in enumerate(items):
            _text_content(item, at.key("items").item(i), KNOWLEDGE_QUESTION_CHARS)
    answers = body.get("answers")
    if answers is not None or not partial:
        at = where.key("answers")
        answers = expect_list(answers, at, "an array holding one answer")
        if len(answers) != 1:
            raise at.error(f"{len(answers)} answers; WeCom supports exactly 1")
        answer = expect_object(answers[0], at.item(0))
        _text_content(answer, at.item(0), KNOWLEDGE_ANSWER_CHARS)
        attachments = answer.get("attachments")
        attachments = [] if attachments is None else expect_list(
            attachments, at.item(0).key("attachments"))
        if len(attachments) > KNOWLEDGE_ATTACHMENTS_MAX:
            raise at.item(0).key("attachments").error(
                f"{len(attachments)} attachments, at most {KNOWLEDGE_ATTACHMENTS_MAX}")
        for i, attachment in enumerate(attachments):
            check_attachment(attachment, at.item(0).key("attachments").item(i))


def _text_content(value: object, where: Where, max_chars: int) -> str:
    """`{"text": {"content": "…"}}`, the shape of a question, similar question or answer."""
    doc = expect_object(value, where, 'an object {"text": {"content": "…"}}')
    text = expect_object(doc.get("text"), where.key("text"), 'an object {"content": "…"}')
    content = text.get("content")
    at = where.key("text").key("content")
    if content is None:
        raise at.error("is required")
    check_text(str(at), content, max_chars=max_chars)
    return check_not_blank(str(at), content)


#: Knowledge answer attachments: msgtype -> {field: required} (kf-api.md §2.11).
ATTACHMENT_FIELDS: dict[str, dict[str, bool]] = {
    "image": {"media_id": True},
    "video": {"media_id": True},
    "link": {"title": True, "url": True, "picurl": False, "desc": False},
    "miniprogram": {"title": True, "thumb_media_id": True, "appid": True, "pagepath": True},
}


def check_attachment(value: object, where: Where | None = None) -> dict[str, Any]:
    """One knowledge answer attachment, `{"msgtype": T, T: {…}}`; returns it."""
    where = where or Where("attachment")
    doc = expect_object(value, where, 'an object {"msgtype": …, <msgtype>: {…}}')
    kinds = ", ".join(ATTACHMENT_FIELDS)
    kind = doc.get("msgtype")
    if not isinstance(kind, str) or kind not in ATTACHMENT_FIELDS:
        got = repr(kind) if isinstance(kind, str) else kind_of(kind)
        raise where.key("msgtype").error(f"expected one of {kinds}, got {got}")
    inner = expect_object(doc.get(kind), where.key(kind))
    for field, required in ATTACHMENT_FIELDS[kind].items():
        at = where.key(kind).key(field)
        item = inner.get(field)
        if item is None:
            if required:
                raise at.error("is required")
            continue
        check_text(str(at), item, max_bytes=2048, min_len=1 if required else 0)
        if field in ("url", "picurl") and item and not item.startswith(("http://", "https://")):
            raise at.error("must start with http:// or https://")
    unknown = set(doc) - {"msgtype", kind}
    if unknown:
        raise where.error(f"unexpected keys: {', '.join(sorted(unknown))}")
    return doc


def check_limit(value: int, maximum: int, field: str = "limit") -> int:
    if not 1 <= value <= maximum:
        raise ValidationError(field, f"{value} is out of range 1..{maximum}")
    return value


def check_offset(value: int) -> int:
    if not 0 <= value < 2**32:
        raise ValidationError("offset", f"{value} is out of range 0..{2**32 - 1}")
    return value


def sniff_media_type(head: bytes, name: str) -> str:
    """The media type a file's first bytes say it is: image, voice, video or file."""
    if head.startswith(b"\x89PNG\r\n\x1a\n") or head.startswith(b"\xff\xd8\xff"):
        return "image"
    if head.startswith(b"#!AMR"):
        return "voice"
    if head[4:8] == b"ftyp":
        return "video"
    return "file"


def check_media_file(path: Path, media_type: str | None = None) -> tuple[str, int]:
    """Check a file is readable and within the limits for its type; returns (type, size).

    `media_type` None means "infer from the content". A declared type must match the content
    for image, voice and video, which WeCom checks by format.
    """
    field = str(path)
    if media_type is not None and media_type not in MEDIA_MAX_BYTES:
        raise ValidationError("type", f"{media_type!r} is not one of {', '.join(MEDIA_TYPES)}")
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
            size = fh.seek(0, 2)
    except IsADirectoryError:
        raise ValidationError(field, "is a directory, not a file") from None
    except OSError as exc:
        raise ValidationError(field, f"cannot read file ({exc.strerror})") from None
    sniffed = sniff_media_type(head, path.name)
    if media_type is None:
        media_type = sniffed
    elif media_type != "file" and sniffed != media_type:
        formats = {"image": "a JPG or PNG", "voice": "an AMR", "video": "an MP4"}[media_type]
        raise ValidationError(field, f"is not {formats} file, which {media_type} media must be")
    if size < MEDIA_MIN_BYTES:
        raise ValidationError(field, f"{size} bytes; WeCom rejects files of 5 bytes or less")
    limit = MEDIA_MAX_BYTES[media_type]
    if size > limit:
        raise ValidationError(
            field, f"{size} bytes, the limit for {media_type} is {limit // (1024 * 1024)} MB"
        )
    return media_type, size
