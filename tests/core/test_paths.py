"""kfcli's directories on Linux come from the XDG rule without importing platformdirs
(kfcli._xdg): they are the directories platformdirs names, whatever the environment says."""

from __future__ import annotations

import subprocess
import sys

import platformdirs
import pytest

from kfcli import _xdg
from kfcli.core import paths

KINDS = ("config", "cache", "state", "data")
VARIABLES = {"config": "XDG_CONFIG_HOME", "cache": "XDG_CACHE_HOME",
             "state": "XDG_STATE_HOME", "data": "XDG_DATA_HOME"}


@pytest.mark.parametrize("home", ["tmp", "/", "relative/home", "", None])
@pytest.mark.parametrize("xdg", [None, "/tmp/xdg-abs", "/tmp/xdg-abs/", "relative/ignored",
                                 "", "  ", "~/tilde", "/tmp/xdg abs/空格"])
def test_each_directory_is_the_one_platformdirs_names(monkeypatch, tmp_path, home, xdg):
    if home == "tmp":
        home = str(tmp_path)
    if home is None:
        monkeypatch.delenv("HOME", raising=False)
    else:
        monkeypatch.setenv("HOME", home)
    monkeypatch.delenv("KFCLI_CONFIG_DIR", raising=False)
    for variable in VARIABLES.values():
        if xdg is None:
            monkeypatch.delenv(variable, raising=False)
        else:
            monkeypatch.setenv(variable, xdg)
    for kind in KINDS:
        try:
            expected = getattr(platformdirs, f"user_{kind}_dir")("kfcli", appauthor=False)
        except RuntimeError:  # no home directory platformdirs can determine
            with pytest.raises(RuntimeError):
                _xdg.user_dir(kind)
            continue
        assert _xdg.user_dir(kind) == expected, kind
    if home and home.startswith("/"):
        assert str(paths.config_dir()) == str(platformdirs.user_config_path("kfcli",
                                                                           appauthor=False))
        assert str(paths.state_dir() / "store.db") in paths.default_store_url()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the XDG rule is Linux's")
@pytest.mark.process
def test_resolving_the_directories_does_not_import_platformdirs(tmp_path):
    code = ("import sys; from kfcli.core import paths; "
            "[f() for f in (paths.config_dir, paths.cache_dir, paths.state_dir, paths.data_dir,"
            " paths.default_store_url, paths.sandbox_store_url)]; "
            "print('platformdirs' in sys.modules)")
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
