"""What the library has to tell its user along the way: a token cache it cannot use, a retry
after a rate limit. Logged on the `kfcli.core` logger (warnings; retries at INFO), unless an
application installs a listener, as the CLI does to print them on stderr without paying for
importing `logging` on every run.
"""

from __future__ import annotations

from collections.abc import Callable

WARNING = "warning"
INFO = "info"

_listener: Callable[[str, str], None] | None = None


def listen(listener: Callable[[str, str], None] | None) -> None:
    """Send every notice to `listener(level, text)` instead of the logger (None: back to it)."""
    global _listener
    _listener = listener


def notice(level: str, text: str) -> None:
    if _listener is not None:
        _listener(level, text)
        return
    import logging

    logger = logging.getLogger("kfcli.core")
    logger.log(logging.WARNING if level == WARNING else logging.INFO, "%s", text)
