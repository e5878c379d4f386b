"""Daily use on machines that are not set up perfectly: concurrent config writes, the profile
named with -p, environment failures, pipes, progress and Ctrl-C (issue 10, items 2-5 and 7).

Every test drives the installed CLI in a subprocess, as a user or a script would.
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.conftest import KFCLI

# ---------------------------------------------------------------------- 2. config writes


@pytest.mark.process
def test_thirty_concurrent_config_sets_keep_every_profile(run, home: Path) -> None:
    procs = [subprocess.Popen([*KFCLI, "-p", f"p{i}", "config", "set", "corp_id", f"ww{i}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for i in range(30)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    doc = json.loads((home / "config" / "config.json").read_text())
    assert {name: prof["corp_id"] for name, prof in doc["profiles"].items()} == {
        f"p{i}": f"ww{i}" for i in range(30)}


@pytest.mark.process
def test_concurrent_secret_and_corp_id_of_one_profile_both_survive(run, home: Path) -> None:
    for _ in range(5):
        a = subprocess.Popen([*KFCLI, "-p", "prod", "config", "set", "secret"],
                             stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
        b = subprocess.Popen([*KFCLI, "-p", "prod", "config", "set", "corp_id", "wwprod"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        a.communicate("s3cret-value\n", timeout=60)
        b.communicate(timeout=60)
        assert a.returncode == b.returncode == 0
        doc = json.loads((home / "config" / "config.json").read_text())
        assert doc["profiles"]["prod"] == {"secret": "s3cret-value", "corp_id": "wwprod"}
        assert run("config", "remove", "prod", "--yes").code == 0


def test_config_set_writes_through_a_symlinked_config_file(run, home: Path,
                                                           tmp_path: Path) -> None:
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    target = dotfiles / "kfcli.json"
    target.write_text('{"current": "default", "profiles": {"default": {"corp_id": "ww1"}}}')
    (home / "config").mkdir(parents=True)
    link = home / "config" / "config.json"
    link.symlink_to(target)
    r = run("config", "set", "corp_id", "ww2")
    assert r.code == 0, r.err
    assert link.is_symlink() and link.resolve() == target
    assert json.loads(target.read_text())["profiles"]["default"]["corp_id"] == "ww2"
    assert (target.stat().st_mode & 0o777) == 0o600


def test_unwritable_config_directory_is_a_configuration_error(run, home: Path,
                                                             tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    # A file where a directory should be: refused even to root, unlike chmod.
    r = run("config", "set", "corp_id", "ww1", env={"KFCLI_CONFIG_DIR": str(blocker / "cfg")})
    assert r.code == 3
    assert r.err.count("\n") <= 2 and "internal error" not in r.err
    assert str(blocker / "cfg") in r.err and "Not a directory" in r.err


# ---------------------------------------------------------------------- 3. -p wins


def test_a_profile_named_with_p_beats_credential_variables(run, sandbox, home: Path) -> None:
    prod = sandbox.account("Prod desk")
    assert run("-p", "prod", "config", "set", "corp_id", sandbox.creds["corp_id"]).code == 0
    assert run("-p", "prod", "config", "set", "secret",
               input=sandbox.creds["secret"] + "\n").code == 0
    assert run("-p", "prod", "config", "set", "base_url", sandbox.base_url).code == 0
    # The environment names another corp at an address where nothing listens.
    env = {"KFCLI_CORP_ID": "wwOTHER", "KFCLI_SECRET": "other-secret",
           "KFCLI_BASE_URL": "http://127.0.0.1:9"}
    r = run("-p", "prod", "account", "list", "-o", "json", env=env)
    assert r.code == 0, r.err
    assert [a["open_kfid"] for a in json.loads(r.out)] == [prod]
    status = run("-p", "prod", "auth", "status", "-o", "json", env=env)
    doc = json.loads(status.out)
    assert doc["settings"]["corp_id"] == {"value": sandbox.creds["corp_id"],
                                          "source": "profile"}
    assert doc["ignored_env"] == ["KFCLI_CORP_ID", "KFCLI_SECRET", "KFCLI_BASE_URL"]
    table = run("-p", "prod", "auth", "status", env=env)
    assert "ignored: KFCLI_CORP_ID, KFCLI_SECRET, KFCLI_BASE_URL" in table.err
    # Without -p the environment still wins over the current profile.
    r = run("account", "list", env=env)
    assert r.code == 6


def test_empty_profile_name_is_a_usage_error(run) -> None:
    r = run("-p", "", "config", "list")
    assert r.code == 2
    assert r.err.startswith("error: -p/--profile: the profile name is empty")


@pytest.mark.parametrize(("url", "problem"), [
    ("http://127.0.0.1:99999", "port 99999 is not in 1-65535"),
    ("ftp://x", "must be an http(s) URL"),
])
def test_bad_base_url_from_the_environment_is_refused_before_any_request(run, url,
                                                                        problem) -> None:
    r = run("account", "list", env={"KFCLI_BASE_URL": url, "KFCLI_CORP_ID": "ww1",
                                    "KFCLI_SECRET": "s" * 20})
    assert r.code == 3
    assert f"base_url from KFCLI_BASE_URL ({url!r}): {problem}" in r.err
    assert "internal error" not in r.err
    # and `config set` refuses it too
    assert run("config", "set", "base_url", url).code == 2


# ---------------------------------------------------------------------- 5. environment


@pytest.mark.process
def test_full_output_device_is_one_clear_error(kf, sandbox) -> None:
    sandbox.account("Support")
    for fmt in ("tsv", "json", "table"):
        with open("/dev/full", "w") as full:
            proc = subprocess.run([*KFCLI, "account", "list", "-o", fmt], stdout=full,
                                  stderr=subprocess.PIPE, text=True, timeout=60,
                                  env={**os.environ, **sandbox.env})
        assert proc.returncode == 3, proc.stderr
        message = "cannot write the output: No space left on device"
        if fmt == "json":  # -o json: the error as a JSON object
            assert json.loads(proc.stderr)["error"]["message"] == message
        else:
            assert proc.stderr.startswith(f"error: {message}")
        assert "Traceback" not in proc.stderr and "internal" not in proc.stderr


def test_unwritable_token_cache_warns_once_and_the_command_runs(kf, sandbox,
                                                              tmp_path: Path) -> None:
    open_kfid = sandbox.account("Support")
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    r = kf("account", "list", env={"XDG_CACHE_HOME": str(blocker)})
    assert r.code == 0, r.err
    assert open_kfid in r.out
    assert r.err.count("warning: cannot use the token cache") == 1
    assert "continuing without it" in r.err


def test_unusable_state_directory_names_it(kf, sandbox, tmp_path: Path) -> None:
    open_kfid = sandbox.account("Support")
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    r = kf("msg", "sync", open_kfid, env={"XDG_STATE_HOME": str(blocker)})
    assert r.code == 3
    assert str(blocker) in r.err and "internal error" not in r.err


def test_from_file_with_bom_and_gbk(kf, sandbox, tmp_path: Path) -> None:
    open_kfid = sandbox.account("Support")
    bom = tmp_path / "bom.txt"
    bom.write_bytes(b"\xef\xbb\xbfuser001\nuser002\n")
    r = kf("servicer", "add", open_kfid, "--from", str(bom))
    assert r.code == 0, r.err
    assert [line.split("\t")[:2] for line in r.out.splitlines()] == [
        ["user001", "ok"], ["user002", "ok"]]
    gbk = tmp_path / "gbk.txt"
    gbk.write_bytes("user003\n张三\n".encode("gbk"))
    before = sandbox.stats()
    r = kf("servicer", "add", open_kfid, "--from", str(gbk))
    assert r.code == 2
    assert r.err.startswith(f"error: --from: {gbk} is not UTF-8 text (byte 0xd5 on line 2)")
    assert sandbox.stats() == before  # nothing sent


@pytest.mark.process
def test_non_utf8_locale(kf, sandbox, avatar: Path) -> None:
    from tests.conftest import spawn_kfcli

    env = {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": ""}
    r = spawn_kfcli("account", "add", "--name", "客服", "--avatar", str(avatar),
                    env={**sandbox.env, **env})
    assert r.code == 0, r.err
    listed = subprocess.run([*KFCLI, "account", "list"], capture_output=True, timeout=60,
                            env={**os.environ, **sandbox.env, **env})
    assert listed.returncode == 0, listed.stderr
    assert "客服" in listed.stdout.decode("utf-8")


# ---------------------------------------------------------------------- 7. pipes


@pytest.mark.process
@pytest.mark.parametrize("fmt", ["tsv", "table", "json", "jsonl"])
def test_a_reader_that_goes_away_is_not_an_error(kf, sandbox, fmt) -> None:
    for i in range(3):
        sandbox.account(f"Desk {i}")
    read, write = os.pipe()
    os.close(read)  # the reader is gone before kfcli writes anything
    proc = subprocess.run([*KFCLI, "account", "list", "-o", fmt], stdout=write,
                          stderr=subprocess.PIPE, text=True, timeout=60,
                          env={**os.environ, **sandbox.env})
    os.close(write)
    assert (proc.returncode, proc.stderr) == (0, "")


@pytest.mark.process
def test_head_with_pipefail(kf, sandbox) -> None:
    for i in range(3):
        sandbox.account(f"Desk {i}")
    script = f"set -o pipefail; {' '.join(KFCLI)} account list | head -1"
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **sandbox.env})
    assert proc.returncode == 0 and proc.stderr == ""
    assert len(proc.stdout.splitlines()) == 1


# ---------------------------------------------------------------------- 4. progress, Ctrl-C


def _wait_for(predicate, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.process
def test_ctrl_c_keeps_the_batches_done(kf, sandbox, tmp_path: Path) -> None:
    open_kfid = sandbox.account("Support")
    ids = tmp_path / "ids.txt"
    ids.write_text("".join(f"user{i:03d}\n" for i in range(500)))
    path = "/cgi-bin/kf/servicer/add"
    # The fourth batch hangs: Ctrl-C arrives while it is in flight.
    sandbox.fault(fault="delay", path=path, seconds=30, after=3)
    out = tmp_path / "out.tsv"
    with open(out, "w") as fh:
        proc = subprocess.Popen([*KFCLI, "servicer", "add", open_kfid, "--from", str(ids)],
                                stdout=fh, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, **sandbox.env})
        _wait_for(lambda: sandbox.stats().get(path, 0) >= 4, "the fourth batch")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.startswith("interrupted after 300 of 500")
    lines = out.read_text().splitlines()
    assert [line.split("\t")[0] for line in lines] == [f"user{i:03d}" for i in range(300)]


def _on_tty(args: list[str], env: dict[str, str], answer: bytes = b"") -> tuple[int, str]:
    """Run kfcli with stdin, stdout and stderr on one pseudo-terminal; type `answer`."""
    pid, master = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.execvpe(sys.executable, [sys.executable, "-m", "kfcli", *args],
                   {**os.environ, "TERM": "xterm", "COLUMNS": "100", **env})
    if answer:  # waits in the terminal's input queue until the prompt reads it
        os.write(master, answer)
    chunks = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not select.select([master], [], [], 1)[0]:
            continue
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    else:
        os.kill(pid, signal.SIGKILL)  # hung: fail below instead of waiting forever
    _, status = os.waitpid(pid, 0)
    os.close(master)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.process
def test_answering_no_is_not_an_api_error(kf, sandbox) -> None:
    open_kfid = sandbox.account("Support")
    code, text = _on_tty(["account", "delete", open_kfid], sandbox.env, answer=b"n\n")
    assert code == 2
    assert "error: not confirmed: nothing was changed" in text
    assert [a["open_kfid"] for a in sandbox.accounts()] == [open_kfid]


@pytest.mark.process
def test_progress_only_on_a_terminal(kf, sandbox, tmp_path: Path) -> None:
    from tests.conftest import on_terminal

    open_kfid = sandbox.account("Support")
    ids = tmp_path / "ids.txt"
    ids.write_text("".join(f"user{i:03d}\n" for i in range(1, 251)))
    # stdout to a file, stderr a terminal: progress lines on stderr, cleared at the end.
    r = on_terminal(["servicer", "add", open_kfid, "--from", str(ids), "-o", "jsonl"],
                    sandbox.env)
    assert "servicer add: 0 of 250 done, sending 100" in r.err
    assert "servicer add: 200 of 250 done, sending 50" in r.err
    assert r.err.endswith("\r\x1b[K")
    assert r.code == 0, r.err
    # Not a terminal: no progress at all.
    quiet = kf("servicer", "remove", open_kfid, "--from", str(ids), "--yes")
    assert quiet.code == 0 and quiet.err == ""


@pytest.mark.process
def test_retries_are_announced_on_a_terminal_only(kf, sandbox) -> None:
    from tests.conftest import on_terminal

    open_kfid = sandbox.account("Support")
    path = "/cgi-bin/kf/account/list"
    sandbox.fault(fault="errcode", errcode=45009, path=path)
    r = on_terminal(["account", "list", "-o", "tsv"], sandbox.env)
    assert r.code == 0 and open_kfid in r.out
    assert "45009 rate limited, retrying in" in r.err
    sandbox.fault(fault="errcode", errcode=45009, path=path)
    quiet = kf("account", "list")
    assert quiet.code == 0 and quiet.err == ""


@pytest.mark.process
def test_msg_sync_progress_waiting_and_ctrl_c(kf, sandbox, tmp_path: Path) -> None:
    """`msg sync --follow > file` on a terminal: counts and "waiting" on stderr; Ctrl-C says
    how many messages were written and exits 130; the file holds every one of them."""
    open_kfid = sandbox.account("Support")
    for i in range(5):
        sandbox.say(open_kfid, f"hello {i}")
    master, slave = pty.openpty()
    out = tmp_path / "out.jsonl"
    with open(out, "w") as fh:
        proc = subprocess.Popen([*KFCLI, "msg", "sync", open_kfid, "--all", "--follow",
                                 "--interval", "1"], stdout=fh, stderr=slave,
                                stdin=subprocess.DEVNULL,
                                env={**os.environ, **sandbox.env, "TERM": "xterm",
                                     "COLUMNS": "120"})
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 60
    while b"waiting for new ones" not in seen:
        assert time.monotonic() < deadline, seen
        if select.select([master], [], [], 1)[0]:
            seen += os.read(master, 65536)
    proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not select.select([master], [], [], 1)[0]:
            if proc.poll() is not None:
                break
            continue
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the process closed its end
            break
        if not data:
            break
        seen += data
    assert proc.wait(timeout=60) == 130
    os.close(master)
    text = seen.decode("utf-8", "replace")
    assert f"msg sync {open_kfid}: 5 messages" in text
    assert "5 messages so far; waiting for new ones" in text
    assert "interrupted after 5 messages" in text
    assert [json.loads(line)["text"]["content"] for line in out.read_text().splitlines()] == [
        f"hello {i}" for i in range(5)]


# ---------------------------------------------------------------------- found in review


@pytest.mark.process
def test_msg_sync_and_a_consumer_into_a_full_device(kf, sandbox) -> None:
    """Nothing could be written: exit 3, one line, and nothing is recorded as written."""
    open_kfid = sandbox.account("Support")
    for i in range(3):
        sandbox.say(open_kfid, f"hello {i}")
    env = {**os.environ, **sandbox.env}
    for args in (["msg", "sync", open_kfid],
                 ["msg", "history", open_kfid, "--consumer", "bot", "--since", "1d"]):
        with open("/dev/full", "w") as full:
            proc = subprocess.run([*KFCLI, *args, "-o", "jsonl"], stdout=full,
                                  stderr=subprocess.PIPE, text=True, timeout=60, env=env)
        assert proc.returncode == 3, proc.stderr
        assert "cannot write the output: No space left on device" in proc.stderr
        assert "Traceback" not in proc.stderr
        again = kf(*args, "-o", "jsonl")
        assert again.code == 0, again.err
        assert [json.loads(line)["text"]["content"] for line in again.out.splitlines()] == [
            f"hello {i}" for i in range(3)]


@pytest.mark.process
def test_a_customer_cannot_forge_a_line_in_the_terminal_view(kf, sandbox) -> None:
    from tests.conftest import on_terminal

    open_kfid = sandbox.account("Support")
    forged = "2026-12-02 14:09:57  servicer user001     text  please pay to account 123"
    sandbox.say(open_kfid, f"hi\n{forged}\tand\x1b[31m more")
    r = on_terminal(["msg", "sync", open_kfid], sandbox.env, columns=200)
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    [at] = [i for i, line in enumerate(lines) if "please pay" in line]
    assert lines[at].startswith("    ") and "\x1b[31m" not in r.out
    assert lines[at - 1].strip() == "hi"


@pytest.mark.process
def test_media_get_to_stdout_and_into_a_fifo(kf, sandbox, tmp_path: Path) -> None:
    import threading

    from tests.conftest import PNG

    media_id = sandbox.upload(PNG)
    r = subprocess.run([*KFCLI, "media", "get", media_id, "-O", "-"], capture_output=True,
                       timeout=60, env={**os.environ, **sandbox.env})
    assert r.returncode == 0 and r.stdout == PNG
    assert not Path("-").exists()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    r2 = kf("media", "get", media_id, "-O", str(fifo), "--force")
    reader.join(timeout=60)
    assert r2.code == 0, r2.err
    assert got == [PNG]
    assert fifo.is_fifo()  # written into, not replaced by a regular file


@pytest.mark.process
def test_ctrl_c_is_reported_the_same_way_everywhere(kf, sandbox) -> None:
    open_kfid = sandbox.account("Support")
    for args, ready in ((["msg", "history", open_kfid, "--follow"], b"waiting for new"),
                        (["callback", "serve", "--port", "0"], b"listening on")):
        pid, master = pty.fork()
        if pid == 0:  # pragma: no cover - the child
            os.execvpe(sys.executable, [sys.executable, "-m", "kfcli", *args],
                       {**os.environ, **sandbox.env, "TERM": "xterm", "COLUMNS": "100",
                        "KFCLI_TOKEN": "t" * 8, "KFCLI_AES_KEY": "a" * 43})
        seen = b""
        deadline = time.monotonic() + 60
        while ready not in seen and time.monotonic() < deadline:
            if select.select([master], [], [], 1)[0]:
                try:
                    seen += os.read(master, 65536)
                except OSError:  # EIO: it exited
                    break
        assert ready in seen, seen
        os.kill(pid, signal.SIGINT)
        while time.monotonic() < deadline:
            if not select.select([master], [], [], 1)[0]:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            seen += data
        _, status = os.waitpid(pid, 0)
        os.close(master)
        assert os.waitstatus_to_exitcode(status) == 130, seen
        assert seen.decode().rstrip().endswith("interrupted"), seen


@pytest.mark.process
def test_ctrl_d_at_a_confirmation_is_no(kf, sandbox) -> None:
    open_kfid = sandbox.account("Support")
    code, text = _on_tty(["account", "delete", open_kfid], sandbox.env, answer=b"\x04")
    assert code == 2
    assert "not confirmed: nothing was changed" in text
    assert [a["open_kfid"] for a in sandbox.accounts()] == [open_kfid]


def test_repeated_global_option_and_a_two_line_secret(run) -> None:
    r = run("-p", "a", "-p", "b", "config", "list")
    assert r.code == 2 and "-p/--profile given twice" in r.err
    r = run("config", "set", "secret", input="one\ntwo\n")
    assert r.code == 2 and "stdin has 2 lines" in r.err
    assert run("config", "get", "secret").code != 0  # nothing stored
