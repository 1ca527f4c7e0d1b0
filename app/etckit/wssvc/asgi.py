"""wssvc's websocket as a raw ASGI endpoint, in front of the Quart app.

Hypercorn serves one ASGI callable (``Front``): websocket scopes for ``/ws`` go to
``Connection`` here, everything else (the plot routes, /healthz, lifespan) to the Quart app.
Why not Quart's websocket layer: it holds a queue, a task and its request context per socket
(~13 KB) and adds a few futures per message; Hypercorn already gives each socket a task and a
receive queue, so the handler below reads from Hypercorn's queue and writes through its send
callable directly. Why not another websocket server (the `websockets` library) on the port:
the plot routes and /healthz must stay on the same TLS port; two servers cannot share it.

One socket costs: Hypercorn's task (which runs ``Connection.run``, the receive loop), and a
writer task that exists only while there are messages to send (Outbox, hub.py). Closing from
wssvc (4001, 4002, 4003, 1012, 1008, 1001) cancels the receive wait, sends the close frame and
returns, so Hypercorn closes the TCP connection without waiting for the browser's answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import time
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from .. import __version__, metrics
from ..auth import tickets
from .hub import Client, Outbox

if TYPE_CHECKING:
    from .app import Service

log = logging.getLogger(__name__)

CLOSE_INTERNAL = 1011  # wssvc failed (a bug): the page reconnects
CLOSE_DRAIN = 5.0  # seconds a closed socket's unread messages are read and dropped, at most
CLOSE_IDLE = 0.1  # seconds of silence after which a closed socket's answer is not waited for

LOGGED_ORIGIN = 200  # characters of a refused Origin that are logged

Receive = Any  # ASGI receive and send callables
Send = Any


class Front:
    """The ASGI app Hypercorn serves: /ws websockets here, the rest to ``app`` (Quart)."""

    def __init__(self, service: Service, app: Any) -> None:
        self.service = service
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == "/ws":
            await websocket(self.service, scope, receive, send)
        else:
            await self.app(scope, receive, send)


def _header(scope: dict[str, Any], name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return ""


def _ticket_of(scope: dict[str, Any]) -> str:
    """The ?ticket= argument, decoded as Quart's websocket.args did (the first one)."""
    values = parse_qs(scope["query_string"].decode("latin-1"), keep_blank_values=True)
    return values.get("ticket", [""])[0]


