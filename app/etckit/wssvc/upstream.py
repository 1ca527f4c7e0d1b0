"""wssvc's side of ZeroMQ: a DEALER link to every live broker of its pool.

Links are found in the service registry; a link becomes *established* when the broker first
answers. When an established link loses its broker (no heartbeat within the liveness window, a
DISCONNECT, or its connection dropped: a link never connects again, since whatever listens on
that port next is another process), the caller's on_lost runs: wssvc closes its clients with
1012 and they come back through main_server. A link that never got an answer (a stale registry
row) is dropped quietly.
A request a broker RETURNs (it has had no worker for the liveness window) goes to another broker
that has workers; while none has, it waits in a broker's queue again, up to MAX_RETURNS times,
and is then answered with `no_worker`.

Each link is a CURVE client (docs/protocol.md) when zmq.curve is on: the broker's public key
comes from its registry row, and a broker that publishes none is not connected to. A link that
never got an answer (among them one the broker's gatekeeper refused: libzmq does not retry a
refused handshake) is dropped after the liveness window and made again at the next registry read
while the broker is still registered.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from typing import Any

import zmq

from ..messaging.curve import LinkSecurity
from ..messaging.frames import Complaints
from ..messaging.loop import LoopSocket
from ..messaging.protocol import (
    CLIENT,
    DISCONNECT,
    HEARTBEAT,
    REPLY,
    REQUEST,
    RETURN,
    error_body,
)
from ..registry import live
from ..storage import Database, StorageError

log = logging.getLogger(__name__)

OnReply = Callable[[bytes, list[bytes]], None]
MAX_RETURNS = 10  # a request waits at most this many liveness windows for a worker
PLAIN = LinkSecurity(keys=None, max_bytes=16 * 1024 * 1024)  # tests without a config


class NoBrokerKey(Exception):
    """CURVE is on and the broker's registry row publishes no public key."""


class BrokerLink:
    def __init__(self, ctx: zmq.Context, broker: dict[str, Any], *, interval: float,
                 liveness: int, on_reply: OnReply,
                 on_lost: Callable[[BrokerLink], None],
                 on_return: Callable[[BrokerLink, bytes, list[bytes]], None],
                 security: LinkSecurity = PLAIN,
                 on_change: Callable[[], None] = lambda: None) -> None:
        self.id: str = broker["id"]
        self.endpoint: str = broker["endpoint"]
        self.interval = interval
        self.liveness = liveness
        self.on_reply = on_reply
        self.on_lost = on_lost
        self.on_return = on_return
        self.on_change = on_change  # established, or workers became zero or not zero
        self.established = False
        self.workers = 0  # as the broker's last heartbeat said
        self.complain = Complaints(log)  # warnings about bad frames, rate-limited
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, 100000)
        sock.setsockopt(zmq.RCVHWM, 100000)
        # one link, one broker process: after its connection drops, libzmq must not connect
        # again to whatever listens there next (the broker restarted by systemd within the
        # liveness window), which would keep the link alive while the requests the old
        # process held are gone unanswered; its next send fails and ends the link (on_lost)
        sock.setsockopt(zmq.RECONNECT_IVL, -1)
        if not security.client(sock, broker):
            sock.close(0)
            raise NoBrokerKey(self.id)
        sock.connect(self.endpoint)
        self.sock = LoopSocket(sock, self._on_frames)
        self.last_heard = time.monotonic()
        self.said_goodbye = asyncio.Event()  # or a send failed (`broken` says why)
        self.broken: str | None = None
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"broker-link-{self.id}")

    def send(self, rid: bytes, body: list[bytes]) -> None:
        self.sock.send([CLIENT, REQUEST, rid, *body])

    def end(self, why: str) -> None:
        """A send failed (its connection dropped, never to be made again): the link is no
        longer offered and ends at once, as if the broker had said DISCONNECT."""
        if self.broken is None:
            self.broken = why
            self.said_goodbye.set()
            self.on_change()

    def _on_frames(self, frames: list[bytes]) -> None:
        self.last_heard = time.monotonic()
        if not self.established:
            self.established = True
            log.info("broker link established", extra={"broker": self.id})
            self.on_change()
        try:
            self._dispatch(frames)
        except Exception:  # a bad reply must not stop this link's reader
            self.complain("failed to handle a message from a broker", exc_info=True,
                          broker=self.id)

    def _dispatch(self, frames: list[bytes]) -> None:
        if len(frames) < 2 or frames[0] != CLIENT:
            self.complain("malformed frames from a broker, ignored", broker=self.id)
        elif frames[1] == REPLY and len(frames) >= 4:
            self.on_reply(frames[2], frames[3:])
        elif frames[1] == HEARTBEAT and len(frames) == 3:
            try:
                self._set_workers(int(frames[2]))
            except ValueError:
                self.complain("malformed heartbeat from a broker, ignored", broker=self.id)
        elif frames[1] == RETURN and len(frames) >= 4:
            self._set_workers(0)  # it has none, whatever its last heartbeat said
            self.on_return(self, frames[2], frames[3:])
        elif frames[1] == DISCONNECT and len(frames) == 2:
            self.said_goodbye.set()
        else:
            self.complain("unexpected frames from a broker, ignored", broker=self.id)

    def _set_workers(self, workers: int) -> None:
        staffed = self.workers > 0
        self.workers = workers
        if staffed != (workers > 0):
            self.on_change()

    async def _run(self) -> None:
        """Heartbeat the broker; end when it is silent for the liveness window or says bye."""
        why = "no heartbeat from the broker"
        span = self.interval * self.liveness
        try:
            while True:
                self.sock.send([CLIENT, HEARTBEAT])
                try:
                    await asyncio.wait_for(self.said_goodbye.wait(), self.interval)
                    why = self.broken or "broker said DISCONNECT"
                    break
                except TimeoutError:
                    pass
                if time.monotonic() - self.last_heard > span:
                    break
        except zmq.ZMQError as exc:
            why = f"socket error: {exc}"
        finally:
            self.sock.close()
        log.warning("broker link lost", extra={"broker": self.id, "reason": why,
                                               "was_established": self.established})
        self.on_lost(self)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
        if not self.sock.closed:
            try:
                self.sock.send([CLIENT, DISCONNECT])
            except zmq.ZMQError:
                pass
            self.sock.close()


