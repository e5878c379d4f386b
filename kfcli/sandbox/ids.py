"""Generators for the identifiers the simulated corp hands out.

Formats imitate WeCom's so that clients meet realistic values: ``ww`` + 16 hex for a corp,
``wk`` / ``wm`` + 30 url-safe characters for accounts / customers, long url-safe tokens.
None of them starts with ``-``, so they are safe as command-line arguments.
"""

from __future__ import annotations

import hashlib
import secrets
import string

_ALNUM = string.ascii_letters + string.digits
_URLSAFE = _ALNUM + "-_"


def _random(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def corp_id() -> str:
    return "ww" + secrets.token_hex(8)


def app_secret() -> str:
    return secrets.token_urlsafe(32)  # 43 characters, like a WeCom app secret


def callback_token() -> str:
    # The admin console generates alphanumeric Tokens of at most 32 characters (kf-api.md §4.1).
    return _random(_ALNUM, 32)


def encoding_aes_key() -> str:
    # Exactly 43 characters from [A-Za-z0-9] (kf-api.md §4.1). The last character usually
    # carries non-zero trailing bits, as real keys do, which keeps clients' decoding honest.
    return _random(_ALNUM, 43)


def access_token() -> str:
    return secrets.token_urlsafe(96)  # 128 characters; WeCom's are ≤ 512 bytes


def open_kfid() -> str:
    return "wk" + _random(_URLSAFE, 30)


def external_userid() -> str:
    return "wm" + _random(_URLSAFE, 30)


def unionid() -> str:
    return "o" + _random(_URLSAFE, 27)


def media_id() -> str:
    # Real temporary media ids are long url-safe strings that start with a digit.
    return "3" + _random(_URLSAFE, 63)


def msgid() -> str:
    return secrets.token_hex(16)


def avatar_url(media_id: str) -> str:
    """A stable CDN-style URL for an account avatar uploaded as ``media_id``."""
    digest = hashlib.sha1(media_id.encode()).hexdigest()
    return f"https://wework.qpic.cn/wwpic/{digest}/0"


def contact_way_path(corp_id: str, open_kfid: str) -> str:
    """The per-account part of a contact-way link (``kfc`` + hex, stable per account)."""
    return "kfc" + hashlib.sha256(f"{corp_id}/{open_kfid}".encode()).hexdigest()[:18]


def enc_scene(aes_key: str, open_kfid: str, scene: str) -> str:
    """An opaque, stable token standing for ``scene`` in a contact-way link."""
    return "ENC" + hashlib.sha256(f"{aes_key}/{open_kfid}/{scene}".encode()).hexdigest()[:40]


def event_code() -> str:
    """A welcome_code / msg_code for send_msg_on_event (never starting with ``-``)."""
    return _random(_ALNUM, 1) + _random(_URLSAFE, 42)


def sync_token() -> str:
    """A kf_msg_or_event callback Token (sync_msg ``token``; WeCom's are ``ENC…``, ≤128 B)."""
    return "ENC" + _random(_ALNUM, 44)


def knowledge_id() -> str:
    """A knowledge-base group_id or intent_id."""
    return _random(_ALNUM, 32)
