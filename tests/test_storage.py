"""The storage interface behaves the same on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest

from etckit.registry import Registration, live
from etckit.storage import MIGRATIONS, IntegrityError, StorageError, current_version, upgrade


async def _user(tx, uid: str, subject: str | None = None) -> None:
    await tx.execute(
        "INSERT INTO users (id, issuer, subject, kind, created_at) "
        "VALUES (:id, 'test', :sub, 'fake', :now)",
        {"id": uid, "sub": subject or uid, "now": time.time()},
    )


async def test_upgrade_records_every_migration_once(db):
    assert await current_version(db) == len(MIGRATIONS)
    assert await upgrade(db) == []  # second run: nothing to do
    rows = await db.fetchall("SELECT version, name FROM schema_version ORDER BY version")
    assert [r["version"] for r in rows] == [m.version for m in MIGRATIONS]


async def test_first_tables_exist(db):
    for table in ("users", "sessions", "workbooks", "services"):
        assert await db.fetchval(f"SELECT COUNT(*) AS n FROM {table}") == 0


async def test_commit_and_read_back(db):
    async with db.transaction() as tx:
        await _user(tx, "u1")
        await tx.execute(
            "INSERT INTO workbooks (id, owner_id, name, created_at, updated_at) "
            "VALUES ('w1', 'u1', 'Deep field', 1.5, 2.5)"
        )
    row = await db.fetchone("SELECT name, created_at, revision FROM workbooks WHERE id = 'w1'")
    assert row == {"name": "Deep field", "created_at": 1.5, "revision": 1}


async def test_error_rolls_back_the_whole_transaction(db):
    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            await _user(tx, "u1")
            raise RuntimeError("boom")
    assert await db.fetchval("SELECT COUNT(*) AS n FROM users") == 0


async def test_unique_key_is_an_integrity_error_and_keeps_the_first_row(db):
    async with db.transaction() as tx:
        await _user(tx, "u1", "alice")
    with pytest.raises(IntegrityError):
        async with db.transaction() as tx:
            await _user(tx, "u2", "alice")
    rows = await db.fetchall("SELECT id FROM users")
    assert rows == [{"id": "u1"}]


async def test_foreign_keys_are_enforced_and_cascade(db):
    with pytest.raises(IntegrityError):
        await db.execute(
            "INSERT INTO workbooks (id, owner_id, name, created_at, updated_at) "
            "VALUES ('w1', 'nobody', 'x', 0, 0)"
        )
    async with db.transaction() as tx:
        await _user(tx, "u1")
        await tx.execute("INSERT INTO workbooks (id, owner_id, name, created_at, updated_at) "
                         "VALUES ('w1', 'u1', 'x', 0, 0)")
    assert await db.execute("DELETE FROM users WHERE id = 'u1'") == 1
    assert await db.fetchval("SELECT COUNT(*) AS n FROM workbooks") == 0


async def test_bad_sql_is_a_storage_error(db):
    with pytest.raises(StorageError):
        await db.fetchall("SELECT nope FROM nowhere")
    await db.ping()  # the connection is still usable


async def test_percent_and_casts_survive_parameter_rewriting(db):
    async with db.transaction() as tx:
        await _user(tx, "100%", "s")
    assert await db.fetchval("SELECT id FROM users WHERE id LIKE '100%'") == "100%"
    assert await db.fetchval("SELECT CAST(:x AS INTEGER) + 1 AS y", {"x": "41"}) == 42


async def test_concurrent_writers_do_not_lose_updates(db):
    async with db.transaction() as tx:
        await _user(tx, "u1")
        await tx.execute("INSERT INTO workbooks (id, owner_id, name, created_at, updated_at) "
                         "VALUES ('w1', 'u1', 'x', 0, 0)")

    async def bump() -> None:
        async with db.transaction() as tx:
            await tx.lock(7)
            rev = await tx.fetchval("SELECT revision FROM workbooks WHERE id = 'w1'")
            await tx.execute("UPDATE workbooks SET revision = :r WHERE id = 'w1'", {"r": rev + 1})

    await asyncio.gather(*(bump() for _ in range(20)))
    assert await db.fetchval("SELECT revision FROM workbooks WHERE id = 'w1'") == 21


async def test_registry_live_and_stale(db):
    fresh = Registration(db, "wssvc", pool="p1", endpoint="h:1", interval=0.05, liveness=5,
                         load=lambda: 3)
    idle = Registration(db, "wssvc", pool="p2", endpoint="h:2", interval=0.05, liveness=5)
    await fresh.start()
    await idle.start()
    try:
        rows = await live(db, "wssvc", liveness=5)
        assert [r["endpoint"] for r in rows] == ["h:2", "h:1"]  # least loaded first
        await idle.halt()
        await db.execute("UPDATE services SET heartbeat_at = heartbeat_at - 100 WHERE id = :id",
                         {"id": idle.id})
        rows = await live(db, "wssvc", liveness=5)
        assert [r["endpoint"] for r in rows] == ["h:1"]
        assert [r["id"] for r in await live(db, "wssvc", 5, pool="p1")] == [fresh.id]
        before = rows[0]["heartbeat_at"]
        await asyncio.sleep(0.3)
        after = (await live(db, "wssvc", 5))[0]["heartbeat_at"]
        assert after > before  # the heartbeat task refreshes it
    finally:
        await fresh.stop()
        await idle.stop()
    assert await live(db, "wssvc", liveness=5) == []


async def test_newer_schema_is_refused(db):
    await db.execute("INSERT INTO schema_version (version, name, applied_at) "
                     "VALUES (999, 'from the future', 0)")
    with pytest.raises(StorageError, match="newer than this etckit"):
        await upgrade(db)


async def test_the_inputs_of_many_calculations_read_the_spectra_once(db, monkeypatch):
    """A source edit checks every calculation that uses it: the workbook's sources and their
    uploaded spectra are read once for all of them, not once per calculation (each read was
    up to the user's whole spectrum quota, inside the edit's write transaction)."""
    from etckit.storage import spectra
    from etckit.storage import workbooks as wb

    async with db.transaction() as tx:
        await _user(tx, "u1")
        await wb.insert_workbook(tx, {"id": "w1", "name": "W", "description": "",
                                      "created_at": 1.0, "updated_at": 1.0}, "u1")
        await spectra.insert(tx, "p1", "w1", "flat", "ascii", "mJy",
                             {"wave_um": [1.0, 2.0], "flux": [3.0, 3.0]})
        await wb.insert_item(tx, "source", "s1", "w1", "star",
                             {"spectrum": {"kind": "uploaded", "spectrum_id": "p1"}})
        for scene in ("f1", "f2"):
            await wb.insert_item(tx, "scene", scene, "w1", scene,
                                 {"sources": [{"source_id": "s1"}]})
        for i in range(6):
            await wb.insert_item(tx, "calculation", f"c{i}", "w1", f"c{i}", {"i": i},
                                 scene="f1" if i % 2 else "f2")
    reads = []
    original = spectra.inline

    async def counted(tx, workbook, sources):
        reads.append(workbook)
        await original(tx, workbook, sources)

    monkeypatch.setattr(spectra, "inline", counted)
    async with db.transaction() as tx:
        calcs = await wb.dependents(tx, "source", await wb.item(tx, "source", "s1"))
        found = await wb.inputs_of_all(tx, calcs)
        one_by_one = [await wb.inputs(tx, c) for c in calcs]
    assert reads == ["w1"] + ["w1"] * len(calcs)  # once for all, then once per single read
    assert found == one_by_one and len(found) == 6
    assert found[0][2]["s1"]["spectrum"]["table"]["wave_um"] == [1.0, 2.0]
    assert sorted(f[0]["i"] for f in found) == list(range(6))


def _hold(path, begin: str) -> sqlite3.Connection:
    """Another connection holding the (rollback-journal) file: IMMEDIATE is a writer busy
    creating it, EXCLUSIVE keeps even readers out."""

    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE IF NOT EXISTS t (x)")
    holder.execute(begin)
    holder.execute("INSERT INTO t VALUES (1)")
    return holder


async def test_a_sqlite_open_waits_for_a_lock_released_within_busy_timeout(tmp_path):
    """Opening while another process holds the file (creating it, switching it to WAL) fails
    with "locked" before SQLite's busy handler runs; the open retries until busy_timeout."""
    from etckit.storage.sqlite import SqliteDatabase

    holder = _hold(tmp_path / "db.sqlite", "BEGIN IMMEDIATE")
    asyncio.get_running_loop().call_later(0.5, holder.execute, "ROLLBACK")
    db = SqliteDatabase(str(tmp_path / "db.sqlite"), busy_timeout=5)
    started = time.monotonic()
    await db.connect()
    try:
        assert time.monotonic() - started >= 0.4  # it waited for the lock...
        assert await db.fetchval("PRAGMA journal_mode") == "wal"  # ...and then opened it
    finally:
        await db.close()
        holder.close()


async def test_a_failed_sqlite_open_closes_its_connection_thread(tmp_path):
    import threading

    from etckit.storage.sqlite import SqliteDatabase

    holder = _hold(tmp_path / "db.sqlite", "BEGIN EXCLUSIVE")
    before = threading.active_count()
    db = SqliteDatabase(str(tmp_path / "db.sqlite"), busy_timeout=0.3)
    try:
        with pytest.raises(StorageError, match="database is locked"):
            await db.connect()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    for _ in range(50):  # aiosqlite's thread ends once its stop is processed
        if threading.active_count() == before:
            break
        await asyncio.sleep(0.02)
    assert threading.active_count() == before
