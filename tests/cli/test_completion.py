"""TAB completion: the generated tree and scripts are current; requests are answered without
Typer, with commands, options and values (profiles, setting keys, formats, paths, open_kfids
from the account cache, never a request); real bash, zsh and fish complete with the installed
scripts; `kfcli completion install` puts them where each shell looks."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kfcli import _complete
from kfcli.cli.completion import FILES, TREE_MODULE, script, tree_module
from tests.conftest import KFCLI

ROOT = Path(__file__).resolve().parents[2]
CMD = [KFCLI] if KFCLI else [sys.executable, "-m", "kfcli"]
BIN = str(Path(CMD[0]).parent) if KFCLI else ""
WORDBREAKS = " \t\n\"'@><=;|&(:"  # bash's default COMP_WORDBREAKS


def ask(shell: str, *words: str, env: dict[str, str] | None = None) -> list[str]:
    """The answer to a completion request as the shell's script makes it: the mode line, then
    the candidates. bash sends the command line up to the cursor; zsh and fish the words."""
    args = ["kfcli " + " ".join(words)] if shell == "bash" else list(words)
    full_env = {**os.environ, "_KFCLI_COMPLETE": shell, "_KFCLI_WORDBREAKS": WORDBREAKS,
                **(env or {})}
    proc = subprocess.run([*CMD, *args], env=full_env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and proc.stderr == "", proc
    return proc.stdout.splitlines()


def values(shell: str, *words: str, env: dict[str, str] | None = None) -> list[str]:
    """The candidates alone, without descriptions."""
    lines = ask(shell, *words, env=env)[1:]
    if shell == "fish":
        return [line.split("\t")[0] for line in lines]
    if shell == "zsh":
        return [re.split(r"(?<!\\):", line)[0].replace("\\:", ":") for line in lines]
    return lines


# ------------------------------------------------------------------------------ generated


def test_committed_scripts_are_current():
    for shell, name in FILES.items():
        committed = (ROOT / "completions" / name).read_text()
        assert committed == script(shell), (
            f"completions/{name} is stale: run python -m kfcli.cli.completion"
        )


def test_command_tree_is_current():
    assert TREE_MODULE.read_text() == tree_module(), (
        "kfcli/cli/_tree.py is stale (commands, options or help changed): "
        "run python -m kfcli.cli.completion"
    )


def test_tree_knows_value_kinds():
    from kfcli.cli._tree import FIELDS, FORMATS, TREE
    from kfcli.core.config import FIELDS as CONFIG_FIELDS
    from kfcli.render import FORMATS as RENDER_FORMATS

    assert FORMATS == RENDER_FORMATS and tuple(k for k, _ in FIELDS) == CONFIG_FIELDS

    def option(node, name):
        return next(opt for opt in node["options"] if name in opt[0])

    assert option(TREE, "-p")[1] == "profile" and option(TREE, "--sandbox")[1] is None
    account = TREE["commands"]["account"]["commands"]
    assert option(account["list"], "-o")[1] == "format"
    assert option(account["add"], "--avatar")[1] == "file"
    assert account["delete"]["args"][0][:2] == ("open_kfid", "open_kfid")
    assert TREE["commands"]["config"]["commands"]["set"]["args"][0][1] == "key"
    assert TREE["commands"]["config"]["commands"]["use"]["args"][0][1] == "profile"


# ------------------------------------------------------------------------------ answers


@pytest.mark.process
def test_commands_and_options(home):
    assert values("bash", "acc") == ["account"]
    assert set(values("bash", "account", "")) == {"list", "add", "update", "delete"}
    fish = ask("fish", "account", "")
    assert fish[0] == "words\t"
    assert any(line.startswith("list\tList KF accounts") for line in fish), fish
    opts = values("zsh", "account", "list", "--")
    assert {"--all", "--limit", "--offset", "--output", "--json", "--help"} <= set(opts)
    assert "--sandbox" not in opts  # global options: accepted after the command, offered before it
    assert "--sandbox" in values("zsh", "-")
    # an option already given is not offered again; a command without arguments offers its
    # options after a space
    assert "--all" not in values("fish", "account", "list", "--all", "")
    assert "--limit" in values("fish", "account", "list", "--all", "")
    assert values("bash", "nosuchcommand", "") == []


@pytest.mark.process
def test_profiles_after_p(run):
    for name, corp in (("prod", "wwprod"), ("staging", "wwstaging")):
        assert run("-p", name, "config", "set", "corp_id", corp).code == 0
    assert values("bash", "-p", "") == ["prod", "staging"]
    assert values("bash", "--profile", "s") == ["staging"]
    assert values("bash", "--profile=p") == ["prod"]  # readline replaces the text after '='
    assert values("fish", "--profile=p") == ["--profile=prod"]
    # the first profile made became the current one
    assert ask("zsh", "-p", "")[1:] == ["prod:wwprod (current)", "staging:wwstaging"]
    assert values("zsh", "config", "use", "") == ["prod", "staging"]
    assert values("zsh", "config", "remove", "st") == ["staging"]


@pytest.mark.process
def test_setting_keys_after_config_set_get_unset(home):
    from kfcli.core.config import FIELDS

    for command in ("set", "get", "unset"):
        assert values("bash", "config", command, "") == list(FIELDS)
    assert ask("fish", "config", "get", "co")[1:] == ["corp_id\t[env: KFCLI_CORP_ID]"]
    assert values("bash", "config", "set", "corp_id", "") == []  # the value: free text


@pytest.mark.process
def test_formats_after_o(home):
    from kfcli.render import FORMATS

    assert values("bash", "-o", "") == list(FORMATS)
    assert values("bash", "account", "list", "-o", "j") == ["json", "jsonl"]
    assert values("bash", "account", "list", "--output=j") == ["json", "jsonl"]
    assert values("zsh", "account", "list", "--output=j") == ["json", "jsonl"]
    assert ask("zsh", "account", "list", "--output=j")[0] == "words\t--output="
    assert values("fish", "account", "list", "--output=j") == ["--output=json", "--output=jsonl"]
    assert values("bash", "account", "list", "-oj") == ["-ojson", "-ojsonl"]


@pytest.mark.process
def test_choices_and_paths(home):
    assert values("bash", "state", "trans", "wk1", "wm1", "") == [
        "new", "assistant", "pool", "servicer", "ended"]
    assert values("bash", "completion", "install", "") == ["bash", "zsh", "fish"]
    assert ask("zsh", "account", "add", "--avatar", "x")[0] == "files\t"
    assert ask("zsh", "account", "add", "--avatar=x")[0] == "files\t--avatar="
    assert ask("fish", "msg", "send", "wk1", "wm1", "--menu", "@x")[0] == "files\t@"
    assert ask("fish", "msg", "send", "wk1", "wm1", "--menu", "{") == ["words\t"]
    # bash: the first line says which text to hand compgen, and what to keep before it
    assert ask("bash", "account", "add", "--avatar=ex")[0] == "files\t\tex"
    assert ask("bash", "msg", "send", "wk1", "wm1", "--menu", "@ex")[0] == "files\t@\tex"


@pytest.mark.process
def test_open_kfids_come_from_the_cache_of_account_list(kf, sandbox, home):
    support, sales = sandbox.account("Support"), sandbox.account("Sales")
    env = sandbox.env
    assert values("bash", "msg", "sync", "", env=env) == []  # never listed: nothing known
    assert kf("account", "list").code == 0
    cache = home / "cache" / "kfcli" / "completion" / "accounts"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    requests_before = sandbox.stats()
    assert values("bash", "msg", "sync", "", env=env) == [support, sales]
    assert sorted(ask("fish", "account", "delete", "", env=env)[1:]) == sorted(
        [f"{support}\tSupport", f"{sales}\tSales"])
    assert ask("zsh", "state", "get", support[:-2], env=env)[1:] == [f"{support}:Support"]
    assert values("bash", "callback", "serve", "--open-kfid=", env=env) == [support, sales]
    assert values("bash", "store", "status", "--account", "", env=env) == [support, sales]
    assert values("bash", "servicer", "add", "", env=env) == [support, sales]
    assert sandbox.stats() == requests_before  # TAB sent no request
    # Accounts are per corp: another corp (a profile named with -p beats KFCLI_CORP_ID) or
    # the embedded simulator have none cached.
    kf("-p", "other", "config", "set", "corp_id", "wwother")
    assert values("bash", "-p", "other", "msg", "sync", "", env=env) == []
    assert values("bash", "--sandbox", "msg", "sync", "", env=env) == []
    # A deleted account disappears with the next full listing.
    sandbox.api("POST", "/cgi-bin/kf/account/del", {"open_kfid": sales})
    assert kf("account", "list", "-o", "json").code == 0
    assert values("bash", "msg", "sync", "", env=env) == [support]


@pytest.mark.process
def test_unreadable_config_or_cache_gives_no_candidates(home):
    (home / "config").mkdir(parents=True)
    (home / "config" / "config.json").write_text("{not json")
    cache = home / "cache" / "kfcli" / "completion" / "accounts"
    cache.parent.mkdir(parents=True)
    cache.write_text('{"accounts": {"ww1": 42}}')
    assert ask("bash", "-p", "") == ["words\t"]
    env = {"KFCLI_CORP_ID": "ww1"}
    for shell in ("bash", "zsh", "fish"):
        assert ask(shell, "msg", "sync", "", env=env) == ["words\t"]
    cache.write_text('["a list"]')
    assert ask("fish", "msg", "sync", "", env=env) == ["words\t"]


@pytest.mark.process
def test_the_completion_path_imports_neither_typer_click_nor_rich(home):
    (home / "config").mkdir(parents=True)
    (home / "config" / "config.json").write_text(
        json.dumps({"current": "p", "profiles": {"p": {"corp_id": "ww1"}}}))
    _complete.remember_accounts([{"open_kfid": "wk1", "name": "Support"}], sandbox=False,
                                corp_id="ww1", full=True)
    code = (
        "import os, sys\n"
        "os.environ['_KFCLI_COMPLETE'] = sys.argv[1]\n"
        "from kfcli.__main__ import main\n"
        "try:\n    main(sys.argv[2:])\nexcept SystemExit:\n    pass\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'typer', 'click', 'rich',"
        " 'requests', 'platformdirs', 'kfcli.cli.app'})\n"
        "heavy += [m for m in sys.modules\n"
        "          if m.startswith('kfcli.cli.') and m != 'kfcli.cli._tree']\n"
        "sys.stdout.write('imported: %s\\n' % heavy)\n"
    )
    for request in (["bash", "kfcli account l"], ["zsh", "-p", ""], ["fish", "msg", "sync", ""],
                    ["zsh", "account", "list", "-o", ""]):
        out = subprocess.run([sys.executable, "-c", code, *request], capture_output=True,
                             text=True, check=True, timeout=60)
        assert out.stdout.splitlines()[-1] == "imported: []", (request, out.stdout)
        assert len(out.stdout.splitlines()) > 2, out.stdout  # and it answered


def test_version_still_short_circuits(run):
    assert run("--version").out.startswith("kfcli 0.1.0 (store schema ")


@pytest.mark.process
def test_typer_protocol_of_older_scripts_still_answers(home):
    env = {**os.environ, "_KFCLI_COMPLETE": "complete_bash", "COMP_WORDS": "kfcli account l",
           "COMP_CWORD": "2"}
    out = subprocess.run(CMD, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["list"]


def test_split_line():
    assert _complete.split_line("kfcli account l") == (["kfcli", "account", "l"], "l")
    assert _complete.split_line("kfcli account ") == (["kfcli", "account", ""], "")
    assert _complete.split_line("kfcli --name 'a b' \"c\\\"d\" e\\ f") == (
        ["kfcli", "--name", "a b", 'c"d', "e f"], "e\\ f")
    assert _complete.split_line("kfcli x 'unfinished quo") == (
        ["kfcli", "x", "unfinished quo"], "'unfinished quo")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the XDG rule is Linux's")
@pytest.mark.parametrize("xdg", [None, "/tmp/xdg-abs", "relative/ignored", ""])
def test_directories_agree_with_kfcli_core_paths(monkeypatch, tmp_path, xdg):
    from kfcli.core import paths

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KFCLI_CONFIG_DIR", raising=False)
    for variable in ("XDG_CACHE_HOME", "XDG_CONFIG_HOME"):
        if xdg is None:
            monkeypatch.delenv(variable, raising=False)
        else:
            monkeypatch.setenv(variable, xdg)
    assert _complete.cache_dir() == str(paths.cache_dir())
    assert _complete.config_dir() == str(paths.config_dir())
    monkeypatch.setenv("KFCLI_CONFIG_DIR", "~/kf")
    assert _complete.config_dir() == str(paths.config_dir())


# ------------------------------------------------------------------------------ install


def test_install_writes_where_each_shell_looks_and_is_idempotent(run, home):
    targets = {
        "bash": home / "data" / "bash-completion" / "completions" / "kfcli",
        "zsh": home / ".zfunc" / "_kfcli",
        "fish": home / "xdg-config" / "fish" / "completions" / "kfcli.fish",
    }
    for shell, path in targets.items():
        r = run("completion", "install", shell, "-o", "json")
        assert r.code == 0, r.err
        assert r.json() == {"shell": shell, "path": str(path), "changed": True}
        assert path.read_text() == script(shell)
        again = run("completion", "install", shell)
        assert again.code == 0 and "up to date" in again.err and str(path) in again.err
        assert run("completion", "install", shell, "--json").json()["changed"] is False
    r = run("completion", "install", env={"SHELL": "/usr/bin/fish"})
    assert r.code == 0 and str(targets["fish"]) in r.err


def test_install_bash_honours_bash_completion_user_dir(run, home):
    r = run("completion", "install", "bash", "--json",
            env={"BASH_COMPLETION_USER_DIR": str(home / "bc")})
    assert r.json()["path"] == str(home / "bc" / "completions" / "kfcli")


def test_install_refuses_a_file_it_did_not_write(run, home):
    path = home / ".zfunc" / "_kfcli"
    path.parent.mkdir(parents=True)
    path.write_text("#compdef kfcli\n# my own\n")
    r = run("completion", "install", "zsh")
    assert r.code == 2 and "--force" in r.err and "Traceback" not in r.err
    assert path.read_text() == "#compdef kfcli\n# my own\n"
    assert run("completion", "install", "zsh", "--force").code == 0
    assert path.read_text() == script("zsh")
    # the Typer-generated script that kfcli shipped before counts as its own
    path.write_text("_kfcli_completion() {\n  eval $(env _KFCLI_COMPLETE=complete_zsh kfcli)\n}\n")
    assert run("completion", "install", "zsh").code == 0
    assert path.read_text() == script("zsh")


def test_install_needs_a_known_shell(run):
    r = run("completion", "install", "tcsh")
    assert r.code == 2 and "bash, zsh and fish" in r.err
    r = run("completion", "install", env={"SHELL": "/bin/tcsh"})
    assert r.code == 2 and "name it" in r.err


def test_install_zsh_says_what_zshrc_lacks(run, home):
    r = run("completion", "install", "zsh")
    assert "fpath+=(~/.zfunc)" in r.err and "compinit" in r.err
    (home / ".zshrc").write_text("fpath+=(~/.zfunc)\nautoload -Uz compinit && compinit\n")
    r = run("completion", "install", "zsh")
    assert "fpath" not in r.err


def test_show_prints_the_script(run):
    r = run("completion", "show", "fish")
    assert r.code == 0 and r.out == script("fish")


# ------------------------------------------------------------------------------ real shells


def _path_env(home: Path) -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}" if BIN else os.environ["PATH"]}


@pytest.mark.process
@pytest.mark.skipif(not shutil.which("bash"), reason="bash is not installed")
def test_bash_function_fills_compreply(home, sandbox, kf):
    """The committed script's function, called as bash's programmable completion calls it."""
    if not KFCLI:
        pytest.skip("needs the installed kfcli entry point")
    kfid = sandbox.account("Support")
    kf("account", "list")
    (home / "menu.json").write_text("{}")
    (home / "media").mkdir()

    def compreply(line: str) -> list[str]:
        code = (
            f"source {ROOT / 'completions' / 'kfcli.bash'}\n"
            "complete -p kfcli\n"
            f"COMP_LINE={_bash_quote(line)}; COMP_POINT=${{#COMP_LINE}}\n"
            "_kfcli kfcli\n"
            "printf '%s\\n' \"${COMPREPLY[@]}\"\n"
        )
        out = subprocess.run(["bash", "--norc", "--noprofile", "-c", code], cwd=home,
                             env={**_path_env(home), **sandbox.env}, capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines[0] == "complete -F _kfcli kfcli"
        return lines[1:]

    assert compreply("kfcli acc") == ["account"]
    assert compreply("kfcli account list --output=js") == ["json", "jsonl"]
    assert compreply("kfcli msg sync ") == [kfid]
    assert compreply("kfcli msg send wk wm --menu @me") == ["@media/", "@menu.json "]
    assert compreply("kfcli account add --avatar=men") == ["menu.json"]


def _bash_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


class Terminal:
    """An interactive shell on a pseudo-terminal, typed at like a user."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        import pty

        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # pragma: no cover - the child
            os.chdir(cwd)
            os.execvpe(argv[0], argv, env)
        self.seen = ""

    def type(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def wait_for(self, pattern: str, timeout: float = 30) -> bool:
        """Until the screen (escape sequences removed) shows `pattern`: a regex."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if re.search(pattern, self.screen):
                return True
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                try:
                    self.seen += os.read(self.fd, 65536).decode("utf-8", "replace")
                except OSError:
                    break
        return bool(re.search(pattern, self.screen))

    @property
    def screen(self) -> str:
        text = re.sub(r"\x1b\][^\x07]*\x07|\x1b\[[0-9;?]*[A-Za-z]|\x1b[=>]", "", self.seen)
        return text.replace("\r", "")

    def close(self) -> None:
        import signal

        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self.fd)


def _interactive(shell: str, argv: list[str], setup: list[str], home: Path, sandbox, kf,
                 run) -> None:
    """Install with `kfcli completion install`, start the shell, and TAB."""
    if not shutil.which(shell):
        pytest.skip(f"{shell} is not installed")
    if not KFCLI:
        pytest.skip("needs the installed kfcli entry point")
    assert run("completion", "install", shell).code == 0
    kfid = sandbox.account("Support")
    assert kf("account", "list").code == 0
    env = {**_path_env(home), **sandbox.env, "TERM": "dumb", "PS1": "$ ", "SHELL": shell}
    term = Terminal(argv, env, home)
    try:
        for line in setup:
            term.type(line + "\n")
        term.type("echo READY\n")
        assert term.wait_for(r"(?m)^READY"), term.screen
        term.type("kfcli acc\t")
        assert term.wait_for(r"kfcli account "), term.screen
        term.type("\x15")  # Ctrl-U: clear the line
        term.type("kfcli msg sync wk\t")
        assert term.wait_for(re.escape(f"kfcli msg sync {kfid}")), term.screen
        term.type("\x15kfcli account list -o jsonl\t\n")
        assert term.wait_for(re.escape(kfid) + r"[^\n]*Support"), term.screen
    finally:
        term.close()


@pytest.mark.process
def test_bash_completes_after_install(home, sandbox, kf, run):
    bash_completion = Path("/usr/share/bash-completion/bash_completion")
    setup = [f"source {bash_completion}"] if bash_completion.exists() else [
        f"source {home / 'data' / 'bash-completion' / 'completions' / 'kfcli'}"]
    _interactive("bash", ["bash", "--norc", "--noprofile", "-i"], setup, home, sandbox, kf, run)


@pytest.mark.process
def test_zsh_completes_after_install(home, sandbox, kf, run):
    setup = ["fpath=(~/.zfunc $fpath)", "autoload -Uz compinit && compinit -u -D"]
    _interactive("zsh", ["zsh", "-f", "-i"], setup, home, sandbox, kf, run)


@pytest.mark.process
def test_fish_completes_after_install(home, sandbox, kf, run):
    # fish finds ~/.config/fish/completions/kfcli.fish ($XDG_CONFIG_HOME here) on its own
    # (not with --no-config, which leaves that directory out; the test's config dir is empty)
    _interactive("fish", ["fish", "-i"], [], home, sandbox, kf, run)


@pytest.mark.process
def test_customer_ids_complete_from_the_store_with_their_nicknames(kf, sandbox, home):
    """--customer (and customer get's ids) offer the customers in the SQLite store, named by
    the nicknames the store has; TAB sends no request and opens the store read-only."""
    from tests.cli.test_export import nickname

    open_kfid = sandbox.account()
    env = sandbox.env
    assert values("bash", "msg", "history", "--customer", "", env=env) == []  # no store yet
    for who in ("wmTabAlice000000000000000000001", "wmTabBob0000000000000000000002"):
        sandbox.say(open_kfid, "hi", external_userid=who)
    assert kf("msg", "sync", open_kfid).code == 0
    requests_before = sandbox.stats()
    assert values("bash", "msg", "history", "--customer", "", env=env) == [
        "wmTabAlice000000000000000000001", "wmTabBob0000000000000000000002"]
    assert values("bash", "msg", "search", "x", "--customer=wmTabB", env=env) == [
        "wmTabBob0000000000000000000002"]
    assert sandbox.stats() == requests_before  # TAB sent no request
    # Once a view looked the names up (customer/batchget, cached in the store), TAB shows them.
    assert kf("msg", "export", "--format", "csv", "-O", "/dev/null", "--force").code == 0
    alice = nickname(kf, "wmTabAlice000000000000000000001")
    assert ask("fish", "customer", "get", "wmTabA", env=env)[1:] == [
        f"wmTabAlice000000000000000000001\t{alice}"]
