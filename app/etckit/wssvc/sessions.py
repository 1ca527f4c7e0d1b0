"""Logout ends the websocket, and so does a revoked share: wssvc watches the login sessions
and the workbook rights behind its open sockets.

Each socket was opened with a ticket that names its login session (the session's
`token_hash`). Every `auth.session_check_interval` seconds one batched query asks which of
those sessions are still live; the sockets of a session that was revoked (logout), expired or
deleted (an anonymous user's logout deletes the user) are closed with 4003, and the page goes
back to the login page. A socket opened with an API token's ticket names the token instead
(``api:<token_hash>``): revoking the token or its expiry closes it the same way. A database
that does not answer closes nothing: the next round tries again.

In the same round a second batched query asks whether the user of each workbook socket still
owns that workbook or has a share of it; a socket whose share was revoked is closed with 4004,
and the page goes back to the Workbook List (a deleted workbook's sockets stay open: their
requests get `not_found`, as they always did).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

from ..auth import tokens
from ..storage import Database, StorageError, shares
from .hub import Client, Hub

log = logging.getLogger(__name__)

CLOSE_SESSION_ENDED = 4003
REASON = "session ended"
CLOSE_ACCESS_REVOKED = 4004
REVOKED_REASON = "access to this workbook revoked"


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
        return closed + await self.check_access()

    async def check_access(self) -> int:
        """Close the workbook sockets whose user's share of that workbook was revoked."""
        by_pair: dict[tuple[str, str], list[Client]] = defaultdict(list)
        for client in list(self.hub.clients.values()):
            if client.workbook and not client.closed.done():
                by_pair[(client.user, client.workbook)].append(client)
        if not by_pair:
            return 0
        ended = await shares.revoked(self.db, by_pair)
        gone = [c for pair in ended for c in by_pair[pair]]
        for client in gone:
            client.close(CLOSE_ACCESS_REVOKED, REVOKED_REASON)
        if gone:
            log.info("sockets closed: workbook access revoked", extra={"closed": len(gone)})
        return len(gone)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check()
            except StorageError as exc:
                log.warning("session check failed, retrying next round: %s", exc)
