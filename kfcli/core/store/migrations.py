"""One migration runner for every store engine: numbered steps per dialect.

A store keeps its schema version in its `meta` table (`schema_version`, with
`compatible_from` and `migrated_by`, see `base.usable_schema`). Each backend declares its
steps, `{1: (...), 2: (...), …, SCHEMA_VERSION: (...)}`: step N brings a store of version N-1
to N, as a sequence of operations, each an SQL statement or a function of the connection (a
backfill of what older builds did not fill in). A new store runs them all from step 1.

`Migrator.run` applies the steps after the store's version, in order, in one transaction
that one migrating process at a time holds (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: a
transaction advisory lock), and records the new version in the same transaction: a store is
migrated whole or not at all, and processes starting at once do not collide (the others wait
and find it done). A store of a newer schema is never altered: used as it is when its
`compatible_from` allows this build, refused (`SchemaTooNew`, exit 3) otherwise.

Steps are written to be idempotent (`CREATE … IF NOT EXISTS`, a column added only where it
is missing): a store that a build of some version wrote before that version's schema was
final, or one migrated by hand, still migrates.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Generic, TypeAlias, TypeVar

from kfcli.core.store.base import SCHEMA_STEPS, SCHEMA_VERSION, compatible_from, usable_schema

C = TypeVar("C")

#: One operation of a step: an SQL statement, or a function of the connection.
Operation: TypeAlias = "str | Callable[[C], None]"

#: A dialect's steps: step N brings a store from version N-1 to N.
Steps: TypeAlias = "Mapping[int, Sequence[Operation[C]]]"


def pending(version: int, target: int = SCHEMA_VERSION) -> list[int]:
    """The steps a store of schema `version` goes through to reach `target`, in order."""
    return list(range(max(version, 0) + 1, target + 1))


def check_steps(steps: Steps[C]) -> None:
    """A dialect's steps are numbered 1..SCHEMA_VERSION, each described in SCHEMA_STEPS
    (`kfcli store migrate --dry-run` lists them): checked when a backend is imported."""
    if sorted(steps) != pending(0) or set(SCHEMA_STEPS) != set(steps):
        raise AssertionError(f"store migration steps {sorted(steps)} are not 1.."
                             f"{SCHEMA_VERSION} as described in SCHEMA_STEPS")


class Migrator(ABC, Generic[C]):
    """What a backend gives the runner: its connection, its steps, and how to read and write
    its `meta` table. `where` names the store in errors (no password)."""

    def __init__(self, steps: Steps[C], where: str) -> None:
        self.steps = steps
        self.where = where

    @abstractmethod
    def connection(self) -> AbstractContextManager[C]:
        """A connection to read the store's version with (no transaction)."""

    @abstractmethod
    def transaction(self) -> AbstractContextManager[C]:
        """A write transaction that one migrating process at a time holds; others wait."""

    @abstractmethod
    def version(self, conn: C) -> int:
        """The store's schema version; 0 for a new store (no meta table yet)."""

    @abstractmethod
    def meta(self, conn: C) -> dict[str, str]:
        """schema_version, compatible_from and migrated_by, as the store records them."""

    @abstractmethod
    def set_meta(self, conn: C, key: str, value: str) -> None: ...

    @abstractmethod
    def execute(self, conn: C, statement: str) -> None: ...

    def run(self) -> tuple[int, int]:
        """Bring the store to SCHEMA_VERSION: (its version before, after). A store of this
        version is left as it is; so is a newer one this build can use; a newer one it
        cannot use raises SchemaTooNew."""
        with self.connection() as conn:
            before = self.version(conn)
            if before == SCHEMA_VERSION or (
                    before > SCHEMA_VERSION and usable_schema(self.meta(conn), self.where)):
                return before, before
        with self.transaction() as conn:
            version = self.version(conn)  # another process may have got there first
            if version < SCHEMA_VERSION:
                for number in pending(version):
                    for operation in self.steps[number]:
                        if isinstance(operation, str):
                            self.execute(conn, operation)
                        else:
                            operation(conn)
                from kfcli._about import version_line

                for key, value in (("schema_version", str(SCHEMA_VERSION)),
                                   ("compatible_from", str(compatible_from(SCHEMA_VERSION))),
                                   ("migrated_by", version_line())):
                    self.set_meta(conn, key, value)
                return before, SCHEMA_VERSION
            meta = self.meta(conn)
        if version > SCHEMA_VERSION:  # migrated meanwhile by a newer build
            usable_schema(meta, self.where)
        return before, version
