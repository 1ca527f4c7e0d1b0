"""The database: one async interface, two backends (SQLite and PostgreSQL).

SQL in this package is written once, with named parameters (``:name``); the PostgreSQL
backend rewrites them to psycopg's ``%(name)s``. Identifiers are text generated in Python and
times are seconds since the epoch (double precision), so the same statements run on both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from ..metrics import watch_database
from .base import Database, IntegrityError, StorageError, Transaction
from .migrate import MIGRATIONS, check_schema, current_version, upgrade


def open_database(url: str, *, pool_min: int = 1, pool_max: int = 10,
                  busy_timeout: float = 10.0, options: Mapping[str, str] | None = None
                  ) -> Database:
    """A Database for a URL: sqlite:///path or postgresql://... (not yet connected).

    options: libpq connection parameters over the URL's (user, password, sslmode,
    sslrootcert; empty values are left out); SQLite ignores them."""
    if url.startswith("sqlite:///"):
        from .sqlite import SqliteDatabase

        return SqliteDatabase(url[len("sqlite:///"):], busy_timeout=busy_timeout)
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresDatabase

        return PostgresDatabase(url, pool_min=pool_min, pool_max=pool_max,
                                busy_timeout=busy_timeout, options=options)
    raise StorageError(f"unsupported database URL {url!r}")


async def connect(cfg) -> Database:  # cfg: etckit.config.Config
    d = cfg.database
    options = {k: d.values[k] for k in ("user", "password", "sslmode", "sslrootcert")}
    db = open_database(d.url, pool_min=d.pool_min, pool_max=d.pool_max,
                       busy_timeout=d.busy_timeout, options=options)
    await db.connect()
    watch_database(db)
    return db


@asynccontextmanager
async def connected(cfg) -> AsyncIterator[Database]:  # cfg: etckit.config.Config
    """The configured database for the length of a ``async with`` block (short commands)."""
    db = await connect(cfg)
    try:
        yield db
    finally:
        await db.close()


__all__ = ["Database", "Transaction", "StorageError", "IntegrityError", "open_database",
           "connect", "connected", "upgrade", "check_schema", "current_version", "MIGRATIONS"]
