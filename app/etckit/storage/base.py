"""The storage interface shared by both backends."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any

Params = Mapping[str, Any] | None
Row = dict[str, Any]


class StorageError(Exception):
    """The database could not do what was asked."""


class IntegrityError(StorageError):
    """A constraint (unique key, foreign key) refused the change."""


class Transaction(abc.ABC):
    """Statements inside one transaction; committed when the block ends without error."""

    @abc.abstractmethod
    async def execute(self, sql: str, params: Params = None) -> int:
        """Run a statement; returns the number of rows it changed."""

    @abc.abstractmethod
    async def fetchall(self, sql: str, params: Params = None) -> list[Row]: ...

    async def fetchone(self, sql: str, params: Params = None) -> Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, params: Params = None) -> Any:
        row = await self.fetchone(sql, params)
        return None if row is None else next(iter(row.values()))

    @abc.abstractmethod
    async def lock(self, key: int) -> None:
        """Hold an exclusive lock named by key until the transaction ends (across processes)."""


class Database(abc.ABC):
    dialect: str

    @abc.abstractmethod
    async def connect(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    def transaction(self) -> Any:
        """``async with db.transaction() as tx:`` — commits on success, rolls back on error."""

    def read(self) -> Any:
        """``async with db.read() as tx:`` — a read-only transaction: on SQLite a deferred
        BEGIN (no write lock, so other processes' writers are never kept waiting), on
        PostgreSQL READ ONLY. Backends override it; this default is a plain transaction."""
        return self.transaction()

    async def execute(self, sql: str, params: Params = None) -> int:
        async with self.transaction() as tx:
            return await tx.execute(sql, params)

    async def fetchall(self, sql: str, params: Params = None) -> list[Row]:
        async with self.transaction() as tx:
            return await tx.fetchall(sql, params)

    async def fetchone(self, sql: str, params: Params = None) -> Row | None:
        async with self.transaction() as tx:
            return await tx.fetchone(sql, params)

    async def fetchval(self, sql: str, params: Params = None) -> Any:
        async with self.transaction() as tx:
            return await tx.fetchval(sql, params)

    def pool_use(self) -> tuple[int, int, int, int]:
        """(connections busy, idle, the most it may open, transactions waiting for one), read
        by the metrics endpoint's thread: plain counters, no I/O. Backends override it."""
        return (0, 0, 0, 0)

    async def ping(self) -> None:
        """Raise StorageError unless the database answers."""
        if await self.fetchval("SELECT 1 AS one") != 1:
            raise StorageError("database did not answer SELECT 1")

    async def __aenter__(self) -> Database:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
