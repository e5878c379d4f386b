"""The media archive: the bytes of every image, voice, video and file message, kept in the
store after WeCom's copy expires (three days after the message was sent).

`commit_page` notes each new media message as *pending* in the same transaction as the
message itself, so a media message is never stored without its archive entry. `Archiver`
then fetches what is due with `media/get`, streaming to a temporary file (memory stays flat
whatever the size) that the store keeps: content-addressed files beside a SQLite store, parts
in a PostgreSQL store. A failed fetch never touches the message: a passing failure (network,
rate limit, a full disk) is tried again later, backing off from a minute to six hours; WeCom
saying the media_id is invalid (40007: expired or never valid) marks it *failed* for good,
with the reason. `msg sync` and the receiver archive after each pull; `kfcli store media
--retry` tries everything not archived right away.

    from kfcli.core.archive import Archiver
    result = Archiver(client, store, corp_id).run()
    print(result.archived, result.failed, result.retrying)
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kfcli.core.errors import ApiError, KfError, UnsafeDirectory, ValidationError
from kfcli.core.store.base import MediaItem, MediaStore

if TYPE_CHECKING:
    from kfcli.core.client import KfClient

#: WeCom's answers that no retry can change: the media_id is unknown or expired.
PERMANENT = {40007: "WeCom's copy expired before it was archived (40007)",
             830002: "larger than WeCom sends in one piece (830002)"}
#: Seconds before the first retry; doubled each time up to MAX_BACKOFF.
FIRST_BACKOFF = 60.0
MAX_BACKOFF = 6 * 3600.0
#: A claimed entry is not handed to another archiver for this long.
LEASE = 600.0
BATCH = 50


def backoff(attempts: int) -> float:
    """Seconds to wait before retry number `attempts` (1, 2, …)."""
    from kfcli.core.outage import backoff as policy

    return policy(attempts, first=FIRST_BACKOFF, longest=MAX_BACKOFF)


@dataclass
class ArchiveResult:
    archived: int = 0
    failed: int = 0  # for good
    retrying: int = 0  # a passing failure: tried again later
    bytes: int = 0
    #: One per failed fetch: {"msgid", "msgtype", "errcode", "reason", "retry"}.
    failures: list[dict[str, object]] = field(default_factory=list)

    @property
    def tried(self) -> int:
        return self.archived + self.failed + self.retrying

    @property
    def errors(self) -> list[str]:
        """The failures, a line each: "MSGID (image): REASON"."""
        return [f"{f['msgid']} ({f['msgtype']}): {f['reason']}" for f in self.failures]

    def as_dict(self) -> dict[str, object]:
        return {"archived": self.archived, "failed": self.failed, "retrying": self.retrying,
                "bytes": self.bytes, "errors": [dict(f) for f in self.failures]}


class Archiver:
    """Fetches due media of one corp into the store. Thread-safe as far as its client and
    store are; several archivers (processes, hosts) may run at once: each claims entries."""

    def __init__(self, client: KfClient, store: MediaStore, corp_id: str, *,
                 progress: Callable[[ArchiveResult, MediaItem], None] | None = None) -> None:
        self.client = client
        self.store = store
        self.corp_id = corp_id
        self.progress = progress
        #: Why the last `fetch` failed (the KfError or OSError), None after a success.
        self.error: BaseException | None = None

    def run(self, *, open_kfid: str | None = None, force: bool = False,
            limit: int | None = None) -> ArchiveResult:
        """Fetch what is due (with `force`: everything pending or failed), at most `limit`."""
        result = ArchiveResult()
        after = 0
        while limit is None or result.tried < limit:
            want = BATCH if limit is None else min(BATCH, limit - result.tried)
            items = self.store.media_due(self.corp_id, open_kfid=open_kfid, after_seq=after,
                                         limit=want, force=force, lease=LEASE)
            if not items:
                break
            for n, item in enumerate(items):
                after = item.seq
                try:
                    if self.progress is not None:
                        self.progress(result, item)
                    self.fetch(item, result)
                except BaseException:
                    # Interrupted: give back the claims on what was not fetched, so the
                    # next run need not wait for them to run out.
                    with contextlib.suppress(KfError):
                        self.store.media_reset(self.corp_id, [i.seq for i in items[n:]])
                    raise
        return result

    def fetch(self, item: MediaItem, result: ArchiveResult | None = None) -> MediaItem | None:
        """Fetch one entry now; returns it archived, or None (the failure is recorded in the
        store and in `result`)."""
        result = result if result is not None else ArchiveResult()
        attempts = item.attempts + 1
        self.error = None
        try:
            file = self.store.new_media_file()
            try:
                size, content_type, filename = self.client.media_download(item.media_id, file)
            except BaseException:
                file.close()
                raise
            stored = self.store.media_archived(self.corp_id, item.seq, file,
                                               content_type=content_type, filename=filename)
        except ValidationError as exc:  # a media_id WeCom could never have given
            self._failed(item, result, exc, exc.message, retry_at=None)
            return None
        except ApiError as exc:
            reason = PERMANENT.get(exc.errcode)
            if reason is not None:
                self._failed(item, result, exc, reason, retry_at=None)
            else:
                self._failed(item, result, exc, f"{exc.errcode} {exc.errmsg}".strip(),
                             retry_at=time.time() + backoff(attempts))
            return None
        except UnsafeDirectory:  # the media directory is not ours alone: stop, say where
            raise
        except KfError as exc:  # network, a store that cannot take the file, …
            self._failed(item, result, exc, exc.message,
                         retry_at=time.time() + backoff(attempts))
            return None
        except OSError as exc:  # the download's temporary file (a full disk)
            self._failed(item, result, exc, f"cannot write the download "
                         f"({exc.strerror or exc})", retry_at=time.time() + backoff(attempts))
            return None
        result.archived += 1
        result.bytes += size
        return stored

    def _failed(self, item: MediaItem, result: ArchiveResult, exc: BaseException,
                reason: str, *, retry_at: float | None) -> None:
        self.error = exc
        if retry_at is None:
            result.failed += 1
        else:
            result.retrying += 1
        result.failures.append({"msgid": item.msgid, "msgtype": item.msgtype,
                                "errcode": getattr(exc, "errcode", None), "reason": reason,
                                "retry": retry_at is not None})
        # Should the store fail here, the lease runs out and the entry is due again.
        with contextlib.suppress(KfError):
            self.store.media_failed(self.corp_id, item.seq, reason, retry_at=retry_at)
