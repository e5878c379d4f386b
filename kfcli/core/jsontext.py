"""JSON text that is safe to show on a terminal, with the same value.

`json.dumps(ensure_ascii=False)` escapes C0 controls but leaves DEL, C1 controls (U+009B is an
8-bit CSI), the line/paragraph separators and bidi overrides raw; on a terminal they can still
act. These characters can only occur inside JSON strings, where `\\uXXXX` means the same.
"""

from __future__ import annotations

import json
import re
from typing import Any

_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def escape(text: str) -> str:
    """Escape terminal-active characters in JSON text (one pass; the value is unchanged)."""
    if _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def dumps(doc: Any, **kwargs: Any) -> str:
    """`json.dumps` keeping non-ASCII text readable, with terminal-active characters escaped."""
    return escape(json.dumps(doc, ensure_ascii=False, **kwargs))
