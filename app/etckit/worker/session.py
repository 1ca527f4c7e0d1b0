"""The worker's broker session: join a broker of a pool, take requests, send replies.

A worker that stops hearing its broker, or whose socket refuses a reply (no connection: the
broker refused its CURVE key, as it does until its registry refresh admits a new worker), goes
back to the registry, picks a broker again and reconnects with backoff. Stopping (SIGTERM) is
graceful: the worker tells its broker it is leaving (DISCONNECT), finishes the request it
holds, if any, and exits when the broker acknowledges with DISCONNECT, so a restart under
systemd costs no request. What a request does is dispatch.py's business; this module only
moves frames.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from typing import Any

import zmq

from ..config import Config
from ..messaging import curve
from ..messaging.loop import LoopSocket
from ..messaging.protocol import (
    DISCONNECT,
    FOLLOWUP,
    HEARTBEAT,
    READY,
    REPLY,
    REQUEST,
    WORKER,
    dumps,
    error_body,
)
from ..registry import Registration, live
from ..storage import Database
from .dispatch import handle

log = logging.getLogger("etckit.worker")

RECONNECT_MIN = 0.25
RECONNECT_MAX = 10.0
STOP_GRACE = 20.0  # the longest a stopping worker finishes its request (units allow 30 s)


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
    def __init__(self, cfg: Config, db: Database, reg: Registration,
                 services: Any = None) -> None:
        self.cfg = cfg
        self.db = db
        self.reg = reg
        self.services = services  # handed to every handler (compute, caches)
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

    def connect(self, broker: dict[str, Any], jobs: asyncio.Queue,
                goodbye: asyncio.Event) -> LoopSocket:
        """The DEALER to a broker's backend (CURVE when configured), saying READY."""
        endpoint = broker["extra"]["backend"]
        raw = self.ctx.socket(zmq.DEALER)
        raw.setsockopt(zmq.LINGER, 0)
        curve.connect_client(raw, self.cfg, "worker", broker, endpoint)
        self.reg.extra = {"broker": broker["id"], "endpoint": endpoint}
        log.info("joining broker", extra={"broker": broker["id"], "endpoint": endpoint,
                                          "pool": broker["pool"]})

        def on_frames(frames: list[bytes]) -> None:
            self.last_heard = time.monotonic()
            if len(frames) < 2 or frames[0] != WORKER:
                log.warning("malformed frames from the broker, ignored")
            elif frames[1] == REQUEST and len(frames) == 6:
                jobs.put_nowait(frames[2:])
            elif frames[1] == DISCONNECT:
                goodbye.set()
            elif frames[1] != HEARTBEAT:
                log.warning("unexpected frames from the broker, ignored")

        sock = LoopSocket(raw, on_frames)
        sock.send([WORKER, READY, dumps({"id": self.reg.id})])
        self.last_heard = time.monotonic()
        return sock

    async def session(self, broker: dict[str, Any], stop: asyncio.Event) -> None:
        """One connection to one broker, until it is lost or we are asked to stop."""
        jobs: asyncio.Queue[list[bytes]] = asyncio.Queue()
        goodbye = asyncio.Event()
        sock = self.connect(broker, jobs, goodbye)
        runner = asyncio.create_task(self._run_jobs(sock, jobs))
        ended = asyncio.create_task(_first(stop.wait(), goodbye.wait()))
        try:
            await self._keep_alive(sock, broker["id"], runner, ended, jobs, goodbye, stop)
        except zmq.ZMQError as exc:  # a reply or a goodbye the socket refused: join again
            log.warning("broker lost: cannot send to it", extra={"broker": broker["id"],
                                                                 "error": str(exc)})
        finally:
            for task in (runner, ended):
                task.cancel()
            await asyncio.gather(runner, ended, return_exceptions=True)
            sock.close()

    async def _keep_alive(self, sock: LoopSocket, broker: str, runner: asyncio.Task,
                          ended: asyncio.Task, jobs: asyncio.Queue, goodbye: asyncio.Event,
                          stop: asyncio.Event) -> None:
        """Heartbeat, and watch for silence, a goodbye or a stop."""
        span = self.interval * self.liveness
        leave_by = None  # once stopping: the deadline for finishing the request held
        while True:
            done, _ = await asyncio.wait({ended, runner}, timeout=self.interval)
            if runner in done:
                runner.result()  # re-raise a crash of the job runner
            now = time.monotonic()
            if leave_by is not None:
                if goodbye.is_set() or self._may_leave(now, leave_by, jobs, broker):
                    return
            elif stop.is_set():
                sock.send([WORKER, DISCONNECT])
                leave_by = now + STOP_GRACE
                if not self.busy:
                    self.idle_since = now
                ended = asyncio.create_task(goodbye.wait())
                continue
            elif goodbye.is_set():
                log.info("broker asked us to reconnect", extra={"broker": broker})
                return
            if now - self.last_heard > span:
                log.warning("broker lost: no heartbeat", extra={"broker": broker})
                return
            try:
                sock.send([WORKER, HEARTBEAT])
            except zmq.Again:  # no connection (the broker refused our key) or a full queue:
                pass  # its silence ends the session, not this, so a job held carries on

    def _may_leave(self, now: float, leave_by: float, jobs: asyncio.Queue,
                   broker: str) -> bool:
        """Stopping without the broker's acknowledgement (a broker of an older release), or
        out of time."""
        idle = not self.busy and jobs.empty()
        if now > leave_by or (idle and now - self.idle_since > 2 * self.interval):
            if not idle:
                log.warning("stopping with a request unfinished", extra={"broker": broker})
            return True
        return False

    async def _run_jobs(self, sock: LoopSocket, jobs: asyncio.Queue) -> None:
        while True:
            client, rid, *body = await jobs.get()
            self.busy = True
            try:
                reply, followups = await handle(self.db, self.cfg, body,
                                                services=self.services)
            finally:
                self.busy = False
                self.idle_since = time.monotonic()
            self.handled += 1
            if reply is None:  # malformed: still answer, so the broker frees this worker
                reply = error_body("invalid", "the request was malformed")
            sock.send([WORKER, REPLY, client, rid, *reply])
            for followup in followups:
                sock.send([WORKER, FOLLOWUP, client, f"f{uuid.uuid4().hex}".encode(),
                           *followup])


async def _first(*aws) -> None:
    """Return when the first of these awaitables is done."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
