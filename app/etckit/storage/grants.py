"""Who may do what in the database: one PostgreSQL role per program, least privilege.

The owner role (the kit's ``etckit``) runs the migrations and owns every table. Each program
logs in as a role of its own, ``<prefix>_<program>``, holding only the privileges that its
code's SQL needs; PRIVILEGES below is the one table of them, read off the statements each
program runs (auth/sessions.py, auth/tickets.py, main_server/, registry.py,
storage/workbooks.py through the worker's handlers). ``etckit db grant`` applies it as the
owner after ``etckit db upgrade``; tests/test_grants.py runs each program's code under its
own role on a real PostgreSQL.

Beyond table privileges, the service registry has row-level security: every program reads
every row (clients look their brokers' keys up there), but writes only rows of its own kind,
so a worker's password cannot register a wssvc (or a broker) whose key the ZAP gatekeeper
would then admit.

SQLite has no roles: there every program is the file's owner.
"""

from __future__ import annotations

import re

from .base import Database, StorageError

PROGRAMS = ("main_server", "wssvc", "broker", "worker")

_RW = ("SELECT", "INSERT", "UPDATE", "DELETE")
_REGISTRY = {"services": _RW, "schema_version": ("SELECT",)}

# program -> table -> privileges ("SELECT (a, b)": those columns only).
PRIVILEGES: dict[str, dict[str, tuple[str, ...]]] = {
    "main_server": {
        "users": _RW,                       # logins, logout, sweep of expired anonymous users
        "sessions": _RW,                    # create, check, revoke, sweep
        "api_tokens": _RW,                  # create, list, use, revoke, sweep of dead rows
        "workbooks": ("SELECT (id, owner_id)",),  # may this user open that workbook?
        "workbook_shares": ("SELECT (workbook_id, user_id)",),  # ... or is it shared?
        "assignments": ("SELECT", "INSERT", "UPDATE"),  # INSERT ... ON CONFLICT DO UPDATE
        "services": ("SELECT",),            # live wssvc to assign (main_server never registers)
        "schema_version": ("SELECT",),      # /healthz
    },
    "wssvc": {
        # is the session behind a ticket or a socket still live? Nothing else of a session.
        "sessions": ("SELECT (token_hash, revoked_at, expires_at)",),
        "api_tokens": ("SELECT (token_hash, revoked_at, expires_at)",),  # the same, for tokens
        "used_tickets": ("SELECT", "INSERT", "DELETE"),  # single use; old ones swept
        # may the user behind a workbook socket still use it? (else 4004, wssvc/sessions.py)
        "workbooks": ("SELECT (id, owner_id)",),
        "workbook_shares": ("SELECT (workbook_id, user_id)",),
        **_REGISTRY,
    },
    "broker": dict(_REGISTRY),
    "worker": {
        "workbooks": _RW,
        "sources": _RW,
        "scenes": _RW,
        "calculations": _RW,
        "spectra": _RW,
        "item_history": _RW,
        "workbook_shares": _RW,
        "folders": _RW,
        "folder_entries": _RW,
        # share by name or e-mail; owners' names in the Workbook List
        "users": ("SELECT (id, kind, subject, display_name, email)",),
        **_REGISTRY,
    },
}

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")
_PRIVILEGE = re.compile(r"^(SELECT|INSERT|UPDATE|DELETE)( \([a-z_]+(, [a-z_]+)*\))?$")


def role_name(program: str, prefix: str = "etckit") -> str:
    """The database role a program logs in as, e.g. etckit_wssvc."""
    if program not in PRIVILEGES:
        raise ValueError(f"unknown program {program!r}; known: {', '.join(PROGRAMS)}")
    if not _NAME.match(prefix):
        raise ValueError(f"role prefix {prefix!r} must be lower-case letters, digits and _")
    return f"{prefix}_{program}"


def grant_statements(tables: list[str], prefix: str = "etckit") -> list[str]:
    """The statements that give each program's role exactly PRIVILEGES on these tables (all
    the schema's tables: every other privilege they held on any of them is revoked first)."""
    missing = sorted({t for grants in PRIVILEGES.values() for t in grants} - set(tables))
    if missing:
        raise StorageError(f"tables {', '.join(missing)} do not exist: run etckit db upgrade")
    out: list[str] = []
    for program, grants in PRIVILEGES.items():
        role = role_name(program, prefix)
        out += [f"REVOKE ALL ON TABLE {table} FROM {role}" for table in sorted(tables)]
        for table, privileges in grants.items():
            assert all(_PRIVILEGE.match(p) for p in privileges), privileges
            out.append(f"GRANT {', '.join(privileges)} ON TABLE {table} TO {role}")
    return out + _registry_policies(prefix)


def _registry_policies(prefix: str) -> list[str]:
    out = ["ALTER TABLE services ENABLE ROW LEVEL SECURITY",
           "DROP POLICY IF EXISTS read_all ON services",
           "CREATE POLICY read_all ON services FOR SELECT USING (true)"]
    for program in PROGRAMS:
        role = role_name(program, prefix)
        policy = f"{role}_own_rows"
        out += [f"DROP POLICY IF EXISTS {policy} ON services",
                f"CREATE POLICY {policy} ON services FOR ALL TO {role}"
                f" USING (kind = '{program}') WITH CHECK (kind = '{program}')"]
    return out


async def apply_grants(db: Database, prefix: str = "etckit") -> list[str]:
    """Run grant_statements as the tables' owner, in one transaction; returns them.

    The roles must exist (the kit's etckit_postgresql role creates them); a missing one is
    a StorageError naming it."""
    if db.dialect != "postgresql":
        raise StorageError("database roles need PostgreSQL; SQLite has none to grant to")
    async with db.transaction() as tx:
        rows = await tx.fetchall("SELECT tablename FROM pg_tables"
                                 " WHERE schemaname = current_schema()")
        statements = grant_statements([r["tablename"] for r in rows], prefix)
        for statement in statements:
            await tx.execute(statement)
    return statements
