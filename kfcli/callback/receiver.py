"""A whole receiver: the WSGI app, the worker that pulls, the emitter that writes stdout, and
a monitor thread that keeps it honest (DESIGN.md §7).

The monitor, once a second: writes this process's metrics for the other workers; every
PROBE_EVERY seconds checks that the store can be written (readiness); every few seconds asks
the store which accounts have a pull waiting that nobody is doing (a callback recorded while
the queue was full, a worker that died) and which have not been pulled for `safety` seconds
(a callback WeCom gave up on), and queues a pull for them; every minute forgets callback
signatures older than the freshness window. Threads start on first use in each process
(gunicorn forks workers after the app may have been built).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Collection
from typing import Any

from kfcli.callback.app import HEALTH, MAX_SKEW, METRICS, READY, CallbackApp, make_app
from kfcli.callback.logs import DEFAULT_TRUSTED, log
from kfcli.callback.metrics import Metrics, collect_store
from kfcli.callback.worker import (
    CATCH_UP,
    RETRY,
    SAFETY,
    CallbackHandler,
    Dispatcher,
    Emit,
    Emitter,
)
from kfcli.core.errors import KfError

#: Default seconds between safety pulls of an account (0: none). WeCom does not publish its
#: limits for pulls without a callback token, so they stay rare.
SAFETY_PULL = 300
#: Readiness: the store is probed this often; a probe older than READY_STALE means "not ready".
PROBE_EVERY = 5.0
READY_STALE = 12.0
#: A pull waiting this long with nobody doing it is queued by the monitor.
STUCK_REQUEST = 20.0


class Receiver:
    """Everything behind one receiver process: `app` is the WSGI callable.

    `client`/`store`: pull announced accounts into the store (`--sync`); without them each
    callback is only written out. `emit`: where records go (None: nowhere, consumers read
    the store). Thread-safe; fork-aware.
    """

    def __init__(self, token: str, aes_key: str, receive_id: str, *, emit: Emit | None,
                 client: Any = None, store: Any = None,
                 open_kfids: Collection[str] | None = None, history: bool = False,
                 media: bool = True, max_skew: int = MAX_SKEW, safety: int = SAFETY_PULL,
                 trusted_proxies: Collection[str] = DEFAULT_TRUSTED,
                 metrics: Any = None, previous: tuple[str, str] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.metrics = metrics or Metrics()
        self.store = store
        self.safety = safety
        self.max_skew = max_skew
        self.clock = clock
        corp_id = str(client.corp_id) if client is not None else ""
        self.emitter = Emitter(emit, store=store if client is not None else None,
                               corp_id=corp_id, metrics=self.metrics, threaded=True)
        self.handler = CallbackHandler(emit, client=client, store=store, open_kfids=open_kfids,
                                       history=history, media=media, metrics=self.metrics,
                                       emitter=self.emitter)
        self.dispatcher = Dispatcher(self.handler, before=self.handler.record)
        self.handler.requeue = self.dispatcher.put
        self.app: CallbackApp = make_app(token, aes_key, receive_id, on_event=self._event,
                                         max_skew=max_skew, probes=self, metrics=self.metrics,
                                         trusted_proxies=trusted_proxies, previous=previous)
        self._monitor: threading.Thread | None = None
        self._pid = 0
        self._guard = threading.Lock()
        self._ready = (False, "starting")
        self._probed = 0.0
        self._stop = threading.Event()

    @property
    def syncing(self) -> bool:
        return self.handler.puller is not None

    def start(self) -> None:
        """Start this process's threads; with a store, catch up on every account first.
        At exit (gunicorn's SIGTERM ends a worker with sys.exit) what is queued is handled
        and what was committed is written out first: those callbacks were answered."""
        import atexit

        atexit.register(self.close)  # runs after the dispatcher's own (registered later)
        self._ensure_monitor()
        if self.syncing:
            self.dispatcher.put({"type": CATCH_UP})

    def _event(self, fields: dict[str, Any]) -> None:
        self._ensure_monitor()
        self.dispatcher.put(fields)

    def _ensure_monitor(self) -> None:
        if self._monitor is not None and self._pid == os.getpid() and self._monitor.is_alive():
            return
        with self._guard:
            if self._monitor is None or self._pid != os.getpid() or not self._monitor.is_alive():
                self._pid = os.getpid()
                self._stop = threading.Event()
                self._monitor = threading.Thread(target=self._watch, name="kfcli-monitor",
                                                 daemon=True)
                self._monitor.start()

    # -- readiness and metrics (the app's Probes)

    def ready(self) -> tuple[bool, str]:
        self._ensure_monitor()
        if not self._probed:
            self._probe()
        ok, why = self._ready
        if ok and self.store is not None and time.monotonic() - self._probed > READY_STALE:
            ok, why = False, "the store has not answered for " \
                f"{time.monotonic() - self._probed:.0f} s"
        if ok and not self.dispatcher.running():
            ok, why = False, "the worker thread is not running"
        return ok, why

    def metrics_text(self) -> tuple[bytes, str]:
        self._ensure_monitor()
        return self.metrics.exposition(self.store_families())

    def store_families(self) -> list[Any]:
        if not self.syncing:
            return []
        try:
            return collect_store([(self.store, self.handler.corp_id)], self.clock())
        except KfError as exc:
            self.metrics.inc("kfcli_store_errors")
            log.warning("metrics: the store did not answer: %s", exc.message)
            return []

    def _probe(self) -> None:
        if self.store is None or not self.syncing:
            self._ready = (True, "")
            self._probed = time.monotonic()
            return
        try:
            self.store.probe()
        except KfError as exc:
            self.metrics.inc("kfcli_store_errors")
            if self._ready[0] or self._ready[1] == "starting":
                log.warning("not ready: %s", exc.message,
                            extra={"kf": {"event": "unready", "reason": exc.message}})
            self._ready = (False, exc.message)
        else:
            if not self._ready[0] and self._ready[1] != "starting":
                log.warning("ready again: the store can be written",
                            extra={"kf": {"event": "ready"}})
            self._ready = (True, "")
        self._probed = time.monotonic()

    # -- the monitor thread

    def _watch(self) -> None:
        last_probe = last_scan = last_forget = 0.0
        scan_every = min(max(self.safety / 4, 1.0), 30.0) if self.safety else 10.0
        while not self._stop.wait(1.0):
            now = time.monotonic()
            try:
                if now - last_probe >= PROBE_EVERY:
                    last_probe = now
                    self._probe()
                    self.metrics.set("kfcli_processes", 1)
                    self.metrics.set("kfcli_ready", 1 if self.ready()[0] else 0)
                if self.syncing and self._ready[0] and now - last_scan >= scan_every:
                    last_scan = now
                    self._scan()
                if self.syncing and self._ready[0] and now - last_forget >= 60:
                    last_forget = now
                    self.store.forget_signatures(self.clock() - 2 * max(self.max_skew, 60))
                    self.emitter.adopt()
                self.metrics.set("kfcli_queue_events", self.dispatcher.waiting())
                self.metrics.flush()
            except KfError as exc:
                self.metrics.inc("kfcli_store_errors")
                log.debug("monitor: %s", exc.message)
            except Exception as exc:  # never let the monitor die
                log.error("monitor: %s: %s", type(exc).__name__, exc)

    def _scan(self) -> None:
        """Queue pulls nobody is doing, and the safety pulls that are due."""
        import queue

        now = self.clock()
        corp_id = self.handler.corp_id
        for account in self.store.pull_states(corp_id):
            if self.handler.open_kfids and account.open_kfid not in self.handler.open_kfids:
                continue
            last = account.last_pull_at or 0.0
            event = None
            if account.requested and now - max(last, account.last_callback_at or 0) \
                    > STUCK_REQUEST:
                event = {"type": RETRY, "OpenKfId": account.open_kfid}
            elif self.safety and last and now - last >= self.safety:
                event = {"type": SAFETY, "OpenKfId": account.open_kfid}
            if event is not None:
                try:
                    self.dispatcher.put(event)
                except queue.Full:
                    return

    def close(self) -> None:
        if self._pid and self._pid != os.getpid():
            return  # the parent's receiver, in a forked child that never used it
        self._stop.set()
        self.dispatcher.close()
        self.emitter.close()
        self.metrics.flush(force=True)


class Router:
    """Several receivers on one port, one per path (several corps, or several self-built
    apps): `routes` maps a path such as `/corp-a` to its Receiver. Other paths answer 404;
    /healthz, /readyz (every route ready) and /metrics (every route, labelled by corp) are
    the whole server's. The WSGI callable; thread-safe."""

    def __init__(self, routes: dict[str, Receiver], metrics: Metrics) -> None:
        self.routes = {_path(p): r for p, r in routes.items()}
        self.metrics = metrics

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Any:
        from kfcli.callback.app import not_found, operations

        if environ.get("REQUEST_METHOD", "GET") == "GET":
            answer = operations(environ, start_response, self)
            if answer is not None:
                return answer
        receiver = self.routes.get(_path(environ.get("PATH_INFO") or "/"))
        if receiver is None:
            self.metrics.inc("kfcli_callbacks", result="no_route")
            return not_found(start_response)
        return receiver.app(environ, start_response)

    def start(self) -> None:
        for receiver in self.routes.values():
            receiver.start()

    def ready(self) -> tuple[bool, str]:
        why = [f"{path}: {r.ready()[1]}" for path, r in self.routes.items() if not r.ready()[0]]
        return (not why, "; ".join(why))

    def metrics_text(self) -> tuple[bytes, str]:
        from kfcli.callback.metrics import collect_store

        # One set of store figures per store and corp, however many routes share them.
        sources = list({(r.store.display_url, r.handler.corp_id): (r.store, r.handler.corp_id)
                        for r in self.routes.values() if r.syncing}.values())
        try:
            extra = collect_store(sources, time.time())
        except KfError as exc:
            self.metrics.inc("kfcli_store_errors")
            log.warning("metrics: a store did not answer: %s", exc.message)
            extra = []
        return self.metrics.exposition(extra)

    def close(self) -> None:
        for receiver in self.routes.values():
            receiver.close()


def _path(path: str) -> str:
    return "/" + path.strip("/")


def parse_routes(values: Collection[str]) -> dict[str, str]:
    """`/PATH=PROFILE` values as {path: profile}; ValueError names a bad one."""
    from kfcli.core.config import check_profile_name
    from kfcli.core.errors import KfError

    routes: dict[str, str] = {}
    for value in values:
        path, sep, profile = value.partition("=")
        if not sep or not path.startswith("/") or not profile:
            raise ValueError(f"{value!r} is not /PATH=PROFILE")
        if _path(path) in (HEALTH, READY, METRICS):
            raise ValueError(f"{path} is the receiver's own (health, readiness, metrics)")
        try:
            check_profile_name(profile)
        except KfError as exc:
            raise ValueError(exc.message) from None
        if _path(path) in routes:
            raise ValueError(f"the path {path} is routed twice")
        routes[_path(path)] = profile
    return routes


def previous_pair(settings: Any) -> tuple[str, str] | None:
    """The callback Token/EncodingAESKey pair before a rotation (`token_previous`,
    `aes_key_previous`; one of them alone: the other did not change), or None."""
    token_prev, key_prev = settings.get("token_previous"), settings.get("aes_key_previous")
    if not token_prev and not key_prev:
        return None
    return (token_prev or settings.get("token") or "",
            key_prev or settings.get("aes_key") or "")


def from_settings(settings: Any, *, sync: bool, emit: Emit | None, metrics: Any = None,
                  where: str = "", **options: Any) -> Receiver:
    """A Receiver for resolved settings (a profile, env vars): its Token and key (and the
    previous pair), with `sync` its corp's client and store. Raises ConfigError naming what
    is missing (`where`: which profile or route, for the message)."""
    from kfcli.core.config import ENV_VARS
    from kfcli.core.errors import ConfigError
    from kfcli.core.redact import register_secret

    need = ("token", "aes_key", "corp_id") + (("secret",) if sync else ())
    missing = [k for k in need if settings.get(k) is None]
    if missing:
        envs = ", ".join(ENV_VARS[k] for k in missing)
        raise ConfigError(f"callback receiver{where}: {', '.join(missing)} not configured "
                          f"(set {envs})", hint=f"set {envs} in the server's environment, "
                          "or use a profile")
    for key in ("token", "aes_key", "token_previous", "aes_key_previous", "secret"):
        register_secret(settings.get(key))
    client = store = None
    if sync:
        from kfcli.core.client import KfClient
        from kfcli.core.store import open_store

        client = KfClient.from_settings(settings)
        store = open_store(settings=settings)
    return Receiver(settings.get("token") or "", settings.get("aes_key") or "",
                    settings.get("corp_id") or "", emit=emit, client=client, store=store,
                    metrics=metrics, previous=previous_pair(settings), **options)


def router_from_profiles(routes: dict[str, str], *, sync: bool, emit: Emit | None,
                         **options: Any) -> Router:
    """A Router serving each profile's callbacks on its path (`{"/corp-a": "a"}`)."""
    from kfcli.core.config import resolve

    metrics = Metrics()
    receivers = {}
    for path, profile in routes.items():
        settings = resolve(profile=profile)
        receivers[path] = from_settings(
            settings, sync=sync, emit=emit, where=f" for {path} (profile {profile})",
            metrics=metrics.labelled(corp_id=settings.get("corp_id") or ""), **options)
    return Router(receivers, metrics)
