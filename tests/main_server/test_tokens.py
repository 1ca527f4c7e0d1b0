"""API tokens at main_server: the tokens page's calls, Bearer authentication, tickets with a
scope, the OpenAPI document (docs/auth.md, "API tokens"; docs/protocol.md, "Scripting API")."""

from __future__ import annotations

import json
import logging
import time

from etckit.auth import sessions, tickets, tokens

from .conftest import csrf, fake_login, public_keys
from .test_assign import add_wssvc


async def make_token(client, **body) -> tuple[int, dict]:
    body = {"name": "batch", "scope": "read", "expires_in_days": 7, **body}
    response = await client.post("/api/tokens", json=body)
    return response.status_code, await response.get_json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_create_list_revoke_and_the_secret_is_never_stored(app, db, caplog):
    caplog.set_level(logging.DEBUG)
    client = app.test_client()
    await fake_login(client)
    status, made = await make_token(client, name="nightly run", scope="write")
    assert status == 201, made
    secret = made["token"]
    assert secret.startswith("etk_") and len(secret) >= 40
    assert made["item"]["scope"] == "write" and made["item"]["last_used_at"] is None
    listed = await (await client.get("/api/tokens")).get_json()
    assert [t["name"] for t in listed["tokens"]] == ["nightly run"]
    assert "token" not in listed["tokens"][0] and listed["may_create"] is True
    # the table holds the SHA-256 only: the secret appears in no column of any row
    rows = await db.fetchall("SELECT * FROM api_tokens")
    assert len(rows) == 1 and rows[0]["token_hash"] == sessions.token_hash(secret)
    assert not any(secret in str(value) for value in rows[0].values())
    response = await client.delete(f"/api/tokens/{made['item']['id']}")
    assert response.status_code == 200
    assert (await (await client.get("/api/tokens")).get_json())["tokens"] == []
    response = await client.get("/api/v1/whoami", headers=bearer(secret))
    assert response.status_code == 401
    assert (await response.get_json())["message"] == "this API token was revoked"
    again = await client.delete(f"/api/tokens/{made['item']['id']}")
    assert again.status_code == 404
    logged = [r for r in caplog.records if r.name.startswith("etckit")]
    assert any("API token created" in r.getMessage() for r in logged)  # logged, but
    assert not any(secret in f"{r.getMessage()} {r.__dict__}" for r in logged)  # not it


async def test_whoami_notes_the_last_use(app, db):
    client = app.test_client()
    await fake_login(client, "bob")
    _, made = await make_token(client)
    response = await client.get("/api/v1/whoami", headers=bearer(made["token"]))
    assert response.status_code == 200
    body = await response.get_json()
    assert body["user"]["name"] == "bob" and body["token"]["scope"] == "read"
    listed = await (await client.get("/api/tokens")).get_json()
    assert listed["tokens"][0]["last_used_at"] is not None


async def test_one_user_cannot_revoke_anothers_token(app):
    alice, mallory = app.test_client(), app.test_client()
    await fake_login(alice, "alice")
    await fake_login(mallory, "mallory")
    _, made = await make_token(alice)
    response = await mallory.delete(f"/api/tokens/{made['item']['id']}")
    assert response.status_code == 404
    body = await response.get_json()
    assert body == {"error": "not_found", "message": f"no token {made['item']['id']}"}
    ok = await alice.get("/api/v1/whoami", headers=bearer(made["token"]))
    assert ok.status_code == 200


async def test_expired_and_unknown_tokens_are_refused_with_401(app, db):
    client = app.test_client()
    await fake_login(client)
    _, made = await make_token(client)
    await db.execute("UPDATE api_tokens SET expires_at = :t", {"t": time.time() - 1})
    for secret, why in ((made["token"], "this API token has expired"),
                        ("etk_" + "x" * 43, "unknown API token"),
                        ("not-a-token", "that is not an etckit API token")):
        response = await client.post("/api/v1/ticket", headers=bearer(secret),
                                     json={"purpose": "list"})
        assert response.status_code == 401
        assert await response.get_json() == {"error": "not_authenticated", "message": why}
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "}):
        response = await client.post("/api/v1/ticket", headers=headers, json={})
        assert response.status_code == 401
        assert "Authorization: Bearer" in (await response.get_json())["message"]


async def test_bad_requests_name_the_field(app):
    client = app.test_client()
    await fake_login(client)
    for body, field in (({"name": ""}, "name"), ({"name": "x" * 101}, "name"),
                        ({"scope": "admin"}, "scope"), ({"expires_in_days": 0}, "expires_in_days"),
                        ({"expires_in_days": 91}, "expires_in_days"),
                        ({"expires_in_days": True}, "expires_in_days"),
                        ({"expires_in_days": "7"}, "expires_in_days")):
        status, answer = await make_token(client, **body)
        assert (status, answer["error"], answer["field"]) == (400, "invalid", field), body
    response = await client.post("/api/tokens", data=b'{"name": "a\\ud800", "scope": "read",'
                                 b' "expires_in_days": 1}',
                                 headers={"Content-Type": "application/json"})
    answer = await response.get_json()
    assert (response.status_code, answer["error"], answer["field"]) == (400, "bad_unicode",
                                                                        "name")
    for days in (b"NaN", b"Infinity", b"1e999"):
        response = await client.post("/api/tokens", data=b'{"name": "n", "scope": "read",'
                                     b' "expires_in_days": ' + days + b"}",
                                     headers={"Content-Type": "application/json"})
        assert (await response.get_json())["field"] == "expires_in_days", days
    response = await client.post("/api/tokens", json=[1])
    assert response.status_code == 400 and (await response.get_json())["field"] == ""
    response = await client.post("/api/tokens", data="{", headers={
        "Content-Type": "application/json"})
    assert (await response.get_json())["error"] == "bad_json"
    response = await client.post("/api/tokens", form={"name": "x"})
    assert response.status_code == 415
    response = await client.post("/api/tokens", json={"name": "x", "scope": "read",
                                                      "expires_in_days": 1},
                                 headers={"Origin": "https://evil.example"})
    assert response.status_code == 403 and (await response.get_json())["error"] == "csrf"


