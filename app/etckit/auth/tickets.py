"""Tickets: short-lived, single-use, Ed25519-signed passes from main_server to one wssvc.

A ticket says "the holder of login session S (user U) may open a websocket on wssvc pool P
(for workbook W) until T". main_server signs it with its private key
(`auth.ticket_private_key`); wssvc verifies it with the public key alone
(`auth.ticket_public_key`), so a host that holds only the public key cannot mint one. It is
single use because wssvc records its id in the used_tickets table (a second use is refused by
the primary key, on every wssvc and every backend alike), and it names the session (its
`token_hash`, never the cookie) so that wssvc can close the socket when the session ends. A
ticket bought with an API token names ``api:<the token's hash>`` instead and carries the
token's ``scope`` when it is ``read`` (auth/tokens.py); without one it is ``write``.

    t2.<base64url(JSON payload)>.<base64url(Ed25519 signature of "t2." + payload)>
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..storage import Database, IntegrityError
from . import tokens

VERSION = "t2"
MAX_TOKEN_CHARS = 2048
SIGNATURE_BYTES = 64


class TicketError(Exception):
    """The ticket is not acceptable; str(self) says why (safe to show)."""


@dataclass(frozen=True)
class Ticket:
    id: str
    user: str
    session: str  # sessions.token_hash of the login session it was issued to
    pool: str  # the wssvc it is good for
    purpose: str  # "list" or "workbook"
    workbook: str | None
    expires: float
    scope: str = "write"  # "read": only messaging.types.READ_TYPES (an API token's scope)


_STRINGS = ("id", "user", "session", "pool", "purpose")
_FIELDS = frozenset(f.name for f in fields(Ticket))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signed_text(payload: str) -> bytes:
    return f"{VERSION}.{payload}".encode()


def issue(key: Ed25519PrivateKey, *, user: str, session: str, pool: str,
          purpose: str = "list", workbook: str | None = None, lifetime: float = 30.0,
          now: float | None = None, scope: str = "write") -> str:
    """A signed ticket for the login session whose token_hash is `session`."""
    if not session:
        raise ValueError("a ticket needs the session it is issued to")
    if scope not in tokens.SCOPES:
        raise ValueError(f"unknown scope {scope!r}")
    ticket = Ticket(id=secrets.token_urlsafe(12), user=user, session=session, pool=pool,
                    purpose=purpose, workbook=workbook,
                    expires=(now or time.time()) + lifetime, scope=scope)
    fields_ = asdict(ticket)
    if scope == "write":  # the browser's tickets stay as they were (older wssvc read them)
        del fields_["scope"]
    payload = _b64(json.dumps(fields_, separators=(",", ":")).encode())
    return f"{VERSION}.{payload}.{_b64(key.sign(_signed_text(payload)))}"


def _signature_ok(keys: Sequence[Ed25519PublicKey], payload: str, signature: bytes) -> bool:
    for key in keys:
        try:
            key.verify(signature, _signed_text(payload))
            return True
        except InvalidSignature:
            continue
    return False


def _parse(payload: str) -> Ticket:
    try:
        data = json.loads(_unb64(payload))
        if not isinstance(data, dict) or set(data) not in (_FIELDS, _FIELDS - {"scope"}):
            raise ValueError("unexpected fields")
        if data.get("scope", "write") not in tokens.SCOPES:
            raise ValueError("unknown scope")
        if not all(isinstance(data[name], str) for name in _STRINGS) or \
                not isinstance(data["workbook"], str | None) or \
                isinstance(data["expires"], bool) or \
                not isinstance(data["expires"], int | float):
            raise ValueError("a field has the wrong type")
        return Ticket(**data)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise TicketError(f"malformed ticket ({exc})") from None


def verify(keys: Sequence[Ed25519PublicKey], token: str, *, pool: str,
           now: float | None = None) -> Ticket:
    """Check signature (against any of the public keys), expiry and binding (not single
    use: see redeem)."""
    if not token:
        raise TicketError("no ticket")
    if len(token) > MAX_TOKEN_CHARS:
        raise TicketError("malformed ticket (too long)")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != VERSION:
        raise TicketError("malformed ticket")
    _, payload, signature = parts
    try:
        raw_signature = _unb64(signature)
    except (ValueError, binascii.Error):
        raise TicketError("malformed ticket (signature)") from None
    if len(raw_signature) != SIGNATURE_BYTES or not _signature_ok(keys, payload, raw_signature):
        raise TicketError("ticket signature is not valid")
    ticket = _parse(payload)
    if ticket.expires < (now or time.time()):
        raise TicketError("ticket has expired")
    if ticket.pool != pool:
        raise TicketError("ticket is for another wssvc")
    return ticket


async def redeem(db: Database, keys: Sequence[Ed25519PublicKey], token: str, *,
                 pool: str) -> Ticket:
    """verify(), check its session is still live, and mark the ticket used; a second redeem
    raises TicketError."""
    return await redeem_verified(db, verify(keys, token, pool=pool))


async def redeem_verified(db: Database, ticket: Ticket) -> Ticket:
    """The database half of redeem(), for a ticket verify() returned: its session is still
    live, and the ticket is marked used (a second redeem raises TicketError)."""
    if not await tokens.live_logins(db, [ticket.session]):
        raise TicketError("the API token was revoked or has expired"
                          if ticket.session.startswith(tokens.TICKET_PREFIX)
                          else "the login session has ended")
    now = time.time()
    try:
        async with db.transaction() as tx:
            await tx.execute("DELETE FROM used_tickets WHERE expires_at < :now", {"now": now})
            await tx.execute("INSERT INTO used_tickets (id, expires_at) VALUES (:id, :exp)",
                             {"id": ticket.id, "exp": ticket.expires})
    except IntegrityError:
        raise TicketError("ticket was already used") from None
    return ticket
