"""Tickets: only main_server's private key makes one that wssvc accepts (unit tests)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from etckit.auth import keys, sessions, tickets

POOL = "front1:8443"


@pytest.fixture
def pair():
    private = Ed25519PrivateKey.generate()
    return private, (private.public_key(),)


def mint(private, **over) -> str:
    fields = {"user": "alice", "session": "s" * 64, "pool": POOL, **over}
    return tickets.issue(private, **fields)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_ticket_from_the_private_key_verifies(pair):
    private, public = pair
    ticket = tickets.verify(public, mint(private, workbook="wb1", purpose="workbook"),
                            pool=POOL)
    assert (ticket.user, ticket.session, ticket.workbook) == ("alice", "s" * 64, "wb1")


def test_a_ticket_signed_with_another_key_is_refused(pair):
    _, public = pair
    other = Ed25519PrivateKey.generate()
    with pytest.raises(tickets.TicketError, match="signature is not valid"):
        tickets.verify(public, mint(other), pool=POOL)


def payload_of(claims: dict) -> str:
    return b64(json.dumps(claims, separators=(",", ":")).encode())


CLAIMS = {"id": "x", "user": "mallory-wants-alice", "session": "s" * 64, "pool": POOL,
          "purpose": "list", "workbook": None, "expires": time.time() + 30}


@pytest.mark.parametrize("version", ["t2", "t1"])
def test_a_ticket_signed_with_the_public_key_as_an_hmac_key_is_refused(pair, version):
    """What a front host holding only the public key could try: HMAC under that key."""
    _, public = pair
    raw = public[0].public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pem = keys.public_pem(public[0])
    payload = payload_of(CLAIMS)
    for secret in (raw, pem):
        mac = hmac.new(secret, f"{version}.{payload}".encode(), hashlib.sha256).digest()
        for signature in (mac, mac + mac):  # 32 bytes, and padded to an Ed25519 length
            with pytest.raises(tickets.TicketError):
                tickets.verify(public, f"{version}.{payload}.{b64(signature)}", pool=POOL)


def test_a_changed_payload_or_signature_is_refused(pair):
    private, public = pair
    _, payload, signature = mint(private).split(".")
    forged = payload_of({**CLAIMS, "id": "y"})
    with pytest.raises(tickets.TicketError, match="signature"):
        tickets.verify(public, f"t2.{forged}.{signature}", pool=POOL)
    flipped = bytearray(base64.urlsafe_b64decode(signature + "=="))
    flipped[0] ^= 1
    with pytest.raises(tickets.TicketError, match="signature"):
        tickets.verify(public, f"t2.{payload}.{b64(bytes(flipped))}", pool=POOL)


@pytest.mark.parametrize("token", ["", "t2", "t2.a.b.c", "t2.!!!.???", "x" * 5000,
                                   "t2.e30." + "A" * 86, "t2.bm90IGpzb24.AAAA"])
def test_garbage_is_refused_with_a_reason(pair, token):
    _, public = pair
    with pytest.raises(tickets.TicketError):
        tickets.verify(public, token, pool=POOL)


def test_expiry_and_pool_binding(pair):
    private, public = pair
    with pytest.raises(tickets.TicketError, match="expired"):
        tickets.verify(public, mint(private, lifetime=-1), pool=POOL)
    with pytest.raises(tickets.TicketError, match="another wssvc"):
        tickets.verify(public, mint(private), pool="front2:8443")


def test_no_public_key_refuses_every_ticket(pair):
    private, _ = pair
    with pytest.raises(tickets.TicketError, match="signature"):
        tickets.verify((), mint(private), pool=POOL)


def test_several_public_keys_while_rotating(pair):
    old, public = pair
    new = Ed25519PrivateKey.generate()
    both = (*public, new.public_key())
    for private in (old, new):
        assert tickets.verify(both, mint(private), pool=POOL).user == "alice"


def test_a_ticket_needs_a_session(pair):
    private, _ = pair
    with pytest.raises(ValueError, match="session"):
        mint(private, session="")


async def make_session(db, name: str = "alice") -> str:
    user = await sessions.upsert_user(db, issuer="test", subject=name, kind="fake")
    token, _ = await sessions.create_session(db, user, 3600)
    return token


async def test_redeem_is_single_use_and_needs_a_live_session(db, pair):
    private, public = pair
    token = await make_session(db)
    ticket = mint(private, session=sessions.token_hash(token))
    assert (await tickets.redeem(db, public, ticket, pool=POOL)).user == "alice"
    with pytest.raises(tickets.TicketError, match="already used"):
        await tickets.redeem(db, public, ticket, pool=POOL)
    await sessions.logout(db, token)
    with pytest.raises(tickets.TicketError, match="session has ended"):
        await tickets.redeem(db, public, mint(private, session=sessions.token_hash(token)),
                             pool=POOL)


async def test_live_sessions_in_one_batch(db, monkeypatch):
    tokens = [await make_session(db, f"u{i}") for i in range(7)]
    hashes = [sessions.token_hash(t) for t in tokens]
    await sessions.logout(db, tokens[0])  # revoked
    await db.execute("UPDATE sessions SET expires_at = 0 WHERE token_hash = :h",
                     {"h": hashes[1]})  # expired
    await db.execute("DELETE FROM sessions WHERE token_hash = :h", {"h": hashes[2]})  # gone
    monkeypatch.setattr(sessions, "LIVE_BATCH", 3)  # several batches, same answer
    live = await sessions.live_sessions(db, [*hashes, "unknown"])
    assert live == set(hashes[3:])
    assert await sessions.live_sessions(db, []) == set()