async def test_quota_of_live_tokens(make_app):
    app = make_app(auth__api_tokens_per_user="2")
    client = app.test_client()
    await fake_login(client)
    made = [await make_token(client, name=f"t{n}") for n in range(2)]
    status, answer = await make_token(client, name="one too many")
    assert status == 409
    assert answer["error"] == "quota" and answer["limit"] == "auth.api_tokens_per_user"
    assert answer["value"] == 2
    await client.delete(f"/api/tokens/{made[0][1]['item']['id']}")  # revoking makes room
    assert (await make_token(client, name="now fits"))[0] == 201


async def test_anonymous_users_cannot_create_tokens(app, db):
    client = app.test_client()
    await client.post("/login/anonymous", form={"csrf": await csrf(client)})
    listed = await (await client.get("/api/tokens")).get_json()
    assert listed["may_create"] is False
    status, answer = await make_token(client)
    assert status == 403 and answer["error"] == "forbidden"
    assert await db.fetchval("SELECT COUNT(*) AS n FROM api_tokens") == 0
    assert (await app.test_client().get("/api/tokens")).status_code == 401  # logged out


async def test_a_ticket_carries_the_tokens_scope_and_login(app, db):
    client = app.test_client()
    await fake_login(client)
    await add_wssvc(db, "w1")
    for scope in ("read", "write"):
        _, made = await make_token(client, name=scope, scope=scope)
        response = await client.post("/api/v1/ticket", headers=bearer(made["token"]),
                                     json={"purpose": "list"})
        assert response.status_code == 200
        body = await response.get_json()
        assert body["origin"] == "http://127.0.0.1:8080"
        ticket = tickets.verify(public_keys(), body["ticket"], pool="pool-w1")
        assert ticket.scope == scope
        assert ticket.session == tokens.TICKET_PREFIX + sessions.token_hash(made["token"])
        assert await tokens.live_logins(db, [ticket.session]) == {ticket.session}
    # someone else's workbook, or none: 404 as for the browser
    response = await client.post("/api/v1/ticket", headers=bearer(made["token"]),
                                 json={"purpose": "workbook", "workbook": "nope"})
    assert response.status_code == 404
    response = await client.post("/api/v1/ticket", headers=bearer(made["token"]),
                                 json={"purpose": "everything"})
    assert response.status_code == 400 and (await response.get_json())["field"] == "purpose"


async def test_the_openapi_document_names_every_route(app):
    response = await app.test_client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    doc = json.loads(await response.get_data())
    assert doc["openapi"].startswith("3.")
    routes = {(rule.rule, method.lower()) for rule in app.url_map.iter_rules()
              for method in rule.methods - {"HEAD", "OPTIONS"}
              if rule.rule.startswith(("/api/v1/", "/api/tokens"))}
    assert len(routes) == 6
    documented = {(path.replace("{", "<").replace("}", ">"), method)
                  for path, item in doc["paths"].items() for method in item}
    assert routes <= documented, routes - documented
    ws = doc["paths"]["/ws"]["get"]["x-websocket-messages"]
    assert "source.edit" in ws["all"] and "source.edit" not in ws["read_scope"]


async def test_tickets_per_token_are_rate_limited(make_app, db):
    app = make_app(auth__api_tickets_per_minute="1", auth__api_ticket_burst="2")
    client = app.test_client()
    await fake_login(client)
    await add_wssvc(db, "w1")
    _, first = await make_token(client, name="first")
    _, second = await make_token(client, name="second")

    async def ticket(secret: str):
        return await client.post("/api/v1/ticket", headers=bearer(secret),
                                 json={"purpose": "list"})

    assert [(await ticket(first["token"])).status_code for _ in range(2)] == [200, 200]
    refused = await ticket(first["token"])
    assert refused.status_code == 429
    body = await refused.get_json()
    assert body["error"] == "rate_limited" and 1 <= body["retry_after"] <= 60
    assert refused.headers["Retry-After"] == str(body["retry_after"])
    assert (await ticket(second["token"])).status_code == 200  # each token its own bucket


async def test_dead_tokens_are_swept_after_the_keep_period(app, db):
    """Expired or revoked tokens say so for KEEP_SECONDS, then their rows are deleted (they
    grew without bound); live ones and recently dead ones stay."""
    client = app.test_client()
    await fake_login(client)
    made = [(await make_token(client, name=f"t{i}"))[1]["item"]["id"] for i in range(4)]
    now = time.time()
    old = now - tokens.KEEP_SECONDS - 1
    await db.execute("UPDATE api_tokens SET expires_at = :t WHERE id = :id",
                     {"t": old, "id": made[0]})  # expired long ago
    await db.execute("UPDATE api_tokens SET revoked_at = :t WHERE id = :id",
                     {"t": old, "id": made[1]})  # revoked long ago
    await db.execute("UPDATE api_tokens SET expires_at = :t WHERE id = :id",
                     {"t": now - 60, "id": made[2]})  # expired a minute ago
    assert await tokens.sweep_dead(db, now=now) == 2
    left = {r["id"] for r in await db.fetchall("SELECT id FROM api_tokens")}
    assert left == {made[2], made[3]}
    assert await tokens.sweep_dead(db, now=now) == 0
