"""Numbered migrations, recorded in schema_version, safe to run twice and concurrently.

All migrations run in one transaction that first takes an exclusive lock (PostgreSQL: an
advisory lock; SQLite: BEGIN IMMEDIATE), so two ``etckit db upgrade`` at once serialize: the
second finds everything applied and does nothing. Statements are separated by ``;`` at line
ends and written in SQL both backends accept.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from .base import Database, StorageError, Transaction

log = logging.getLogger(__name__)

MIGRATION_LOCK = 0x657463_6B6974  # "etckit"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        return [s.strip() for s in self.sql.split(";\n") if s.strip()]


MIGRATIONS: list[Migration] = [
    Migration(1, "users, sessions, workbooks, service registry", """
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('sso', 'anonymous', 'fake')),
    display_name TEXT NOT NULL DEFAULT '',
    email TEXT NOT NULL DEFAULT '',
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION,
    UNIQUE (issuer, subject)
);
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    revoked_at DOUBLE PRECISION
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE TABLE workbooks (
    id TEXT PRIMARY KEY,
    owner_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    revision INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX workbooks_owner ON workbooks (owner_id);
CREATE TABLE services (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('main_server', 'wssvc', 'broker', 'worker')),
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    pool TEXT NOT NULL DEFAULT '',
    endpoint TEXT NOT NULL DEFAULT '',
    extra TEXT NOT NULL DEFAULT '{}',
    load INTEGER NOT NULL DEFAULT 0,
    version TEXT NOT NULL DEFAULT '',
    started_at DOUBLE PRECISION NOT NULL,
    heartbeat_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX services_kind_pool ON services (kind, pool)
"""),
    Migration(2, "single-use wssvc tickets", """
CREATE TABLE used_tickets (
    id TEXT PRIMARY KEY,
    expires_at DOUBLE PRECISION NOT NULL
)
"""),
    Migration(3, "sources, scenes and calculations inside workbooks", """
CREATE TABLE sources (
    id TEXT PRIMARY KEY,
    workbook_id TEXT NOT NULL REFERENCES workbooks (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX sources_workbook ON sources (workbook_id);
CREATE TABLE scenes (
    id TEXT PRIMARY KEY,
    workbook_id TEXT NOT NULL REFERENCES workbooks (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX scenes_workbook ON scenes (workbook_id);
CREATE TABLE calculations (
    id TEXT PRIMARY KEY,
    workbook_id TEXT NOT NULL REFERENCES workbooks (id) ON DELETE CASCADE,
    scene_id TEXT NOT NULL REFERENCES scenes (id),
    name TEXT NOT NULL,
    data TEXT NOT NULL,
    result TEXT,
    status TEXT NOT NULL DEFAULT 'pending',
    error TEXT NOT NULL DEFAULT '',
    revision INTEGER NOT NULL DEFAULT 1,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX calculations_workbook ON calculations (workbook_id);
CREATE INDEX calculations_scene ON calculations (scene_id)
"""),
    Migration(4, "wssvc assignments", """
CREATE TABLE assignments (
    scope TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    service_id TEXT NOT NULL,
    pool TEXT NOT NULL,
    assigned_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX assignments_user ON assignments (user_id)
"""),
    Migration(5, "item revisions and history, who edited, engine and data version of results",
              """
ALTER TABLE workbooks ADD COLUMN item_revision INTEGER NOT NULL DEFAULT 1;
ALTER TABLE workbooks ADD COLUMN edited_by TEXT NOT NULL DEFAULT '';
ALTER TABLE sources ADD COLUMN item_revision INTEGER NOT NULL DEFAULT 1;
ALTER TABLE sources ADD COLUMN edited_by TEXT NOT NULL DEFAULT '';
ALTER TABLE scenes ADD COLUMN item_revision INTEGER NOT NULL DEFAULT 1;
ALTER TABLE scenes ADD COLUMN edited_by TEXT NOT NULL DEFAULT '';
ALTER TABLE calculations ADD COLUMN item_revision INTEGER NOT NULL DEFAULT 1;
ALTER TABLE calculations ADD COLUMN edited_by TEXT NOT NULL DEFAULT '';
ALTER TABLE calculations ADD COLUMN engine_version TEXT NOT NULL DEFAULT '';
ALTER TABLE calculations ADD COLUMN data_version TEXT NOT NULL DEFAULT '';
CREATE TABLE item_history (
    item_id TEXT NOT NULL,
    item_revision INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('source', 'scene', 'calculation')),
    workbook_id TEXT NOT NULL REFERENCES workbooks (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    data TEXT NOT NULL,
    scene_id TEXT,
    edited_by TEXT NOT NULL,
    edited_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (item_id, item_revision)
);
CREATE INDEX item_history_workbook ON item_history (workbook_id)
"""),
    Migration(6, "uploaded spectra inside workbooks", """
CREATE TABLE spectra (
    id TEXT PRIMARY KEY,
    workbook_id TEXT NOT NULL REFERENCES workbooks (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    format TEXT NOT NULL,
    flux_unit TEXT NOT NULL,
    points INTEGER NOT NULL,
    wave_min_um DOUBLE PRECISION NOT NULL,
    wave_max_um DOUBLE PRECISION NOT NULL,
    data TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX spectra_workbook ON spectra (workbook_id)
"""),
    Migration(7, "workbook shares, folders of the Workbook List", """
CREATE TABLE workbook_shares (
    workbook_id TEXT NOT NULL REFERENCES workbooks (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    access TEXT NOT NULL CHECK (access IN ('read', 'write', 'grant')),
    granted_by TEXT NOT NULL,
    granted_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (workbook_id, user_id)
);
CREATE INDEX workbook_shares_user ON workbook_shares (user_id);
CREATE TABLE folders (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX folders_user ON folders (user_id);
CREATE TABLE folder_entries (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    workbook_id TEXT NOT NULL REFERENCES workbooks (id) ON DELETE CASCADE,
    folder_id TEXT NOT NULL REFERENCES folders (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, workbook_id)
);
CREATE INDEX folder_entries_folder ON folder_entries (folder_id)
"""),
    Migration(8, "personal API tokens", """
CREATE TABLE api_tokens (
    token_hash TEXT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    scope TEXT NOT NULL CHECK (scope IN ('read', 'write')),
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    last_used_at DOUBLE PRECISION,
    revoked_at DOUBLE PRECISION
);
CREATE INDEX api_tokens_user ON api_tokens (user_id)
"""),
]


async def _ensure_version_table(tx: Transaction) -> None:
    await tx.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
        " applied_at DOUBLE PRECISION NOT NULL)"
    )


async def current_version(db: Database) -> int:
    async with db.transaction() as tx:
        await _ensure_version_table(tx)
        return int(await tx.fetchval("SELECT COALESCE(MAX(version), 0) AS v FROM schema_version"))


async def upgrade(db: Database, target: int | None = None) -> list[int]:
    """Apply every migration not yet recorded (up to target); returns the versions applied."""
    known = {m.version for m in MIGRATIONS}
    if len(known) != len(MIGRATIONS) or sorted(known) != list(range(1, len(MIGRATIONS) + 1)):
        raise StorageError("migrations must be numbered 1, 2, 3, ... without gaps")
    applied: list[int] = []
    async with db.transaction() as tx:
        await tx.lock(MIGRATION_LOCK)
        await _ensure_version_table(tx)
        have = int(await tx.fetchval("SELECT COALESCE(MAX(version), 0) AS v FROM schema_version"))
        if have > len(MIGRATIONS):
            raise StorageError(
                f"database schema is version {have}, newer than this etckit knows "
                f"({len(MIGRATIONS)}): upgrade etckit instead of downgrading the database"
            )
        for migration in MIGRATIONS:
            if migration.version <= have or (target is not None and migration.version > target):
                continue
            log.info("applying migration", extra={"version": migration.version,
                                                  "migration": migration.name})
            for statement in migration.statements():
                await tx.execute(statement)
            await tx.execute(
                "INSERT INTO schema_version (version, name, applied_at) VALUES (:v, :n, :t)",
                {"v": migration.version, "n": migration.name, "t": time.time()},
            )
            applied.append(migration.version)
    return applied


async def check_schema(db: Database) -> None:
    """Raise StorageError unless the database answers and its schema is the one expected."""
    try:
        have = int(await db.fetchval("SELECT COALESCE(MAX(version), 0) AS v FROM schema_version"))
    except StorageError as exc:
        raise StorageError(f"database schema is missing (run etckit db upgrade): {exc}") from exc
    if have != len(MIGRATIONS):
        raise StorageError(
            f"database schema is at version {have}, this etckit needs {len(MIGRATIONS)}"
            " (run etckit db upgrade)"
        )
