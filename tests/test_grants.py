"""Database roles per program on a real PostgreSQL: each program's own code works under its
role (storage.grants.PRIVILEGES), and what it has no business doing is refused."""

from __future__ import annotations

import json
import time
import uuid

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from etckit.auth import sessions, tickets
from etckit.config import load
from etckit.main_server.assign import assign
from etckit.messaging.protocol import dumps
from etckit.registry import Registration, live
from etckit.storage import StorageError, check_schema, open_database, shares, upgrade
from etckit.storage import workbooks as wb
from etckit.storage.grants import PRIVILEGES, PROGRAMS, apply_grants, grant_statements, role_name
from etckit.worker.dispatch import handle

PREFIX = "etckit_t"  # roles are per cluster: the test's own names
OWNER = f"{PREFIX}_owner"
CFG = load(None, environ={})


def _ensure_role(conn, name: str) -> None:
    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone() is None:
        conn.execute(f"CREATE ROLE {name} LOGIN")


@pytest.fixture
async def roles(pg_server):
    """A database owned by OWNER, migrated and granted by OWNER; program -> its Database."""
    name = f"g_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server.admin_url, autocommit=True) as conn:
        for role in [OWNER, *(role_name(p, PREFIX) for p in PROGRAMS)]:
            _ensure_role(conn, role)
        conn.execute(f'CREATE DATABASE "{name}" OWNER {OWNER}')
    url = pg_server.url(name)
    owner = open_database(url, options={"user": OWNER})
    await owner.connect()
    await upgrade(owner)
    await apply_grants(owner, PREFIX)
    await apply_grants(owner, PREFIX)  # a second run (every deploy) changes nothing
    dbs = {"owner": owner}
    for program in PROGRAMS:
        dbs[program] = open_database(url, options={"user": role_name(program, PREFIX)})
        await dbs[program].connect()
    yield dbs
    for db in dbs.values():
        await db.close()


async def _refused(coro, what: str = "permission denied") -> str:
    with pytest.raises(StorageError) as caught:
        await coro
    assert what in str(caught.value), caught.value
    return str(caught.value)


async def _worker(db, user: str, message: dict) -> dict:
    who = dumps({"client": "c1", "user": user, "workbook": message.get("workbook")})
    reply, _ = await handle(db, CFG, [who, dumps(message)])
    assert reply is not None and len(reply) > 1, message
    return json.loads(reply[1])


