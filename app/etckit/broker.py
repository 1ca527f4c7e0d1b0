"""The broker: hands each wssvc request to the least recently used free worker.

State is three plain collections, as in zguide's Majordomo broker: ``workers`` (every worker
that said READY, with its expiry and the job it holds), ``idle`` (free workers, least recently
used first) and ``waiting`` (requests queued while no worker is free, bounded). Requests that
have waited while the broker had no worker at all for the liveness window go back to their wssvc
(RETURN), which sends them to a broker of the pool that has workers. The ZeroMQ loop
is synchronous and runs in its own thread; the asyncio side only keeps the registry entry fresh.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

import zmq

from .config import Config
from .lifecycle import Fatal, wait_first
from .messaging.protocol import (
    CLIENT,
    DISCONNECT,
    HEARTBEAT,
    READY,
    REPLY,
    REQUEST,
    RETURN,
    WORKER,
    error_body,
)
from .registry import Registration, live
from .storage import connect

log = logging.getLogger(__name__)


@dataclass
class WorkerState:
    identity: bytes
    expiry: float
    job: tuple[bytes, bytes] | None = None  # (client routing id, request id)
    leaving: bool = False  # said DISCONNECT while holding a job: goes once it replies


class Broker:
    def __init__(self, ctx: zmq.Context, *, interval: float, liveness: int,
                 queue_limit: int) -> None:
        self.interval = interval
        self.liveness = liveness
        self.queue_limit = queue_limit
        self.frontend = ctx.socket(zmq.ROUTER)  # wssvc
        self.backend = ctx.socket(zmq.ROUTER)  # workers
        for sock in (self.frontend, self.backend):
            sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, 100000)
            sock.setsockopt(zmq.RCVHWM, 100000)
        self.workers: dict[bytes, WorkerState] = {}
        self.idle: deque[bytes] = deque()
        self.waiting: deque[tuple[bytes, bytes, list[bytes], float]] = deque()  # ..., queued at
        self.clients: dict[bytes, float] = {}  # wssvc routing id -> expiry
        self.unstaffed_since: float | None = time.monotonic()  # no worker since then
        self.handled = 0

    def bind(self, host: str, frontend_port: int, backend_port: int) -> tuple[int, int]:
        ports = []
        for sock, port in ((self.frontend, frontend_port), (self.backend, backend_port)):
            try:
                if port:
                    sock.bind(f"tcp://{host}:{port}")
                    ports.append(port)
                else:
                    ports.append(sock.bind_to_random_port(f"tcp://{host}"))
            except zmq.ZMQError as exc:
                raise Fatal(f"cannot bind tcp://{host}:{port}: {exc}") from exc
        return ports[0], ports[1]

    @property
    def expiry_span(self) -> float:
        return self.interval * self.liveness

    # -- sending ------------------------------------------------------------------------

    def _send(self, sock: zmq.Socket, frames: list[bytes]) -> bool:
        try:
            sock.send_multipart(frames, flags=zmq.NOBLOCK)
            return True
        except zmq.Again:
            log.warning("peer is not keeping up, message dropped", extra={"peer": frames[0].hex()})
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EHOSTUNREACH:
                raise
        return False

    def reply_to_client(self, client: bytes, rid: bytes, body: list[bytes]) -> None:
        if not self._send(self.frontend, [client, CLIENT, REPLY, rid, *body]):
            log.info("reply for a wssvc that is gone",
                     extra={"request": rid.decode(errors="replace")})

    # -- one protocol step per method ---------------------------------------------------

    def on_client(self, frames: list[bytes]) -> None:
        client = frames[0]
        if len(frames) < 3 or frames[1] != CLIENT:
            log.warning("malformed frames from a wssvc, ignored", extra={"frames": len(frames)})
            return
        self.clients[client] = time.monotonic() + self.expiry_span
        command = frames[2]
        if command == REQUEST and len(frames) == 6:
            rid, body = frames[3], frames[4:]
            if len(self.waiting) >= self.queue_limit:
                self.reply_to_client(client, rid, error_body(
                    "busy", "all workers are busy and the queue is full; try again shortly"))
                return
            self.waiting.append((client, rid, body, time.monotonic()))
            self.dispatch()
        elif command == DISCONNECT:
            self.clients.pop(client, None)
        elif command != HEARTBEAT:
            log.warning("unexpected command from a wssvc", extra={"command": command.hex()})

    def on_worker(self, frames: list[bytes]) -> None:
        identity = frames[0]
        if len(frames) < 3 or frames[1] != WORKER:
            log.warning("malformed frames from a worker, ignored", extra={"frames": len(frames)})
            return
        command = frames[2]
        worker = self.workers.get(identity)
        if command == READY:
            if worker is not None:  # a READY from a known worker: it restarted its session
                self.drop_worker(worker, "worker said READY again")
            self.workers[identity] = WorkerState(identity, time.monotonic() + self.expiry_span)
            self.idle.append(identity)
            self.unstaffed_since = None
            log.info("worker ready", extra={"worker": identity.hex(), "workers": len(self.workers)})
            self.dispatch()
            return
        if worker is None:  # we don't know it (we restarted): ask it to start over
            self._send(self.backend, [identity, WORKER, DISCONNECT])
            return
        worker.expiry = time.monotonic() + self.expiry_span
        if command == REPLY and len(frames) >= 6:
            client, rid, body = frames[3], frames[4], frames[5:]
            if worker.job is not None and worker.job == (client, rid):
                worker.job = None
                self.handled += 1
                self.reply_to_client(client, rid, body)
                if worker.leaving:
                    self.drop_worker(worker, "worker left after its request")
                    self._send(self.backend, [identity, WORKER, DISCONNECT])
                else:
                    self.idle.append(identity)
                    self.dispatch()
            else:
                log.warning("reply for a request the worker did not hold", extra={
                    "worker": identity.hex()})
        elif command == DISCONNECT:  # it is stopping: let it finish its job, then acknowledge
            if worker.job is None:
                self.drop_worker(worker, "worker disconnected")
                self._send(self.backend, [identity, WORKER, DISCONNECT])
            elif not worker.leaving:
                worker.leaving = True
                log.info("worker leaving after its request", extra={"worker": identity.hex()})
        elif command != HEARTBEAT:
            log.warning("unexpected command from a worker", extra={"command": command.hex()})

    def dispatch(self) -> None:
        while self.idle and self.waiting:
            identity = self.idle.popleft()
            worker = self.workers.get(identity)
            if worker is None:
                continue
            client, rid, body, since = self.waiting.popleft()
            if self._send(self.backend, [identity, WORKER, REQUEST, client, rid, *body]):
                worker.job = (client, rid)
            else:
                self.waiting.appendleft((client, rid, body, since))
                self.drop_worker(worker, "worker unreachable")

    def drop_worker(self, worker: WorkerState, why: str) -> None:
        self.workers.pop(worker.identity, None)
        try:
            self.idle.remove(worker.identity)
        except ValueError:
            pass
        if worker.job is not None:
            client, rid = worker.job
            self.reply_to_client(client, rid, error_body(
                "worker_lost", "the worker handling this request stopped; please retry"))
        if not self.workers and self.unstaffed_since is None:
            self.unstaffed_since = time.monotonic()
        log.warning("worker dropped", extra={"worker": worker.identity.hex(), "reason": why,
                                             "had_job": worker.job is not None,
                                             "workers": len(self.workers)})

    def heartbeat(self) -> None:
        now = time.monotonic()
        for worker in [w for w in self.workers.values() if w.expiry < now]:
            self.drop_worker(worker, "heartbeat expired")
        for client in [c for c, exp in self.clients.items() if exp < now]:
            del self.clients[client]
            log.info("wssvc expired", extra={"peer": client.hex()})
        if self.unstaffed_since is not None and now - self.unstaffed_since >= self.expiry_span:
            self.return_waiting(now - self.expiry_span)
        for identity in list(self.workers):
            self._send(self.backend, [identity, WORKER, HEARTBEAT])
        workers = str(len(self.workers)).encode()  # wssvc sends only to brokers with workers
        for client in list(self.clients):
            self._send(self.frontend, [client, CLIENT, HEARTBEAT, workers])

    def return_waiting(self, queued_before: float) -> None:
        """No worker for the liveness window (they died, or joined another broker): hand the
        requests queued for that long back to their wssvc instead of holding them."""
        returned = 0
        while self.waiting and self.waiting[0][3] <= queued_before:
            client, rid, body, _ = self.waiting.popleft()
            returned += self._send(self.frontend, [client, CLIENT, RETURN, rid, *body])
        if returned:
            log.warning("no worker: requests returned to wssvc", extra={"returned": returned})

    def loop(self, stop: threading.Event) -> None:
        poller = zmq.Poller()
        poller.register(self.frontend, zmq.POLLIN)
        poller.register(self.backend, zmq.POLLIN)
        next_beat = time.monotonic() + self.interval
        while not stop.is_set():
            timeout = max(0.0, next_beat - time.monotonic())
            events = dict(poller.poll(min(timeout, 0.25) * 1000))
            if self.backend in events:
                self._drain(self.backend, self.on_worker)
            if self.frontend in events:
                self._drain(self.frontend, self.on_client)
            if time.monotonic() >= next_beat:
                self.heartbeat()
                next_beat = time.monotonic() + self.interval
        for identity in list(self.workers):
            self._send(self.backend, [identity, WORKER, DISCONNECT])
        for client in list(self.clients):
            self._send(self.frontend, [client, CLIENT, DISCONNECT])

    @staticmethod
    def _drain(sock: zmq.Socket, handle, limit: int = 1000) -> None:
        for _ in range(limit):
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            handle(frames)

    def close(self) -> None:
        self.frontend.close(0)
        self.backend.close(0)


async def choose_pool(cfg: Config, db, stop: asyncio.Event) -> str | None:
    """The configured pool, or the live wssvc pool with the fewest brokers (waits for one)."""
    if cfg.broker.pool:
        return cfg.broker.pool
    announced = False
    while not stop.is_set():
        pools = [w["pool"] for w in await live(db, "wssvc", cfg.heartbeat.registry_liveness)]
        if pools:
            brokers = await live(db, "broker", cfg.heartbeat.registry_liveness)
            count = {p: sum(1 for b in brokers if b["pool"] == p) for p in pools}
            return min(pools, key=lambda p: (count[p], p))
        if not announced:
            log.info("waiting for a wssvc to serve")
            announced = True
        try:
            await asyncio.wait_for(stop.wait(), cfg.heartbeat.registry_interval)
        except TimeoutError:
            pass
    return None


async def run(cfg: Config, stop: asyncio.Event) -> int:
    db = await connect(cfg)
    ctx = zmq.Context()
    broker = Broker(ctx, interval=cfg.heartbeat.interval, liveness=cfg.heartbeat.liveness,
                    queue_limit=cfg.broker.queue_limit)
    reg: Registration | None = None
    try:
        front, back = broker.bind(cfg.broker.host, cfg.broker.frontend_port,
                                  cfg.broker.backend_port)
        pool = await choose_pool(cfg, db, stop)
        if pool is None:
            return 0
        host = cfg.broker.advertise_host or cfg.broker.host
        reg = Registration(db, "broker", pool=pool, endpoint=f"tcp://{host}:{front}",
                           extra={"backend": f"tcp://{host}:{back}"},
                           interval=cfg.heartbeat.registry_interval,
                           liveness=cfg.heartbeat.registry_liveness,
                           load=lambda: len(broker.workers))
        await reg.start()
        log.info("serving", extra={"pool": pool, "frontend": front, "backend": back})
        halt = threading.Event()
        loop_task = asyncio.create_task(asyncio.to_thread(broker.loop, halt))
        stopper = asyncio.create_task(wait_first(stop, reg.lost))
        await asyncio.wait({loop_task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        halt.set()
        stopper.cancel()
        await loop_task  # re-raises if the loop crashed
        if reg.lost.is_set():
            raise Fatal("the database (service registry) is unreachable")
    finally:
        if reg is not None:
            await reg.stop()
        broker.close()
        ctx.term()
        await db.close()
    return 0


__all__ = ["Broker", "run"]
