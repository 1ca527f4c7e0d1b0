"""Tickets: short-lived, single-use, HMAC-signed passes from main_server to one wssvc.

A ticket says "user U may open a websocket on wssvc pool P (for workbook W) until T". It is
signed with the shared auth.session_secret, so wssvc checks it without asking main_server; it
is single use because wssvc records its id in the used_tickets table (a second use is refused
by the primary key, on every wssvc and every backend alike).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import asdict, dataclass

from ..storage import Database, IntegrityError

VERSION = "t1"


class TicketError(Exception):
    """The ticket is not acceptable; str(self) says why (safe to show)."""


@dataclass(frozen=True)
class Ticket:
    id: str
    user: str
    pool: str  # the wssvc it is good for
    purpose: str  # "list" or "workbook"
    workbook: str | None
    expires: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, payload: str) -> str:
    return _b64(hmac.new(secret, f"{VERSION}.{payload}".encode(), hashlib.sha256).digest())


def issue(secret: bytes, *, user: str, pool: str, purpose: str = "list",
          workbook: str | None = None, lifetime: float = 30.0, now: float | None = None) -> str:
    if not secret:
        raise ValueError("auth.session_secret is empty: tickets cannot be signed")
    ticket = Ticket(id=secrets.token_urlsafe(12), user=user, pool=pool, purpose=purpose,
                    workbook=workbook, expires=(now or time.time()) + lifetime)
    payload = _b64(json.dumps(asdict(ticket), separators=(",", ":")).encode())
    return f"{VERSION}.{payload}.{_sign(secret, payload)}"


def verify(secret: bytes, token: str, *, pool: str, now: float | None = None) -> Ticket:
    """Check signature, expiry and binding (not single use: see redeem)."""
    if not token:
        raise TicketError("no ticket")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != VERSION:
        raise TicketError("malformed ticket")
    _, payload, signature = parts
    if not hmac.compare_digest(_sign(secret, payload), signature):
        raise TicketError("ticket signature is not valid")
    try:
        ticket = Ticket(**json.loads(_unb64(payload)))
    except (ValueError, TypeError) as exc:
        raise TicketError(f"malformed ticket ({exc})") from None
    if ticket.expires < (now or time.time()):
        raise TicketError("ticket has expired")
    if ticket.pool != pool:
        raise TicketError("ticket is for another wssvc")
    return ticket


async def redeem(db: Database, secret: bytes, token: str, *, pool: str) -> Ticket:
    """verify() and mark the ticket used; a second redeem raises TicketError."""
    ticket = verify(secret, token, pool=pool)
    now = time.time()
    try:
        async with db.transaction() as tx:
            await tx.execute("DELETE FROM used_tickets WHERE expires_at < :now", {"now": now})
            await tx.execute("INSERT INTO used_tickets (id, expires_at) VALUES (:id, :exp)",
                             {"id": ticket.id, "exp": ticket.expires})
    except IntegrityError:
        raise TicketError("ticket was already used") from None
    return ticket
