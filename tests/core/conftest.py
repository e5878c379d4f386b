"""Fixtures of the store tests: each runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest

from kfcli.core.store import open_store
from tests import pgutil


def _location(backend: str, tmp_path, *, migrated: bool):
    if backend == "sqlite":
        yield str(tmp_path / "store.db")
    else:
        with pgutil.fresh_database(migrated=migrated) as url:
            yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """A new store's location: a SQLite file, or a fresh PostgreSQL database's URL."""
    yield from _location(request.param, tmp_path, migrated=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_store_url(request, tmp_path):
    """Like `store_url`, but a PostgreSQL database kfcli has never used (no tables)."""
    yield from _location(request.param, tmp_path, migrated=False)


@pytest.fixture
def store(store_url: str):
    with open_store(store_url) as s:
        yield s
