"""API tokens apart from the servers: tickets that carry a scope, liveness of sessions and
tokens in one call, and a token's secret never written to the log."""

from __future__ import annotations

import json
import logging

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from etckit.auth import sessions, tickets, tokens

KEY = Ed25519PrivateKey.generate()


def payload(ticket: str) -> dict:
    return json.loads(tickets._unb64(ticket.split(".")[1]))


def test_a_read_ticket_says_so_and_a_browser_ticket_is_as_before():
    read = tickets.issue(KEY, user="u", session="api:h", pool="p", scope="read")
    assert payload(read)["scope"] == "read"
    assert tickets.verify([KEY.public_key()], read, pool="p").scope == "read"
    browser = tickets.issue(KEY, user="u", session="h", pool="p")
    assert "scope" not in payload(browser)  # older wssvc still read it
    assert tickets.verify([KEY.public_key()], browser, pool="p").scope == "write"
    with pytest.raises(ValueError, match="scope"):
        tickets.issue(KEY, user="u", session="h", pool="p", scope="admin")


def test_a_signed_ticket_of_an_unknown_scope_is_refused():
    fields = {**payload(tickets.issue(KEY, user="u", session="h", pool="p")), "scope": "all"}
    body = tickets._b64(json.dumps(fields).encode())
    forged = f"t2.{body}.{tickets._b64(KEY.sign(tickets._signed_text(body)))}"
    with pytest.raises(tickets.TicketError, match="malformed ticket"):
        tickets.verify([KEY.public_key()], forged, pool="p")


async def test_live_logins_answers_for_sessions_and_tokens_together(db):
    user = await sessions.upsert_user(db, issuer="test", subject="u", kind="fake")
    cookie, _ = await sessions.create_session(db, user, 3600)
    secret, token = await tokens.create(db, user, name="t", scope="write", lifetime=3600,
                                        limit=5)
    session = sessions.token_hash(cookie)
    login = tokens.TICKET_PREFIX + sessions.token_hash(secret)
    # a token's hash is not a session, nor the other way round
    unknown = [tokens.TICKET_PREFIX + session, sessions.token_hash(secret)]
    assert await tokens.live_logins(db, [session, login, *unknown]) == {session, login}
    assert await tokens.revoke(db, user.id, token.id)
    assert await tokens.live_logins(db, [session, login]) == {session}
    assert not await tokens.revoke(db, user.id, token.id)  # once


async def test_a_token_lives_no_longer_than_its_user(db):
    """A deleted user's tokens go with it (ON DELETE CASCADE): refused as unknown, their
    sockets no longer live. A token of an anonymous user (create() makes none, but a row
    could come from elsewhere) is refused like one of an account that has ended."""
    user = await sessions.upsert_user(db, issuer="test", subject="gone", kind="fake")
    secret, _ = await tokens.create(db, user, name="t", scope="write", lifetime=3600, limit=5)
    login = tokens.TICKET_PREFIX + sessions.token_hash(secret)
    assert await tokens.live_logins(db, [login]) == {login}
    await db.execute("DELETE FROM users WHERE id = :id", {"id": user.id})
    with pytest.raises(tokens.TokenError, match="unknown API token"):
        await tokens.authenticate(db, secret)
    assert await tokens.live_logins(db, [login]) == set()
    anonymous = await sessions.create_anonymous(db, 3600)
    as_if = sessions.User(anonymous.id, "fake", None, None, None)  # past create()'s check
    secret, _ = await tokens.create(db, as_if, name="t", scope="write", lifetime=3600,
                                    limit=5)
    with pytest.raises(tokens.TokenError, match="anonymous") as refused:
        await tokens.authenticate(db, secret)
    assert refused.value.code == "not_authenticated"


async def test_the_secret_is_never_logged(db, caplog):
    caplog.set_level(logging.DEBUG)
    user = await sessions.upsert_user(db, issuer="test", subject="v", kind="fake")
    secret, _ = await tokens.create(db, user, name="t", scope="read", lifetime=60, limit=5)
    await tokens.authenticate(db, secret)
    with pytest.raises(tokens.TokenError):
        await tokens.authenticate(db, secret + "x")
    assert all(secret not in record.getMessage() and secret not in str(record.__dict__)
               for record in caplog.records)


def test_a_scope_refusal_is_counted_under_its_own_outcome():
    from etckit import metrics

    counts = metrics.RequestCounts()
    counts.answered("source.edit", "forbidden")
    assert counts.counts["source.edit"] == {"forbidden": 1}  # not lumped in with "other"
