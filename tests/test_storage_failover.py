"""PostgreSQL failover seen from etckit's storage layer: a primary with a streaming standby
(synchronous, as the kit sets it up), a multi-host URL with target_session_attrs=read-write,
the primary crashing mid-transaction and the standby promoted."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from etckit.storage import StorageError, open_database
from tests.support.pgserver import PgServer
from tests.support.system import free_port, postgres_bindir_or_skip


@pytest.fixture
def pg_pair():
    bindir = postgres_bindir_or_skip()
    primary, standby = PgServer(bindir, free_port()), PgServer(bindir, free_port())
    try:
        primary.start(durable=True)
        with psycopg.connect(primary.admin_url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE etckit")
        standby.start(standby_of=primary, durable=True)
        # Synchronous, as etckit_postgresql sets it up: a commit returns once the standby has it.
        with psycopg.connect(primary.admin_url, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET synchronous_standby_names = 'ANY 1 (*)'")
            conn.execute("ALTER SYSTEM SET synchronous_commit = 'on'")
            conn.execute("SELECT pg_reload_conf()")
        yield primary, standby
    finally:
        standby.stop()
        primary.stop()


def _url(*servers: PgServer) -> str:
    hosts = ",".join(f"127.0.0.1:{s.port}" for s in servers)
    return (f"postgresql://postgres@{hosts}/etckit"
            "?target_session_attrs=read-write&connect_timeout=3")


async def _rows(db) -> list[int]:
    async with db.read() as tx:
        return [r["n"] for r in await tx.fetchall("SELECT n FROM drill ORDER BY n")]


async def test_the_pool_reaches_the_promoted_standby_with_every_acknowledged_row(pg_pair):
    primary, standby = pg_pair
    db = open_database(_url(primary, standby), pool_min=3, pool_max=4, busy_timeout=10)
    await db.connect()
    try:
        async with db.transaction() as tx:
            await tx.execute("CREATE TABLE drill (n integer PRIMARY KEY)")
        for n in range(1, 21):
            async with db.transaction() as tx:
                await tx.execute("INSERT INTO drill (n) VALUES (:n)", {"n": n})

        # A transaction open when the primary crashes fails with a StorageError (the
        # client's `unavailable`), never another exception, and leaves nothing behind.
        with pytest.raises(StorageError):
            async with db.transaction() as tx:
                await tx.execute("INSERT INTO drill (n) VALUES (100)")
                await asyncio.to_thread(primary.crash)
                await tx.execute("INSERT INTO drill (n) VALUES (101)")
        # No primary at all: unavailable as well.
        with pytest.raises(StorageError):
            async with db.transaction() as tx:
                await tx.execute("INSERT INTO drill (n) VALUES (102)")

        await asyncio.to_thread(standby.promote)
        # The very next transaction reaches the new primary: no stale pooled connection
        # (the pool held three to the old one) makes it fail.
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO drill (n) VALUES (21)")
        for n in range(22, 26):
            async with db.transaction() as tx:
                await tx.execute("INSERT INTO drill (n) VALUES (:n)", {"n": n})
        assert await _rows(db) == list(range(1, 26))
    finally:
        await db.close()

