"""Temporary media: POST /cgi-bin/media/upload (kf-api.md §2.12).

The upload is multipart/form-data with the file in the part named ``media``; it is parsed
with the standard library's ``email`` package (the ``cgi`` module is gone from Python 3.13).
The bytes and the filename are stored so that media/get can return them later.
"""

from __future__ import annotations

import email.policy
from email.message import Message
from email.parser import BytesParser
from typing import Any

from .. import ids, rules
from ..errors import WeComError
from ..routing import API, Request

_DEFAULT_CONTENT_TYPE = {
    "image": "image/jpeg",
    "voice": "audio/amr",
    "video": "video/mp4",
    "file": "application/octet-stream",
}


@API.route("POST", "/cgi-bin/media/upload", body="raw")
def media_upload(request: Request) -> dict[str, Any]:
    media_type = request.query.get("type", "")
    if media_type not in rules.MEDIA_TYPES:
        raise WeComError(40004)
    part = _media_part(request)
    if part is None:
        # 41005 "media data missing" (global error page): no part named "media".
        raise WeComError(41005)
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        data = b""
    rules.check_media_content(media_type, data)

    filename = _filename(part) or f"media.{media_type}"
    if part.get("Content-Type"):
        content_type = part.get_content_type()
    else:
        content_type = _DEFAULT_CONTENT_TYPE[media_type]
    media_id = ids.media_id()
    created_at = request.now_int
    with request.db.write() as db:
        db.execute(
            "INSERT INTO media (media_id, type, filename, content_type, size, data, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (media_id, media_type, filename, content_type, len(data), data, created_at),
        )
    # created_at is a string in WeCom's answer (kf-api.md §2.12).
    return {"type": media_type, "media_id": media_id, "created_at": str(created_at)}


def _media_part(request: Request) -> Message | None:
    content_type = request.headers.get("Content-Type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        return None
    header = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = BytesParser(policy=email.policy.HTTP).parsebytes(header + request.raw_body)
    if not message.is_multipart():
        return None
    for part in message.get_payload():
        if not isinstance(part, Message):
            continue
        if part.get_param("name", header="content-disposition") == "media":
            return part
    return None


def _filename(part: Message) -> str | None:
    name = part.get_filename()
    if not name:
        return None
    # Clients send raw UTF-8 filenames (the HTML5 form style); the parser reads header
    # bytes as ASCII with surrogate escapes, so put the original bytes back together.
    try:
        return name.encode("utf-8", "surrogateescape").decode("utf-8")
    except UnicodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
