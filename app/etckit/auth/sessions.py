"""Users and login sessions, all in the database (main_server keeps no state of its own).

A session is a random token in the browser's cookie; the database keeps only its SHA-256, so
a copy of the database does not let anyone log in. Users are keyed by (issuer, subject):

| kind      | issuer             | subject            | expires                          |
|-----------|--------------------|--------------------|----------------------------------|
| sso       | the OIDC issuer    | the `sub` claim    | never                            |
| anonymous | `etckit:anonymous` | random             | auth.anonymous_lifetime, logout  |
| fake      | `etckit:fake`      | the name typed     | never (test systems only)        |

An anonymous user is deleted, with its workbooks (ON DELETE CASCADE), when it logs out or when
its time is up (``sweep_expired``, run by every main_server now and then).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..storage import Database

ANONYMOUS_ISSUER = "etckit:anonymous"
LIVE_BATCH = 500  # token hashes per query (SQLite allows 999 parameters)
FAKE_ISSUER = "etckit:fake"


@dataclass(frozen=True)
class User:
    id: str
    kind: str
    display_name: str
    email: str
    expires_at: float | None

    def view(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "name": self.display_name,
                "email": self.email, "expires_at": self.expires_at}


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def upsert_user(db: Database, *, issuer: str, subject: str, kind: str,
                      display_name: str = "", email: str = "",
                      expires_at: float | None = None) -> User:
    """The user (issuer, subject), created on first login; name and email kept current."""
    now = time.time()
    async with db.transaction() as tx:
        row = await tx.fetchone("SELECT id FROM users WHERE issuer = :iss AND subject = :sub",
                                {"iss": issuer, "sub": subject})
        if row is None:
            uid = uuid.uuid4().hex
            await tx.execute(
                "INSERT INTO users (id, issuer, subject, kind, display_name, email, created_at,"
                " expires_at) VALUES (:id, :iss, :sub, :kind, :name, :email, :now, :exp)",
                {"id": uid, "iss": issuer, "sub": subject, "kind": kind, "name": display_name,
                 "email": email, "now": now, "exp": expires_at})
        else:
            uid = row["id"]
            await tx.execute("UPDATE users SET display_name = :name, email = :email"
                             " WHERE id = :id", {"name": display_name, "email": email, "id": uid})
    return User(uid, kind, display_name, email, expires_at)


async def create_anonymous(db: Database, lifetime: float) -> User:
    subject = secrets.token_urlsafe(12)
    return await upsert_user(db, issuer=ANONYMOUS_ISSUER, subject=subject, kind="anonymous",
                             display_name="Anonymous", expires_at=time.time() + lifetime)


async def create_session(db: Database, user: User, lifetime: float) -> tuple[str, float]:
    """A new session for the user: (token for the cookie, expiry time)."""
    token = secrets.token_urlsafe(32)
    now = time.time()
    expires = now + lifetime
    if user.expires_at is not None:
        expires = min(expires, user.expires_at)
    await db.execute(
        "INSERT INTO sessions (token_hash, user_id, created_at, expires_at)"
        " VALUES (:h, :u, :now, :exp)",
        {"h": token_hash(token), "u": user.id, "now": now, "exp": expires})
    return token, expires


async def session_user(db: Database, token: str | None) -> User | None:
    """The user of a live session token, or None (unknown, expired, revoked or forged)."""
    if not token or len(token) > 200:
        return None
    now = time.time()
    row = await db.fetchone(
        "SELECT u.id, u.kind, u.display_name, u.email, u.expires_at FROM sessions s"
        " JOIN users u ON u.id = s.user_id WHERE s.token_hash = :h AND s.revoked_at IS NULL"
        " AND s.expires_at > :now AND (u.expires_at IS NULL OR u.expires_at > :now)",
        {"h": token_hash(token), "now": now})
    if row is None:
        return None
    return User(row["id"], row["kind"], row["display_name"], row["email"], row["expires_at"])


async def logout(db: Database, token: str) -> None:
    """Revoke the session; an anonymous user goes entirely, with its workbooks."""
    async with db.transaction() as tx:
        row = await tx.fetchone(
            "SELECT u.id, u.kind FROM sessions s JOIN users u ON u.id = s.user_id"
            " WHERE s.token_hash = :h", {"h": token_hash(token)})
        if row is None:
            return
        if row["kind"] == "anonymous":
            await tx.execute("DELETE FROM users WHERE id = :id", {"id": row["id"]})
        else:
            await tx.execute("UPDATE sessions SET revoked_at = :now WHERE token_hash = :h",
                             {"now": time.time(), "h": token_hash(token)})


async def live_sessions(db: Database, hashes: Iterable[str],
                        now: float | None = None) -> set[str]:
    """Which of these sessions (by token_hash) are live: not revoked, not expired, not gone.

    One query per LIVE_BATCH hashes; wssvc uses it for every session behind its sockets.
    """
    wanted = sorted(set(hashes))
    now = time.time() if now is None else now
    live: set[str] = set()
    for start in range(0, len(wanted), LIVE_BATCH):
        batch = wanted[start:start + LIVE_BATCH]
        params: dict[str, Any] = {f"h{i}": h for i, h in enumerate(batch)}
        marks = ", ".join(f":h{i}" for i in range(len(batch)))
        params["now"] = now
        rows = await db.fetchall(
            f"SELECT token_hash FROM sessions WHERE token_hash IN ({marks})"
            " AND revoked_at IS NULL AND expires_at > :now", params)
        live.update(row["token_hash"] for row in rows)
    return live


async def sweep_expired(db: Database) -> int:
    """Delete expired anonymous users (their workbooks follow) and old sessions."""
    now = time.time()
    async with db.transaction() as tx:
        users = await tx.execute("DELETE FROM users WHERE kind = 'anonymous'"
                                 " AND expires_at < :now", {"now": now})
        await tx.execute("DELETE FROM sessions WHERE expires_at < :old",
                         {"old": now - 86400})
    return users


def csrf_token(key: bytes, seed: str) -> str:
    """The form token for a browser's CSRF cookie value (signed double submit); key is the
    CSRF key derived from auth.session_secret (etckit.auth.keys.SiteKeys.csrf)."""
    return hmac.new(key, f"csrf.{seed}".encode(), hashlib.sha256).hexdigest()


def csrf_ok(key: bytes, seed: str | None, token: str | None) -> bool:
    if not seed or not token:
        return False
    try:
        return hmac.compare_digest(csrf_token(key, seed), token)
    except TypeError:  # a token with non-ASCII characters is simply wrong
        return False