async def test_each_program_runs_its_own_code_under_its_own_role(roles):
    main, wssvc, broker, worker = (roles[p] for p in PROGRAMS)
    for db in (main, wssvc, broker, worker):
        assert await db.fetchval("SELECT current_user AS u") in {
            role_name(p, PREFIX) for p in PROGRAMS}
    # main_server: logins and sessions
    alice = await sessions.upsert_user(main, issuer="fake", subject="alice", kind="fake")
    alice = await sessions.upsert_user(main, issuer="fake", subject="alice", kind="fake",
                                       display_name="Alice")
    token, _ = await sessions.create_session(main, alice, 3600)
    assert (await sessions.session_user(main, token)).id == alice.id
    await check_schema(main)
    # wssvc, broker, worker register and beat; everyone reads the registry
    regs = [Registration(wssvc, "wssvc", pool="p1", extra={"brokers": 1}),
            Registration(broker, "broker", pool="p1"), Registration(worker, "worker", pool="p1")]
    for reg in regs:
        await reg.start()
        await reg.beat()
    assert [r["kind"] for r in await live(broker, "wssvc", 10, pool="p1")] == ["wssvc"]
    assert len(await live(wssvc, "broker", 10, pool="p1")) == 1
    # main_server assigns a wssvc and issues a ticket; wssvc redeems it once
    chosen = await assign(main, user_id=alice.id, purpose="list", workbook=None, liveness=10)
    assert chosen.pool == "p1"
    key = Ed25519PrivateKey.generate()
    ticket = tickets.issue(key, user=alice.id, session=sessions.token_hash(token), pool="p1")
    assert (await tickets.redeem(wssvc, [key.public_key()], ticket, pool="p1")).user == alice.id
    with pytest.raises(tickets.TicketError):
        await tickets.redeem(wssvc, [key.public_key()], ticket, pool="p1")
    assert await sessions.live_sessions(wssvc, [sessions.token_hash(token)])
    # the worker: a workbook with a source and a scene, renamed, copied, deleted
    made = await _worker(worker, alice.id, {"id": 1, "type": "workbook.create", "name": "W"})
    book = made["workbook"]["id"]
    opened = await _worker(worker, alice.id, {"id": 2, "type": "workbook.open",
                                              "workbook": book})
    source = await _worker(worker, alice.id, {"id": 3, "type": "source.add", "workbook": book,
                                              "name": "S", "data": opened["defaults"]["source"]})
    placed = {"sources": [{"source_id": source["item"]["id"], "offset_x_arcsec": 0.0,
                           "offset_y_arcsec": 0.0}]}
    scene = await _worker(worker, alice.id, {"id": 4, "type": "scene.add", "workbook": book,
                                             "name": "F", "data": placed})
    assert scene["type"] != "error", scene
    # sharing and folders (migration 7): the worker finds bob by name, wssvc checks the
    # rights behind its sockets, main_server lets bob open it
    bob = await sessions.upsert_user(main, issuer="fake", subject="bob", kind="fake",
                                     display_name="Bob", email="bob@example.org")
    shared = await _worker(worker, alice.id, {"id": 10, "type": "workbook.share",
                                              "workbook": book, "user": "bob@example.org",
                                              "access": "read"})
    assert shared["type"] == "workbook.shared", shared
    listed = await _worker(worker, bob.id, {"id": 11, "type": "workbook.list"})
    assert listed["workbooks"][0]["owner"] == "Alice"
    folder = await _worker(worker, bob.id, {"id": 12, "type": "folder.create", "name": "B"})
    moved = await _worker(worker, bob.id, {"id": 13, "type": "folder.move", "workbook": book,
                                           "folder": folder["folder"]["id"]})
    assert moved["type"] == "workbook.moved", moved
    assert await shares.revoked(wssvc, [(bob.id, book), (alice.id, book),
                                        ("nobody", book)]) == {("nobody", book)}
    assert (await main.fetchone("SELECT w.owner_id, s.user_id FROM workbooks w LEFT JOIN"
                                " workbook_shares s ON s.workbook_id = w.id AND s.user_id = :u"
                                " WHERE w.id = :id", {"id": book, "u": bob.id}))["user_id"]
    await _refused(wssvc.fetchall("SELECT access FROM workbook_shares"))
    edited = await _worker(worker, alice.id, {"id": 9, "type": "source.edit", "workbook": book,
                                              "source": source["item"]["id"],
                                              "base_revision": source["item"]["item_revision"],
                                              "data": {**opened["defaults"]["source"],
                                                       "redshift": 1.0}})
    assert edited["type"] != "error", edited  # writes the item's history too
    renamed = await _worker(worker, alice.id, {"id": 5, "type": "workbook.rename",
                                               "workbook": book, "name": "W2",
                                               "base_revision": made["workbook"]["item_revision"]})
    assert renamed["type"] != "error", renamed
    copied = await _worker(worker, alice.id, {"id": 6, "type": "workbook.copy",
                                              "workbook": book})
    assert copied["type"] != "error", copied
    gone = await _worker(worker, alice.id, {"id": 7, "type": "workbook.delete",
                                            "workbook": book})
    assert gone["type"] != "error", gone
    listed = await _worker(worker, alice.id, {"id": 8, "type": "workbook.list"})
    assert len(listed["workbooks"]) == 1  # the copy
    # main_server: may alice open that workbook? (owner_id only)
    assert (await main.fetchone("SELECT owner_id FROM workbooks WHERE id = :id",
                                {"id": listed["workbooks"][0]["id"]}))["owner_id"] == alice.id
    # logout of an anonymous user takes its workbooks (the cascade runs as the owner)
    anon = await sessions.create_anonymous(main, 60)
    anon_token, _ = await sessions.create_session(main, anon, 60)
    await _worker(worker, anon.id, {"id": 9, "type": "workbook.create", "name": "A"})
    await sessions.logout(main, anon_token)
    assert await roles["owner"].fetchval("SELECT COUNT(*) AS n FROM workbooks"
                                         " WHERE owner_id = :u", {"u": anon.id}) == 0
    await sessions.logout(main, token)
    assert await sessions.sweep_expired(main) == 0
    for reg in regs:
        await reg.stop()
    assert await roles["owner"].fetchval("SELECT COUNT(*) AS n FROM services") == 0


