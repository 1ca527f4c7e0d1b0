"""POST /api/assign: a live, least loaded wssvc, sticky per scope, never a dead one."""

from __future__ import annotations

import json
import time

from etckit.auth import tickets
from etckit.main_server.assign import rendezvous

from .conftest import fake_login, public_keys


async def add_wssvc(db, sid: str, *, load: int = 0, brokers: int = 1, age: float = 0.0,
                    port: int = 8081) -> None:
    now = time.time()
    await db.execute(
        "INSERT INTO services (id, kind, host, pid, pool, endpoint, extra, load, version,"
        " started_at, heartbeat_at) VALUES (:id, 'wssvc', 'h', 1, :pool, :ep, :extra, :load,"
        " 'x', :now, :beat)",
        {"id": sid, "pool": f"pool-{sid}", "ep": f"wss://front-{sid}.example.org:{port}",
         "extra": json.dumps({"brokers": brokers}), "load": load, "now": now,
         "beat": now - age})


async def assign(client, **body):
    response = await client.post("/api/assign", json=body)
    return response.status_code, await response.get_json()


async def me(client) -> str:
    return (await (await client.get("/api/me")).get_json())["user"]["id"]


async def test_no_live_wssvc_is_503(app, db):
    client = app.test_client()
    await fake_login(client)
    await add_wssvc(db, "dead", age=60)  # stale heartbeat
    await add_wssvc(db, "lonely", brokers=0)  # no broker behind it
    status, body = await assign(client, purpose="list")
    assert status == 503 and body["error"] == "no_wssvc"


async def test_least_loaded_live_wssvc_with_a_ticket(app, db):
    client = app.test_client()
    await fake_login(client)
    await add_wssvc(db, "busy", load=10)
    await add_wssvc(db, "idle", load=1)
    await add_wssvc(db, "stale", load=0, age=60)
    await add_wssvc(db, "nobroker", load=0, brokers=0)
    status, body = await assign(client, purpose="list")
    assert status == 200, body
    assert body["service"] == "idle"
    assert body["url"] == f"wss://front-idle.example.org:8081/ws?ticket={body['ticket']}"
    ticket = tickets.verify(public_keys(), body["ticket"], pool="pool-idle")
    assert ticket.user == await me(client) and ticket.purpose == "list"
    rows = await db.fetchall("SELECT scope, service_id, pool FROM assignments")
    assert rows == [{"scope": f"list:{ticket.user}", "service_id": "idle",
                     "pool": "pool-idle"}]


async def test_assignment_sticks_until_the_wssvc_dies(app, db):
    client = app.test_client()
    await fake_login(client)
    user = await me(client)
    await add_wssvc(db, "a", load=1)
    await add_wssvc(db, "b", load=2)
    assert (await assign(client, purpose="list"))[1]["service"] == "a"
    await db.execute("UPDATE services SET load = 50 WHERE id = 'a'")
    # the user's list stays where its other tabs are, although b is now less loaded
    assert (await assign(client, purpose="list"))[1]["service"] == "a"
    await db.execute("INSERT INTO workbooks (id, owner_id, name, created_at, updated_at)"
                     " VALUES ('wb1', :u, 'w', 0, 0)", {"u": user})
    # a workbook not yet placed goes where rendezvous hashing of its id puts it (wb1: a)
    assert rendezvous("wb1", [{"id": "a"}, {"id": "b"}])["id"] == "a"
    status, body = await assign(client, purpose="workbook", workbook="wb1")
    assert status == 200 and body["service"] == "a"
    ticket = tickets.verify(public_keys(), body["ticket"], pool="pool-a")
    assert ticket.workbook == "wb1" and ticket.purpose == "workbook"
    # a's heartbeat goes stale: never handed out again, the workbook moves to b
    await db.execute("UPDATE services SET heartbeat_at = :t WHERE id = 'a'",
                     {"t": time.time() - 60})
    assert (await assign(client, purpose="workbook", workbook="wb1"))[1]["service"] == "b"
    assert (await assign(client, purpose="list"))[1]["service"] == "b"
    await add_wssvc(db, "c", load=0)  # a new, idle one: the workbook stays on b
    assert (await assign(client, purpose="workbook", workbook="wb1"))[1]["service"] == "b"


async def test_another_users_workbook_is_404(app, db):
    await add_wssvc(db, "a")
    bob = app.test_client()
    await fake_login(bob, "bob")
    await db.execute("INSERT INTO workbooks (id, owner_id, name, created_at, updated_at)"
                     " VALUES ('bobs', :u, 'w', 0, 0)", {"u": await me(bob)})
    alice = app.test_client()
    await fake_login(alice, "alice")
    for workbook in ("bobs", "nosuch"):
        status, body = await assign(alice, purpose="workbook", workbook=workbook)
        assert status == 404 and body["error"] == "not_found"
        page = await alice.get(f"/workbooks/{workbook}")
        assert page.status_code == 404
        assert "Workbook not found" in await page.get_data(as_text=True)
    assert (await bob.get("/workbooks/bobs")).status_code == 200
    assert (await assign(bob, purpose="workbook", workbook="bobs"))[0] == 200


async def test_assign_refuses_bad_requests(app, db):
    await add_wssvc(db, "a")
    client = app.test_client()
    await fake_login(client)
    assert (await assign(client, purpose="chat"))[0] == 400
    assert (await assign(client, purpose="workbook"))[0] == 400
    assert (await assign(client, purpose="workbook", workbook="../x"))[0] == 400
    form = await client.post("/api/assign", form={"purpose": "list"})
    assert form.status_code == 415  # a cross-site form cannot send JSON
    evil = await client.post("/api/assign", json={"purpose": "list"},
                             headers={"Origin": "https://evil.example"})
    assert evil.status_code == 403
    assert (await client.get("/api/assign")).status_code == 405


async def test_a_shared_workbook_opens_for_its_users_on_the_owners_wssvc(app, db):
    await add_wssvc(db, "a", load=0)
    await add_wssvc(db, "b", load=9)
    alice, bob = app.test_client(), app.test_client()
    await fake_login(alice, "alice")
    await fake_login(bob, "bob")
    await db.execute("INSERT INTO workbooks (id, owner_id, name, created_at, updated_at)"
                     " VALUES ('wb2', :u, 'w', 0, 0)", {"u": await me(alice)})
    assert (await assign(bob, purpose="workbook", workbook="wb2"))[0] == 404
    await db.execute("INSERT INTO workbook_shares (workbook_id, user_id, access, granted_by,"
                     " granted_at) VALUES ('wb2', :u, 'read', 'x', 0)", {"u": await me(bob)})
    assert (await bob.get("/workbooks/wb2")).status_code == 200
    placed = {(await assign(c, purpose="workbook", workbook="wb2"))[1]["service"]
              for c in (alice, bob, bob, alice)}
    # one wssvc for every socket of the workbook: rendezvous hashing, not the load
    assert placed == {rendezvous("wb2", [{"id": "a"}, {"id": "b"}])["id"]}
    await db.execute("DELETE FROM workbook_shares")
    assert (await assign(bob, purpose="workbook", workbook="wb2"))[0] == 404
