"""`kfcli msg`: send messages, pull them into the store, read, search and export it.

One module per command family; each registers its commands on the group's `app` (in
`_group`, which imports none of them, so the package has no import cycle).
"""

from __future__ import annotations

# isort: off
# `kfcli msg --help` lists the commands in the order they are registered: sending first.
from kfcli.cli.msg import send
from kfcli.cli.msg import export, inbox, media, search, stream
# isort: on
from kfcli.cli.msg._group import app

__all__ = ["app", "export", "inbox", "media", "search", "send", "stream"]
