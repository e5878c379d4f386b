"""TAB completion answered without Typer, Click or rich.

Every TAB press starts `kfcli`, so this path imports only the standard library's `os` and
`sys` (and `json` when a value needs the config file or the account cache). The scripts in
`completions/` set `_KFCLI_COMPLETE=bash|zsh|fish`; `kfcli.__main__` hands such a request to
`answer()` before anything else is imported. Commands, options and value kinds come from
`kfcli/cli/_tree.py`, generated from the Typer app by `python -m kfcli.cli.completion` and
checked for staleness by tests/cli/test_completion.py.

The protocol (ours; Typer's own `complete_bash` & co. still reach Typer, slowly):

* bash: one argument, `${COMP_LINE:0:COMP_POINT}`, and `COMP_WORDBREAKS` in `_KFCLI_WORDBREAKS`;
* zsh and fish: the words after the command, the last being the one under the cursor.

The answer's first line is `MODE<TAB>PREFIX`: MODE is `words`, or `files`/`dirs` to let the
shell complete a path itself, after PREFIX (`--avatar=`, `@`); then one candidate per line, in
the form each shell's script takes as is (see `_format`; bash's first line differs, see
`_bash_lines`).

Values: profile names from the config file, setting keys and output formats from the tree,
open_kfids from the cache that `kfcli account list` writes (`completion/accounts` in the
cache directory), and customers' external_userids (with their nicknames) from a SQLite
message store, opened read-only. Nothing here makes a request, and an unreadable file means
no candidates, never a traceback.
"""

from __future__ import annotations

import os
import sys

ENV = "_KFCLI_COMPLETE"
SHELLS = ("bash", "zsh", "fish")
#: The account cache (JSON) in the cache directory. Not `*.json`: the token files are those.
ACCOUNTS_FILE = os.path.join("completion", "accounts")
#: The account-cache key of the embedded simulator (`--sandbox`), whose corp id is random.
SANDBOX_KEY = "@sandbox"
_TRUE = ("1", "true", "t", "yes", "y", "on")


def answer(shell: str, args: list[str]) -> int:
    """Write the candidates for a completion request to stdout; always exit status 0."""
    try:
        if shell == "bash":
            words, raw = split_line(args[0] if args else "")
            words = words[1:] or [""]  # drop the command itself
        else:
            words, raw = list(args) or [""], None
        mode, prefix, items = complete(words)
        text = _format(shell, mode, prefix, items, words[-1], raw,
                       os.environ.get("_KFCLI_WORDBREAKS"))
    except Exception:  # a completion must never print a traceback into the command line
        text = "words\t\n"
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except OSError:  # the shell stopped listening (a second TAB, Ctrl-C)
        pass
    return 0


# ------------------------------------------------------------------------------ parsing


def split_line(line: str) -> tuple[list[str], str]:
    """The shell words of a command line up to the cursor, quotes removed, the last being the
    word under the cursor ('' after a space), and that last word's text as typed.

    bash's own COMP_WORDS would not do: it splits `--output=js` and `@file` at `=` and `@`.
    """
    words: list[str] = []
    word: list[str] = []
    start = None  # where the current word began, or None between words
    quote = None
    i = 0
    while i < len(line):
        char = line[i]
        if quote == "'":
            if char == "'":
                quote = None
            else:
                word.append(char)
        elif quote == '"':
            if char == '"':
                quote = None
            elif char == "\\" and i + 1 < len(line) and line[i + 1] in '"\\$`':
                i += 1
                word.append(line[i])
            else:
                word.append(char)
        elif char in " \t\n":
            if start is not None:
                words.append("".join(word))
                word, start = [], None
        else:
            if start is None:
                start = i
            if char in "'\"":
                quote = char
            elif char == "\\" and i + 1 < len(line):
                i += 1
                word.append(line[i])
            else:
                word.append(char)
        i += 1
    if start is None:
        return [*words, ""], ""
    return [*words, "".join(word)], line[start:]


