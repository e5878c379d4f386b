"""WeCom's limits and validation rules, in one place.

Every number the simulator enforces lives here with its source in kf-api.md, so a reader can
check the simulator against the reference without hunting through handlers. Handlers read
these names at call time (``rules.MAX_ACCOUNTS``), which also lets tests lower a limit.
Functions here raise `WeComError` with the code WeCom uses for that rule.
"""

from __future__ import annotations

import re

from .errors import WeComError

# --- time -----------------------------------------------------------------------------------

DEFAULT_TOKEN_TTL = 7200  # gettoken expires_in, kf-api.md §1.2
MEDIA_TTL = 3 * 24 * 3600  # temporary media live 3 days, kf-api.md §2.12
SESSION_WINDOW = 48 * 3600  # reply window after a customer message, kf-api.md §1.6
WINDOW_MESSAGES = 5  # messages allowed per customer message, kf-api.md §1.6
SYNC_HISTORY = 3 * 24 * 3600  # sync_msg with an empty cursor starts 3 days back, §2.5

# --- accounts (kf-api.md §2.2) -----------------------------------------------------------

# The 10-account cap for unverified corps (95027) is not simulated: the simulated corp counts
# as verified, so a newcomer is never blocked by a rule they cannot change in the sandbox.
# Likewise "a self-built app needs one configured account before add" is not simulated.
MAX_ACCOUNTS = 5000
MAX_ACCOUNT_NAME_CHARS = 16  # characters, not bytes
MAX_MEDIA_ID_BYTES = 128
MAX_OPEN_KFID_BYTES = 64
ACCOUNT_LIST_DEFAULT_LIMIT = 100
ACCOUNT_LIST_MAX_LIMIT = 100

# add_contact_way scene, kf-api.md §2.2
MAX_SCENE_BYTES = 32
SCENE_RE = re.compile(r"[0-9a-zA-Z_-]*")

# Real open_kfids are opaque url-safe strings ("wk" + 30 chars); anything outside this
# alphabet cannot have been issued by WeCom and is "invalid" (95000) rather than "unknown".
OPEN_KFID_RE = re.compile(r"[0-9A-Za-z_-]+")

# --- media (kf-api.md §2.12) ----------------------------------------------------------------

MB = 1024 * 1024
MEDIA_MIN_BYTES = 6  # "all files > 5 bytes"
MEDIA_MAX_BYTES = {"image": 10 * MB, "voice": 2 * MB, "video": 10 * MB, "file": 20 * MB}
MEDIA_TYPES = tuple(MEDIA_MAX_BYTES)
# Oversize errors: the upload page lists 40009 (image) and 40011 (video) for size problems and
# 40006 as the generic "invalid file size"; the global table's 40010 (voice size) is not
# among the codes the upload page names, so voice and file use 40006.
MEDIA_OVERSIZE_ERRCODE = {"image": 40009, "voice": 40006, "video": 40011, "file": 40006}
# Largest request body read at all (a 20 MB file plus multipart overhead fits easily).
MAX_BODY_BYTES = 64 * MB


# --- validators -----------------------------------------------------------------------------


def check_account_name(name: str) -> None:
    """95006 for a name WeCom refuses: over 16 characters, or nothing visible."""
    if len(name) > MAX_ACCOUNT_NAME_CHARS:
        raise WeComError(95006, f"name exceeds {MAX_ACCOUNT_NAME_CHARS} characters")
    if not name.strip():
        raise WeComError(95006, "name is blank")


def check_open_kfid_format(open_kfid: str) -> None:
    """95000 for an id that cannot be a WeCom open_kfid (existence is checked separately)."""
    if len(open_kfid.encode()) > MAX_OPEN_KFID_BYTES or not OPEN_KFID_RE.fullmatch(open_kfid):
        raise WeComError(95000)


def check_scene(scene: str) -> None:
    """40058 for a contact-way scene over 32 bytes or outside [0-9a-zA-Z_-]."""
    if len(scene.encode()) > MAX_SCENE_BYTES:
        raise WeComError(40058, f"scene exceeds {MAX_SCENE_BYTES} bytes")
    if not SCENE_RE.fullmatch(scene):
        raise WeComError(40058, "scene must match [0-9a-zA-Z_-]*")


def check_media_content(media_type: str, data: bytes) -> None:
    """Size and format rules for an upload of ``media_type`` (already known to be valid)."""
    if not data:
        raise WeComError(44001)
    if len(data) < MEDIA_MIN_BYTES:
        raise WeComError(40006, "file must be larger than 5 bytes")
    if len(data) > MEDIA_MAX_BYTES[media_type]:
        raise WeComError(MEDIA_OVERSIZE_ERRCODE[media_type])
    if not _format_ok(media_type, data):
        raise WeComError(40005)


def _format_ok(media_type: str, data: bytes) -> bool:
    # Formats by magic bytes: image JPG/PNG, voice AMR, video MP4 (an ISO-BMFF "ftyp" box
    # first); "file" accepts anything. kf-api.md §2.12.
    if media_type == "image":
        return data.startswith(b"\xff\xd8\xff") or data.startswith(b"\x89PNG\r\n\x1a\n")
    if media_type == "voice":
        return data.startswith(b"#!AMR")
    if media_type == "video":
        return data[4:8] == b"ftyp"
    return True
