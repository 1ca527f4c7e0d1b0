"""Personal API tokens: how scripts log in (docs/auth.md, "API tokens").

A token is ``etk_`` and 43 random URL-safe characters (256 bits), shown to its user once; the
database keeps only its SHA-256 (``api_tokens.token_hash``), like a session's, so a copy of
the database lets no one in. Each token has a name, a scope (``read``: only the message types
of ``messaging.types.READ_TYPES``; ``write``: everything the user may do in the browser), an
expiry no later than ``auth.api_token_max_lifetime`` and, once used, the time it was last used.

A script trades its token for an ordinary wssvc ticket (``POST /api/v1/ticket``). The ticket
names ``api:<token_hash>`` where a browser's names its session's ``token_hash``, so wssvc's
liveness check (``live_logins``) covers both: revoking a token, or its expiry, closes its
sockets with 4003 just as a logout closes a browser's.
"""

from __future__ import annotations

import math
import secrets
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..storage import Database
from . import sessions

PREFIX = "etk_"
TICKET_PREFIX = "api:"  # a ticket's session field, for a ticket bought with a token
SCOPES = ("read", "write")
NAME_MAX = 100
MAX_TOKEN_CHARS = 200


class TokenError(Exception):
    """A refused request; `code` is the shared error code, `extra` its fields (field, limit)."""

    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.extra = extra


@dataclass(frozen=True)
class Token:
    """A token as its user sees it in the list (never the secret)."""

    id: str
    name: str
    scope: str
    created_at: float
    expires_at: float
    last_used_at: float | None

    def view(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "scope": self.scope,
                "created_at": self.created_at, "expires_at": self.expires_at,
                "last_used_at": self.last_used_at}


_COLUMNS = "t.id, t.name, t.scope, t.created_at, t.expires_at, t.last_used_at"
KEEP_SECONDS = 30 * 86400  # a dead token's row stays this long: its use says why it fails
LOCK_BASE = 0x746F6B656E << 20  # "token": advisory locks of token creation, one per user


def _lock_key(user_id: str) -> int:
    return LOCK_BASE + int(sessions.token_hash(user_id)[:5], 16)


def _token(row: dict[str, Any]) -> Token:
    return Token(row["id"], row["name"], row["scope"], row["created_at"], row["expires_at"],
                 row["last_used_at"])


def check_request(body: Any, max_lifetime: float) -> tuple[str, str, float]:
    """(name, scope, lifetime in seconds) from a create request, or TokenError("invalid")."""
    if not isinstance(body, dict):
        raise TokenError("invalid", "the body must be a JSON object", field="")
    name, scope, days = body.get("name"), body.get("scope"), body.get("expires_in_days")
    if not isinstance(name, str) or not name.strip() or len(name) > NAME_MAX:
        raise TokenError("invalid", f"name must be text of 1 to {NAME_MAX} characters",
                         field="name")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise TokenError("bad_unicode", "name is not valid Unicode (a lone surrogate)",
                         field="name") from None
    if scope not in SCOPES:
        raise TokenError("invalid", "scope must be 'read' or 'write'", field="scope")
    longest = max_lifetime / 86400
    if isinstance(days, bool) or not isinstance(days, int | float) or \
            not 0 < days <= longest:
        raise TokenError("invalid", f"expires_in_days must be a number of days above 0 and "
                         f"at most {longest:g}", field="expires_in_days")
    return name.strip(), scope, float(days) * 86400


async def create(db: Database, user: sessions.User, *, name: str, scope: str,
                 lifetime: float, limit: int) -> tuple[str, Token]:
    """A new token for the user: (the secret, shown once; what the list shows)."""
    if user.kind == "anonymous":
        raise TokenError("forbidden", "anonymous users cannot create API tokens; log in")
    secret = PREFIX + secrets.token_urlsafe(32)
    now = time.time()
    expires = now + lifetime
    token = Token(uuid.uuid4().hex, name, scope, now, expires, None)
    async with db.transaction() as tx:
        await tx.lock(_lock_key(user.id))  # two creations at once count each other
        held = await tx.fetchval(
            "SELECT COUNT(*) AS n FROM api_tokens WHERE user_id = :u AND revoked_at IS NULL"
            " AND expires_at > :now", {"u": user.id, "now": now})
        if int(held) >= limit:
            raise TokenError("quota", f"you hold {limit} live API tokens, the most allowed; "
                             "revoke one first", limit="auth.api_tokens_per_user", value=limit)
        await tx.execute(
            "INSERT INTO api_tokens (token_hash, id, user_id, name, scope, created_at,"
            " expires_at) VALUES (:h, :id, :u, :name, :scope, :now, :exp)",
            {"h": sessions.token_hash(secret), "id": token.id, "u": user.id, "name": name,
             "scope": scope, "now": now, "exp": expires})
    return secret, token


