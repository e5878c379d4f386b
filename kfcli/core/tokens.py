"""The on-disk access-token cache shared by every kfcli process (DESIGN.md §3).

One JSON file per app: `<cache>/tokens/<corp_id>-<sha256(secret)[:16]>.json`. The key includes
a hash of the secret because each app of a corp has its own token (kf-api.md §7, complaint #1:
peers keyed by corp id alone and the apps kept invalidating each other's tokens).

Reads take no lock. A process that needs a new token takes a file lock, looks again (another
process may have fetched one meanwhile), and only then calls gettoken, so any number of cold
processes call gettoken once between them. Within a process, threads first queue on an
in-process lock (one per cache file, shared by every `TokenCache` of the app), so a single
thread takes the file lock and calls gettoken while the others wait and then use its token:
a missing or rejected token is fetched once per process, not once per thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kfcli.core import paths
from kfcli.core.files import ensure_private_dir, write_private
from kfcli.core.notices import Notify
from kfcli.core.redact import register_secret

#: Refresh this long before WeCom's expiry, so a token never dies in flight.
REFRESH_MARGIN = 300
#: How long a process waits for another one that is fetching a token.
LOCK_TIMEOUT = 60


@dataclass(frozen=True)
class CachedToken:
    access_token: str
    expires_at: float
    fetched_at: float

    def fresh(self, now: float | None = None) -> bool:
        return self.expires_at - (now if now is not None else time.time()) > REFRESH_MARGIN

    @property
    def remaining(self) -> int:
        return max(0, int(self.expires_at - time.time()))


_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _process_lock(path: Path) -> threading.Lock:
    """The in-process lock in front of the file lock at `path`."""
    with _locks_guard:
        lock = _locks.get(str(path))
        if lock is None:
            lock = _locks[str(path)] = threading.Lock()
        return lock


def _forget_locks() -> None:
    # A forked child has only the forking thread: a lock another thread held at the fork
    # would never be released there.
    global _locks_guard
    _locks.clear()
    _locks_guard = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_locks)


def cache_key(corp_id: str, secret: str) -> str:
    digest = hashlib.sha256(secret.encode("utf-8")).hexdigest()[:16]
    safe_corp = "".join(c if c.isalnum() or c in "-_" else "_" for c in corp_id)
    return f"{safe_corp}-{digest}"


class TokenCache:
    """Cache of one app's token. `fetch` calls gettoken and returns (token, expires_in).

    Safe to share between threads: they share one token, and when it is missing, expiring or
    rejected one of them fetches a new one while the others wait (see the module docstring).
    `last_source` is per thread.
    """

    def __init__(
        self,
        corp_id: str,
        secret: str,
        fetch: Callable[[], tuple[str, int]],
        *,
        directory: Path | None = None,
        notify: Notify | None = None,
    ) -> None:
        """`notify(level, text)` hears what the cache has to say (default: the `kfcli.core`
        logger, see `kfcli.core.notices`)."""
        self.directory = directory or paths.cache_dir() / "tokens"
        # The default is two levels below XDG_CACHE_HOME (kfcli/tokens): both are checked,
        # as a `kfcli` symlink planted in a shared cache directory would move the tokens.
        self._under = None if directory else paths.cache_dir().parent
        self._notify = notify
        self._warned = False
        key = cache_key(corp_id, secret)
        self.path = self.directory / f"{key}.json"
        self.lock_path = self.directory / f"{key}.lock"
        self._fetch = fetch
        self._local = threading.local()
        self._memo: CachedToken | None = None  # what this process last read or fetched

    @property
    def last_source(self) -> str:
        """Where the calling thread's last token came from: "cache" or "gettoken"."""
        return getattr(self._local, "source", "cache")

    @last_source.setter
    def last_source(self, value: str) -> None:
        self._local.source = value

    def _cache_unusable(self, exc: OSError) -> None:
        """Say (once per cache) that the token cache cannot be written. Each process then
        fetches its own token: slower, and more gettoken calls, but it works."""
        if self._warned:
            return
        self._warned = True
        from kfcli.core.notices import WARNING, notice

        (self._notify or notice)(WARNING, f"cannot use the token cache {self.directory} "
                                 f"({exc.strerror or exc}); continuing without it, so every "
                                 "run fetches a new token")

    def read(self) -> CachedToken | None:
        try:
            doc = json.loads(self.path.read_bytes())
            token = CachedToken(
                str(doc["access_token"]), float(doc["expires_at"]), float(doc["fetched_at"])
            )
        except (OSError, ValueError, KeyError, TypeError):
            # Missing or damaged (e.g. a crash of an older version): a cache can be rebuilt.
            return None
        register_secret(token.access_token)
        memo = self._memo
        # Never step back: a thread that read the file just before another one replaced the
        # token must not put the old token back in memory.
        if memo is None or not memo.fresh() or token.expires_at >= memo.expires_at:
            self._memo = token
        return token

    def get(self, *, rejected: str | None = None, force: bool = False) -> str:
        """A valid token. `rejected`: the token WeCom just refused, so never return it again."""
        memo = self._memo
        if memo and memo.fresh() and not force and memo.access_token != rejected:
            return memo.access_token  # no file read per call in long runs (msg sync)
        cached = self.read()
        if cached and cached.fresh() and not force and cached.access_token != rejected:
            self.last_source = "cache"
            return cached.access_token
        # With force, a token fetched by someone else after our request started still counts.
        reuse = not force or rejected is not None
        with _process_lock(self.lock_path):
            # Another thread of this process may have fetched one while we waited.
            memo = self._memo
            if reuse and memo and memo.fresh() and memo.access_token != rejected:
                self.last_source = "cache"
                return memo.access_token
            import filelock

            with contextlib.ExitStack() as held:
                try:
                    ensure_private_dir(self.directory, under=self._under)
                    held.enter_context(filelock.FileLock(str(self.lock_path),
                                                         timeout=LOCK_TIMEOUT, mode=0o600))
                except OSError as exc:  # an unwritable cache: work without it, say so once
                    self._cache_unusable(exc)
                    return self._fetch_new()
                cached = self.read()
                if reuse and cached and cached.fresh() and cached.access_token != rejected:
                    self._memo = cached  # the newest there is, whatever read() kept
                    self.last_source = "cache"
                    return cached.access_token
                return self._fetch_new(save=True)

    def _fetch_new(self, *, save: bool = False) -> str:
        token, expires_in = self._fetch()
        register_secret(token)
        now = time.time()
        self._memo = CachedToken(token, now + expires_in, now)
        if save:
            try:
                self._write(self._memo)
            except OSError as exc:
                self._cache_unusable(exc)
        self.last_source = "gettoken"
        return token

    def _write(self, token: CachedToken) -> None:
        doc = {
            "access_token": token.access_token,
            "expires_at": token.expires_at,
            "fetched_at": token.fetched_at,
        }
        write_private(self.path, json.dumps(doc))

    def drop(self) -> bool:
        """Forget the cached token (`auth logout`). Returns whether there was one."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        # The lock file stays: unlinking it could let two processes hold "the" lock at once.
        return True


def drop_all(directory: Path | None = None) -> int:
    directory = directory or paths.cache_dir() / "tokens"
    count = 0
    for path in directory.glob("*.json") if directory.exists() else ():
        path.unlink(missing_ok=True)
        count += 1
    return count