def complete(words: list[str], tree: dict | None = None) -> tuple[str, str, list[tuple[str, str]]]:
    """(mode, prefix, [(value, description)]) for `words`, the last being the word under the
    cursor. Values are given without `prefix`; those that do not extend the word are left out.
    """
    if tree is None:
        from kfcli.cli._tree import TREE as tree
    node = tree
    opts = _index(node)
    seen: set[tuple[str, ...]] = set()
    positional = 0
    pending = None  # the option whose value comes next
    dashdash = False
    ctx: dict[str, str] = {}  # root options that decide which corp's accounts to offer
    for word in words[:-1]:
        if pending is not None:
            _note(ctx, node is tree, pending, word)
            pending = None
        elif not dashdash and word == "--":
            dashdash = True
        elif not dashdash and word.startswith("-") and word != "-":
            for opt, value in _options_in(word, opts):
                seen.add(opt[0])
                if opt[1] is None:
                    _note(ctx, node is tree, opt, "1")
                elif value is None:
                    pending = opt
                else:
                    _note(ctx, node is tree, opt, value)
        elif "commands" in node and not dashdash:
            child = node["commands"].get(word)
            if child is None:
                return "words", "", []  # not a command of ours: nothing sensible to offer
            node, opts, seen, positional = child, _index(child), set(), 0
        else:
            positional += 1

    cur = words[-1]
    if pending is not None:
        return _values(pending[1], cur, "", ctx)
    if not dashdash and cur.startswith("--") and "=" in cur:
        name, _, value = cur.partition("=")
        opt = opts.get(name)
        if opt is None or opt[1] is None:
            return "words", "", []
        return _values(opt[1], value, name + "=", ctx)
    if not dashdash and cur.startswith("-"):
        if len(cur) > 2 and not cur.startswith("--"):  # -pNAME: a short option's value
            opt = opts.get(cur[:2])
            if opt is not None and opt[1] is not None:
                return _values(opt[1], cur[2:], cur[:2], ctx)
        return "words", "", _option_names(node, seen, cur)
    if "commands" in node and not dashdash:
        return "words", "", [
            (name, child.get("help", ""))
            for name, child in node["commands"].items() if name.startswith(cur)
        ]
    kind = _argument_kind(node, positional)
    if kind is None:  # nothing positional left: the command's options are what can follow
        return "words", "", _option_names(node, seen, cur) if not dashdash else []
    return _values(kind, cur, "", ctx)


def _index(node: dict) -> dict[str, tuple]:
    return {name: opt for opt in node.get("options", ()) for name in opt[0]}


def _options_in(word: str, opts: dict[str, tuple]):
    """(option, attached value or None) for each option `word` names: `--name`, `--name=v`,
    `-p`, `-pVALUE` or a cluster of short flags (`-yf`)."""
    if word.startswith("--"):
        name, eq, value = word.partition("=")
        if name in opts:
            yield opts[name], value if eq else None
        return
    for i, char in enumerate(word[1:], start=2):
        opt = opts.get("-" + char)
        if opt is None:
            return
        if opt[1] is not None:
            yield opt, word[i:] or None
            return
        yield opt, None


def _note(ctx: dict[str, str], at_root: bool, opt: tuple, value: str) -> None:
    if at_root and "--profile" in opt[0]:
        ctx["profile"] = value
    elif at_root and "--sandbox" in opt[0]:
        ctx["sandbox"] = value


def _option_names(node: dict, seen: set, cur: str) -> list[tuple[str, str]]:
    out = []
    for opt in node.get("options", ()):
        if opt[0] in seen and not (len(opt) > 3 and opt[3]):
            continue
        out.extend((name, opt[2]) for name in opt[0] if name.startswith(cur))
    return out


def _argument_kind(node: dict, index: int):
    args = node.get("args", ())
    if index < len(args):
        return args[index][1]
    if args and args[-1][2] == -1:  # USERID...: every further word is one more
        return args[-1][1]
    return None


# ------------------------------------------------------------------------------ values


def _values(kind, cur: str, prefix: str, ctx: dict[str, str]) -> tuple[str, str, list]:
    if kind in ("file", "dir"):
        return kind + "s", prefix, []
    if kind == "@file":  # JSON, - or @FILE: a path once the word starts with @
        if cur.startswith("@"):
            return "files", prefix + "@", []
        return "words", prefix, []
    try:
        items = _candidates(kind, ctx, cur)
    except Exception:  # unreadable config or cache: no candidates
        items = []
    return "words", prefix, [(v, d) for v, d in items if v.startswith(cur)]


def _candidates(kind, ctx: dict[str, str], cur: str = "") -> list[tuple[str, str]]:
    if isinstance(kind, (tuple, list)):
        return [tuple(choice) for choice in kind]
    if kind == "format":
        from kfcli.cli._tree import FORMATS

        return [(f, "") for f in FORMATS]
    if kind == "key":
        from kfcli.cli._tree import FIELDS

        return [(key, f"[env: {env}]") for key, env in FIELDS]
    if kind == "profile":
        doc = _config()
        current = doc.get("current")
        return [(name, _profile_help(prof, name == current))
                for name, prof in doc.get("profiles", {}).items()]
    if kind == "open_kfid":
        key = _corp_key(ctx)
        if key is None:
            return []
        entry = _read_json(os.path.join(cache_dir(), ACCOUNTS_FILE)).get("accounts", {})
        return [(str(kfid), str(name)) for kfid, name in entry.get(key, {}).get("items", [])]
    if kind == "external_userid":
        return _stored_customers(ctx, cur)
    return []  # free text: nothing to offer


