"""examples/kfcli-bot@.service: the bot loop per profile under systemd (issue 22). The unit
verifies with `systemd-analyze verify`, and its own ExecStart, run for a profile, answers
every account of that profile's corp, one added while it runs included."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "examples" / "kfcli-bot@.service"


def exec_start(text: str) -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", text)
    [line] = [x for x in joined.splitlines() if x.startswith("ExecStart=")]
    return shlex.split(line.removeprefix("ExecStart="))


@pytest.mark.process
@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed")
@pytest.mark.parametrize("name", ["kfcli-bot@.service", "kfcli-bot@acme.service"])
def test_the_templated_bot_unit_verifies(tmp_path, name):
    text = UNIT.read_text(encoding="utf-8")
    for setting in ("Restart=always", "StartLimitIntervalSec=0", "LimitNOFILE=",
                    "EnvironmentFile=-/etc/kfcli/%i.env", "StandardOutput=journal"):
        assert re.search(rf"^{re.escape(setting)}", text, re.MULTILINE), setting
    assert "KFCLI_STORE" not in re.findall(r"^Environment=.*", text, re.M)[0]
    unit = tmp_path / name
    unit.write_text(text.replace("/opt/kfcli/bin/", f"{Path(sys.executable).parent}/"),
                    encoding="utf-8")
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


@pytest.mark.process
def test_the_units_loop_answers_every_account_of_its_profile(kf, sandbox, tmp_path):
    config = tmp_path / "profiles"
    env = {"KFCLI_CONFIG_DIR": str(config)}
    store = tmp_path / "acme.db"
    for key, value in (("corp_id", sandbox.creds["corp_id"]),
                       ("base_url", sandbox.env["KFCLI_BASE_URL"]),
                       ("store", f"sqlite:///{str(store).lstrip('/')}")):
        assert kf("-p", "acme", "config", "set", key, value, env=env).code == 0
    r = kf("-p", "acme", "config", "set", "secret", input=sandbox.creds["secret"] + "\n",
           env=env)
    assert r.code == 0, r.err
    first = sandbox.account("First")
    argv = exec_start(UNIT.read_text(encoding="utf-8"))
    assert argv[:3] == ["/bin/bash", "-o", "pipefail"] and argv[-1] == "%i"
    script = argv[4].replace("python3 /opt/kfcli/bot.py",
                             f"{sys.executable} {ROOT / 'examples' / 'bot.py'}")
    script = script.replace("kfcli ", f"{sys.executable} -m kfcli ")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KFCLI_")}
    loop = subprocess.Popen(["bash", "-o", "pipefail", "-c", script, argv[5], "acme"],
                            env={**clean, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not _consumers(kf("-p", "acme", "store", "status", "-o", "json",
                                env=env)):  # the consumer has started (and made the store)
            assert loop.poll() is None and time.monotonic() < deadline, loop.stderr.read()
            time.sleep(0.1)
        second = sandbox.account("Second")  # added while the loop runs
        sandbox.say(first, "one", external_userid="wmA")
        sandbox.say(second, "two", external_userid="wmB")
        for account in (first, second):
            assert kf("-p", "acme", "msg", "sync", account, env=env).code == 0
        while len(sandbox.sent(first)) + len(sandbox.sent(second)) < 2:
            assert loop.poll() is None and time.monotonic() < deadline, loop.stderr.read()
            time.sleep(0.1)
    finally:
        os.killpg(loop.pid, signal.SIGTERM)
        loop.wait(timeout=30)
    assert [m["text"]["content"] for m in sandbox.sent(first)] == ["收到：one（我们会尽快回复）"]
    assert [m["text"]["content"] for m in sandbox.sent(second)] == ["收到：two（我们会尽快回复）"]
    status = kf("-p", "acme", "store", "status", "-o", "json", env=env).json()
    assert {c["name"] for c in status["consumers"]} == {"bot-acme"}


def _consumers(r) -> list:
    """The consumers `store status -o json` lists; none while there is no store yet (a read
    never creates one: exit 3)."""
    return r.json().get("consumers") if r.code == 0 else []
