import os
import subprocess
import sys
from pathlib import Path

from kfcli.cli.completion import FILES, script

ROOT = Path(__file__).resolve().parents[2]


def test_committed_scripts_are_current():
    for shell, name in FILES.items():
        committed = (ROOT / "completions" / name).read_text()
        assert committed == script(shell).rstrip("\n") + "\n", (
            f"completions/{name} is stale: run python -m kfcli.cli.completion completions"
        )


def test_bash_completion_answers_from_the_app(home):
    env = {**os.environ, "_KFCLI_COMPLETE": "complete_bash", "COMP_WORDS": "kfcli account l",
           "COMP_CWORD": "2"}
    out = subprocess.run([sys.executable, "-m", "kfcli"], env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout.split() == ["list"]
