"""Times given on the command line (`--since`, `--until`): absolute or relative, local time."""

from __future__ import annotations

import re
import time
from datetime import datetime

from kfcli.core.errors import ValidationError

_RELATIVE = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
FORMS = "a date (2026-11-30), a local time (2026-11-30T14:00 or '2026-11-30 14:00:05'), " \
        "a duration ago (90m, 2h, 3d, 1w) or unix seconds"


def parse_when(value: str, *, option: str, now: float | None = None) -> int:
    """Unix seconds for `value`; ValidationError (exit 2) naming the option and the forms."""
    text = value.strip()
    now = time.time() if now is None else now
    m = _RELATIVE.fullmatch(text)
    if m:
        return int(now) - int(m.group(1)) * _UNITS[m.group(2)]
    if text.isdigit() and len(text) >= 9:
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(option, f"{value!r} is not a time: use {FORMS}") from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # local time, as on the terminal
    return int(moment.timestamp())