#: At most this many customer ids are offered for one TAB press.
CUSTOMERS_MAX = 200


def _stored_customers(ctx: dict[str, str], cur: str) -> list[tuple[str, str]]:
    """The customers of the corp in the message store, with their nicknames where the store
    has them: read straight from a SQLite store file, read-only (sqlite3, no kfcli store
    code); a PostgreSQL store is not asked (a TAB press makes no connection)."""
    import sqlite3
    from urllib.parse import quote

    path = _store_file(ctx)
    if path is None or not os.path.isfile(path):
        return []
    key = _corp_key(ctx)
    corp = "" if key == SANDBOX_KEY else " AND a.corp_id = ?"
    args: tuple = () if key == SANDBOX_KEY or key is None else (key,)
    if key is None:
        corp = ""
    conn = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, timeout=0.5)
    try:
        # Each account's range of the (account, external_userid) index from what is typed.
        ids = [r[0] for r in conn.execute(
            "SELECT DISTINCT m.external_userid FROM accounts a JOIN messages m ON m.account = "
            f"a.id WHERE m.external_userid >= ? AND m.external_userid < ?{corp} LIMIT ?",
            (cur or "", cur + "􏿿", *args, CUSTOMERS_MAX))]
        ids = sorted(set(ids))
        names: dict[str, str] = {}
        try:
            for i in range(0, len(ids), 500):
                part = ids[i:i + 500]
                names.update(conn.execute(
                    "SELECT external_userid, nickname FROM nicknames WHERE external_userid IN "
                    f"({', '.join('?' * len(part))})", part).fetchall())
        except sqlite3.Error:  # a store of an older schema: ids alone
            pass
    finally:
        conn.close()
    return [(uid, _one_line(names.get(uid) or "")) for uid in ids]


def _store_file(ctx: dict[str, str]) -> str | None:
    """The SQLite file of the store the command being typed would use, by the rules of
    kfcli.core.store.resolve_url: KFCLI_STORE; with --sandbox, the sandbox's own; else the
    profile's `store`; else the default. None for a PostgreSQL store."""
    from urllib.parse import unquote, urlsplit

    from kfcli._xdg import user_dir

    env = os.environ
    sandbox = bool(ctx.get("sandbox")) or env.get("KFCLI_SANDBOX", "").strip().lower() in _TRUE
    value = env.get("KFCLI_STORE")
    if value is None and not sandbox:
        doc = _config()
        name = ctx.get("profile") or env.get("KFCLI_PROFILE") or doc.get("current") or "default"
        prof = doc.get("profiles", {}).get(name)
        value = prof.get("store") if isinstance(prof, dict) else None
    if not value:
        return os.path.join(user_dir("data"), "sandbox-store.db") if sandbox else \
            os.path.join(user_dir("state"), "store.db")
    if value.startswith("sqlite://"):
        return "/" + unquote(urlsplit(value).path).lstrip("/")
    if value.startswith("~") or value.startswith("/"):
        return os.path.expanduser(value)
    return None


def _profile_help(prof: dict, current: bool) -> str:
    corp = prof.get("corp_id", "") if isinstance(prof, dict) else ""
    return f"{corp} (current)".strip() if current else str(corp)


def _corp_key(ctx: dict[str, str]) -> str | None:
    """Whose accounts the command being typed would list, by the rules of
    kfcli.core.config.resolve: --sandbox; else -p's profile (which beats the environment);
    else KFCLI_CORP_ID; else KFCLI_PROFILE's or the current profile's corp_id."""
    env = os.environ
    if ctx.get("sandbox") or env.get("KFCLI_SANDBOX", "").strip().lower() in _TRUE:
        return SANDBOX_KEY
    if "profile" not in ctx and env.get("KFCLI_CORP_ID"):
        return env["KFCLI_CORP_ID"]
    doc = _config()
    name = ctx.get("profile") or env.get("KFCLI_PROFILE") or doc.get("current") or "default"
    prof = doc.get("profiles", {}).get(name)
    corp = prof.get("corp_id") if isinstance(prof, dict) else None
    return corp if isinstance(corp, str) and corp else None


