"""The worker: takes requests from its broker, runs a handler, replies (maybe to many clients).

Handlers are registered by message type. A handler commits to the database before it returns,
and only then is the reply sent, so an acknowledged edit is never lost. A handler that raises
HandlerError answers that error; any other exception answers "internal" and is logged; either
way the worker carries on. A worker that stops hearing its broker goes back to the registry,
picks a broker again and reconnects with backoff.

Stopping (SIGTERM) is graceful: the worker tells its broker it is leaving (DISCONNECT), finishes
the request it holds, if any, and exits when the broker acknowledges with DISCONNECT, so a
restart under systemd costs no request.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import zmq

from ..config import Config
from ..messaging import curve
from ..messaging.loop import LoopSocket
from ..messaging.protocol import (
    DISCONNECT,
    HEARTBEAT,
    READY,
    REPLY,
    REQUEST,
    WORKER,
    ProtocolError,
    dumps,
    error_message,
    loads,
    reply_body,
)
from ..registry import Registration, live
from ..storage import Database

log = logging.getLogger(__name__)

RECONNECT_MIN = 0.25
RECONNECT_MAX = 10.0
STOP_GRACE = 20.0  # the longest a stopping worker finishes its request (units allow 30 s)


class HandlerError(Exception):
    """An error the client should see: code and one clear message."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


@dataclass
class Context:
    """What a handler knows about the request, and how it answers."""

    db: Database
    cfg: Config
    client: str
    user: str
    workbook: str | None
    request_id: Any
    deliveries: list[dict[str, Any]] = field(default_factory=list)

    def reply(self, message: dict[str, Any]) -> None:
        """Answer the client that asked (ref = its request id)."""
        self.deliveries.append({"to": {"client": self.client},
                                "message": {**message, "ref": self.request_id}})

    def to_workbook(self, workbook: str, message: dict[str, Any], *,
                    except_sender: bool = False) -> None:
        """Every client that has this workbook open."""
        to: dict[str, Any] = {"workbook": workbook}
        if except_sender:
            to["except"] = self.client
        self.deliveries.append({"to": to, "message": message})

    def to_user(self, message: dict[str, Any], *, user: str | None = None,
                except_sender: bool = False) -> None:
        """Every client of a user (the requesting user by default)."""
        to: dict[str, Any] = {"user": user or self.user}
        if except_sender:
            to["except"] = self.client
        self.deliveries.append({"to": to, "message": message})


Handler = Callable[[Context, dict[str, Any]], Awaitable[None]]
HANDLERS: dict[str, Handler] = {}


