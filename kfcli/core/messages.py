"""Outgoing message bodies: one builder and one validator per msgtype (kf-api.md §2.6).

Peers shipped wrong payload keys and missing fields (kf-api.md §7 #10); here every body is
built from one schema and checked against WeCom's limits before anything is sent. `validate`
also checks raw `--payload` bodies and menus read from files, so a typo in a JSON file is
reported with its field and limit instead of a server error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kfcli.core.errors import ValidationError
from kfcli.core.limits import check_text, utf8_len

TEXT_BYTES = 2048
MENU_ITEMS = 10
MENU_HEAD_TAIL_BYTES = 1024
LINK_TITLE_BYTES = 128
LINK_DESC_BYTES = 512
URL_BYTES = 2048
MINIPROGRAM_TITLE_BYTES = 64
MEDIA_TYPES = ("image", "voice", "video", "file")
MSGTYPES = ("text", *MEDIA_TYPES, "link", "miniprogram", "msgmenu", "location", "ca_link")
#: send_msg_on_event accepts only these (kf-api.md §2.7).
EVENT_MSGTYPES = ("text", "msgmenu")

#: Menu item type -> {field: (min bytes, max bytes)} (kf-api.md §2.6).
MENU_ITEM_FIELDS: dict[str, dict[str, tuple[int, int]]] = {
    "click": {"id": (1, 64), "content": (1, 128)},
    "view": {"url": (1, 2048), "content": (1, 1024)},
    "miniprogram": {"appid": (1, 32), "pagepath": (1, 1024), "content": (1, 1024)},
    "text": {"content": (1, 256)},
}


def text(content: str) -> dict[str, Any]:
    return {"content": content}


def media(media_id: str) -> dict[str, Any]:
    return {"media_id": media_id}


def link(url: str, title: str, thumb_media_id: str, desc: str | None = None) -> dict[str, Any]:
    body = {"title": title, "url": url, "thumb_media_id": thumb_media_id}
    if desc:
        body["desc"] = desc
    return body


def miniprogram(appid: str, title: str, pagepath: str, thumb_media_id: str) -> dict[str, Any]:
    return {"appid": appid, "title": title, "pagepath": pagepath,
            "thumb_media_id": thumb_media_id}


def location(latitude: float, longitude: float, name: str | None = None,
             address: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"latitude": latitude, "longitude": longitude}
    if name:
        body["name"] = name
    if address:
        body["address"] = address
    return body


def ca_link(link_url: str) -> dict[str, Any]:
    return {"link_url": link_url}


def parse_location(value: str) -> tuple[float, float]:
    """`LAT,LNG` as given on the command line."""
    try:
        lat_s, lng_s = value.split(",")
        return float(lat_s), float(lng_s)
    except ValueError:
        raise ValidationError("location", f"{value!r} is not LAT,LNG (e.g. 39.9042,116.4074)"
                              ) from None


def load_json(source: str, what: str, *, stdin: Any = None) -> Any:
    """JSON from `@FILE`, `-` (stdin) or the text itself; errors name the source."""
    if source == "-":
        import sys

        raw, origin = (stdin or sys.stdin).read(), "stdin"
    elif source.startswith("@"):
        path = Path(source[1:])
        try:
            raw, origin = path.read_text(encoding="utf-8"), str(path)
        except OSError as exc:
            raise ValidationError(what, f"cannot read {path} ({exc.strerror})") from None
        except UnicodeDecodeError:
            raise ValidationError(what, f"{path} is not UTF-8 text") from None
    else:
        raw, origin = source, "the argument"
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ValidationError(what, f"malformed JSON in {origin}: {exc}") from None


def validate(msgtype: str, body: Any, *, on_event: bool = False) -> None:
    """Check one message body against WeCom's limits; raises `ValidationError`."""
    allowed = EVENT_MSGTYPES if on_event else MSGTYPES
    if msgtype not in allowed:
        raise ValidationError("msgtype", f"{msgtype!r} is not one of {', '.join(allowed)}")
    if not isinstance(body, dict):
        raise ValidationError(msgtype, "the message body must be a JSON object")
    if msgtype == "text":
        _str(body, "text.content", "content", max_bytes=TEXT_BYTES)
    elif msgtype in MEDIA_TYPES:
        _str(body, f"{msgtype}.media_id", "media_id", max_bytes=128)
    elif msgtype == "link":
        # WeCom truncates long titles and descriptions; kfcli refuses them so nothing is lost.
        _str(body, "link.title", "title", max_bytes=LINK_TITLE_BYTES)
        _str(body, "link.desc", "desc", max_bytes=LINK_DESC_BYTES, required=False)
        _url(body, "link.url", "url")
        _str(body, "link.thumb_media_id", "thumb_media_id", max_bytes=128)
    elif msgtype == "miniprogram":
        _str(body, "miniprogram.appid", "appid", max_bytes=32)
        _str(body, "miniprogram.title", "title", max_bytes=MINIPROGRAM_TITLE_BYTES,
             required=False)
        _str(body, "miniprogram.pagepath", "pagepath", max_bytes=1024)
        _str(body, "miniprogram.thumb_media_id", "thumb_media_id", max_bytes=128)
    elif msgtype == "msgmenu":
        validate_menu(body)
    elif msgtype == "location":
        for key, bound in (("latitude", 90), ("longitude", 180)):
            value = body.get(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValidationError(f"location.{key}", "must be a number")
            if not -bound <= value <= bound:
                raise ValidationError(f"location.{key}", f"{value} is out of range "
                                      f"-{bound}..{bound}")
        _str(body, "location.name", "name", max_bytes=256, required=False)
        _str(body, "location.address", "address", max_bytes=512, required=False)
    elif msgtype == "ca_link":
        _url(body, "ca_link.link_url", "link_url")


def validate_menu(menu: Any) -> None:
    if not isinstance(menu, dict):
        raise ValidationError("msgmenu", "a menu is a JSON object with head_content, list, "
                              "tail_content")
    _str(menu, "msgmenu.head_content", "head_content", max_bytes=MENU_HEAD_TAIL_BYTES,
         required=False)
    _str(menu, "msgmenu.tail_content", "tail_content", max_bytes=MENU_HEAD_TAIL_BYTES,
         required=False)
    items = menu.get("list")
    if not isinstance(items, list) or not items:
        raise ValidationError("msgmenu.list", "must be a non-empty array of items")
    if len(items) > MENU_ITEMS:
        raise ValidationError("msgmenu.list", f"{len(items)} items, at most {MENU_ITEMS}")
    for i, item in enumerate(items, 1):
        where = f"msgmenu.list[{i}]"
        if not isinstance(item, dict):
            raise ValidationError(where, "must be an object")
        kind = item.get("type")
        if kind not in MENU_ITEM_FIELDS:
            raise ValidationError(f"{where}.type", f"{kind!r} is not one of "
                                  f"{', '.join(MENU_ITEM_FIELDS)}")
        inner = item.get(kind)
        if not isinstance(inner, dict):
            raise ValidationError(f"{where}.{kind}", "missing or not an object")
        for field, (low, high) in MENU_ITEM_FIELDS[kind].items():
            _str(inner, f"{where}.{kind}.{field}", field, max_bytes=high, min_bytes=low)


def _str(body: dict, name: str, key: str, *, max_bytes: int, required: bool = True,
         min_bytes: int = 1) -> None:
    value = body.get(key)
    if value is None:
        if required:
            raise ValidationError(name, "is required")
        return
    if not isinstance(value, str):
        raise ValidationError(name, "must be a string")
    if required or value:
        check_text(name, value, max_bytes=max_bytes, min_len=min_bytes)


def _url(body: dict, name: str, key: str) -> None:
    _str(body, name, key, max_bytes=URL_BYTES)
    value = body[key]
    if not value.startswith(("http://", "https://")):
        raise ValidationError(name, f"must start with http:// or https:// ({utf8_len(value)} "
                              f"bytes given)")