async def list_tokens(db: Database, user_id: str) -> list[Token]:
    """The user's tokens that are neither revoked nor expired, newest first."""
    rows = await db.fetchall(
        f"SELECT {_COLUMNS} FROM api_tokens t WHERE t.user_id = :u AND t.revoked_at IS NULL"
        " AND t.expires_at > :now ORDER BY t.created_at DESC", {"u": user_id, "now": time.time()})
    return [_token(row) for row in rows]


async def revoke(db: Database, user_id: str, token_id: str) -> bool:
    """Revoke one of the user's tokens; False if the user has no such live token."""
    done = await db.execute(
        "UPDATE api_tokens SET revoked_at = :now WHERE id = :id AND user_id = :u"
        " AND revoked_at IS NULL", {"now": time.time(), "id": token_id, "u": user_id})
    return bool(done)


async def sweep_dead(db: Database, now: float | None = None) -> int:
    """Delete the rows of tokens expired or revoked over KEEP_SECONDS ago (run by
    main_server's sweeper); until then their use is refused as expired or revoked rather
    than unknown. The number deleted."""
    old = (time.time() if now is None else now) - KEEP_SECONDS
    return await db.execute("DELETE FROM api_tokens WHERE expires_at < :old"
                            " OR revoked_at < :old", {"old": old})


async def authenticate(db: Database, secret: str) -> tuple[sessions.User, Token, str]:
    """(user, token, its token_hash) for a live token, noting its use; else TokenError
    ("not_authenticated") saying whether it is unknown, expired or revoked."""
    if not secret.startswith(PREFIX) or len(secret) > MAX_TOKEN_CHARS or not secret.isascii():
        raise TokenError("not_authenticated", "that is not an etckit API token")
    digest = sessions.token_hash(secret)
    now = time.time()
    row = await db.fetchone(
        f"SELECT {_COLUMNS}, t.revoked_at, t.user_id, u.kind, u.display_name, u.email,"
        " u.expires_at AS user_expires FROM api_tokens t JOIN users u ON u.id = t.user_id"
        " WHERE t.token_hash = :h", {"h": digest})
    if row is None:
        raise TokenError("not_authenticated", "unknown API token")
    if row["revoked_at"] is not None:
        raise TokenError("not_authenticated", "this API token was revoked")
    if row["expires_at"] <= now:
        raise TokenError("not_authenticated", "this API token has expired")
    if row["kind"] == "anonymous" or (row["user_expires"] or math.inf) <= now:
        raise TokenError("not_authenticated", "this API token's user is anonymous or its"
                         " account has ended")
    await db.execute("UPDATE api_tokens SET last_used_at = :now WHERE token_hash = :h",
                     {"now": now, "h": digest})
    user = sessions.User(row["user_id"], row["kind"], row["display_name"], row["email"],
                         row["user_expires"])
    return user, _token(row), digest


async def live_logins(db: Database, logins: Iterable[str],
                      now: float | None = None) -> set[str]:
    """Which of the logins behind tickets are live: sessions (their token_hash) and tokens
    (``api:`` + token_hash), neither revoked nor expired. One query per batch of each."""
    wanted = set(logins)
    apis = sorted(h for h in wanted if h.startswith(TICKET_PREFIX))
    live = await sessions.live_sessions(db, wanted.difference(apis), now)
    now = time.time() if now is None else now
    for start in range(0, len(apis), sessions.LIVE_BATCH):
        batch = apis[start:start + sessions.LIVE_BATCH]
        params: dict[str, Any] = {f"h{i}": h[len(TICKET_PREFIX):] for i, h in enumerate(batch)}
        marks = ", ".join(f":h{i}" for i in range(len(batch)))
        params["now"] = now
        rows = await db.fetchall(
            f"SELECT token_hash FROM api_tokens WHERE token_hash IN ({marks})"
            " AND revoked_at IS NULL AND expires_at > :now", params)
        live.update(TICKET_PREFIX + row["token_hash"] for row in rows)
    return live
