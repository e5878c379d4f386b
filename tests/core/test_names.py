"""`kfcli.core.names.Nicknames`: the store's cache first, WeCom (customer/batchget, 100 ids a
call) only for names missing or older than a day, never a call per message; a failing call
leaves the cached names and is said once. On SQLite and PostgreSQL (the `store` fixture)."""

from __future__ import annotations

from kfcli.core.errors import NetworkError
from kfcli.core.models import CustomerBatch
from kfcli.core.names import MAX_AGE, Nicknames


class Client:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.fail = False

    def customer_batchget(self, ids):
        if self.fail:
            raise NetworkError("connection refused")
        self.calls.append(list(ids))
        return CustomerBatch.from_api({"customer_list": [
            {"external_userid": i, "nickname": f"name of {i[-3:]}"} for i in ids
            if not i.endswith("999")]})


def test_cached_refreshed_daily_batched_by_100(store) -> None:
    client, now, warnings = Client(), [1_790_000_000.0], []
    ids = [f"wmNames{n:025d}" for n in range(250)] + ["wmNames" + "9" * 25]

    def names() -> Nicknames:
        return Nicknames(store, "ww1", client=lambda: client, now=lambda: now[0],
                         warn=warnings.append)

    first = names()
    got = first.get(ids + ids)  # repeated ids are asked once
    assert [len(c) for c in client.calls] == [100, 100, 51]
    assert got[ids[0]] == "name of 000" and ids[-1] not in got  # WeCom knows no such one
    assert first.get(ids) == got and len(client.calls) == 3  # known in this run
    names().get(ids)
    assert len(client.calls) == 3  # cached in the store: a new run asks WeCom nothing
    now[0] += MAX_AGE + 1
    names().get(ids[:5])
    assert client.calls[-1] == ids[:5]  # a day later: refreshed
    now[0] += MAX_AGE + 1
    client.fail = True
    failing = names()
    assert failing.get(ids[:2]) == {ids[0]: "name of 000", ids[1]: "name of 001"}
    assert failing.get(ids[5:7]) == {ids[5]: "name of 005", ids[6]: "name of 006"}
    assert len(warnings) == 1 and "not refreshed" in warnings[0]  # said once


def test_without_a_client_the_cache_alone(store) -> None:
    store.save_nicknames("ww1", {"wmA": "阿花"}, 1.0)
    names = Nicknames(store, "ww1", client=None, now=lambda: 10**10)
    assert names.get(["wmA", "wmB"]) == {"wmA": "阿花"}
    assert store.nicknames("ww2", ["wmA"]) == {}  # per corp
