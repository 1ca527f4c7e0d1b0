"""main_server's keys: tickets name the session; CSRF tokens use the derived CSRF key."""

from __future__ import annotations

import hashlib
import hmac

from etckit.auth import sessions, tickets
from etckit.main_server.app import SESSION_COOKIE

from .conftest import SECRET, csrf, fake_login, public_keys
from .test_assign import add_wssvc, assign


def session_cookie(client) -> str:
    for cookie in client.cookie_jar:
        if cookie.name == SESSION_COOKIE:
            return cookie.value
    raise AssertionError("no session cookie")


async def test_the_ticket_names_the_session_by_its_hash(app, db):
    client = app.test_client()
    await fake_login(client)
    await add_wssvc(db, "a")
    status, body = await assign(client, purpose="list")
    assert status == 200, body
    ticket = tickets.verify(public_keys(), body["ticket"], pool="pool-a")
    token = session_cookie(client)
    assert ticket.session == sessions.token_hash(token) and token not in body["ticket"]
    assert await sessions.live_sessions(db, [ticket.session]) == {ticket.session}


async def test_csrf_tokens_are_not_made_with_the_raw_secret(app):
    client = app.test_client()
    await csrf(client)  # the CSRF cookie
    seed = next(c.value for c in client.cookie_jar if c.name == "etckit_csrf")
    old_style = hmac.new(SECRET.encode(), f"csrf.{seed}".encode(), hashlib.sha256).hexdigest()
    refused = await client.post("/login/fake", form={"name": "a", "csrf": old_style})
    assert refused.status_code == 403
    good = await client.post("/login/fake", form={"name": "a", "csrf": await csrf(client)})
    assert good.status_code == 303


async def test_a_non_ascii_csrf_token_is_refused_not_an_error(app):
    client = app.test_client()
    await csrf(client)
    response = await client.post("/login/fake", form={"name": "a", "csrf": "é" * 64})
    assert response.status_code == 403
