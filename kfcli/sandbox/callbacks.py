"""Encrypted ``kf_msg_or_event`` callbacks to the URL set with POST /sandbox/callback.

Everything that creates messages a client should hear about (customer_message,
seed_messages, enter_session, servicer_message, servicer_status) calls `notify_new_messages`
after its transaction has committed. When a target is configured, the simulator then does
what WeCom does (kf-api.md §4.3): it issues a fresh sync_msg ``Token`` (valid 10 minutes, in
the same ``sync_tokens`` table sync_msg checks), wraps it in the event XML, encrypts and signs
it with the target's Token and EncodingAESKey for the CorpID (`cipher`, the simulator's own
implementation of §4.4) and POSTs it with ``msg_signature``, ``timestamp`` and ``nonce`` in
the query.

Delivery never blocks the request that caused it: one worker thread per server takes the
accounts that have news and posts one callback per account. Notifications that arrive while
a callback is being prepared or posted are coalesced into the next one, so a burst (or one
seed_messages of 50,000) costs a handful of callbacks, not one per message; the callback
carries no content anyway, the receiver pulls with sync_msg. Each POST has a 5 s timeout and
is tried 3 times in all until the receiver answers HTTP 200 (§4.3); a receiver that is down
costs a log line, never the simulator. The target is read again for every callback, so
changing or clearing it takes effect at once.

``kfcli --sandbox`` stops its embedded simulator as soon as the command is done, so callbacks
still on their way when the interpreter exits are waited for (at most `EXIT_WAIT` seconds).
"""

from __future__ import annotations

import atexit
import http.client
import logging
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit

from . import cipher, ids, rules
from .store import BUSY_TIMEOUT_SECONDS, Tx, write_transaction

if TYPE_CHECKING:
    from .server import SandboxServer
    from .store import Store

#: WeCom drops the connection after 5 s and tries 3 times in all (kf-api.md §4.3).
TIMEOUT = 5.0
ATTEMPTS = 3
#: Pauses before the 2nd and the 3rd attempt. WeCom does not document its own intervals;
#: short ones keep a sandbox session snappy.
RETRY_DELAYS = (0.25, 0.75)
#: Notifications this close together share one callback.
COALESCE_SECONDS = 0.05
#: Longest wait at interpreter exit for callbacks still being delivered.
EXIT_WAIT = 6.0
#: A receiver's answer is read up to this size and discarded.
MAX_ANSWER = 64 * 1024

USER_AGENT = "kfcli-sandbox (WeCom callback)"

_log = logging.getLogger("kfcli.sandbox")


def callback_config(server: SandboxServer) -> dict[str, str] | None:
    """The stored callback target, or None when none is configured: ``{"url", "token",
    "aes_key", "keys"}``, where ``keys`` is ``"sandbox"`` when the target was set without a
    Token and key (the simulator's own pair signs) and ``"given"`` otherwise. Holds the
    secrets in clear: for the simulator itself, never for an answer (`masked`)."""
    db = server.store
    url = db.meta("callback_url")
    if not url:
        return None
    token, aes_key = db.meta("callback_token") or "", db.meta("callback_aes_key") or ""
    if token and aes_key:
        return {"url": url, "token": token, "aes_key": aes_key, "keys": "given"}
    own = server.credentials
    return {"url": url, "token": own["token"], "aes_key": own["aes_key"], "keys": "sandbox"}


def masked(value: str) -> str:
    """A secret as control endpoints show it: ``****`` and its last four characters (as
    kfcli masks secrets). The first line of `kfcli sandbox serve` is the one place the
    simulator's secrets appear in clear (DESIGN.md §8)."""
    return "****" + (value[-4:] if len(value) >= 12 else "") if value else ""


def notify_new_messages(server: SandboxServer, open_kfid: str) -> None:
    """New messages are waiting for ``open_kfid``: queue a callback if a target is set.

    Returns at once; the callback is built and posted by the server's delivery thread.
    """
    if not server.store.meta("callback_url"):
        return
    _deliveries(server).add(open_kfid)


def wait_delivered(server: SandboxServer, timeout: float = 30.0) -> bool:
    """Wait until every callback queued for ``server`` was delivered or given up on.

    True when nothing is left (also when nothing was ever queued), False on timeout.
    """
    with _registry_lock:
        deliveries = _registry.get(server)
    return deliveries is None or deliveries.wait_idle(timeout)


def issue_sync_token(db: Tx, open_kfid: str, now: int) -> str:
    """A callback ``Token`` for ``open_kfid``, accepted by sync_msg for 10 minutes (§2.5).

    The control endpoints that create messages issue one and return it, so that callers can
    pass a valid ``token`` to sync_msg without a callback receiver; each callback gets its own.
    """
    token = ids.sync_token()
    db.execute("DELETE FROM sync_tokens WHERE expires_at <= ?", (now,))
    db.execute(
        "INSERT INTO sync_tokens (token, open_kfid, expires_at) VALUES (?, ?, ?)",
        (token, open_kfid, now + rules.SYNC_TOKEN_TTL),
    )
    return token


# --- delivery -----------------------------------------------------------------------------