async def test_wssvc_cannot_write_workbooks_nor_read_what_a_session_does_not_need(roles):
    wssvc, owner = roles["wssvc"], roles["owner"]
    await owner.execute("INSERT INTO users (id, issuer, subject, kind, created_at)"
                        " VALUES ('u1', 'fake', 'bob', 'fake', 0)")
    await owner.execute("INSERT INTO sessions (token_hash, user_id, created_at, expires_at)"
                        " VALUES ('h1', 'u1', 0, 1e12)")
    assert await sessions.live_sessions(wssvc, ["h1"]) == {"h1"}
    await _refused(wssvc.fetchall("SELECT user_id FROM sessions"))
    await _refused(wssvc.fetchall("SELECT * FROM sessions"))
    await _refused(wssvc.fetchall("SELECT * FROM users"))
    await _refused(wssvc.fetchall("SELECT * FROM workbooks"))
    row = {"id": "w1", "name": "x", "description": "", "created_at": 0.0, "updated_at": 0.0}
    async with wssvc.transaction() as tx:
        await _refused(wb.insert_workbook(tx, row, "u1"))
    await _refused(wssvc.execute("UPDATE sessions SET revoked_at = NULL"))
    await _refused(wssvc.execute("DELETE FROM sessions"))


async def test_every_role_is_kept_to_its_own_tables_and_rows(roles):
    main, broker, worker = roles["main_server"], roles["broker"], roles["worker"]
    await _refused(main.fetchall("SELECT description FROM workbooks"))
    await _refused(main.execute("DELETE FROM workbooks"))
    await _refused(main.execute("DELETE FROM services"))
    await _refused(broker.fetchall("SELECT * FROM users"))
    await _refused(broker.fetchall("SELECT id FROM workbooks"))
    await _refused(worker.fetchall("SELECT token_hash FROM sessions"))
    await _refused(worker.fetchall("SELECT * FROM users"))
    await _refused(worker.execute("CREATE TABLE mine (x INTEGER)"))
    # a worker's password cannot register a wssvc (whose key a broker would admit), nor
    # touch another program's row
    fake = Registration(worker, "wssvc", pool="p1")
    await _refused(fake.start(), "row-level security")
    real = Registration(broker, "broker", pool="p1")
    await real.start()
    assert await worker.execute("DELETE FROM services WHERE kind = 'broker'") == 0
    assert await worker.execute("UPDATE services SET kind = 'worker'") == 0
    assert len(await live(worker, "broker", 10, pool="p1")) == 1
    await real.stop()


async def test_every_table_of_the_schema_is_granted_to_some_program(roles):
    """A new migration's table must be added to PRIVILEGES (else no program can use it)."""
    rows = await roles["owner"].fetchall("SELECT tablename FROM pg_tables"
                                         " WHERE schemaname = current_schema()")
    granted = {table for grants in PRIVILEGES.values() for table in grants}
    assert {r["tablename"] for r in rows} == granted


