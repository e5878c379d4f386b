"""kfcli's per-user directories, as platformdirs names them, without importing it on Linux.

Both `kfcli.core.paths` and TAB completion (`kfcli._complete`) ask here; this module imports
only `os` and `sys`. On Linux platformdirs follows the XDG Base Directory rule, which is short:
an absolute `$XDG_CONFIG_HOME` (`_CACHE_`, `_STATE_`, `_DATA_`) names the base directory, an
empty, unset or relative one is ignored and the base is `~/.config` (`~/.cache`,
`~/.local/state`, `~/.local/share`) under `$HOME`; kfcli's directory is `kfcli` in it.
Importing platformdirs costs about 3 ms of every command's start-up (it imports `tempfile`,
`random` and seven modules of its own) and more of a TAB press. Elsewhere (macOS, Windows) and
on Linux without an absolute `$HOME` (where platformdirs looks the home up, or refuses),
platformdirs answers. tests/core/test_paths.py checks that both agree.
"""

from __future__ import annotations

import os
import sys

APP = "kfcli"

#: kind -> (the XDG variable, the base under the home directory when it names none).
_XDG = {
    "config": ("XDG_CONFIG_HOME", ".config"),
    "cache": ("XDG_CACHE_HOME", ".cache"),
    "state": ("XDG_STATE_HOME", ".local/state"),
    "data": ("XDG_DATA_HOME", ".local/share"),
}


def user_dir(kind: str) -> str:
    """`platformdirs.user_<kind>_dir("kfcli", appauthor=False)`; kind: config, cache, state
    or data."""
    variable, default = _XDG[kind]
    if sys.platform.startswith("linux"):
        base = os.environ.get(variable, "")
        if os.path.isabs(base):
            return os.path.join(base, APP)
        home = os.environ.get("HOME", "")
        if os.path.isabs(home):
            return os.path.join(os.path.expanduser("~/" + default), APP)
    import platformdirs

    return str(getattr(platformdirs, f"user_{kind}_dir")(APP, appauthor=False))
