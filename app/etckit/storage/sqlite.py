"""SQLite backend (aiosqlite): WAL, busy timeout, write transactions with BEGIN IMMEDIATE.

Several processes on one machine share the file safely: WAL lets readers run beside the one
writer, and BEGIN IMMEDIATE takes the write lock up front (waiting up to busy_timeout), so two
transactions never deadlock upgrading a read lock to a write lock.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from ..metrics import transaction_timer
from .base import Database, IntegrityError, Params, Row, StorageError, Transaction


class _SqliteTx(Transaction):
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn

    async def execute(self, sql: str, params: Params = None) -> int:
        try:
            cur = await self.conn.execute(sql, dict(params or {}))
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc
        except sqlite3.Error as exc:
            raise StorageError(str(exc)) from exc
        return cur.rowcount

    async def fetchall(self, sql: str, params: Params = None) -> list[Row]:
        try:
            cur = await self.conn.execute(sql, dict(params or {}))
            rows = await cur.fetchall()
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc
        except sqlite3.Error as exc:
            raise StorageError(str(exc)) from exc
        return [dict(r) for r in rows]

    async def lock(self, key: int) -> None:
        # BEGIN IMMEDIATE already holds the database's single write lock.
        return None


class SqliteDatabase(Database):
    dialect = "sqlite"

    def __init__(self, path: str, *, busy_timeout: float = 10.0) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._conn: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def connect(self) -> None:
        """Open the file in WAL mode. Opening while another process creates the database or
        switches it to WAL can fail with "locked" before any busy handler runs, so a busy open
        is retried until busy_timeout; a connection that failed is always closed (its thread
        would otherwise keep the process from exiting)."""
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                self._conn = await self._open()
                return
            except sqlite3.OperationalError as exc:
                busy = "locked" in str(exc) or "busy" in str(exc)
                if not busy or time.monotonic() >= deadline:
                    raise StorageError(f"cannot open SQLite database {self.path}: {exc}") from exc
            except sqlite3.Error as exc:
                raise StorageError(f"cannot open SQLite database {self.path}: {exc}") from exc
            await asyncio.sleep(0.05)

    async def _open(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None, timeout=self.busy_timeout)
        try:
            conn.row_factory = sqlite3.Row
            await conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            await conn.execute("PRAGMA foreign_keys = ON")
            await conn.execute("PRAGMA synchronous = NORMAL")
            mode = await (await conn.execute("PRAGMA journal_mode = WAL")).fetchone()
            if self.path != ":memory:" and mode and mode[0].lower() != "wal":
                raise StorageError(f"SQLite database {self.path} refused WAL mode ({mode[0]})")
        except BaseException:
            await conn.close()
            raise
        return conn

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    def pool_use(self) -> tuple[int, int, int, int]:
        """One connection, used by one transaction at a time (its lock's waiters wait)."""
        if self._conn is None:
            return (0, 0, 1, 0)
        busy = int(self._lock.locked())
        return (busy, 1 - busy, 1, len(getattr(self._lock, "_waiters", None) or ()))

    def transaction(self) -> Any:
        """A write transaction: BEGIN IMMEDIATE takes the database's write lock up front."""
        return self._begin("BEGIN IMMEDIATE")

    def read(self) -> Any:
        """A read transaction: a deferred BEGIN takes no write lock (WAL readers run beside
        the writer); a statement that writes inside it fails."""
        return self._begin("BEGIN")

    @asynccontextmanager
    async def _begin(self, begin: str) -> AsyncIterator[Transaction]:
        if self._conn is None:
            raise StorageError("database is not connected")
        async with self._lock, transaction_timer():
            try:
                if self._conn.in_transaction:  # left open by a caller cancelled mid-way
                    await self._conn.execute("ROLLBACK")
                await self._conn.execute(begin)
            except sqlite3.Error as exc:
                raise StorageError(f"cannot start a transaction: {exc}") from exc
            try:
                yield _SqliteTx(self._conn)
            except BaseException:
                await self._conn.execute("ROLLBACK")
                raise
            else:
                try:
                    await self._conn.execute("COMMIT")
                except sqlite3.Error as exc:
                    await self._conn.execute("ROLLBACK")
                    raise StorageError(f"commit failed: {exc}") from exc