async def refuse(send: Send, status: int, text: str,
                 headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    """An HTTP answer instead of the websocket (ASGI's websocket.http.response)."""
    body = text.encode()
    await send({"type": "websocket.http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "websocket.http.response.body", "body": body})


async def websocket(service: Service, scope: dict[str, Any], receive: Receive,
                    send: Send) -> None:
    """One browser websocket: origin, broker and ticket checked, then served until closed."""
    if (await receive())["type"] != "websocket.connect":
        return
    origin = _header(scope, b"origin")
    if origin not in service.allowed_origins:
        # anyone can send this, up to Hypercorn's 16 kB of headers: cut, as a log line
        log.info("websocket refused: origin", extra={"origin": origin[:LOGGED_ORIGIN]})
        await refuse(send, 403, "origin not allowed")
        return
    if not service.upstream.ready:
        await refuse(send, 503, "no broker available, ask main_server again")
        return
    try:
        ticket = tickets.verify(service.ticket_keys, _ticket_of(scope), pool=service.pool)
        if await refused_while_blocked(service, ticket.user, send):
            return
        ticket = await tickets.redeem_verified(service.db, ticket)
    except tickets.TicketError as exc:
        metrics.ticket_refused(str(exc))
        log.info("websocket refused: %s", exc)
        await refuse(send, 403, f"ticket refused: {exc}")
        return
    await send({"type": "websocket.accept"})
    await Connection(service, ticket, receive, send).run()


async def refused_while_blocked(service: Service, user: str, send: Send) -> bool:
    """A user blocked for ignoring retry_after (Limits.blocked) gets 429 with Retry-After,
    before any database work; True when refused."""
    wait = service.limits.blocked(user)
    if not wait:
        return False
    metrics.ticket_refused("blocked for ignoring retry_after")
    seconds = str(math.ceil(wait))
    await refuse(send, 429, f"too many requests sent while told to wait: retry after {seconds} s",
                 ((b"retry-after", seconds.encode()),))
    return True


class Connection:
    """One accepted websocket: the receive loop (in Hypercorn's task) and a writer task
    while the client's Outbox holds messages."""

    __slots__ = ("service", "client", "receive", "send", "writer", "reader", "closing")

    def __init__(self, service: Service, ticket: tickets.Ticket, receive: Receive,
                 send: Send) -> None:
        self.service = service
        self.receive = receive
        self.send = send
        self.writer: asyncio.Task | None = None
        self.reader = asyncio.current_task()
        self.closing = False
        self.client = Client(id=uuid.uuid4().hex, user=ticket.user, workbook=ticket.workbook,
                             session=ticket.session, scope=ticket.scope,
                             queue=Outbox(service.cfg.wssvc.client_queue, self._wake),
                             last_seen=time.monotonic(), plot_key=secrets.token_urlsafe(18),
                             limit=service.limits.connection())
        self.client.closed.add_done_callback(self._closed)

    async def run(self) -> None:
        client = self.client
        service = self.service
        service.hub.add(client)
        client.send({"type": "hello", "client": client.id, "workbook": client.workbook,
                     "version": __version__, "plot_key": client.plot_key})
        try:
            await service.read(client, self)
        except asyncio.CancelledError:
            if not self.closing:
                raise
            asyncio.current_task().uncancel()  # our own: client.close() was called
        except Exception as exc:  # a bug of ours (a peer leaving ends the loop quietly)
            log.error("websocket loop failed", exc_info=exc, extra={"client": client.id})
            client.close(CLOSE_INTERNAL, "server error, please reconnect")
        finally:
            # from here on nothing cancels this task (it goes on in Hypercorn after us); the
            # read loop awaits only receive() and drained(), so a cancel always lands there
            self.reader = None
            service.hub.remove(client)
            if self.writer is not None:
                self.writer.cancel()
        if client.close_code is not None:
            await self.send({"type": "websocket.close", "code": client.close_code,
                             "reason": client.close_reason})
            await self.discard_until_gone()

    async def discard_until_gone(self) -> None:
        """After our close frame: read and drop what the client had sent, so that Hypercorn
        gets to the client's close answer and ends the TCP connection now. Left unread, a
        flood's backlog holds Hypercorn's reader on its full queue, and the socket lingers
        until Hypercorn gives up (about 20 s). A client that sends nothing more for
        CLOSE_IDLE seconds is not waited for (Hypercorn closes without its answer), nor one
        that keeps sending for CLOSE_DRAIN seconds."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_DRAIN):
                while True:
                    async with asyncio.timeout(CLOSE_IDLE):
                        event = await self.receive()
                    if event["type"] != "websocket.receive":
                        return

    async def next_text(self) -> str | bytes | None:
        """The next message (text, or bytes for a binary one); None when the peer left."""
        event = await self.receive()
        if event["type"] != "websocket.receive":
            return None
        text = event.get("text")
        return text if text is not None else (event.get("bytes") or b"")

    async def drained(self) -> None:
        """Wait until everything queued for the client was written."""
        if self.writer is not None:
            await self.writer

    def _wake(self) -> None:
        if self.writer is None and not self.closing:
            self.writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        outbox = self.client.queue
        send = self.send
        try:
            while not outbox.empty():
                for text in outbox.take():
                    await send({"type": "websocket.send", "text": text})
        except Exception as exc:  # a bug of ours, or the peer gone mid-write
            if not isinstance(exc, ConnectionError):
                log.error("websocket write failed", exc_info=exc,
                          extra={"client": self.client.id})
            self.client.close(CLOSE_INTERNAL, "server error, please reconnect")
        finally:
            self.writer = None

    def _closed(self, _future: asyncio.Future) -> None:
        """client.close() was called: stop writing, end the receive loop."""
        if self.closing:
            return
        self.closing = True
        if self.writer is not None:
            self.writer.cancel()
        if self.reader is not None:
            self.reader.cancel()
