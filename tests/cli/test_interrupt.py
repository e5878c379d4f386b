"""Ctrl-C is never lost: Python swallows an exception raised inside a finalizer, so a SIGINT
landing while one runs (a released file lock being freed: many times a second in
`msg sync --follow`) left the follower running (seen in CI: it ignored SIGINT for a minute)."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROGRAM = """
import os, signal, time
from kfcli.__main__ import interrupt
if {install}:
    signal.signal(signal.SIGINT, interrupt)

class Finalized:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C lands inside the finalizer
        time.sleep(0.05)

try:
    for _ in range(30):
        Finalized()
        time.sleep(0.01)
    print("ran on")
except KeyboardInterrupt:
    print("interrupted")
"""


@pytest.mark.process
@pytest.mark.parametrize("install, expected", [(True, "interrupted"), (False, "ran on")])
def test_a_ctrl_c_inside_a_finalizer_still_interrupts(install, expected):
    """kfcli's handler sends it again outside the finalizer; Python's own loses it (the
    second case shows the test can tell)."""
    ran = subprocess.run([sys.executable, "-c", PROGRAM.format(install=install)],
                         capture_output=True, text=True, timeout=120)
    assert ran.stdout.strip() == expected, ran.stderr
