"""Outgoing message bodies: one builder and one validator per msgtype (kf-api.md §2.6).

Peers shipped wrong payload keys and missing fields (kf-api.md §7 #10); here every body is
built from one schema and checked against WeCom's limits before anything is sent. `validate`
also checks raw `--payload` bodies and menus read from files, so a typo in a JSON file is
reported with its field and limit instead of a server error. Shapes are checked as well as
limits: whatever JSON a user typed (an array for a menu, a string for the text object), the
answer is a `ValidationError` whose field is a JSON path counted from 0, as in JSON
(`--menu: list[0].type`), never an AttributeError.

`load_json` and `load_text` read what command-line options give: the value itself, `@FILE`
or `-` (stdin), as UTF-8 with or without a BOM.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kfcli.core.errors import ValidationError
from kfcli.core.limits import Where, check_text, expect_list, expect_object, kind_of, utf8_len

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


def parse_location(value: str, what: str = "location") -> tuple[float, float]:
    """`LAT,LNG` as given on the command line."""
    try:
        lat_s, lng_s = value.split(",")
        lat, lng = float(lat_s), float(lng_s)
    except ValueError:
        raise ValidationError(what, f"{value!r} is not LAT,LNG (e.g. 39.9042,116.4074)"
                              ) from None
    if lat != lat or lng != lng:  # "nan" parses as a float
        raise ValidationError(what, f"{value!r} is not LAT,LNG (e.g. 39.9042,116.4074)")
    return lat, lng


def read_source(source: str, what: str, *, stdin: Any = None) -> tuple[str, str]:
    """The text of `@FILE` or `-` (stdin) as (text, where it came from). UTF-8, with or
    without a byte-order mark (Windows editors write one); errors name the file."""
    if source == "-":
        import sys

        stream = stdin or sys.stdin
        data = getattr(stream, "buffer", stream).read()
        origin = "stdin"
    else:
        path = Path(source[1:])
        origin = str(path)
        if not source[1:]:
            raise ValidationError(what, "give a file name after @ (@FILE), or write @@ for a "
                                  "text that starts with @")
        try:
            data = path.read_bytes()
        except IsADirectoryError:
            raise ValidationError(what, f"cannot read {path}: it is a directory") from None
        except OSError as exc:
            raise ValidationError(what, f"cannot read {path} ({exc.strerror or exc})",
                                  hint="write @@ for a text that starts with @"
                                  if what == "--text" else None) from None
    if isinstance(data, str):
        return data, origin
    try:
        return data.decode("utf-8-sig"), origin
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ValidationError(what, f"{origin} is not UTF-8 text (byte 0x{data[exc.start]:02x} "
                              f"on line {line})",
                              hint="convert it first, e.g. `iconv -f GBK -t UTF-8`") from None


def load_text(value: str, what: str, *, stdin: Any = None) -> str:
    """Text given on the command line: `@FILE` reads FILE, `-` reads stdin, `@@…` stands for a
    literal `@…`; anything else is the text itself. One line break at the end of a file or of
    stdin is dropped (editors and `echo` add it; a message never wants it)."""
    if value.startswith("@@"):
        return value[1:]
    if value != "-" and not value.startswith("@"):
        return value
    text, _ = read_source(value, what, stdin=stdin)
    if text.endswith("\r\n"):
        return text[:-2]
    return text[:-1] if text.endswith("\n") else text


def load_json(source: str, what: str, *, stdin: Any = None) -> Any:
    """JSON from `@FILE`, `-` (stdin) or the text itself; errors name the source."""
    if source == "-" or source.startswith("@"):
        raw, origin = read_source(source, what, stdin=stdin)
    else:
        raw, origin = source, "the argument"
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ValidationError(what, f"malformed JSON in {origin}: {exc}") from None
    except RecursionError:
        raise ValidationError(what, f"malformed JSON in {origin}: nested too deeply") from None


def validate(msgtype: str, body: Any, *, on_event: bool = False,
             where: Where | None = None) -> None:
    """Check one message body's shape and WeCom's limits; raises `ValidationError` naming
    the field (`text.content`, or with `where` e.g. `--payload: text.content`)."""
    allowed = EVENT_MSGTYPES if on_event else MSGTYPES
    if where is None:
        where = Where("", msgtype if isinstance(msgtype, str) else "")
    if not isinstance(msgtype, str) or msgtype not in allowed:
        got = repr(msgtype) if isinstance(msgtype, str) else kind_of(msgtype)
        raise Where(where.label, "msgtype").error(f"{got} is not one of {', '.join(allowed)}")
    if msgtype == "msgmenu":
        validate_menu(body, where)
        return
    body = expect_object(body, where)
    if msgtype == "text":
        _str(body, where, "content", max_bytes=TEXT_BYTES)
    elif msgtype in MEDIA_TYPES:
        _str(body, where, "media_id", max_bytes=128)
    elif msgtype == "link":
        # WeCom truncates long titles and descriptions; kfcli refuses them so nothing is lost.
        _str(body, where, "title", max_bytes=LINK_TITLE_BYTES)
        _str(body, where, "desc", max_bytes=LINK_DESC_BYTES, required=False)
        _url(body, where, "url")
        _str(body, where, "thumb_media_id", max_bytes=128)
    elif msgtype == "miniprogram":
        _str(body, where, "appid", max_bytes=32)
        _str(body, where, "title", max_bytes=MINIPROGRAM_TITLE_BYTES, required=False)
        _str(body, where, "pagepath", max_bytes=1024)
        _str(body, where, "thumb_media_id", max_bytes=128)
    elif msgtype == "location":
        for key, bound in (("latitude", 90), ("longitude", 180)):
            value = body.get(key)
            at = where.key(key)
            if value is None:
                raise at.error("is required (a number)")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise at.error(f"expected a number, got {kind_of(value)}")
            if not -bound <= value <= bound:
                raise at.error(f"{value} is out of range -{bound}..{bound}")
        _str(body, where, "name", max_bytes=256, required=False)
        _str(body, where, "address", max_bytes=512, required=False)
    elif msgtype == "ca_link":
        _url(body, where, "link_url")


def validate_menu(menu: Any, where: Where | None = None) -> None:
    """A msgmenu object: head_content, list (1-10 items), tail_content (kf-api.md §2.6)."""
    where = where or Where("", "msgmenu")
    menu = expect_object(menu, where, "a menu object with head_content, list, tail_content")
    _str(menu, where, "head_content", max_bytes=MENU_HEAD_TAIL_BYTES, required=False)
    _str(menu, where, "tail_content", max_bytes=MENU_HEAD_TAIL_BYTES, required=False)
    at = where.key("list")
    items = expect_list(menu.get("list"), at, f"an array of 1-{MENU_ITEMS} items")
    if not items:
        raise at.error(f"must hold 1-{MENU_ITEMS} items")
    if len(items) > MENU_ITEMS:
        raise at.error(f"{len(items)} items, at most {MENU_ITEMS}")
    kinds = ", ".join(MENU_ITEM_FIELDS)
    for i, item in enumerate(items):
        here = at.item(i)
        item = expect_object(item, here, 'an object {"type": …, <type>: {…}}')
        kind = item.get("type")
        if not isinstance(kind, str):
            raise here.key("type").error(f"expected one of {kinds}, got {kind_of(kind)}")
        if kind not in MENU_ITEM_FIELDS:
            raise here.key("type").error(f"{kind!r} is not one of {kinds}")
        fields = MENU_ITEM_FIELDS[kind]
        inner = expect_object(item.get(kind), here.key(kind),
                              f"an object with {', '.join(fields)}")
        for field, (low, high) in fields.items():
            _str(inner, here.key(kind), field, max_bytes=high, min_bytes=low)


def _str(body: dict[str, Any], where: Where, key: str, *, max_bytes: int, required: bool = True,
         min_bytes: int = 1) -> None:
    at = where.key(key)
    value = body.get(key)
    if value is None:
        if required:
            raise at.error("is required")
        return
    if not isinstance(value, str):
        raise at.error(f"expected a string, got {kind_of(value)}")
    if required or value:
        check_text(str(at), value, max_bytes=max_bytes, min_len=min_bytes)


def _url(body: dict[str, Any], where: Where, key: str) -> None:
    _str(body, where, key, max_bytes=URL_BYTES)
    value = body[key]
    if not value.startswith(("http://", "https://")):
        raise where.key(key).error(f"must start with http:// or https:// ({utf8_len(value)} "
                                   f"bytes given)")
