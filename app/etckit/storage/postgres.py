"""PostgreSQL backend: psycopg 3 with an async connection pool."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import psycopg_pool
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from ..metrics import transaction_timer
from .base import Database, IntegrityError, Params, Row, StorageError, Transaction

# A dead connection drains the pool at most this often (seconds): many transactions failing
# together in a failover replace the pool's connections once, not once each.
DRAIN_INTERVAL = 1.0

_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def to_pyformat(sql: str) -> str:
    """Rewrite ``:name`` parameters to psycopg's ``%(name)s`` (``::casts`` are left alone)."""
    return _NAMED.sub(r"%(\1)s", sql.replace("%", "%%"))


class _PgTx(Transaction):
    def __init__(self, conn: psycopg.AsyncConnection) -> None:
        self.conn = conn

    async def _run(self, sql: str, params: Params):
        try:
            return await self.conn.execute(to_pyformat(sql), dict(params or {}))
        except psycopg.errors.IntegrityError as exc:
            raise IntegrityError(str(exc).strip()) from exc
        except psycopg.Error as exc:
            raise StorageError(str(exc).strip()) from exc

    async def execute(self, sql: str, params: Params = None) -> int:
        cur = await self._run(sql, params)
        return cur.rowcount

    async def fetchall(self, sql: str, params: Params = None) -> list[Row]:
        cur = await self._run(sql, params)
        return list(await cur.fetchall())

    async def lock(self, key: int) -> None:
        await self._run("SELECT pg_advisory_xact_lock(:key)", {"key": key})


class PostgresDatabase(Database):
    dialect = "postgresql"

    def __init__(self, url: str, *, pool_min: int = 1, pool_max: int = 10,
                 busy_timeout: float = 10.0, options: Mapping[str, str] | None = None) -> None:
        self.url = url
        # libpq parameters over the URL's (a password here never shows in an error)
        self.options = {k: v for k, v in (options or {}).items() if v}
        self.pool_min = pool_min
        self.pool_max = pool_max
        self.busy_timeout = busy_timeout
        self._pool: AsyncConnectionPool | None = None
        self._drained_at = -DRAIN_INTERVAL

    async def connect(self) -> None:
        pool = AsyncConnectionPool(
            self.url, min_size=self.pool_min, max_size=self.pool_max, open=False,
            kwargs={"row_factory": dict_row, "autocommit": False, **self.options},
            timeout=self.busy_timeout,
        )
        try:
            await pool.open(wait=True, timeout=self.busy_timeout)
        except Exception as exc:
            await pool.close()
            safe = re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", self.url)
            role = f" as {self.options['user']}" if "user" in self.options else ""
            raise StorageError(f"cannot connect to PostgreSQL at {safe}{role}: {exc}") from exc
        self._pool = pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def pool_use(self) -> tuple[int, int, int, int]:
        pool = self._pool
        if pool is None:
            return (0, 0, self.pool_max, 0)
        stats = pool.get_stats()
        size, idle = stats.get("pool_size", 0), stats.get("pool_available", 0)
        return (size - idle, idle, self.pool_max, stats.get("requests_waiting", 0))

    def transaction(self) -> Any:
        return self._begin(read_only=False)

    def read(self) -> Any:
        """READ ONLY: a statement that writes inside it fails."""
        return self._begin(read_only=True)

    @asynccontextmanager
    async def _begin(self, *, read_only: bool) -> AsyncIterator[Transaction]:
        pool = self._pool
        if pool is None:
            raise StorageError("database is not connected")
        try:
            async with pool.connection() as conn:
                try:
                    async with transaction_timer(), conn.transaction():
                        if read_only:
                            await conn.execute("SET TRANSACTION READ ONLY")
                        yield _PgTx(conn)
                finally:
                    if conn.broken:
                        await self._drain(pool)
        except psycopg.errors.IntegrityError as exc:
            raise IntegrityError(str(exc).strip()) from exc
        except psycopg_pool.PoolTimeout as exc:
            raise StorageError(f"no database connection free: {exc}") from exc
        except psycopg.Error as exc:  # the connection failed, or was closed under us
            raise StorageError(f"database connection failed: {exc}") from exc

    async def _drain(self, pool: AsyncConnectionPool) -> None:
        """A connection died (the server stopped, or a failover): the pool's idle ones are
        likely dead too. Replace them all, so the next transaction gets a new connection (to
        the new primary, with a multi-host URL) instead of failing on a stale one."""
        now = time.monotonic()
        if now - self._drained_at < DRAIN_INTERVAL:
            return
        self._drained_at = now
        await pool.drain()
