"""`kfcli doctor`: check the configuration, file permissions, the network path to WeCom, the
token fetch, the callback settings and the message store, one line each, so an operator sees
what to fix first.

Checks run in dependency order (config -> permissions -> credentials -> reachability -> token
-> callback), then the store, which depends on none of them; a check whose prerequisite
failed is `skipped`, not failed again, so the first failed line is the cause to fix. Nothing
secret is ever shown: values pass through `mask()` and every detail through `redact()`.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from kfcli.cli.context import new_app, state, with_output
from kfcli.cli.text import plural
from kfcli.core.errors import ConfigError, DoctorFailed, KfError
from kfcli.core.redact import mask, redact

app = new_app("", group=False)

OK, FAILED, SKIPPED = "ok", "failed", "skipped"

#: Exit codes of the failure classes (DESIGN.md §5).
EXIT_CONFIG = 3
EXIT_NETWORK = 6

#: Seconds allowed for the plain reachability request (KFCLI_TIMEOUT lowers it).
REACH_TIMEOUT = 5.0

EPILOG = """Examples:

  kfcli doctor

  kfcli -p prod doctor -o json

  kfcli --sandbox doctor

Checks, in order: config (the config file is readable and valid, the profile exists);
config_permissions, cache_permissions, state_permissions (files 0600 in 0700 directories: the
config file, the token cache, the journals of msg sync runs); credentials (corp_id and secret
are set and well formed); reachability (a plain request to the base URL, no token, through
the proxy HTTPS_PROXY names, shown with its password masked, trusting the CA bundle
KFCLI_CA_BUNDLE names); token (an access token from the cache or gettoken); callback (Token
1-32 of [A-Za-z0-9], EncodingAESKey 43 of [A-Za-z0-9] decoding to a 32-byte key; skipped when
neither is configured); store (the message store named by KFCLI_STORE or the setting `store`
opens: a valid URL, the PostgreSQL server reachable, a schema this kfcli knows; a SQLite file
0600; skipped while the SQLite file does not exist yet: doctor never creates it, nor alters a
file that is not a kfcli store). A check whose prerequisite failed is skipped. -o json prints
a list of {"check", "status", "detail", "hint"}. Secrets are shown masked.

