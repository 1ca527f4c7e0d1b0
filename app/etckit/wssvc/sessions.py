"""Logout ends the websocket: wssvc watches the login sessions behind its open sockets.

Each socket was opened with a ticket that names its login session (the session's
`token_hash`). Every `auth.session_check_interval` seconds one batched query asks which of
those sessions are still live; the sockets of a session that was revoked (logout), expired or
deleted (an anonymous user's logout deletes the user) are closed with 4003, and the page goes
back to the login page. A socket opened with an API token's ticket names the token instead
(``api:<token_hash>``): revoking the token or its expiry closes it the same way. A database
that does not answer closes nothing: the next round tries again.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

from ..auth import tokens
from ..storage import Database, StorageError
from .hub import Client, Hub

log = logging.getLogger(__name__)

CLOSE_SESSION_ENDED = 4003
REASON = "session ended"


class SessionWatcher:
    def __init__(self, db: Database, hub: Hub, interval: float) -> None:
        self.db = db
        self.hub = hub
        self.interval = interval

    async def check(self) -> int:
        """One round: close the sockets whose session ended; returns how many were closed."""
        by_session: dict[str, list[Client]] = defaultdict(list)
        for client in list(self.hub.clients.values()):
            by_session[client.session].append(client)
        if not by_session:
            return 0
        live = await tokens.live_logins(self.db, by_session)
        closed = 0
        for session, clients in by_session.items():
            if session in live:
                continue
            for client in clients:
                client.close(CLOSE_SESSION_ENDED, REASON)
                closed += 1
        if closed:
            log.info("sockets closed: session ended", extra={"closed": closed})
        return closed

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check()
            except StorageError as exc:
                log.warning("session check failed, retrying next round: %s", exc)