def handler(message_type: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        if message_type in HANDLERS:
            raise ValueError(f"two handlers for {message_type!r}")
        HANDLERS[message_type] = fn
        return fn

    return register


async def handle(db: Database, cfg: Config, body: list[bytes],
                 handlers: dict[str, Handler] | None = None) -> list[dict[str, Any]]:
    """Run one request body (who, message) through its handler; returns the deliveries."""
    handlers = HANDLERS if handlers is None else handlers
    try:
        request = loads(body[0])
        message = loads(body[1])
        ctx = Context(db=db, cfg=cfg, client=request["client"], user=request["user"],
                      workbook=request.get("workbook"), request_id=message.get("id"))
    except (ProtocolError, KeyError, TypeError, AttributeError, IndexError) as exc:
        log.warning("malformed request body, dropped: %s", exc)
        return []
    fn = handlers.get(message.get("type"))
    try:
        if fn is None:
            raise HandlerError("unknown_type", f"no handler for type {message.get('type')!r}")
        await fn(ctx, message)
    except HandlerError as exc:
        error = error_message(exc.code, exc.message, ctx.request_id)
        if exc.field:
            error["field"] = exc.field
        ctx.deliveries = [{"to": {"client": ctx.client}, "message": error}]
    except Exception:
        log.exception("handler failed", extra={"type": message.get("type")})
        ctx.deliveries = [{"to": {"client": ctx.client}, "message": error_message(
            "internal", "the server failed to handle this request", ctx.request_id)}]
    return ctx.deliveries


async def choose_broker(cfg: Config, db: Database) -> tuple[str, dict[str, Any]] | None:
    """(pool, broker row): the configured pool or the live pool with the fewest workers; in
    it, the broker with the fewest workers. None when there is no broker to join yet."""
    liveness = cfg.heartbeat.registry_liveness
    brokers = await live(db, "broker", liveness)
    if cfg.worker.pool:
        brokers = [b for b in brokers if b["pool"] == cfg.worker.pool]
    if not brokers:
        return None
    workers = await live(db, "worker", liveness)
    per_pool: dict[str, int] = {}
    for w in workers:
        per_pool[w["pool"]] = per_pool.get(w["pool"], 0) + 1
    pool = min({b["pool"] for b in brokers}, key=lambda p: (per_pool.get(p, 0), p))
    # count the workers that said they joined each broker (fresher than the broker's own load)
    per_broker: dict[str, int] = {}
    for w in workers:
        joined = (w.get("extra") or {}).get("broker")
        if joined:
            per_broker[joined] = per_broker.get(joined, 0) + 1
    candidates = [b for b in brokers if b["pool"] == pool]
    fewest = min(max(b["load"], per_broker.get(b["id"], 0)) for b in candidates)
    # ties broken at random, so workers starting together spread over the brokers
    broker = random.choice([b for b in candidates
                            if max(b["load"], per_broker.get(b["id"], 0)) == fewest])
    return pool, broker


class Worker:
    def __init__(self, cfg: Config, db: Database, reg: Registration) -> None:
        self.cfg = cfg
        self.db = db
        self.reg = reg
        self.ctx = zmq.Context()
        self.interval = cfg.heartbeat.interval
        self.liveness = cfg.heartbeat.liveness
        self.handled = 0
        self.last_heard = 0.0
        self.busy = False
        self.idle_since = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        backoff = RECONNECT_MIN
        while not stop.is_set():
            choice = await choose_broker(self.cfg, self.db)
            if choice is None:
                log.info("no broker to join yet", extra={"retry_in": round(backoff, 2)})
            else:
                pool, broker = choice
                self.reg.pool = pool
                started = time.monotonic()
                await self.session(broker, stop)
                if time.monotonic() - started > self.interval * self.liveness * 2:
                    backoff = RECONNECT_MIN
            if stop.is_set():
                break
            try:
                await asyncio.wait_for(stop.wait(), backoff * (0.5 + random.random()))
            except TimeoutError:
                pass
            backoff = min(backoff * 2, RECONNECT_MAX)
        self.ctx.term()

    async def session(self, broker: dict[str, Any], stop: asyncio.Event) -> None:
        """One connection to one broker, until it is lost or we are asked to stop."""
        endpoint = broker["extra"]["backend"]
        raw = self.ctx.socket(zmq.DEALER)
        raw.setsockopt(zmq.LINGER, 0)
        curve.connect_client(raw, self.cfg, "worker", broker, endpoint)
        self.reg.extra = {"broker": broker["id"], "endpoint": endpoint}
        log.info("joining broker", extra={"broker": broker["id"], "endpoint": endpoint,
                                          "pool": broker["pool"]})
        jobs: asyncio.Queue[list[bytes]] = asyncio.Queue()
        goodbye = asyncio.Event()
        self.last_heard = time.monotonic()

        def on_frames(frames: list[bytes]) -> None:
            self.last_heard = time.monotonic()
            if len(frames) < 2 or frames[0] != WORKER:
                log.warning("malformed frames from the broker, ignored")
            elif frames[1] == REQUEST and len(frames) == 6:
                jobs.put_nowait(frames[2:])
            elif frames[1] == DISCONNECT:
                goodbye.set()

        sock = LoopSocket(raw, on_frames)
        sock.send([WORKER, READY, dumps({"id": self.reg.id})])
        runner = asyncio.create_task(self._run_jobs(sock, jobs))
        ended = asyncio.create_task(_first(stop.wait(), goodbye.wait()))
        span = self.interval * self.liveness
        leave_by = None  # once stopping: the deadline for finishing the request held
        try:
            while True:  # heartbeat, and watch for silence, a goodbye or a stop
                done, _ = await asyncio.wait({ended, runner}, timeout=self.interval)
                if runner in done:
                    runner.result()  # re-raise a crash of the job runner
                now = time.monotonic()
                if leave_by is not None:
                    if goodbye.is_set():  # the broker holds nothing more for us
                        return
                    idle = not self.busy and jobs.empty()
                    if now > leave_by or (idle and now - self.idle_since > 2 * self.interval):
                        # no acknowledgement (a broker of an older release), or out of time
                        if not idle:
                            log.warning("stopping with a request unfinished",
                                        extra={"broker": broker["id"]})
                        return
                elif stop.is_set():
                    sock.send([WORKER, DISCONNECT])
                    leave_by = now + STOP_GRACE
                    if not self.busy:
                        self.idle_since = now
                    ended = asyncio.create_task(goodbye.wait())
                    continue
                elif goodbye.is_set():
                    log.info("broker asked us to reconnect", extra={"broker": broker["id"]})
                    return
                if now - self.last_heard > span:
                    log.warning("broker lost: no heartbeat", extra={"broker": broker["id"]})
                    return
                sock.send([WORKER, HEARTBEAT])
        finally:
            for task in (runner, ended):
                task.cancel()
            await asyncio.gather(runner, ended, return_exceptions=True)
            sock.close()

    async def _run_jobs(self, sock: LoopSocket, jobs: asyncio.Queue) -> None:
        while True:
            client, rid, *body = await jobs.get()
            self.busy = True
            try:
                deliveries = await handle(self.db, self.cfg, body)
            finally:
                self.busy = False
                self.idle_since = time.monotonic()
            self.handled += 1
            sock.send([WORKER, REPLY, client, rid, *reply_body(deliveries)])


async def _first(*aws) -> None:
    """Return when the first of these awaitables is done."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
