"""Temporary media: POST /cgi-bin/media/upload and GET /cgi-bin/media/get (kf-api.md §2.12).

The upload is multipart/form-data with the file in the part named ``media``; it is parsed
with the standard library's ``email`` package (the ``cgi`` module is gone from Python 3.13).
The bytes and the filename are stored so that media/get can return them later.
"""

from __future__ import annotations

import email.policy
import re
from email.message import Message
from email.parser import BytesParser
from typing import Any
from urllib.parse import quote

from .. import ids, rules
from ..errors import WeComError
from ..routing import API, RawResponse, Request
from ..store import Tx

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
    created_at = request.now_int
    with request.db.write() as db:
        media_id = store_media(db, media_type, filename, content_type, data, created_at)
    # created_at is a string in WeCom's answer (kf-api.md §2.12).
    return {"type": media_type, "media_id": media_id, "created_at": str(created_at)}


def store_media(
    db: Tx, media_type: str, filename: str, content_type: str, data: bytes, now: int
) -> str:
    """Keep a temporary media file (an upload, or what a customer sent); returns its media_id.

    It lives `rules.MEDIA_TTL` of simulator time from ``now``: media/get and the media checks
    of send_msg and account/add answer 40007 afterwards.
    """
    media_id = ids.media_id()
    db.execute(
        "INSERT INTO media (media_id, type, filename, content_type, size, data, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (media_id, media_type, filename, content_type, len(data), data, now),
    )
    return media_id


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


@API.route("GET", "/cgi-bin/media/get")
def media_get(request: Request) -> RawResponse:
    """The stored file (kf-api.md §2.12): its bytes, Content-Type and filename.

    Errors stay JSON (40007 unknown or expired; 41006 no media_id), so a client must look at
    the Content-Type before treating the body as the file. A single ``Range: bytes=a-b``
    (also ``a-`` and ``-n``) is answered 206 with Content-Range; a range past the end is
    416; anything else (several ranges, bad syntax) is ignored and the whole file sent.
    """
    media_id = request.query.get("media_id", "")
    if not media_id:
        raise WeComError(41006)
    row = request.db.query(
        "SELECT type, filename, content_type, data, created_at FROM media WHERE media_id = ?",
        (media_id,),
    )
    if not row or request.now >= row[0]["created_at"] + rules.MEDIA_TTL:
        raise WeComError(40007)
    media = row[0]
    data = bytes(media["data"])
    headers = [
        ("Content-Disposition", _content_disposition(media["filename"])),
        ("Accept-Ranges", "bytes"),
    ]
    span = _byte_range(request.headers.get("Range"), len(data))
    if span is None:
        return RawResponse(data, media["content_type"], headers=headers)
    if span == "unsatisfiable":
        headers.append(("Content-Range", f"bytes */{len(data)}"))
        return RawResponse(b"", media["content_type"], status=416, headers=headers)
    first, last = span
    headers.append(("Content-Range", f"bytes {first}-{last}/{len(data)}"))
    return RawResponse(data[first : last + 1], media["content_type"], status=206, headers=headers)


_RANGE_RE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*")


def _byte_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """(first, last) inclusive for a satisfiable single range; "unsatisfiable"; or None."""
    match = _RANGE_RE.fullmatch(header or "")
    if match is None or (not match[1] and not match[2]):
        return None
    if not match[1]:  # "-n": the last n bytes
        suffix = int(match[2])
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - suffix), size - 1
    first = int(match[1])
    if match[2] and int(match[2]) < first:
        return None  # syntactically invalid: ignored (RFC 9110 §14.1.1)
    if first >= size:
        return "unsatisfiable"
    last = int(match[2]) if match[2] else size - 1
    return first, min(last, size - 1)


def _content_disposition(filename: str) -> str:
    """``attachment; filename="..."`` as WeCom sends it.

    WeCom writes the name raw (UTF-8 bytes in the header); the sandbox does the same and,
    for non-ASCII names, adds the RFC 6266 ``filename*`` form that HTTP libraries decode.
    http.server encodes header values as Latin-1, hence the round trip.
    """
    plain = filename.replace("\\", "_").replace('"', "_").replace("\r", "").replace("\n", "")
    value = f'attachment; filename="{plain}"'
    if not plain.isascii():
        value += f"; filename*=UTF-8''{quote(plain, safe='')}"
    return value.encode().decode("latin-1")
