import os
import subprocess
import sys

import pytest


@pytest.mark.process
def test_importing_the_cli_does_not_import_requests_rich_or_the_sandbox():
    code = (
        "import sys, kfcli.cli.app; "
        "heavy = [m for m in ('requests', 'rich', 'kfcli.sandbox', 'Crypto', 'sqlite3', "
        "'psycopg', 'psycopg_pool', 'kfcli.core.store') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.process
def test_version_fast_path_does_not_import_typer():
    code = "import sys; from kfcli.__main__ import main; sys.argv=['kfcli','--version']\n" \
           "try:\n main()\nexcept SystemExit: pass\nprint('typer' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = out.stdout.splitlines()
    assert lines[0].startswith("kfcli 0.1.0 (store schema ") and lines[1:] == ["False"]


def test_version_and_help(run):
    assert run("--version").out.startswith("kfcli 0.1.0 (store schema ")
    r = run("--help")
    assert r.code == 0 and "Examples" in r.out
    r = run("account", "lst")
    assert r.code == 2 and "error:" in r.err and "Traceback" not in r.err


@pytest.mark.process
def test_completion_modules_import_only_os_and_sys():
    """A TAB press pays for these two modules; json only when a value needs a file.
    (`__future__` is a compiler directive's tiny module: already loaded under an editable
    install, by its import hook, and not under a regular one.)"""
    code = (
        "import sys; before = set(sys.modules); import kfcli._complete, kfcli.cli._tree; "
        "new = sorted(m for m in set(sys.modules) - before "
        "if not m.startswith('kfcli') and m != '__future__'); print(new)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.process
def test_completion_request_does_not_import_typer(tmp_path):
    code = "import sys; from kfcli.__main__ import main\n" \
           "try:\n main(['account', 'l'])\nexcept SystemExit: pass\nprint('typer' in sys.modules)"
    env = {**os.environ, "_KFCLI_COMPLETE": "fish", "HOME": str(tmp_path),
           "KFCLI_CONFIG_DIR": str(tmp_path / "config")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=env)
    lines = out.stdout.splitlines()
    assert lines[0] == "words\t" and lines[1].startswith("list\t") and lines[-1] == "False"
