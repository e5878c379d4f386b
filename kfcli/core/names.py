"""Customers' nicknames for the views of the archive (transcript, search, CSV, HTML).

WeCom's messages carry only the customer's external_userid; the nickname comes from
`customer/batchget` (kf-api.md §2.8), 100 ids a call. `Nicknames` asks the store's cache
first (`NameStore`), and WeCom only for the customers it has no name for, or a name older
than a day (`MAX_AGE`), in batches of 100: never a call per message, and in a view of many
messages, at most one call per 100 customers a day. A call that fails (no credentials, the
network, a permission) leaves the views with the cached names, or the ids alone: it is said
once (`warn`), never a failure of the command.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from kfcli.core.errors import KfError

if TYPE_CHECKING:
    from kfcli.core.store.base import NameStore

#: A cached nickname older than this (seconds) is asked again of WeCom.
MAX_AGE = 86400
#: customer/batchget takes at most this many ids (kf-api.md §2.8).
BATCH = 100


class Nicknames:
    """The nicknames of customers, cached in the store and refreshed from WeCom.

    `client` makes the WeCom client when one is needed (None: the cache alone); `now` is
    the clock (unix seconds) that ages the cache. Not shared between threads."""

    def __init__(self, store: NameStore, corp_id: str, *,
                 client: Callable[[], Any] | None, now: Callable[[], float],
                 warn: Callable[[str], None] | None = None) -> None:
        self.store = store
        self.corp_id = corp_id
        self._client_factory = client
        self._now = now
        self._warn = warn
        #: Names found so far (a customer with none maps to ""): asked once per run.
        self.known: dict[str, str] = {}
        self._failed = client is None
        self.calls = 0

    def get(self, external_userids: Iterable[str]) -> dict[str, str]:
        """The nicknames of these customers that are known (others are left out)."""
        ids = list(dict.fromkeys(i for i in external_userids if i))
        new = [i for i in ids if i not in self.known]
        if new:
            self._look_up(new)
        return {i: self.known[i] for i in ids if self.known.get(i)}

    def _look_up(self, ids: list[str]) -> None:
        now = self._now()
        cached = self.store.nicknames(self.corp_id, ids)
        for uid, (name, _) in cached.items():
            self.known[uid] = name
        stale = [uid for uid in ids if uid not in cached or now - cached[uid][1] > MAX_AGE]
        for uid in ids:
            self.known.setdefault(uid, "")
        if stale and not self._failed:
            self._refresh(stale, now)

    def _refresh(self, ids: list[str], now: float) -> None:
        from kfcli.core import limits
        from kfcli.core.errors import ValidationError

        valid = []
        for uid in ids:
            try:
                limits.check_external_userid(uid)
            except ValidationError:
                continue  # not an id WeCom could know (a stored oddity): never asked
            valid.append(uid)
        try:
            client = self._client_factory() if self._client_factory else None
            if client is None:
                return
            for i in range(0, len(valid), BATCH):
                part = valid[i:i + BATCH]
                batch = client.customer_batchget(part)
                self.calls += 1
                found = {str(c.get("external_userid") or ""): str(c.get("nickname") or "")
                         for c in batch.customer_list if isinstance(c, dict)}
                # An id WeCom does not resolve is remembered with no name, so that it is
                # not asked again for a day.
                names = {uid: found.get(uid, "") for uid in part}
                self.store.save_nicknames(self.corp_id, names, now)
                self.known.update(names)
        except KfError as exc:
            self._failed = True
            if self._warn is not None:
                self._warn(f"customer nicknames not refreshed ({exc}); showing the ids and "
                           "the names the store had")