class _Deliveries:
    """The accounts with news for one server, and the thread that posts their callbacks.

    The thread exists only while there is work: it starts on the first notification and
    ends when the set is empty, so an idle simulator holds no extra thread.
    """

    def __init__(self, server: SandboxServer) -> None:
        self.server = server
        self._cond = threading.Condition()
        self._pending: dict[str, None] = {}  # an ordered set: first notified, first posted
        self._thread: threading.Thread | None = None

    def add(self, open_kfid: str) -> None:
        with self._cond:
            self._pending[open_kfid] = None
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="kfcli-sandbox-callbacks", daemon=True
                )
                self._thread.start()

    def wait_idle(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._thread is None, timeout)

    def _run(self) -> None:
        while True:
            time.sleep(COALESCE_SECONDS)
            with self._cond:
                if not self._pending:
                    self._thread = None
                    self._cond.notify_all()
                    return
                batch = list(self._pending)
                self._pending.clear()
            for open_kfid in batch:
                try:
                    self._deliver(open_kfid)
                except Exception as exc:  # a bug costs one callback, never the thread
                    self._log(f"callback for {open_kfid} failed: {type(exc).__name__}: {exc}")

    def _deliver(self, open_kfid: str) -> None:
        try:
            prepared = self._prepare(open_kfid)
        except Exception as exc:  # a broken target or a closing database must not kill us
            self._log(f"callback for {open_kfid} not sent: {type(exc).__name__}: {exc}")
            return
        if prepared is None:
            return  # the target was cleared meanwhile
        url, body = prepared
        target = _without_query(url)
        problem = ""
        for attempt in range(ATTEMPTS):
            if attempt:
                time.sleep(RETRY_DELAYS[min(attempt, len(RETRY_DELAYS)) - 1])
            try:
                status = _post(url, body)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                problem = str(exc) or type(exc).__name__
                continue
            if status == 200:
                return
            problem = f"HTTP {status}"
        self._log(f"callback for {open_kfid} to {target} failed after {ATTEMPTS} attempts "
                  f"({problem})")

    def _prepare(self, open_kfid: str) -> tuple[str, bytes] | None:
        """Issue the sync token and build the signed POST: (url with query, body)."""
        with _write(self.server.store) as db:
            url = db.meta("callback_url")
            if not url:
                return None
            token = db.meta("callback_token") or ""
            aes_key = db.meta("callback_aes_key") or ""
            if not (token and aes_key):  # set without a pair: the simulator's own signs
                token = self.server.credentials["token"]
                aes_key = self.server.credentials["aes_key"]
            now = int(time.time() + float(db.meta("clock_offset") or 0))  # as Store.now()
            sync_token = issue_sync_token(db, open_kfid, now)
        corp_id = self.server.credentials["corp_id"]
        # CreateTime comes from the simulator clock, like every other time the simulator
        # hands out (send_time, token expiry); the query's timestamp is the real time, as
        # receivers judge a callback's freshness by their own clock (DESIGN.md §8).
        timestamp = str(int(time.time()))
        nonce = cipher.nonce()
        message = cipher.event_xml(corp_id, now, sync_token, open_kfid)
        encrypted = cipher.encrypt(aes_key, message, corp_id)
        query = urlencode({
            "msg_signature": cipher.sign(token, timestamp, nonce, encrypted),
            "timestamp": timestamp,
            "nonce": nonce,
        })
        separator = "&" if urlsplit(url).query else "?"
        return f"{url.split('#', 1)[0]}{separator}{query}", cipher.post_body(corp_id, encrypted)

    def _log(self, text: str) -> None:
        log = self.server.log
        if log is not None:
            log(f"sandbox: {text}")
        else:
            _log.warning("sandbox: %s", text)


@contextmanager
def _write(store: Store) -> Iterator[Tx]:
    """A write transaction on a connection of the delivery's own.

    Not the store's per-thread connection: `kfcli --sandbox` stops its server, which closes
    every connection of the store, right after the request that queued a callback, while the
    callback still has to go out (see `_wait_at_exit`).
    """
    conn = sqlite3.connect(store.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
    try:
        with write_transaction(conn) as tx:
            yield tx
    finally:
        conn.close()


def _post(url: str, body: bytes) -> int:
    """POST ``body`` to ``url`` and return the HTTP status (no redirects, no proxies)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {_without_query(url)}")
    connection_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    conn = connection_class(parts.hostname, parts.port, timeout=TIMEOUT)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request("POST", path, body=body, headers={
            "Content-Type": "text/xml; charset=utf-8",
            "User-Agent": USER_AGENT,
        })
        response = conn.getresponse()
        response.read(MAX_ANSWER)
        return response.status
    finally:
        conn.close()


def _without_query(url: str) -> str:
    return url.split("?", 1)[0].split("#", 1)[0]


_registry: weakref.WeakKeyDictionary[SandboxServer, _Deliveries] = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()
_exit_hook_installed = False


def _deliveries(server: SandboxServer) -> _Deliveries:
    global _exit_hook_installed
    with _registry_lock:
        deliveries = _registry.get(server)
        if deliveries is None:
            deliveries = _registry[server] = _Deliveries(server)
            if not _exit_hook_installed:
                atexit.register(_wait_at_exit)
                _exit_hook_installed = True
        return deliveries


def _wait_at_exit() -> None:
    # Daemon threads keep running while atexit hooks do, so the callbacks of a short-lived
    # `kfcli --sandbox sandbox say …` still go out before the process ends.
    deadline = time.monotonic() + EXIT_WAIT
    with _registry_lock:
        pending = list(_registry.values())
    for deliveries in pending:
        deliveries.wait_idle(max(0.0, deadline - time.monotonic()))
