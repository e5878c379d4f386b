"""Times given on the command line (`--since`, `--until`): absolute or relative, local time."""

from __future__ import annotations

import re
import time
from datetime import datetime

from kfcli.core.errors import ValidationError

_RELATIVE = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
FORMS = "a date (2026-11-30), a local time (2026-11-30T14:00 or '2026-11-30 14:00:05', " \
        "optionally with +08:00 or Z), a duration ago (90m, 2h, 3d, 1w) or unix seconds"
#: Times kfcli accepts: 1970-01-01 to 9999-12-31 (what a date can say, and SQL integers hold).
LATEST = 253402300799


def parse_when(value: str, *, option: str, now: float | None = None) -> int:
    """Unix seconds for `value`; ValidationError (exit 2) naming the option and the forms."""
    text = value.strip()
    now = time.time() if now is None else now
    m = _RELATIVE.fullmatch(text)
    if m:
        seconds = int(now) - int(m.group(1)) * _UNITS[m.group(2)]
    elif text.isdigit() and len(text) != 8:  # 20261130 reads as a date, below
        seconds = int(text)
    else:
        try:
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is None:
                moment = moment.astimezone()  # local time, as on the terminal
            seconds = int(moment.timestamp())
        except (ValueError, OverflowError, OSError):
            raise ValidationError(option, f"{value!r} is not a time: use {FORMS}") from None
    if not 0 <= seconds <= LATEST:
        raise ValidationError(option, f"{value!r} is outside 1970-01-01 .. 9999-12-31")
    return seconds