def _config() -> dict:
    return _read_json(os.path.join(config_dir(), "config.json"))


def _read_json(path: str) -> dict:
    import json

    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


# ------------------------------------------------------------------------------ directories
# As kfcli.core.paths has them (kfcli._xdg: platformdirs' answer, on Linux without importing
# it, whose import alone would cost a TAB press 15 ms).


def config_dir() -> str:
    override = os.environ.get("KFCLI_CONFIG_DIR")
    if override:
        return os.path.expanduser(override)
    from kfcli._xdg import user_dir

    return user_dir("config")


def cache_dir() -> str:
    from kfcli._xdg import user_dir

    return user_dir("cache")


# ------------------------------------------------------------------------------ the cache


def remember_accounts(accounts: list[dict], *, sandbox: bool, corp_id: str | None,
                      full: bool) -> None:
    """Record the open_kfids and names `kfcli account list` just showed, for TAB completion.

    `full`: the listing was complete, so it replaces what was known of this corp; a single
    page is merged in. Best effort: a cache that cannot be written never fails the command.
    """
    key = SANDBOX_KEY if sandbox else corp_id
    if not key:
        return
    import json
    import time
    from pathlib import Path

    from kfcli.core.errors import UnsafeDirectory
    from kfcli.core.files import write_private

    path = os.path.join(cache_dir(), ACCOUNTS_FILE)
    try:
        doc = _read_json(path)
        known = doc.get("accounts") if isinstance(doc.get("accounts"), dict) else {}
        before = [list(item) for item in known.get(key, {}).get("items", [])]
        items = {} if full else dict(before)
        items.update((a["open_kfid"], a.get("name") or "") for a in accounts
                     if a.get("open_kfid"))
        after = [[kfid, name] for kfid, name in items.items()]
        if after == before:
            return  # unchanged: no write (and no fsync) on every listing
        known[key] = {"updated": int(time.time()), "items": after}
        write_private(Path(path), json.dumps({"version": 1, "accounts": known},
                                             ensure_ascii=False, separators=(",", ":")) + "\n")
    except (OSError, ValueError, TypeError, AttributeError, UnsafeDirectory):
        pass  # a hint for TAB, never worth failing the command (nor writing somewhere unsafe)


# ------------------------------------------------------------------------------ shells


def _format(shell: str, mode: str, prefix: str, items: list[tuple[str, str]], cur: str,
            raw: str | None, wordbreaks: str | None) -> str:
    if shell == "bash":
        return "\n".join(_bash_lines(mode, prefix, items, cur, raw or "", wordbreaks)) + "\n"
    lines = [f"{mode}\t{prefix}"]
    if shell == "zsh":  # _describe's "value:description", colons in the value escaped
        for value, desc in items:
            value = value.replace("\\", "\\\\").replace(":", "\\:")
            lines.append(f"{value}:{_one_line(desc)}" if desc else value)
    else:  # fish: "value<TAB>description", the whole token
        for value, desc in items:
            lines.append(f"{prefix}{value}\t{_one_line(desc)}" if desc else prefix + value)
    return "\n".join(lines) + "\n"


def _bash_lines(mode: str, prefix: str, items: list[tuple[str, str]], cur: str, raw: str,
                wordbreaks: str | None) -> list[str]:
    """Readline replaces only the text after the last COMP_WORDBREAKS character of the word
    (`--output=js` -> `js`), that character included when it is one of bash's special
    prefixes `$` and `@` (`@fi` stays `@fi`): answer with what replaces that text. For paths
    the script runs `compgen` on PATH and puts KEEP before each match (the first line is
    `files<TAB>KEEP<TAB>PATH`): bash's own default would complete host names after `@`."""
    breaks = wordbreaks if wordbreaks is not None else " \t\n\"'@><=;|&(:"
    cut = max((raw.rfind(c) for c in breaks), default=-1) + 1
    if cut and raw[cut - 1] in "$@":
        cut -= 1
    same = raw == cur  # typed without quotes or escapes: offsets in raw are offsets in cur
    if mode in ("files", "dirs"):
        path = cur[len(prefix):]
        keep = raw[cut:len(raw) - len(path)] if same else ""
        return [f"{mode}\t{keep}\t{path}"]
    lines = [f"{mode}\t"]
    for value, _ in items:
        full = prefix + value
        lines.append(full[cut:] if same else full)
    return lines


def _one_line(text: str) -> str:
    return " ".join(str(text).split())
