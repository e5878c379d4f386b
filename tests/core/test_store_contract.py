"""The store contract: a few small protocols that each backend implements, `Store` their union
(STYLE.md practice 13)."""

from __future__ import annotations

import inspect

import pytest

from kfcli.core.store import base

PARTS = (base.CursorStore, base.OutboxStore, base.Locks, base.PullStateStore,
         base.MessageStore, base.ConsumerStore, base.MediaStore, base.NameStore,
         base.StoreAdmin)


def _methods(cls: type) -> set[str]:
    return {name for name, value in vars(cls).items()
            if inspect.isfunction(value) and not name.startswith("__")}


def test_the_store_is_the_union_of_its_parts_and_adds_nothing():
    assert base.Store.__abstractmethods__ == frozenset().union(
        *(part.__abstractmethods__ for part in PARTS))
    assert _methods(base.Store) == set()
    # Every method is declared by exactly one part.
    declared = [name for part in PARTS for name in _methods(part)]
    assert len(declared) == len(set(declared))


@pytest.mark.parametrize("part", PARTS, ids=lambda part: part.__name__)
def test_each_part_is_small(part):
    assert 1 <= len(_methods(part)) <= 12


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_each_backend_implements_every_part(backend):
    if backend == "postgres":
        pytest.importorskip("psycopg")
        from kfcli.core.store.postgres import PostgresStore as cls
    else:
        from kfcli.core.store.sqlite import SqliteStore as cls
    assert not getattr(cls, "__abstractmethods__", None)
    for part in (*PARTS, base.PullStore, base.Store):
        assert part in cls.__mro__

