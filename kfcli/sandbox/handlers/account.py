"""KF accounts and contact-way links: /cgi-bin/kf/account/* and /cgi-bin/kf/add_contact_way.

Rules from kf-api.md §2.2. Accounts are listed in creation order; deleted accounts are kept
(with ``deleted_at``) so that their messages stay in the database, but they answer 95004.
"""

from __future__ import annotations

from typing import Any

from .. import ids, rules
from ..errors import WeComError
from ..params import optional_str, optional_uint, required_str
from ..routing import API, Request
from ..store import Tx
from .common import account_from_body, usable_media


@API.route("POST", "/cgi-bin/kf/account/add")
def account_add(request: Request) -> dict[str, Any]:
    # A missing or empty field is a parameter error (40058, like every required field);
    # a name WeCom does not accept is 95006 "invalid kf account name".
    name = required_str(request.body, "name")
    rules.check_account_name(name)
    media_id = required_str(request.body, "media_id")
    with request.db.write() as db:
        usable_media(db, media_id, "image", request.now)
        count = db.scalar("SELECT COUNT(*) FROM accounts WHERE deleted_at IS NULL")
        if int(count or 0) >= rules.MAX_ACCOUNTS:
            raise WeComError(95005)
        open_kfid = _new_open_kfid(db)
        db.execute(
            "INSERT INTO accounts (open_kfid, name, media_id, avatar, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (open_kfid, name, media_id, ids.avatar_url(media_id), request.now_int),
        )
    return {"open_kfid": open_kfid}


@API.route("POST", "/cgi-bin/kf/account/del")
def account_del(request: Request) -> dict[str, Any]:
    with request.db.write() as db:
        account = account_from_body(request, db)
        db.execute(
            "UPDATE accounts SET deleted_at = ? WHERE seq = ?", (request.now_int, account["seq"])
        )
    return {}


@API.route("POST", "/cgi-bin/kf/account/update")
def account_update(request: Request) -> dict[str, Any]:
    # Omitted (or empty) name / media_id keep their current values (kf-api.md §2.2).
    name = optional_str(request.body, "name")
    if name is not None:
        rules.check_account_name(name)
    media_id = optional_str(request.body, "media_id")
    with request.db.write() as db:
        account = account_from_body(request, db)
        if media_id is not None:
            usable_media(db, media_id, "image", request.now)
            db.execute(
                "UPDATE accounts SET media_id = ?, avatar = ? WHERE seq = ?",
                (media_id, ids.avatar_url(media_id), account["seq"]),
            )
        if name is not None:
            db.execute("UPDATE accounts SET name = ? WHERE seq = ?", (name, account["seq"]))
    return {}


@API.route("POST", "/cgi-bin/kf/account/list")
def account_list(request: Request) -> dict[str, Any]:
    offset = optional_uint(request.body, "offset") or 0
    limit = optional_uint(request.body, "limit")
    if limit is None:
        limit = rules.ACCOUNT_LIST_DEFAULT_LIMIT
    # limit is 1..100 (kf-api.md §2.2). An explicit 0 is rejected rather than read as
    # "default" (verify: WeCom's decoder may not tell 0 from absent).
    if not 1 <= limit <= rules.ACCOUNT_LIST_MAX_LIMIT:
        raise WeComError(40058, f"limit must be 1..{rules.ACCOUNT_LIST_MAX_LIMIT}")
    return {"account_list": _list_accounts(request, offset, limit)}


@API.route("GET", "/cgi-bin/kf/account/list")
def account_list_get(request: Request) -> dict[str, Any]:
    # The older GET form many SDKs still use (SP, WPY, EW5): no paging, so only the
    # default first 100 accounts ever come back (kf-api.md §2.2).
    return {"account_list": _list_accounts(request, 0, rules.ACCOUNT_LIST_DEFAULT_LIMIT)}


def _list_accounts(request: Request, offset: int, limit: int) -> list[dict[str, Any]]:
    rows = request.db.query(
        "SELECT open_kfid, name, avatar FROM accounts WHERE deleted_at IS NULL "
        "ORDER BY seq LIMIT ? OFFSET ?",
        (limit, offset),
    )
    # manage_privilege: every account here was created through this app's API, so the
    # app may manage all of them (kf-api.md §1.3).
    return [
        {
            "open_kfid": row["open_kfid"],
            "name": row["name"],
            "avatar": row["avatar"],
            "manage_privilege": True,
        }
        for row in rows
    ]


@API.route("POST", "/cgi-bin/kf/add_contact_way")
def add_contact_way(request: Request) -> dict[str, Any]:
    scene = optional_str(request.body, "scene")
    if scene is not None:
        rules.check_scene(scene)
    credentials = request.server.credentials
    with request.db.write() as db:
        account = account_from_body(request, db)
        open_kfid = account["open_kfid"]
        url = "https://work.weixin.qq.com/kf/" + ids.contact_way_path(
            credentials["corp_id"], open_kfid
        )
        if scene is not None:
            # The scene travels encrypted in the link; remember it so that an enter_session
            # event can report it back (with scene_param) when a customer follows the link.
            token = ids.enc_scene(credentials["aes_key"], open_kfid, scene)
            db.execute(
                "INSERT OR IGNORE INTO contact_ways (enc_scene, open_kfid, scene, created_at) "
                "VALUES (?, ?, ?, ?)",
                (token, open_kfid, scene, request.now_int),
            )
            url += f"?enc_scene={token}"
    return {"url": url}


def _new_open_kfid(db: Tx) -> str:
    while True:
        candidate = ids.open_kfid()
        if db.one("SELECT 1 FROM accounts WHERE open_kfid = ?", (candidate,)) is None:
            return candidate