Exit status: 0 when no check failed. Otherwise the code of the first failed check in the
order above, because earlier checks are the causes of later ones: 3 for configuration,
permissions, credentials, a secret WeCom rejects, bad callback settings, a store that cannot
be used, a proxy URL or CA bundle kfcli cannot use, or a proxy refusing the credentials; 6
when the base URL (or the PostgreSQL store) cannot be reached, or the token fetch fails on
the network; 7 when gettoken stays rate limited; 1 for other API errors."""


@dataclass
class Check:
    check: str
    status: str
    detail: str = ""
    hint: str = ""
    exit_code: int = 0  # for failed checks: the exit code of its failure class

    def row(self) -> dict[str, str]:
        return {"check": self.check, "status": self.status, "detail": redact(self.detail),
                "hint": redact(self.hint)}


@app.command("doctor", epilog=EPILOG)
@with_output
def doctor() -> None:
    """Check configuration, file permissions, reachability, token fetch and callback settings."""
    checks = list(_run_checks())
    out = state().out
    out.rows([c.row() for c in checks], ["check", "status", "detail", "hint"])
    failed = [c for c in checks if c.status == FAILED]
    if failed:
        first = failed[0]
        raise DoctorFailed(
            f"{len(failed)} of {len(checks)} checks failed (first: {first.check})",
            exit_code=first.exit_code or 1, hint=first.hint or None)
    if not out.machine:
        out.info(f"all {len(checks)} checks passed or were skipped")


# ---------------------------------------------------------------------- the checks


def _run_checks() -> Iterable[Check]:
    from kfcli.core import paths

    config, settings = _config()
    yield config
    yield _private("config_permissions", [paths.config_file()], "config file")
    yield _private("cache_permissions", _files_in(paths.cache_dir() / "tokens"),
                   "cached tokens")
    yield _private("state_permissions", _state_files(paths.state_dir() / "runs")
                   + _state_files(paths.state_dir() / "sync"), "msg sync state files")
    if settings is None:
        for name in ("credentials", "reachability", "token", "callback"):
            yield Check(name, SKIPPED, "needs a valid configuration", "fix the config first")
        yield _store(None)
        return
    credentials = _credentials(settings)
    yield credentials
    reach = _reachability(settings)
    yield reach
    if credentials.status != OK:
        yield Check("token", SKIPPED, "needs corp_id and secret")
    elif reach.status != OK:
        yield Check("token", SKIPPED, "needs a reachable base URL")
    else:
        yield _token()
    yield _callback(settings)
    yield _store(settings)


def _config() -> tuple[Check, object | None]:
    """The config file parses and the selected profile exists (resolve() checks both)."""
    from kfcli.core.config import ConfigFile

    st = state()
    try:
        cfg = ConfigFile.load()
        settings = st.settings()
    except ConfigError as exc:
        return Check("config", FAILED, exc.message, exc.hint or "", EXIT_CONFIG), None
    where = f"profile {settings.profile!r} ({settings.profile_source})"
    if st.sandbox:
        where = "embedded sandbox (--sandbox)"
    if not cfg.exists:
        return Check("config", OK, f"no config file at {cfg.path}; using {where}",
                     ""), settings
    return Check("config", OK, f"{cfg.path}: {where}"), settings


def _mode(path: Path) -> int | None:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None


def _files_in(directory: Path) -> list[Path]:
    try:
        return sorted(p for p in directory.iterdir() if p.is_file())
    except OSError:
        return []


def _state_files(sync_dir: Path) -> list[Path]:
    """Files one directory down: the journals of `msg sync` runs (`runs/<key>/`, see
    `kfcli.core.pull.Journal`), and the cursor files older releases kept in `sync/`."""
    try:
        dirs = sorted(p for p in sync_dir.iterdir() if p.is_dir())
    except OSError:
        return []
    return [f for d in dirs for f in _files_in(d)]


def _private(name: str, files: list[Path], what: str) -> Check:
    """Files must have no group/other permission bits, and so must the directory holding them.

    Only the directory that holds the files is checked, as kfcli creates it (0700); the
    platform directories above it (~/.cache, ~/.local/state) belong to the user's setup.
    """
    if os.name != "posix":
        return Check(name, SKIPPED, "file modes are not checked on this platform")
    # Symlinks (dotfile managers) are followed: what matters is the real file and its directory.
    files = [f.resolve() for f in files if f.exists()]
    if not files:
        return Check(name, SKIPPED, f"no {what} yet")
    bad: list[str] = []
    fixes: list[str] = []
    for directory in sorted({f.parent for f in files}):
        mode = _mode(directory)
        if mode is not None and mode & 0o077:
            bad.append(f"{directory} is {mode:04o}")
            fixes.append(f"chmod 700 {directory}")
    loose = []
    for path in files:
        mode = _mode(path)
        if mode is not None and mode & 0o077:
            bad.append(f"{path} is {mode:04o}")
            loose.append(str(path))
    if loose:
        fixes.append("chmod 600 " + " ".join(loose))
    if bad:
        return Check(name, FAILED, f"readable by others: {'; '.join(bad)}",
                     "; ".join(fixes), EXIT_CONFIG)
    dirs = sorted({str(f.parent) for f in files})
    return Check(name, OK, f"{plural(len(files), 'file')} 0600 or stricter in 0700 "
                 f"{'directory' if len(dirs) == 1 else 'directories'} {', '.join(dirs)}")


def _credentials(settings) -> Check:
    from kfcli.core.config import ENV_VARS, check_field
    from kfcli.core.errors import UsageError

    missing = [k for k in ("corp_id", "secret") if not settings.get(k)]
    if missing:
        envs = ", ".join(ENV_VARS[k] for k in missing)
        return Check("credentials", FAILED, f"{', '.join(missing)} not configured "
                     f"(profile {settings.profile!r})",
                     f"run `kfcli config set {missing[0]}`, or set {envs}", EXIT_CONFIG)
    problems = []
    for key in ("corp_id", "secret"):
        try:
            check_field(key, settings.get(key))
        except UsageError as exc:
            problems.append(exc.message)
    shown = (f"corp_id {settings.corp_id} ({settings.values['corp_id'].source}), "
             f"secret {mask(settings.secret)} ({settings.values['secret'].source})")
    if problems:
        return Check("credentials", FAILED, f"{shown}: {'; '.join(problems)}",
                     "copy the CorpID and the KF app's Secret again from the WeCom admin "
                     "console", EXIT_CONFIG)
    return Check("credentials", OK, shown)


def _reach_timeout() -> float:
    value = state().env.environ.get("KFCLI_TIMEOUT")
    try:
        seconds = float(value) if value else REACH_TIMEOUT
    except ValueError:
        seconds = REACH_TIMEOUT
    return seconds if 0 < seconds < REACH_TIMEOUT else REACH_TIMEOUT


def _reachability(settings) -> Check:
    """One plain GET of the base URL, without a token: any HTTP answer means reachable."""
    from kfcli import __version__
    from kfcli.core.http import Http, HttpError, SettingError

    base_url = settings.base_url
    timeout = _reach_timeout()
    bundle = settings.values.get("ca_bundle")
    where = "KFCLI_CA_BUNDLE" if bundle and bundle.source == "env" else \
        f"the ca_bundle setting of profile {settings.profile!r}"
    try:
        http = Http(base_url, connect_timeout=timeout, read_timeout=timeout,
                    user_agent=f"kfcli/{__version__} (doctor)",
                    ca_bundle=bundle.value if bundle else None, ca_bundle_from=where)
    except SettingError as exc:  # a proxy URL or CA bundle: not base_url's fault
        return Check("reachability", FAILED, str(exc), exc.hint or "", EXIT_CONFIG)
    except ValueError:
        return Check("reachability", FAILED, f"base_url {base_url!r} is not an http(s) URL",
                     "run `kfcli config set base_url https://qyapi.weixin.qq.com`", EXIT_CONFIG)
    proxy = f" through proxy {http.proxy.shown()} (from {http.proxy.variable})" \
        if http.proxy else ""
    if http.ca_bundle is not None:  # set only where TLS is spoken: WeCom or the proxy
        proxy += f", trusting CA bundle {http.ca_bundle.path} (from {http.ca_bundle.variable})"
    started = time.perf_counter()
    try:
        resp = http.request("GET", "/")
    except HttpError as exc:
        return Check("reachability", FAILED, f"{base_url}{proxy}: {exc.reason}",
                     exc.hint or "check base_url, the network, DNS, a firewall, and "
                     "HTTPS_PROXY / NO_PROXY", EXIT_CONFIG if exc.config else EXIT_NETWORK)
    finally:
        http.close()
    ms = (time.perf_counter() - started) * 1000
    return Check("reachability", OK, f"{base_url}{proxy} answered HTTP {resp.status} in "
                 f"{ms:.0f} ms")


def _token() -> Check:
    try:
        client = state().client()
        token = client.access_token()
    except KfError as exc:
        return Check("token", FAILED, exc.message, exc.hint or "", exc.exit_code)
    except OSError as exc:  # the cache directory cannot be written
        return Check("token", FAILED, f"cannot use the token cache: {exc}",
                     "check the ownership and modes of the user cache directory", EXIT_CONFIG)
    cached = client.tokens.read()
    left = f", expires in {cached.remaining} s" if cached else ""
    source = "fetched with gettoken" if client.tokens.last_source == "gettoken" else \
        "from the cache"
    return Check("token", OK, f"access token {mask(token)} {source}{left}")


def _callback(settings) -> Check:
    from kfcli.core.config import CALLBACK_RULES, ENV_VARS
    from kfcli.core.crypto import decode_aes_key
    from kfcli.core.errors import CallbackError

    token, aes_key = settings.get("token"), settings.get("aes_key")
    if not token and not aes_key:
        return Check("callback", SKIPPED, "token and aes_key not configured (needed only for "
                     "callbacks)")
    problems, hints = [], []
    for key, value in (("token", token), ("aes_key", aes_key)):
        if not value:
            problems.append(f"{key} not configured")
            hints.append(f"`kfcli config set {key}` or {ENV_VARS[key]}")
    if token and not CALLBACK_RULES["token"][0].fullmatch(token):
        problems.append(f"token {mask(token)} is not 1-32 characters [A-Za-z0-9] "
                        f"({len(token)} characters)")
        hints.append("copy the Token from the callback settings of the KF app")
    key_bytes = None
    if aes_key:
        if not CALLBACK_RULES["aes_key"][0].fullmatch(aes_key):
            problems.append(f"aes_key {mask(aes_key)} is not exactly 43 characters "
                            f"[A-Za-z0-9] ({len(aes_key)} characters)")
            hints.append("copy the EncodingAESKey from the callback settings of the KF app")
        else:
            try:
                key_bytes = decode_aes_key(aes_key)
            except CallbackError as exc:
                problems.append(f"aes_key {mask(aes_key)}: {exc.message}")
        if key_bytes is not None and len(key_bytes) != 32:
            problems.append(f"aes_key decodes to {len(key_bytes)} bytes, not 32")
    if problems:
        return Check("callback", FAILED, "; ".join(problems), "; ".join(dict.fromkeys(hints)),
                     EXIT_CONFIG)
    return Check("callback", OK, f"token {mask(token)} "
                 f"({settings.values['token'].source}), aes_key {mask(aes_key)} "
                 f"({settings.values['aes_key'].source}) decodes to a 32-byte AES key")


def _store(settings) -> Check:
    """The message store opens (URL valid, server reachable, schema known); SQLite: 0600.

    A SQLite file that does not exist is not created, and one that is not a kfcli store is
    only read (never opened for writing: opening a store creates or upgrades its schema)."""
    from kfcli.core.store import display_url, open_store, parse, resolve_url

    url, source = resolve_url(settings)
    try:
        backend, location = parse(url)
    except ConfigError as exc:
        return Check("store", FAILED, f"{exc.message} ({source})", exc.hint or "", EXIT_CONFIG)
    where = f"{backend} {display_url(url)} ({source})"
    path = Path(location) if backend == "sqlite" else None
    if path is not None:
        if not path.exists():
            return Check("store", SKIPPED, f"no store yet at {path} ({source}); the first "
                         "`kfcli msg sync` creates it")
        foreign = _foreign_sqlite(path)
        if foreign:
            return Check("store", FAILED, f"{path} ({source}) {foreign}; it was left untouched",
                         "move it away, or set KFCLI_STORE (or `kfcli config set store`) to "
                         "another file", EXIT_CONFIG)
    corp_id = settings.get("corp_id") if settings is not None else None
    try:
        with open_store(url) as store:
            version = store.schema_version()
            gaps = [p for p in store.pull_states(corp_id) if p.gap()] if corp_id else []
    except KfError as exc:
        return Check("store", FAILED, exc.message, exc.hint or "", exc.exit_code or 1)
    detail = f"{where}, schema version {version}"
    for gap in gaps:  # the receiver resumed an account after WeCom's 3 days
        days = (gap.gap() or {}).get("seconds", 0) / 86400
        detail += (f"; possible gap in {gap.open_kfid} ({days:.1f} days unpulled: see "
                   "`kfcli store status`)")
    if path is None or os.name != "posix":
        return Check("store", OK, detail)
    files = [f for f in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if f.exists()]
    loose = [(f, mode) for f in files if (mode := _mode(f)) is not None and mode & 0o077]
    if loose:
        return Check("store", FAILED, f"{detail}; readable by others: "
                     + "; ".join(f"{f} is {mode:04o}" for f, mode in loose),
                     "chmod 600 " + " ".join(str(f) for f, _ in loose), EXIT_CONFIG)
    return Check("store", OK, f"{detail}, file mode 0600")


def _foreign_sqlite(path: Path) -> str | None:
    """Why `path` is not a kfcli store, read without writing anything; None when it is one
    (or is still empty). The `meta` table with a schema_version is what
    `kfcli.core.store.sqlite` writes first."""
    import sqlite3

    # immutable=1 creates no -wal/-shm beside a file that is not ours; with a -wal present
    # (a store in use) read-only mode sees its latest commits.
    mode = "mode=ro" if Path(f"{path}-wal").exists() else "immutable=1"
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?{mode}", uri=True)
    except sqlite3.Error as exc:
        return f"cannot be read ({exc})"
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = "
                                             "'table'")}
        if not tables:
            return None
        if "meta" in tables and conn.execute("SELECT 1 FROM meta WHERE key = "
                                             "'schema_version'").fetchone():
            return None
    except sqlite3.Error as exc:
        return f"is not a kfcli store ({exc})"
    finally:
        conn.close()
    return "is an SQLite database but not a kfcli store"
