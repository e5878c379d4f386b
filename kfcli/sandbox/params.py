"""Reading fields out of a request body the way WeCom does.

WeCom decodes request JSON into typed fields: a wrong type or a missing required field is
40058 "invalid Request Parameter", and an empty string counts as "not given" (DESIGN.md §8;
kf-api.md §1.1). Rules about a field's *value* (lengths, patterns) live in `rules`.
"""

from __future__ import annotations

from typing import Any

from .errors import WeComError

UINT32_MAX = 2**32 - 1


def required_str(body: dict[str, Any], field: str) -> str:
    """A required string: absent, null or "" is 40058, as for open_kfid in silenceper#672."""
    value = body.get(field)
    if value is None or value == "":
        raise WeComError(40058, f"field {field} missing or unexpected empty string")
    if not isinstance(value, str):
        raise WeComError(40058, f"field {field} must be a string")
    return value


def optional_str(body: dict[str, Any], field: str) -> str | None:
    """An optional string; absent, null and "" all mean "not given"."""
    value = body.get(field)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise WeComError(40058, f"field {field} must be a string")
    return value


def optional_uint(body: dict[str, Any], field: str) -> int | None:
    """An optional uint32 (JSON integer); absent or null means "not given"."""
    value = body.get(field)
    if value is None:
        return None
    # bool is an int subclass in Python but not a number in JSON.
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= UINT32_MAX:
        raise WeComError(40058, f"field {field} must be an unsigned 32-bit integer")
    return value
