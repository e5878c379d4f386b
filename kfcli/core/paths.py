"""Where kfcli keeps its files: config, token cache, sync state, sandbox data.

Platform directories are platformdirs' (`kfcli._xdg`: on Linux the XDG Base Directory rule,
XDG_CONFIG_HOME, XDG_CACHE_HOME, XDG_STATE_HOME and XDG_DATA_HOME, without importing it);
`KFCLI_CONFIG_DIR` overrides the config directory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from kfcli._xdg import user_dir


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """KFCLI_CONFIG_DIR (from `environ`, default the process's), else the platform's."""
    override = (os.environ if environ is None else environ).get("KFCLI_CONFIG_DIR")
    if override:
        return Path(override).expanduser()
    return Path(user_dir("config"))


def cache_dir() -> Path:
    return Path(user_dir("cache"))


def state_dir() -> Path:
    return Path(user_dir("state"))


def default_store_url() -> str:
    """The store a setting does not name: store.db in the state directory (here, not in
    kfcli.core.store, so that resolving settings never imports the store)."""
    return "sqlite:///" + str(state_dir() / "store.db").lstrip("/")


def data_dir() -> Path:
    return Path(user_dir("data"))


def config_file() -> Path:
    return config_dir() / "config.json"


def sandbox_db() -> Path:
    return data_dir() / "sandbox.db"


def sandbox_store_url() -> str:
    """The message store of `--sandbox` runs (beside the simulator's state), so a rehearsal
    never writes into the store production commands use."""
    return "sqlite:///" + str(data_dir() / "sandbox-store.db").lstrip("/")