class Upstream:
    """Every broker of one pool; requests go round-robin over the established links."""

    def __init__(self, db: Database, pool: str, *, interval: float, liveness: int,
                 registry_interval: float, registry_liveness: float, on_reply: OnReply,
                 on_broker_lost: Callable[[str], None],
                 security: LinkSecurity = PLAIN) -> None:
        self.db = db
        self.security = security
        self.pool = pool
        self.interval = interval
        self.liveness = liveness
        self.registry_interval = registry_interval
        self.registry_liveness = registry_liveness
        self.on_reply = on_reply
        self.on_broker_lost = on_broker_lost
        self.ctx = zmq.Context()
        self.links: dict[str, BrokerLink] = {}
        self.gone: set[str] = set()  # brokers lost: never reconnect to the same registration
        self._rr = itertools.count()
        self._choices: list[BrokerLink] | None = None  # send()'s links, until a link changes
        self.returned: dict[bytes, int] = {}  # request id -> times a broker returned it
        self._task: asyncio.Task[None] | None = None

    @property
    def ready(self) -> list[BrokerLink]:
        return [link for link in self.links.values()
                if link.established and link.broken is None]

    def send(self, rid: bytes, body: list[bytes]) -> str | None:
        """Send a request to an established broker, preferring those that have workers;
        returns its id, or None if there is none."""
        choices = self._choices
        if choices is None:  # recomputed only when a link changed, not per request
            ready = self.ready
            # none has a worker: the request waits in a broker's queue
            choices = self._choices = [link for link in ready if link.workers > 0] or ready
        link = self._send_to(choices, rid, body)
        return link.id if link is not None else None

    def _send_to(self, links: list[BrokerLink], rid: bytes,
                 body: list[bytes]) -> BrokerLink | None:
        """The request sent over one of LINKS (round-robin); a link whose connection dropped
        ends (its broker is lost: 1012 for every client) and the next is tried, so the
        request itself is not refused while another broker can take it. None if none could."""
        while links:
            link = links[0] if len(links) == 1 else self._pick(links)
            try:
                link.send(rid, body)
                return link
            except zmq.ZMQError as exc:
                link.end(f"send failed: {exc}")
                links = [other for other in links if other is not link]
        return None

    def _changed(self) -> None:
        self._choices = None

    def _pick(self, links: list[BrokerLink]) -> BrokerLink:
        return links[next(self._rr) % len(links)]

    def _reply(self, rid: bytes, body: list[bytes]) -> None:
        if self.returned:  # almost always empty: no dict lookup per reply
            self.returned.pop(rid, None)
        self.on_reply(rid, body)

    def _returned(self, by: BrokerLink, rid: bytes, body: list[bytes]) -> None:
        times = self.returned[rid] = self.returned.get(rid, 0) + 1
        ready = self.ready
        staffed = [link for link in ready if link is not by and link.workers > 0]
        # its workers went elsewhere (or died): another broker serves it; or, while no broker
        # has a worker, it waits in a queue again for one to start
        link = self._send_to(staffed or (ready if times < MAX_RETURNS else []), rid, body)
        if link is not None and staffed:
            log.info("request returned by a broker without workers, sent to another",
                     extra={"broker": by.id, "to": link.id})
        elif link is None:
            self._reply(rid, error_body(
                "no_worker", "no worker is available for this request; please retry shortly"))

    async def refresh(self) -> None:
        brokers = await live(self.db, "broker", self.registry_liveness, pool=self.pool)
        for broker in brokers:
            if broker["id"] in self.links or broker["id"] in self.gone:
                continue
            log.info("broker found", extra={"broker": broker["id"],
                                            "endpoint": broker["endpoint"]})
            try:
                link = BrokerLink(self.ctx, broker, interval=self.interval,
                                  liveness=self.liveness, on_reply=self._reply,
                                  on_lost=self._lost, on_return=self._returned,
                                  security=self.security, on_change=self._changed)
            except NoBrokerKey:
                log.warning("broker publishes no CURVE key: not connecting (is zmq.curve off"
                            " there?)", extra={"broker": broker["id"]})
                self.gone.add(broker["id"])
                continue
            self.links[link.id] = link
            link.start()

    def _lost(self, link: BrokerLink) -> None:
        self.links.pop(link.id, None)
        self._changed()
        if link.established:  # never the same registration again; else retried while live
            self.gone.add(link.id)
            self.returned.clear()  # on_broker_lost drops every pending request
            self.on_broker_lost(link.id)

    async def _watch(self) -> None:
        while True:
            try:
                await self.refresh()
            except StorageError as exc:
                log.warning("cannot read the registry: %s", exc)
            # look more often while there is no broker, so a new one is used at once
            await asyncio.sleep(self.registry_interval if self.ready else
                                min(0.5, self.registry_interval))

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="upstream-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for link in list(self.links.values()):
            await link.stop()
        self.ctx.term()
