"""The clients connected to one wssvc, indexed for fan-out.

Each client has a bounded outgoing queue (an Outbox: a list made when there is something to
send, and the connection's writer task started only then). A delivery that finds it full
closes that client (4001, "too slow"): a slow browser never makes the server's memory grow.
Before that, the queued broadcasts that a later one supersedes (an item's ``*.saved`` state,
sent again) are dropped (Outbox.put_superseding): one edit of a source used by many
calculations sends every socket on the workbook a ``calculation.saved`` per calculation, and
a few such edits by one user must not close her collaborators' sockets.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .limits import ConnectionLimit

log = logging.getLogger(__name__)

CLOSE_TOO_SLOW = 4001


class Outbox:
    """A client's messages waiting to be sent, at most ``maxsize``: put_nowait raises
    asyncio.QueueFull as asyncio.Queue does. Empty, it holds no list; ``on_put`` (the
    connection's) runs after each put, to start the writer if none is running."""

    __slots__ = ("items", "maxsize", "on_put")

    def __init__(self, maxsize: int, on_put: Callable[[], None] | None = None) -> None:
        self.items: list[str] | None = None
        self.maxsize = maxsize
        self.on_put = on_put

    def qsize(self) -> int:
        return len(self.items) if self.items else 0

    def empty(self) -> bool:
        return not self.items

    def put_nowait(self, text: str) -> None:
        items = self.items
        if items is None:
            items = self.items = []
        elif len(items) >= self.maxsize:
            raise asyncio.QueueFull
        items.append(text)
        if self.on_put is not None:
            self.on_put()

    def put_superseding(self, text: str) -> bool:
        """On a full outbox: queue ``text`` after dropping every queued broadcast that a
        later one (or ``text``) supersedes; False (nothing queued) unless that frees a
        sixteenth of the room at least, so that a compaction (which reads the queued JSON)
        is paid for by cheap puts after it."""
        items = superseded_dropped([*(self.items or ()), text])
        if len(items) > self.maxsize - max(1, self.maxsize // 16):
            return False
        self.items = items
        if self.on_put is not None:
            self.on_put()
        return True

    def take(self) -> list[str]:
        """Everything waiting, oldest first; the outbox is empty after."""
        items, self.items = self.items, None
        return items or []

    def get_nowait(self) -> str:
        if not self.items:
            raise asyncio.QueueEmpty
        text = self.items.pop(0)
        if not self.items:
            self.items = None
        return text


def _state_key(text: str) -> tuple[str, str] | None:
    """(type, item id) of a broadcast of an item's whole state (``*.saved`` with no ``ref``:
    never a reply to a request), else None."""
    if '.saved"' not in text:
        return None
    try:
        message = json.loads(text)
    except ValueError:
        return None
    item = message.get("item") if isinstance(message, dict) else None
    kind = message.get("type") if isinstance(item, dict) else None
    if "ref" in message or not isinstance(kind, str) or not kind.endswith(".saved"):
        return None
    return (kind, item["id"]) if isinstance(item.get("id"), str) else None


def superseded_dropped(texts: list[str]) -> list[str]:
    """``texts`` in order without the item states that a later text of the same type and
    item replaces."""
    seen: set[tuple[str, str]] = set()
    kept = []
    for text in reversed(texts):
        key = _state_key(text)
        if key is not None:
            if key in seen:
                continue
            seen.add(key)
        kept.append(text)
    kept.reverse()
    return kept


@dataclass(eq=False, slots=True)
class Client:
    id: str
    user: str
    workbook: str | None
    queue: asyncio.Queue[str] | Outbox
    close_code: int | None = None
    close_reason: str = ""
    # a future, not an Event: the connection handler waits on it directly, without a task
    closed: asyncio.Future = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())
    last_seen: float = 0.0
    plot_key: str = ""
    session: str = ""  # the login session (token_hash) its ticket named; see sessions.py
    scope: str = "write"  # "read": an API token's, READ_TYPES only (app.Service.handle)
    limit: ConnectionLimit | None = None  # its requests in flight and its token bucket
    who: bytes = b""  # its REQUEST meta frame, encoded once (see Service.handle)
    reply_to: bytes = b""  # a worker's reply meta frame addressed to it alone, likewise

    def addressed_by(self, to: dict[str, Any]) -> bool:
        """Whether a reply's recipient ``to`` (see Hub.recipients) includes this client."""
        if "client" in to:
            return to["client"] == self.id
        if to.get("except") == self.id:
            return False
        if "workbook" in to:
            return to["workbook"] is not None and to["workbook"] == self.workbook
        return "user" in to and to["user"] == self.user

    def send(self, message: dict[str, Any] | str) -> bool:
        """Queue a message; False (and the client is closed) if its queue is full."""
        if self.closed.done():
            return False
        text = message if isinstance(message, str) else json.dumps(message)
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            if isinstance(self.queue, Outbox) and self.queue.put_superseding(text):
                return True
            self.close(CLOSE_TOO_SLOW, "client is not reading its messages")
            return False
        return True

    def close(self, code: int, reason: str) -> None:
        if not self.closed.done():
            self.close_code, self.close_reason = code, reason
            self.closed.set_result(None)


class Hub:
    def __init__(self) -> None:
        self.clients: dict[str, Client] = {}
        self.by_user: dict[str, set[Client]] = defaultdict(set)
        self.by_workbook: dict[str, set[Client]] = defaultdict(set)

    def __len__(self) -> int:
        return len(self.clients)

    def add(self, client: Client) -> None:
        self.clients[client.id] = client
        self.by_user[client.user].add(client)
        if client.workbook:
            self.by_workbook[client.workbook].add(client)

    def remove(self, client: Client) -> None:
        self.clients.pop(client.id, None)
        for index, key in ((self.by_user, client.user), (self.by_workbook, client.workbook)):
            if key in index:
                index[key].discard(client)
                if not index[key]:
                    del index[key]

    def recipients(self, to: dict[str, Any]) -> list[Client]:
        if "client" in to:
            client = self.clients.get(to["client"])
            targets = [client] if client else []
        elif "workbook" in to:
            targets = list(self.by_workbook.get(to["workbook"], ()))
        elif "user" in to:
            targets = list(self.by_user.get(to["user"], ()))
        else:
            log.warning("delivery without a recipient, dropped", extra={"to": to})
            return []
        skip = to.get("except")
        return [c for c in targets if c.id != skip]

    def deliver(self, recipients: list[dict[str, Any]], texts: list[bytes]) -> int:
        """Each message text (JSON, already encoded by the worker) to its recipients."""
        sent = 0
        for to, raw in zip(recipients, texts, strict=False):
            text = raw.decode()
            for client in self.recipients(to):
                sent += client.send(text)
        return sent

    def close_all(self, code: int, reason: str) -> None:
        for client in list(self.clients.values()):
            client.close(code, reason)
