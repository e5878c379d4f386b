"""Fixtures of the store tests: each runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest

from kfcli.core.store import open_store
from tests import pgutil


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """A new store's location: a SQLite file, or a fresh PostgreSQL database's URL."""
    if request.param == "sqlite":
        yield str(tmp_path / "store.db")
    else:
        with pgutil.fresh_database() as url:
            yield url


@pytest.fixture
def store(store_url: str):
    with open_store(store_url) as s:
        yield s
