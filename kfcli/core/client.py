"""`KfClient`: one typed method per KF endpoint over one retrying, redacting HTTP layer.

Retry rules (DESIGN.md §3):

* 40014 / 42001 (and 40001 from a call other than gettoken): drop the token, fetch a new one,
  retry once.
* -1 / 45009 / 45033: bounded exponential backoff with jitter, then `RateLimitError`.
* Connection failures before the request was sent: always retried. Timeouts, dropped
  connections and HTTP 5xx: retried only where a retry is safe, i.e. reads and message sends
  (which always carry a msgid that WeCom keeps unique per account).

HTTP goes through a transport: by default `kfcli.core.http.Http`, a thin adapter over urllib3
(imported on the first request, which keeps start-up within budget); `KfClient(transport=...)`
takes any object with the same `request` method (`kfcli.core.http.Transport`). Everything
that can go wrong in a call reaches the caller as a `KfError`: the transport turns every
socket, TLS, proxy and urllib3 failure into `HttpError` (here `NetworkError`, or
`ConfigError` when the fix is a setting), and an answer that is not JSON or lacks what the
call needs is a `ResponseError` (`_json`, `_required`, `_models`).

A client is safe to share between threads (see `KfClient`): calls return their whole outcome
and leave no per-call state on the client (STYLE.md practice 14).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from kfcli.core import limits, messages, notices
from kfcli.core.config import DEFAULT_BASE_URL, Settings
from kfcli.core.errors import (
    ConfigError,
    KfError,
    NetworkError,
    ResponseError,
    UsageError,
    ValidationError,
    api_error,
)
from kfcli.core.http import (
    CaBundle,
    Http,
    HttpError,
    Response,
    SettingError,
    Transport,
    multipart,
)

if TYPE_CHECKING:
    from kfcli.core.sends import SendRecorder
    from kfcli.core.sync import MessageStream

from kfcli.core.models import (
    Account,
    CustomerBatch,
    MediaUpload,
    SendResult,
    Servicer,
    ServicerResult,
    ServiceState,
    SyncPage,
)
from kfcli.core.redact import redact, register_secret
from kfcli.core.tokens import TokenCache

TOKEN_ERRCODES = frozenset({40014, 42001, 40001})
BACKOFF_ERRCODES = frozenset({-1, 45009, 45033})

#: Trace sink for `--debug`: receives already-redacted lines.
Trace = Callable[[str], None]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry. Delays are `base * 2**n` capped, each drawn at random
    from its upper half (jitter that still keeps a minimum wait)."""

    max_retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0

    def delay(self, attempt: int) -> float:
        ceiling = min(self.max_delay, self.base_delay * (2**attempt))
        import random  # only when retrying: not on every start-up

        return random.uniform(ceiling / 2, ceiling)


@dataclass(frozen=True)
class Timeout:
    connect: float = 5.0
    read: float = 30.0


