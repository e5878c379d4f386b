"""What the library has to tell its user along the way: a token cache it cannot use, a retry
after a rate limit. Logged on the `kfcli.core` logger (warnings; retries at INFO), unless the
application gives the client a `notify(level, text)` of its own, as the CLI does to print
them on stderr without paying for importing `logging` on every run.
"""

from __future__ import annotations

from collections.abc import Callable

WARNING = "warning"
INFO = "info"

#: notify(level, text): where a client's notices go.
Notify = Callable[[str, str], None]


def notice(level: str, text: str) -> None:
    """The default `Notify`: the `kfcli.core` logger."""
    import logging

    logger = logging.getLogger("kfcli.core")
    logger.log(logging.WARNING if level == WARNING else logging.INFO, "%s", text)
