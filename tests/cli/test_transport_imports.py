"""urllib3 is imported only by commands that make requests (issue 23, DESIGN.md §14):
`--version`, `--help` and a TAB press never pay for it, nor does building a client."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

RUN = ("import sys\nfrom kfcli.__main__ import main\ntry:\n main({args!r})\n"
       "except SystemExit: pass\nprint('urllib3 imported:', 'urllib3' in sys.modules, "
       "file=sys.stderr)")


@pytest.mark.process
@pytest.mark.parametrize("args, complete", [
    (["--version"], False),
    (["--help"], False),
    (["account", "--help"], False),
    (["msg", "send", "--help"], False),
    (["account", "l"], True),  # a TAB press, as the completion scripts ask it
    (["msg", "sync", ""], True),
])
def test_no_urllib3_without_a_request(tmp_path, args, complete):
    env = {**os.environ, "HOME": str(tmp_path), "KFCLI_CONFIG_DIR": str(tmp_path / "config")}
    if complete:
        env["_KFCLI_COMPLETE"] = "fish"
    out = subprocess.run([sys.executable, "-c", RUN.format(args=args)], capture_output=True,
                         text=True, env=env, timeout=60)
    assert "urllib3 imported: False" in out.stderr, out.stderr


@pytest.mark.process
def test_a_client_imports_urllib3_at_its_first_request_only():
    code = ("import sys\nfrom kfcli.core import KfClient\n"
            "KfClient('ww1', 's', base_url='http://127.0.0.1:9')\n"
            "print('urllib3' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "False"


@pytest.mark.process
def test_account_list_imports_neither_the_store_nor_the_media_commands(tmp_path):
    """What `account list` imports is what it uses: urllib3 pays for itself this way (on
    Linux the directories come without platformdirs)."""
    code = ("import sys\nfrom kfcli.__main__ import main\ntry:\n main(['account', 'list'])\n"
            "except SystemExit: pass\nprint(sorted(m for m in ('urllib3', 'kfcli.core.store', "
            "'kfcli.cli.media', 'platformdirs' if sys.platform.startswith('linux') else '') "
            "if m in sys.modules), file=sys.stderr)")
    env = {**os.environ, "HOME": str(tmp_path), "KFCLI_CONFIG_DIR": str(tmp_path / "config"),
           "XDG_CACHE_HOME": str(tmp_path / "cache"), "KFCLI_CORP_ID": "ww1",
           "KFCLI_SECRET": "s", "KFCLI_BASE_URL": "http://127.0.0.1:9"}  # refused: exit 6
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=60)
    assert out.stderr.strip().endswith("['urllib3']"), out.stderr


def test_running_a_command_in_process_leaves_the_collector_alone(run):
    """Only the process's entry point (kfcli.__main__) keeps start-up's objects out of the
    garbage collector; a test's or a library caller's process is left as it was."""
    import gc

    frozen = gc.get_freeze_count()
    assert run("--version").code == 0
    assert run("account", "--help").code == 0
    assert gc.isenabled() and gc.get_freeze_count() == frozen