class KfClient:
    """A client for one WeCom app (corp id + secret).

    >>> with KfClient.from_profile() as client:                    # doctest: +SKIP
    ...     client.send_msg(open_kfid="wkAbC123", external_userid="wmXyZ789",
    ...                     msgtype="text", content={"content": "hi"})

    Ids are keyword-only wherever a method takes more than one (`open_kfid=`,
    `external_userid=`, `member_userid=`, `userids=`, ...), so they can never be swapped.

    Every exception a call raises is a `KfError`: `UsageError`/`ValidationError` for input
    refused before sending, `ApiError` subclasses for WeCom's errcodes (`ResponseError` for an
    answer that cannot be understood), `NetworkError` for the transport (refused, timed out,
    dropped, TLS, not HTTP, HTTP 5xx), `ConfigError` for the token cache or settings.

    Safe to share between threads: a callback receiver's workers or an application's request
    handlers can all use one client. What they share and what is their own:

    * Every call returns its whole outcome and keeps nothing of it on the client (a send's
      `SendResult` says whether it was retried or already delivered).
    * HTTP connections are pooled (`kfcli.core.http.Http`, urllib3's pool): each request
      borrows one for its exchange, so threads never share a connection mid-request, and
      keep-alive connections are reused by whichever thread calls next. A forked child
      opens its own.
    * The access token is shared by every thread, and by every process through the cache
      file (`TokenCache`): when it is missing, expired or rejected, one thread calls
      gettoken and the others wait for its answer.
    * Per thread: only the deprecated `retried_after_ambiguous` and `already_delivered`,
      which describe the calling thread's own last call, and `tokens.last_source`.
    * `trace` may be called from any thread; lines of concurrent calls may interleave.

    `close()` (or leaving a `with KfClient(...) as client:` block) closes every connection
    the client opened: idle ones at once, those of calls still in flight when the call ends.
    A closed client still works: the next call opens a new connection.

    `transport=` replaces the urllib3 transport with any object that has its `request`
    method (`kfcli.core.http.Transport`): a fake for tests that need no server, or an
    integrator's own HTTP stack. Retries, tokens and redaction stay the client's; proxy,
    CA-bundle and timeout settings are then the transport's business.
    """

    def __init__(
        self,
        corp_id: str,
        secret: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        token_cache: TokenCache | None = None,
        timeout: Timeout | float | None = None,
        retry: RetryPolicy | None = None,
        trace: Trace | None = None,
        ca_bundle: str | CaBundle | None = None,
        transport: Transport | None = None,
        notify: notices.Notify | None = None,
        recorder: SendRecorder | None = None,
    ) -> None:
        for field, value in (("corp_id", corp_id), ("secret", secret)):
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{field} is empty or not a string")
        register_secret(secret)
        self.corp_id = corp_id
        self.base_url = str(base_url).rstrip("/")
        if isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
            if not 0 < timeout <= 600:
                raise ValidationError("timeout", f"{timeout!r} is not a number of seconds in "
                                      "(0, 600]")
            timeout = Timeout(connect=min(5.0, float(timeout)), read=float(timeout))
        elif timeout is not None and not isinstance(timeout, Timeout):
            raise ValidationError("timeout", "a Timeout or a number of seconds")
        self.timeout = timeout or Timeout()
        self.retry = retry or RetryPolicy()
        self.trace = trace
        #: Where retries and an unusable token cache are told (default: the logger).
        self.notify = notify or notices.notice
        # Extra CA certificates (PEM) trusted on top of the system store; None: those of
        # REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE, if set.
        self.ca_bundle = ca_bundle
        self._secret = secret
        # `transport`: what requests go through instead of the urllib3 one (a test double,
        # an integrator's own); the network settings above are then its business.
        self._http: Transport | None = transport
        self._http_lock = threading.Lock()
        self._last = threading.local()  # backs the deprecated per-thread flags below
        #: Until when (time.monotonic) every thread holds back: a rate limit met by one.
        self._paused_until = 0.0
        if transport is None:
            self._new_http()  # a bad base_url fails here, not at the first call
        self.tokens = token_cache or TokenCache(corp_id, secret, self._fetch_token,
                                                notify=notify)
        #: Where delivered sends are recorded (`kfcli.core.sends.SendRecorder`: the store,
        #: whole conversations); None: not recorded.
        self.recorder = recorder

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> KfClient:
        settings.require("corp_id", "secret")
        bundle = settings.values.get("ca_bundle")
        if bundle is not None and bundle.value and "ca_bundle" not in kwargs and \
                settings.base_url.startswith("https:"):
            from kfcli.core.proxyenv import ca_bundle as _ca_bundle

            where = "KFCLI_CA_BUNDLE" if bundle.source == "env" else \
                f"the ca_bundle setting of profile {settings.profile!r}"
            try:  # checked here to name where it was set
                _ca_bundle(bundle.value, where)
            except SettingError as exc:
                raise ConfigError(str(exc), hint=exc.hint) from None
            kwargs["ca_bundle"] = CaBundle(bundle.value, where)
        return cls(settings.corp_id or "", settings.secret or "", base_url=settings.base_url,
                   **kwargs)

    @classmethod
    def from_profile(cls, name: str | None = None, **kwargs: Any) -> KfClient:
        """A client configured as the CLI would be: the profile `name` (default: the one
        KFCLI_PROFILE names, else the current profile), resolved with
        `kfcli.core.config.resolve` (a named profile beats the KFCLI_* credential variables,
        as `kfcli -p NAME` does). `kwargs` go to the constructor (`timeout`, `retry`,
        `trace`, ...). Raises `ConfigError` when the profile is unknown or incomplete."""
        from kfcli.core.config import resolve

        return cls.from_settings(resolve(profile=name), **kwargs)

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Close every connection the client opened (see the class docstring)."""
        with self._http_lock:
            http = self._http
        close = getattr(http, "close", None)  # optional for a transport of the caller's
        if close is not None:
            close()

    def __enter__(self) -> KfClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ deprecated

    @property
    def retried_after_ambiguous(self) -> bool:
        """Deprecated: use `send_message(...).retried`. Whether the calling thread's last
        call was retried after a failure that may have taken effect."""
        _deprecated("retried_after_ambiguous", "send_message(...).retried")
        return getattr(self._last, "retried", False)

    @property
    def already_delivered(self) -> bool:
        """Deprecated: use `send_message(...).already_delivered`. Whether the calling
        thread's last send found its msgid delivered before."""
        _deprecated("already_delivered", "send_message(...).already_delivered")
        return getattr(self._last, "already_delivered", False)

    # ------------------------------------------------------------------ transport

    @property
    def http(self) -> Transport:
        """The transport: by default the connection pool (connections opened on demand)."""
        http = self._http
        if http is None:
            with self._http_lock:
                if self._http is None:
                    self._http = self._new_http()
                http = self._http
        return http

    def _new_http(self) -> Http:
        from kfcli import __version__

        bundle = self.ca_bundle
        try:
            return Http(self.base_url, connect_timeout=self.timeout.connect,
                        read_timeout=self.timeout.read, user_agent=f"kfcli/{__version__}",
                        ca_bundle=bundle.path if isinstance(bundle, CaBundle) else bundle,
                        ca_bundle_from=bundle.variable if isinstance(bundle, CaBundle)
                        else "ca_bundle")
        except SettingError as exc:  # a proxy URL or CA bundle, named in the message
            raise ConfigError(str(exc), hint=exc.hint) from None
        except ValueError as exc:
            raise ConfigError(str(exc), hint="base_url is like https://qyapi.weixin.qq.com"
                              ) from None

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any],
        body: bytes | None,
        headers: dict[str, str] | None,
        retry_safe: bool,
        sink: BinaryIO | None = None,
    ) -> tuple[Response, bool]:
        """One HTTP exchange with network-level retries: (the response, whether it was
        retried after a failure that may have reached the server). Raises NetworkError."""
        attempt = 0
        ambiguous = False
        stale_retried = False
        while True:
            started = time.perf_counter()
            self._trace_request(method, path, params, body, headers)
            self._hold()
            if sink is not None:  # a retry starts the download again from the beginning
                _rewind(sink)
            try:
                resp = self.http.request(method, path, params=params, body=body, headers=headers,
                                         sink=sink)
            except HttpError as exc:
                self._trace(f"! {exc.reason}")
                if exc.config:  # the proxy's credentials, a CA bundle: never retried
                    raise ConfigError(redact(exc.reason), hint=exc.hint) from None
                if exc.stale and not stale_retried and (retry_safe or exc.never_sent):
                    # The server had closed the kept-alive connection: at once, on a new one.
                    stale_retried = True
                    ambiguous |= not exc.never_sent
                    self._trace("! retrying at once on a new connection")
                    continue
                if exc.retry and (retry_safe or exc.never_sent) and \
                        attempt < self.retry.max_retries:
                    ambiguous |= not exc.never_sent
                    self._sleep(attempt, f"{path}: {exc.reason}")
                    attempt += 1
                    continue
                hint = exc.hint if (retry_safe or exc.never_sent) else (
                    "the request may have reached WeCom before the connection failed; "
                    "check the result before repeating it"
                )
                raise NetworkError(redact(f"{method} {path}: {exc.reason}"), hint=hint) from None
            self._trace_response(resp, started)
            if resp.status >= 500 and retry_safe and attempt < self.retry.max_retries:
                ambiguous = True
                self._sleep(attempt, f"{path}: HTTP {resp.status}")
                attempt += 1
                continue
            if resp.status >= 500:
                raise NetworkError(f"{method} {path}: HTTP {resp.status} from server")
            return resp, ambiguous

    def _sleep(self, attempt: int, reason: str, *, shared: bool = False) -> None:
        """Wait before retry number attempt+1; `notify` says why (the CLI shows it on a
        terminal). `shared`: WeCom is rate limiting this corp, so every other
        thread of this client holds back too until the wait is over (see `_hold`)."""
        delay = self.retry.delay(attempt)
        if shared:
            self._paused_until = max(self._paused_until, time.monotonic() + delay)
        self._trace(f"! retrying in {delay:.2f} s")
        self.notify(notices.INFO, f"{reason}, retrying in {delay:.1f} s (retry "
                    f"{attempt + 1} of {self.retry.max_retries})")
        time.sleep(delay)

    def _hold(self) -> None:
        """Wait while another thread of this client backs off from a rate limit (45009):
        sending meanwhile would only prolong it."""
        wait = self._paused_until - time.monotonic()
        if wait > 0:
            self._trace(f"! holding back {wait:.2f} s (rate limited)")
            time.sleep(wait)

    def _trace(self, line: str) -> None:
        if self.trace is not None:
            self.trace(redact(line))

    def _trace_request(self, method: str, path: str, params: Any, body: Any, headers: Any
                       ) -> None:
        if self.trace is None:
            return
        from urllib.parse import urlencode

        query = ("?" + urlencode(params)) if params else ""
        proxy = getattr(self.http, "proxy", None)
        if proxy is not None:
            self._trace(f"* through proxy {proxy.shown()} (from {proxy.variable})")
        self._trace(f"> {method} {self.base_url}{path}{query}")
        ctype = (headers or {}).get("Content-Type", "")
        if body and ctype.startswith("application/json"):
            self._trace("> " + _clip(body.decode("utf-8", "replace")))
        elif body:
            self._trace(f"> [{len(body)} bytes of {ctype.split(';')[0]}]")

    def _trace_response(self, resp: Response, started: float) -> None:
        if self.trace is None:
            return
        ms = (time.perf_counter() - started) * 1000
        self._trace(f"< {resp.status} {resp.reason} ({ms:.0f} ms)")
        ctype = resp.content_type
        if "json" in ctype or "text" in ctype:
            self._trace("< " + _clip(resp.text))
        else:
            size = resp.streamed if resp.streamed is not None else len(resp.body)
            self._trace(f"< [{size} bytes of {ctype or 'data'}]")

    # ------------------------------------------------------------------ tokens

    def _fetch_token(self) -> tuple[str, int]:
        attempt = 0
        while True:
            resp, _ = self._send(
                "GET",
                "/cgi-bin/gettoken",
                params={"corpid": self.corp_id, "corpsecret": self._secret},
                body=None,
                headers=None,
                retry_safe=True,
            )
            doc = _json(resp, "/cgi-bin/gettoken")
            errcode = _errcode(doc, "/cgi-bin/gettoken")
            if errcode == 0:
                token = _required(doc, "access_token", "/cgi-bin/gettoken")
                register_secret(token)
                expires_in = doc.get("expires_in", 7200)
                if isinstance(expires_in, bool) or not isinstance(expires_in, int):
                    raise ResponseError(f"/cgi-bin/gettoken: expires_in is {expires_in!r}, "
                                        "not a number of seconds")
                return token, expires_in
            if errcode in BACKOFF_ERRCODES and attempt < self.retry.max_retries:
                self._sleep(attempt, _busy(errcode))
                attempt += 1
                continue
            # 40001/40013 here are configuration errors: stop at once (repeated wrong secrets
            # can get the IP banned, kf-api.md §1.2).
            raise api_error(errcode, str(doc.get("errmsg", "")), gettoken=True)

    def access_token(self, *, refresh: bool = False) -> str:
        return self._token(force=refresh)

    def _token(self, **kwargs: Any) -> str:
        """`self.tokens.get(...)`, with a cache that cannot be used turned into a KfError."""
        try:
            return self.tokens.get(**kwargs)
        except KfError:
            raise
        except TimeoutError:  # filelock.Timeout: another process holds the lock
            raise NetworkError(
                "timed out waiting for another kfcli process to fetch the access token",
                hint=f"if no other kfcli is running, remove {getattr(self.tokens, 'lock_path', '')}"
            ) from None
        except OSError as exc:
            where = getattr(exc, "filename", None) or getattr(self.tokens, "path", "")
            raise ConfigError(f"cannot use the token cache at {where} "
                              f"({exc.strerror or exc})",
                              hint="check the permissions of the cache directory "
                              "(XDG_CACHE_HOME)") from None

    # ------------------------------------------------------------------ calls

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        params: dict[str, Any] | None = None,
        upload: tuple[bytes, str] | None = None,
        retry_safe: bool | None = None,
        raw: bool = False,
        decode: Callable[[str], dict[str, Any]] | None = None,
    ) -> Any:
        """An authenticated call; returns the JSON object (or the `Response` when `raw` and
        the answer is not JSON, e.g. a media download).

        `upload` is a multipart (body, content type) pair instead of a JSON body. `retry_safe`
        defaults to True for GET. `decode` replaces `json.loads` for the answer's text.
        Raises an `ApiError` subclass when errcode != 0.
        """
        self._last.retried = False
        answer, retried = self._call(method, path, body, params=params, upload=upload,
                                     retry_safe=retry_safe, raw=raw, decode=decode)
        self._last.retried = retried
        return answer

    def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        params: dict[str, Any] | None = None,
        upload: tuple[bytes, str] | None = None,
        retry_safe: bool | None = None,
        raw: bool = False,
        decode: Callable[[str], dict[str, Any]] | None = None,
        accept: Callable[[int, str], bool] | None = None,
        sink: BinaryIO | None = None,
    ) -> tuple[Any, bool]:
        """`call`, returning (its answer, whether a request was retried after a failure that
        may have taken effect). An errcode that `accept(errcode, errmsg)` approves is
        returned as an answer rather than raised."""
        method = method.upper()
        if retry_safe is None:
            retry_safe = method == "GET"
        data: bytes | None = None
        headers: dict[str, str] = {}
        if upload is not None:
            data, headers["Content-Type"] = upload
        elif body is not None:
            try:
                data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            except (TypeError, ValueError) as exc:  # a set, bytes, NaN-free floats...
                raise ValidationError("body", f"cannot be sent as JSON ({exc})") from None
            headers["Content-Type"] = "application/json; charset=utf-8"
        token = self._token()
        token_retried = False
        retried = False
        attempt = 0
        while True:
            query = {**(params or {}), "access_token": token}
            resp, ambiguous = self._send(method, path, params=query, body=data,
                                         headers=headers, retry_safe=retry_safe, sink=sink)
            retried |= ambiguous
            if raw and "json" not in resp.content_type:
                return resp, retried
            doc = _json(resp, path, decode)
            errcode = doc.get("errcode", 0)
            if not isinstance(errcode, int) or errcode == 0:
                return doc, retried
            if accept is not None and accept(errcode, str(doc.get("errmsg", ""))):
                return doc, retried
            if errcode in TOKEN_ERRCODES and not token_retried:
                token_retried = True
                self._trace(f"! token rejected ({errcode}), fetching a new one")
                token = self._token(rejected=token)
                continue
            if errcode in BACKOFF_ERRCODES and attempt < self.retry.max_retries:
                self._sleep(attempt, _busy(errcode), shared=True)
                attempt += 1
                continue
            raise api_error(errcode, str(doc.get("errmsg", "")), path=path)

    # ------------------------------------------------------------------ accounts

    def account_add(self, name: str, media_id: str) -> str:
        """Create a KF account; returns its open_kfid."""
        limits.check_account_name(name)
        limits.check_media_id(media_id)
        doc = self.call("POST", "/cgi-bin/kf/account/add", {"name": name, "media_id": media_id})
        return _required(doc, "open_kfid", "/cgi-bin/kf/account/add")

    def account_delete(self, open_kfid: str) -> None:
        limits.check_open_kfid(open_kfid)
        self.call("POST", "/cgi-bin/kf/account/del", {"open_kfid": open_kfid})

    def account_update(
        self, open_kfid: str, *, name: str | None = None, media_id: str | None = None
    ) -> None:
        limits.check_open_kfid(open_kfid)
        body: dict[str, Any] = {"open_kfid": open_kfid}
        if name is not None:
            body["name"] = limits.check_account_name(name)
        if media_id is not None:
            body["media_id"] = limits.check_media_id(media_id)
        self.call("POST", "/cgi-bin/kf/account/update", body)

    def account_list(self, *, offset: int = 0, limit: int = 100) -> list[Account]:
        """One page of accounts (POST with offset/limit: the GET form never pages)."""
        limits.check_offset(offset)
        limits.check_limit(limit, limits.ACCOUNT_LIST_LIMIT)
        doc = self.call(
            "POST",
            "/cgi-bin/kf/account/list",
            {"offset": offset, "limit": limit},
            retry_safe=True,
        )
        return _models(Account, doc, "account_list", "/cgi-bin/kf/account/list")

    def iter_accounts(self, *, page_size: int = 100) -> Iterator[Account]:
        """Every account, paging until a short page."""
        offset = 0
        while True:
            page = self.account_list(offset=offset, limit=page_size)
            yield from page
            if len(page) < page_size:
                return
            offset += len(page)

    def add_contact_way(self, open_kfid: str, scene: str | None = None) -> str:
        """The contact URL of an account (optionally for a scene); returns the URL."""
        limits.check_open_kfid(open_kfid)
        body: dict[str, Any] = {"open_kfid": open_kfid}
        if scene:  # empty optional fields are omitted, never sent as "" (kf-api.md §1.1)
            body["scene"] = limits.check_scene(scene)
        doc = self.call("POST", "/cgi-bin/kf/add_contact_way", body)
        return _required(doc, "url", "/cgi-bin/kf/add_contact_way")

    # ------------------------------------------------------------------ media

    def media_upload(self, path: Path | str, media_type: str | None = None) -> MediaUpload:
        """Upload a file as temporary media (valid 3 days). Type inferred when not given."""
        path = Path(path)
        media_type, _ = limits.check_media_file(path, media_type)
        try:
            data = path.read_bytes()
        except OSError as exc:  # changed since it was checked
            raise ValidationError(str(path), f"cannot read file ({exc.strerror})") from None
        upload = multipart("media", path.name, data, _content_type(media_type, path))
        doc = self.call("POST", "/cgi-bin/media/upload", params={"type": media_type},
                        upload=upload)
        return _model(MediaUpload, doc, "/cgi-bin/media/upload")


    def media_download(self, media_id: str, sink: BinaryIO) -> tuple[int, str, str]:
        """Download temporary media into `sink` (a seekable binary file) as it arrives,
        without holding it in memory: (bytes written, content type, filename from the
        server). A retried download starts `sink` again from the beginning. An OSError of
        `sink` (a full disk) is raised as such."""
        from kfcli.core.http import SinkError

        limits.check_media_id(media_id)
        try:
            resp, _ = self._call("GET", "/cgi-bin/media/get", params={"media_id": media_id},
                                 raw=True, sink=sink)
        except SinkError as exc:
            raise exc.original from None
        if isinstance(resp, dict):
            raise ResponseError("/cgi-bin/media/get: the answer is JSON without an errcode, "
                                "not the media")
        if resp.streamed is None:  # a text answer (or one from a server that streams none)
            _rewind(sink)
            sink.write(resp.body)
        filename = _disposition_filename(resp.headers.get("content-disposition", ""))
        return (resp.streamed if resp.streamed is not None else len(resp.body),
                resp.content_type, filename)

    def media_get(self, media_id: str) -> tuple[bytes, str, str]:
        """Download temporary media: (content, content type, filename from the server)."""
        limits.check_media_id(media_id)
        resp = self.call("GET", "/cgi-bin/media/get", params={"media_id": media_id}, raw=True)
        if isinstance(resp, dict):  # a JSON body without errcode: unexpected, but not media
            raise ResponseError("/cgi-bin/media/get: the answer is JSON without an errcode, "
                                "not the media")
        filename = _disposition_filename(resp.headers.get("content-disposition", ""))
        return resp.body, resp.content_type, filename

    # ------------------------------------------------------------------ servicers

    def servicer_list(self, open_kfid: str) -> list[Servicer]:
        limits.check_open_kfid(open_kfid)
        doc = self.call("GET", "/cgi-bin/kf/servicer/list", params={"open_kfid": open_kfid})
        return _models(Servicer, doc, "servicer_list", "/cgi-bin/kf/servicer/list")

    def servicer_add(self, *, open_kfid: str, userids: Sequence[str] = (),
                     department_ids: Sequence[int] = ()) -> list[ServicerResult]:
        """Add up to 100 userids and 100 departments; returns WeCom's per-item results."""
        return self._servicer("add", open_kfid, userids, department_ids)

    def servicer_delete(self, *, open_kfid: str, userids: Sequence[str] = (),
                        department_ids: Sequence[int] = ()) -> list[ServicerResult]:
        """Remove up to 100 userids and 100 departments; returns the per-item results."""
        return self._servicer("del", open_kfid, userids, department_ids)

    def _servicer(self, op: str, open_kfid: str, userids: Sequence[str],
                  department_ids: Sequence[int]) -> list[ServicerResult]:
        limits.check_open_kfid(open_kfid)
        if isinstance(userids, str):  # a lone "zhangsan" would be sent letter by letter
            raise ValidationError("userids", "expected a list of userids, got a string")
        userids, department_ids = list(userids), list(department_ids)
        limits.check_servicer_batch(userids, department_ids)
        body: dict[str, Any] = {"open_kfid": open_kfid}
        if userids:
            body["userid_list"] = userids
        if department_ids:
            body["department_id_list"] = department_ids
        doc = self.call("POST", f"/cgi-bin/kf/servicer/{op}", body)
        return _models(ServicerResult, doc, "result_list", f"/cgi-bin/kf/servicer/{op}")

    # ------------------------------------------------------------------ session state

    def service_state_get(self, *, open_kfid: str, external_userid: str) -> ServiceState:
        limits.check_open_kfid(open_kfid)
        limits.check_external_userid(external_userid)
        doc = self.call("POST", "/cgi-bin/kf/service_state/get",
                        {"open_kfid": open_kfid, "external_userid": external_userid},
                        retry_safe=True)
        return _model(ServiceState, doc, "/cgi-bin/kf/service_state/get")

    def service_state_trans(self, *, open_kfid: str, external_userid: str, service_state: int,
                            servicer_userid: str | None = None) -> str:
        """Move a session to another state; returns the msg_code ("" when none is issued)."""
        limits.check_open_kfid(open_kfid)
        limits.check_external_userid(external_userid)
        limits.check_state_target(service_state, servicer_userid)
        body: dict[str, Any] = {"open_kfid": open_kfid, "external_userid": external_userid,
                                "service_state": service_state}
        if servicer_userid:
            body["servicer_userid"] = limits.check_userid(servicer_userid, "servicer_userid")
        doc = self.call("POST", "/cgi-bin/kf/service_state/trans", body)
        code = str(doc.get("msg_code", ""))
        if code and self.recorder is not None:  # a send on it is recorded with the session
            from kfcli.core.sends import remember_code

            remember_code(code, open_kfid, external_userid, directory=self.recorder.journal.dir)
        return code

    # ------------------------------------------------------------------ messages

    def send_message(self, *, open_kfid: str, external_userid: str | None = None,
                     msgtype: str, content: dict[str, Any], msgid: str | None = None,
                     touser: str | None = None, record: bool = True) -> SendResult:
        """Send one message; returns its whole outcome (`SendResult`).

        `external_userid` is the customer (WeCom's field `touser`; `touser=` is accepted as
        another name for it). `content` is the body of `msgtype`, e.g. {"content": "hi"} for
        text (`kfcli.core.messages` builds them). A msgid is always sent (generated when not
        given): WeCom keeps msgids unique per account, so the network retry this enables can
        never deliver twice.

        With a `recorder` (a store configured: `KfClient(recorder=SendRecorder(store, …))`)
        the message, once delivered, is recorded with its conversation (`kfcli.core.sends`;
        `result.recorded` is False when it was kept in the journal instead); `record=False`
        leaves that to the caller (`BatchSender` records through its ledger).
        """
        customer = _one_customer(external_userid, touser)
        limits.check_open_kfid(open_kfid)
        limits.check_external_userid(customer)
        messages.validate(msgtype, content)
        msgid = limits.check_msgid(msgid) if msgid is not None else new_msgid()
        body = {"touser": customer, "open_kfid": open_kfid, "msgid": msgid, "msgtype": msgtype,
                msgtype: content}
        result = self._send_idempotent("/cgi-bin/kf/send_msg", body)
        if record and self.recorder is not None:
            result = SendResult(result.msgid, result.already_delivered, result.retried,
                                self.recorder.sent(open_kfid, customer, result.msgid, msgtype,
                                                   content))
        return result

    def send_msg(self, *, open_kfid: str, external_userid: str | None = None, msgtype: str,
                 content: dict[str, Any], msgid: str | None = None,
                 touser: str | None = None) -> str:
        """Send one message; returns its msgid. `send_message` returns the whole outcome.

        Why two methods rather than one returning a `str` subclass that carries the flags:
        such a string compares, hashes, formats and serialises as a plain string, so the
        flags vanish silently at the first f-string or `json.dumps`; and making `send_msg`
        return a `SendResult` would break every caller that uses its answer as the msgid.
        So `send_msg` returns the msgid, and the outcome has a type of its own.
        """
        return self.send_message(open_kfid=open_kfid, external_userid=external_userid,
                                 msgtype=msgtype, content=content, msgid=msgid,
                                 touser=touser).msgid

    def send_message_on_event(self, code: str, msgtype: str, content: dict[str, Any], *,
                              msgid: str | None = None) -> SendResult:
        """Answer an event code (welcome, queue, closing words); returns the whole outcome.
        With a `recorder`, recorded in the conversation of the stored event that gave out
        the code (see `send_message`)."""
        limits.check_text("code", code, max_bytes=128)
        messages.validate(msgtype, content, on_event=True)
        msgid = limits.check_msgid(msgid) if msgid is not None else new_msgid()
        body = {"code": code, "msgid": msgid, "msgtype": msgtype, msgtype: content}
        result = self._send_idempotent("/cgi-bin/kf/send_msg_on_event", body)
        if self.recorder is not None:
            result = SendResult(result.msgid, result.already_delivered, result.retried,
                                self.recorder.sent_on_event(code, result.msgid, msgtype,
                                                            content))
        return result

    def send_msg_on_event(self, code: str, msgtype: str, content: dict[str, Any], *,
                          msgid: str | None = None) -> str:
        """Answer an event code; returns the msgid (see `send_msg` for why a plain str).
        `send_message_on_event` returns the whole outcome."""
        return self.send_message_on_event(code, msgtype, content, msgid=msgid).msgid

    def _send_idempotent(self, path: str, body: dict[str, Any]) -> SendResult:
        last = self._last
        last.already_delivered = last.retried = False
        try:
            # WeCom refuses a repeated msgid, which proves a message with it was accepted
            # before: after a dropped connection (our retry), or when the user repeats a send
            # with the same --msgid as the error hint says. Either way it is delivered, once.
            doc, retried = self._call("POST", path, body, retry_safe=True,
                                      accept=_is_duplicate_msgid)
        except NetworkError as exc:
            # The message may have arrived. Repeating with the same msgid is always safe.
            exc.hint = (f"the message may have been delivered; to retry safely, repeat the "
                        f"command with --msgid {body['msgid']}")
            raise
        delivered = doc.get("errcode", 0) != 0  # only an accepted duplicate gets here
        if delivered:
            self._trace("! msgid already delivered earlier")
        last.already_delivered, last.retried = delivered, retried
        msgid = str(body["msgid"]) if delivered else str(doc.get("msgid") or body["msgid"])
        return SendResult(msgid, already_delivered=delivered, retried=retried)

    def sync_msg(self, open_kfid: str, *, cursor: str | None = None, token: str | None = None,
                 limit: int = 1000, voice_format: int | None = None,
                 keep_text: bool = False) -> SyncPage:
        """One page of messages. Empty optional fields are omitted, never sent as "".

        `keep_text`: also keep each message's JSON text as sent (`SyncPage.msg_texts`)."""
        limits.check_open_kfid(open_kfid)
        limits.check_limit(limit, limits.SYNC_LIMIT)
        body: dict[str, Any] = {"open_kfid": open_kfid, "limit": limit}
        if cursor:
            body["cursor"] = limits.check_text("cursor", cursor, max_bytes=64)
        if token:
            body["token"] = limits.check_text("token", token, max_bytes=128)
        if voice_format is not None:
            body["voice_format"] = voice_format
        decode: Callable[[str], dict[str, Any]] | None = None
        if keep_text:
            from kfcli.core.sync import split_page

            decode = split_page
        doc = self.call("POST", "/cgi-bin/kf/sync_msg", body, retry_safe=True, decode=decode)
        _models(None, doc, "msg_list", "/cgi-bin/kf/sync_msg")
        return _model(SyncPage, doc, "/cgi-bin/kf/sync_msg")

    def sync_messages(self, open_kfid: str, *, cursor: str | None = None,
                      token: str | None = None, limit: int = 1000,
                      voice_format: int | None = None) -> MessageStream:
        """Every message from `cursor` on (see `kfcli.core.sync.MessageStream`)."""
        from kfcli.core.sync import MessageStream

        limits.check_limit(limit, limits.SYNC_LIMIT)
        return MessageStream(self, open_kfid, cursor=cursor, token=token, limit=limit,
                             voice_format=voice_format)

    # ------------------------------------------------------------------ customers

    def customer_batchget(self, external_userids: Sequence[str], *,
                          with_context: bool = False) -> CustomerBatch:
        """Up to 100 customers; unknown ids come back in `invalid_external_userid`."""
        if isinstance(external_userids, str):  # one id would be sent letter by letter
            raise ValidationError("external_userids", "expected a list of ids, got a string")
        ids = list(external_userids)
        limits.check_batch("external_userid", ids, limits.BATCH_IDS)
        for uid in ids:
            limits.check_external_userid(uid)
        body: dict[str, Any] = {"external_userid_list": ids}
        if with_context:
            body["need_enter_session_context"] = 1
        doc = self.call("POST", "/cgi-bin/kf/customer/batchget", body, retry_safe=True)
        _models(None, doc, "customer_list", "/cgi-bin/kf/customer/batchget")
        return _model(CustomerBatch, doc, "/cgi-bin/kf/customer/batchget")

    def upgrade_service_config(self) -> dict[str, Any]:
        doc = self.call("GET", "/cgi-bin/kf/customer/get_upgrade_service_config")
        return _strip(doc)

    def upgrade_service(self, *, open_kfid: str, external_userid: str,
                        member_userid: str | None = None, chat_id: str | None = None,
                        wording: str | None = None) -> None:
        """Recommend a dedicated member (`member_userid`, type 1) or a customer group
        (`chat_id`, type 2): exactly one of them."""
        limits.check_open_kfid(open_kfid)
        limits.check_external_userid(external_userid)
        if (member_userid is None) == (chat_id is None):
            raise UsageError("upgrade needs exactly one of a member userid or a group chat_id")
        if member_userid is not None:
            kind, target = 1, {"userid": limits.check_userid(member_userid)}
        else:
            kind, target = 2, {"chat_id": limits.check_chat_id(chat_id or "")}
        if wording is not None:
            target["wording"] = limits.check_text("wording", wording, max_bytes=1024)
        body: dict[str, Any] = {"open_kfid": open_kfid, "external_userid": external_userid,
                                "type": kind, "member" if kind == 1 else "groupchat": target}
        self.call("POST", "/cgi-bin/kf/customer/upgrade_service", body)

    def cancel_upgrade_service(self, *, open_kfid: str, external_userid: str) -> None:
        limits.check_open_kfid(open_kfid)
        limits.check_external_userid(external_userid)
        self.call("POST", "/cgi-bin/kf/customer/cancel_upgrade_service",
                  {"open_kfid": open_kfid, "external_userid": external_userid})

    # ------------------------------------------------------------------ corp, statistics

    def corp_qualification(self) -> dict[str, Any]:
        return _strip(self.call("GET", "/cgi-bin/kf/get_corp_qualification"))

    def corp_statistic(self, open_kfid: str, start_time: int, end_time: int
                       ) -> list[dict[str, Any]]:
        """Daily statistics of an account, [start_time, end_time] as unix midnights."""
        limits.check_open_kfid(open_kfid)
        body = {"open_kfid": open_kfid, "start_time": start_time, "end_time": end_time}
        doc = self.call("POST", "/cgi-bin/kf/get_corp_statistic", body, retry_safe=True)
        return _models(None, doc, "statistic_list", "/cgi-bin/kf/get_corp_statistic")

    def servicer_statistic(self, *, open_kfid: str, start_time: int, end_time: int,
                           servicer_userid: str | None = None) -> list[dict[str, Any]]:
        """Daily statistics of an account's servicers (all of them, or `servicer_userid`)."""
        limits.check_open_kfid(open_kfid)
        body: dict[str, Any] = {"open_kfid": open_kfid, "start_time": start_time,
                                "end_time": end_time}
        if servicer_userid:
            body["servicer_userid"] = limits.check_userid(servicer_userid, "servicer_userid")
        doc = self.call("POST", "/cgi-bin/kf/get_servicer_statistic", body, retry_safe=True)
        return _models(None, doc, "statistic_list", "/cgi-bin/kf/get_servicer_statistic")

    # ------------------------------------------------------------------ knowledge base

    def knowledge_group_add(self, name: str) -> str:
        limits.check_text("name", name, max_chars=limits.KNOWLEDGE_GROUP_CHARS)
        limits.check_not_blank("name", name)
        doc = self.call("POST", "/cgi-bin/kf/knowledge/add_group", {"name": name})
        return _required(doc, "group_id", "/cgi-bin/kf/knowledge/add_group")

    def knowledge_group_delete(self, group_id: str) -> None:
        self.call("POST", "/cgi-bin/kf/knowledge/del_group", {"group_id": group_id})

    def knowledge_group_rename(self, group_id: str, name: str) -> None:
        limits.check_text("name", name, max_chars=limits.KNOWLEDGE_GROUP_CHARS)
        limits.check_not_blank("name", name)
        self.call("POST", "/cgi-bin/kf/knowledge/mod_group", {"group_id": group_id, "name": name})

    def knowledge_groups(self, *, group_id: str | None = None,
                         page_size: int = 500) -> Iterator[dict[str, Any]]:
        """Every group (paging with the cursor)."""
        extra = {"group_id": group_id} if group_id else {}
        yield from self._pages("/cgi-bin/kf/knowledge/list_group", "group_list", extra,
                               page_size)

    def knowledge_intent_add(self, group_id: str, question: dict[str, Any],
                             answers: list[dict[str, Any]],
                             similar_questions: dict[str, Any] | None = None) -> str:
        body: dict[str, Any] = {"group_id": group_id, "question": question, "answers": answers}
        if similar_questions:
            body["similar_questions"] = similar_questions
        limits.check_intent(body)
        doc = self.call("POST", "/cgi-bin/kf/knowledge/add_intent", body)
        return _required(doc, "intent_id", "/cgi-bin/kf/knowledge/add_intent")

    def knowledge_intent_update(self, intent_id: str, **sections: Any) -> None:
        """Replace whole sections (question, similar_questions, answers) of an intent."""
        body = {"intent_id": intent_id, **{k: v for k, v in sections.items() if v is not None}}
        if len(body) == 1:
            raise UsageError("nothing to update: give a question, similar questions or answer")
        limits.check_intent(body, partial=True)
        self.call("POST", "/cgi-bin/kf/knowledge/mod_intent", body)

    def knowledge_intent_delete(self, intent_id: str) -> None:
        self.call("POST", "/cgi-bin/kf/knowledge/del_intent", {"intent_id": intent_id})

    def knowledge_intents(self, *, group_id: str | None = None, intent_id: str | None = None,
                          page_size: int = 500) -> Iterator[dict[str, Any]]:
        extra = {k: v for k, v in (("group_id", group_id), ("intent_id", intent_id)) if v}
        yield from self._pages("/cgi-bin/kf/knowledge/list_intent", "intent_list", extra,
                               page_size)

    def _pages(self, path: str, key: str, extra: dict[str, Any],
               page_size: int) -> Iterator[dict[str, Any]]:
        limits.check_limit(page_size, limits.KNOWLEDGE_LIST_LIMIT)
        cursor = ""
        while True:
            body = {**extra, "limit": page_size}
            if cursor:
                body["cursor"] = cursor
            doc = self.call("POST", path, body, retry_safe=True)
            yield from _models(None, doc, key, path)
            cursor = str(doc.get("next_cursor") or "")
            if not doc.get("has_more") or not cursor:
                return