def test_grant_statements_revoke_first_and_refuse_a_missing_table():
    statements = grant_statements(sorted({t for g in PRIVILEGES.values() for t in g}), "x")
    revokes = [s for s in statements if s.startswith("REVOKE")]
    assert revokes and statements.index(revokes[0]) == 0
    assert "GRANT SELECT (token_hash, revoked_at, expires_at) ON TABLE sessions TO x_wssvc" \
        in statements
    with pytest.raises(StorageError, match="used_tickets, workbook_shares, workbooks do not exist"):
        grant_statements(["users", "sessions"], "x")
    with pytest.raises(ValueError, match="role prefix"):
        role_name("wssvc", "bad-name; DROP")


async def test_sslmode_and_role_reach_the_driver(pg_server):
    """database.user and database.sslmode are the connection's (the test server has no TLS,
    so require is refused; the kit's PostgreSQL has TLS and the kit asks verify-full)."""
    url = pg_server.create_database(f"s_{uuid.uuid4().hex[:8]}")
    cfg = load(None, environ={"ETCKIT_DATABASE__URL": url, "ETCKIT_DATABASE__SSLMODE": "require",
                              "ETCKIT_DATABASE__BUSY_TIMEOUT": "2"})
    from etckit.storage import connect

    with pytest.raises(StorageError, match="cannot connect"):
        await connect(cfg)
    cfg = load(None, environ={"ETCKIT_DATABASE__URL": url, "ETCKIT_DATABASE__USER": "postgres",
                              "ETCKIT_DATABASE__SSLMODE": "disable"})
    db = await connect(cfg)
    try:
        assert await db.fetchval("SELECT current_user AS u") == "postgres"
    finally:
        await db.close()


def test_a_short_database_password_is_refused_without_showing_it():
    from etckit.config import ConfigError

    with pytest.raises(ConfigError) as caught:
        load(None, environ={"ETCKIT_DATABASE__PASSWORD": "hunter2-short"})
    assert "database.password" in str(caught.value) and "hunter2" not in str(caught.value)
    with pytest.raises(ConfigError, match="database.sslmode"):
        load(None, environ={"ETCKIT_DATABASE__SSLMODE": "verify"})


def test_db_grant_prints_the_statements_and_refuses_sqlite(tmp_path, capsys, monkeypatch):
    from etckit.cli import main

    assert main(["db", "grant", "--print", "--role-prefix", "site"]) == 0
    assert "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE workbooks TO site_worker;" \
        in capsys.readouterr().out
    monkeypatch.setenv("ETCKIT_DATABASE__URL", f"sqlite:///{tmp_path / 'x.db'}")
    assert main(["db", "grant"]) == 1
    assert "etckit db: database roles need PostgreSQL" in capsys.readouterr().err


async def test_api_tokens_under_the_roles_of_main_server_and_wssvc(roles):
    """main_server makes, lists, uses and revokes tokens; wssvc only asks whether one is live
    (auth/tokens.py's live_logins), and can read no token's owner, name or scope."""
    from etckit.auth import tokens

    main, wssvc = roles["main_server"], roles["wssvc"]
    carol = await sessions.upsert_user(main, issuer="fake", subject="carol", kind="fake")
    secret, made = await tokens.create(main, carol, name="t", scope="read", lifetime=60,
                                       limit=5)
    assert [t.id for t in await tokens.list_tokens(main, carol.id)] == [made.id]
    user, _, digest = await tokens.authenticate(main, secret)
    assert user.id == carol.id
    login = tokens.TICKET_PREFIX + digest
    assert await tokens.live_logins(wssvc, [login]) == {login}
    await _refused(wssvc.fetchall("SELECT user_id FROM api_tokens"))
    await _refused(wssvc.fetchall("SELECT scope FROM api_tokens"))
    await _refused(wssvc.execute("UPDATE api_tokens SET revoked_at = NULL"))
    await _refused(wssvc.execute("DELETE FROM api_tokens"))
    await _refused(roles["worker"].fetchall("SELECT token_hash FROM api_tokens"))
    assert await tokens.revoke(main, carol.id, made.id)
    assert await tokens.live_logins(wssvc, [login]) == set()
    assert await tokens.sweep_dead(main, now=time.time() + tokens.KEEP_SECONDS + 1) == 1