def new_msgid() -> str:
    """A client-generated msgid: 32 characters of [0-9a-zA-Z_-], unique in practice."""
    import secrets

    return "kfcli" + secrets.token_urlsafe(20)[:27]


def _is_duplicate_msgid(errcode: int, errmsg: str) -> bool:
    # (verify) The code for a repeated msgid is not documented: we take 40058 naming the
    # msgid, the only signal there is.
    return errcode == 40058 and "msgid" in errmsg.lower()


def _deprecated(name: str, instead: str) -> None:
    import warnings

    warnings.warn(f"KfClient.{name} is deprecated (it describes only the calling thread's "
                  f"last call); use {instead}", DeprecationWarning, stacklevel=3)


def _strip(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in ("errcode", "errmsg")}


def _json(resp: Response, path: str, decode: Callable[[str], Any] | None = None
          ) -> dict[str, Any]:
    try:
        doc = decode(resp.text) if decode else resp.json()
    except (ValueError, IndexError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise ResponseError(f"{path}: the server did not answer with JSON (HTTP "
                            f"{resp.status}, {resp.content_type or 'no content type'})",
                            hint="check base_url") from None
    if not isinstance(doc, dict):
        raise ResponseError(f"{path}: the answer is {limits.kind_of(doc)}, not a JSON object",
                            hint="check base_url")
    return doc


def _errcode(doc: dict[str, Any], path: str) -> int:
    errcode = doc.get("errcode", 0)
    if isinstance(errcode, bool) or not isinstance(errcode, int):
        raise ResponseError(f"{path}: errcode is {errcode!r}, not a number")
    return errcode


def _required(doc: dict[str, Any], key: str, path: str) -> str:
    """A string field the call cannot do without."""
    value = doc.get(key)
    if value is None or value == "" or isinstance(value, (dict, list, bool)):
        raise ResponseError(f"{path}: the answer has no {key}")
    return str(value)


M = TypeVar("M")


def _models(model: Any, doc: dict[str, Any], key: str, path: str) -> list[Any]:
    """`doc[key]` as a list of objects (absent = empty), each parsed by `model.from_api`
    (None: kept as dicts). Anything else is a `ResponseError`, not a TypeError later."""
    items = doc.get(key)
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ResponseError(f"{path}: {key} is not a list of objects")
    return items if model is None else [_model(model, item, path) for item in items]


def _model(model: type[M], doc: dict[str, Any], path: str) -> M:
    """`model.from_api(doc)`; an answer of the wrong shape is a ResponseError."""
    try:
        from_api: Callable[[dict[str, Any]], M] = model.from_api  # type: ignore[attr-defined]
        return from_api(doc)
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise ResponseError(f"{path}: unexpected answer ({type(exc).__name__}: {exc})"
                            ) from None


def _one_customer(external_userid: str | None, touser: str | None) -> str:
    if external_userid is not None and touser is not None and external_userid != touser:
        raise UsageError("give external_userid= or touser= (the same id), not two different")
    customer = external_userid if external_userid is not None else touser
    if customer is None:
        raise UsageError("send_message needs external_userid= (the customer)")
    return customer


def _clip(text: str, limit: int = 2000) -> str:
    return text if len(text) <= limit else text[:limit] + f"… [{len(text) - limit} more chars]"


def _rewind(file: BinaryIO) -> None:
    file.seek(0)
    file.truncate()


def _content_type(media_type: str, path: Path) -> str:
    if media_type == "image":
        return "image/png" if path.suffix.lower() == ".png" else "image/jpeg"
    return {"voice": "audio/amr", "video": "video/mp4"}.get(media_type, "application/octet-stream")


__all__ = ["KfClient", "RetryPolicy", "SendResult", "Timeout"]


def _busy(errcode: int) -> str:
    return {45009: "45009 rate limited", 45033: "45033 too many concurrent calls",
            -1: "-1 system busy"}.get(errcode, f"{errcode} busy")


def _disposition_filename(disposition: str) -> str:
    """The filename of a Content-Disposition header: RFC 6266's `filename*=UTF-8''…` when
    given (names in Chinese), else `filename="…"`; '' when there is none."""
    from urllib.parse import unquote

    plain = ""
    for part in _parameters(disposition):
        key, _, value = part.strip().partition("=")
        key, value = key.strip().lower(), value.strip()
        if key == "filename*":
            charset, _, rest = value.partition("'")
            _, _, encoded = rest.partition("'")
            try:
                return unquote(encoded, encoding=charset or "utf-8", errors="strict")
            except (LookupError, UnicodeDecodeError):
                continue
        if key == "filename":
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1].replace('\\"', '"')
            plain = value
    return plain


def _parameters(header: str) -> list[str]:
    """A header's `;`-separated parts, a `;` inside a quoted string not separating (WeCom
    sends file names as they are: "quote;v2 final.pdf")."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in header:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ";" and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts
