"""The broker: hands each wssvc request to the least recently used free worker.

State is three plain collections, as in zguide's Majordomo broker: ``workers`` (every worker
that said READY, with its expiry and the job it holds), ``idle`` (free workers, least recently
used first) and ``waiting`` (requests queued while no worker is free: one queue per user, the
users served in turn, bounded in total and per user). Requests that have waited while the broker
had no worker at all for the liveness window go back to their wssvc (RETURN), which sends them
to a broker of the pool that has workers. Every message is checked before it is acted on; a
malformed one is logged (rate-limited) and dropped.

The ZeroMQ loop is synchronous and runs in its own thread, with the CURVE gatekeeper's ZAP
socket; the asyncio side keeps the registry entry fresh and reads the keys to admit.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

import zmq

from . import metrics
from .bootstrap import Running, running
from .config import Config
from .lifecycle import Fatal
from .messaging.curve import BACKEND, FRONTEND, Gatekeeper, LinkSecurity, public_keys
from .messaging.frames import (
    Complaints,
    FrameError,
    RequestUsers,
    check_hello,
    check_rid,
    request_user,
)
from .messaging.loop import send_frames
from .messaging.protocol import (
    CLIENT,
    COMMAND_NAMES,
    DISCONNECT,
    FOLLOWUP,
    HEARTBEAT,
    READY,
    REPLY,
    REQUEST,
    RETURN,
    WORKER,
    error_body,
)
from .registry import Registration, live
from .storage import Database, StorageError

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 16 * 1024 * 1024  # ZMQ_MAXMSGSIZE when no LinkSecurity is given (tests)


@dataclass
class Job:
    client: bytes  # the wssvc's routing id
    rid: bytes
    body: list[bytes]
    user: str
    since: float  # when it was queued


@dataclass
class WorkerState:
    identity: bytes
    expiry: float
    job: Job | None = None
    started: float = 0.0  # when it was given its job
    leaving: bool = False  # said DISCONNECT while holding a job: goes once it replies


class FairQueue:
    """Requests waiting for a worker: one FIFO per user, and the users in turn (round-robin
    over the users with waiting requests), so a user with a thousand queued requests delays
    another user's request by about one request per worker."""

    def __init__(self, limit: int, per_user: int) -> None:
        self.limit = limit
        self.per_user = per_user
        self.queues: dict[str, deque[Job]] = {}
        self.turns: deque[str] = deque()  # users with waiting requests, next served first
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def waiting(self, user: str) -> int:
        queue = self.queues.get(user)
        return len(queue) if queue else 0

    def refusal(self, user: str) -> str | None:
        """"busy" (the queue is full), "rate_limited" (this user's share is), or None."""
        if self.size >= self.limit:
            return "busy"
        if self.waiting(user) >= self.per_user:
            return "rate_limited"
        return None

    def push(self, job: Job, *, first: bool = False) -> None:
        """Queue a job; first: at the head of its user's queue, and that user served next
        (a job taken back because its worker was unreachable)."""
        queue = self.queues.get(job.user)
        if queue is None:
            queue = self.queues[job.user] = deque()
            self.turns.append(job.user)
        if first:
            queue.appendleft(job)
            self.turns.remove(job.user)
            self.turns.appendleft(job.user)
        else:
            queue.append(job)
        self.size += 1

    def pop(self) -> Job | None:
        """The oldest request of the user whose turn it is."""
        if not self.turns:
            return None
        user = self.turns.popleft()
        queue = self.queues[user]
        job = queue.popleft()
        if queue:
            self.turns.append(user)
        else:
            del self.queues[user]
        self.size -= 1
        return job

    def pop_older(self, cutoff: float) -> list[Job]:
        """Every request queued at or before cutoff, oldest first."""
        old: list[Job] = []
        for user in list(self.turns):
            queue = self.queues[user]
            while queue and queue[0].since <= cutoff:
                old.append(queue.popleft())
            if not queue:
                del self.queues[user]
                self.turns.remove(user)
        self.size -= len(old)
        return sorted(old, key=lambda job: job.since)


class Broker:
    def __init__(self, ctx: zmq.Context, *, interval: float, liveness: int,
                 queue_limit: int, queue_per_user: int = 100,
                 security: LinkSecurity | None = None) -> None:
        self.interval = interval
        self.liveness = liveness
        self.security = security or LinkSecurity(keys=None, max_bytes=DEFAULT_MAX_BYTES)
        # the ZAP handler is bound before any CURVE socket, so no handshake goes unchecked
        self.gatekeeper = Gatekeeper(ctx) if self.security.keys else None
        self.frontend = ctx.socket(zmq.ROUTER)  # wssvc
        self.backend = ctx.socket(zmq.ROUTER)  # workers
        for sock, domain in ((self.frontend, FRONTEND), (self.backend, BACKEND)):
            sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, 100000)
            sock.setsockopt(zmq.RCVHWM, 100000)
            self.security.server(sock, domain)
        self.workers: dict[bytes, WorkerState] = {}
        self.idle: deque[bytes] = deque()  # free workers, least recently used first
        self.waiting = FairQueue(queue_limit, queue_per_user)
        self.clients: dict[bytes, float] = {}  # wssvc routing id -> expiry
        self.unstaffed_since: float | None = time.monotonic()  # no worker since then
        self.handled = 0
        self.service_time = 0.05  # seconds a request takes, a moving average (retry_after)
        self.complain = Complaints(log)
        self.request_user = RequestUsers()  # the user of a REQUEST meta frame, remembered
        self.counts = metrics.BrokerCounts()  # etckit_broker_requests_total{pool,outcome}

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
            send_frames(sock, frames, zmq.NOBLOCK)
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
        """Frames from a wssvc: checked (a malformed message is logged and dropped)."""
        try:
            command = _command(frames, CLIENT, CLIENT_FRAMES)
            if command == REQUEST:
                check_rid(frames[3])
                user = self.request_user(frames[4])
        except FrameError as exc:
            self.complain(f"malformed frames from a wssvc, dropped: {exc}",
                          peer=frames[0].hex() if frames else "")
            return
        client = frames[0]
        self.clients[client] = time.monotonic() + self.expiry_span
        if command == REQUEST:
            self.on_request(Job(client, frames[3], frames[4:], user, time.monotonic()))
        elif command == DISCONNECT:
            self.clients.pop(client, None)

    def on_request(self, job: Job) -> None:
        refusal = self.waiting.refusal(job.user)
        if refusal is not None:
            self.counts.count(refusal)
        if refusal == "busy":
            self.reply_to_client(job.client, job.rid, error_body(
                "busy", "all workers are busy and the queue is full; try again shortly"))
        elif refusal == "rate_limited":
            turn = self.service_time * len(self.waiting.turns) / max(1, len(self.workers))
            self.reply_to_client(job.client, job.rid, error_body(
                "rate_limited", f"you already have {self.waiting.per_user} requests waiting "
                "(broker.queue_per_user); wait for their replies",
                retry_after=round(min(60.0, max(0.1, turn)), 2)))
        else:
            self.waiting.push(job)
            self.dispatch()

    def on_worker(self, frames: list[bytes]) -> None:
        """Frames from a worker: checked (a malformed message is logged and dropped)."""
        try:
            command = _command(frames, WORKER, WORKER_FRAMES)
            if command == READY:
                check_hello(frames[3])
        except FrameError as exc:
            self.complain(f"malformed frames from a worker, dropped: {exc}",
                          peer=frames[0].hex() if frames else "")
            return
        identity = frames[0]
        worker = self.workers.get(identity)
        if command == READY:
            self.on_ready(identity, worker)
        elif worker is None:  # we don't know it (we restarted): ask it to start over
            self._send(self.backend, [identity, WORKER, DISCONNECT])
        else:
            worker.expiry = time.monotonic() + self.expiry_span
            if command == REPLY:
                self.on_reply(worker, frames[3], frames[4], frames[5:])
            elif command == DISCONNECT:
                self.on_leaving(worker)
            elif command == FOLLOWUP:
                self.on_followup(frames[3], frames[4], frames[5:])

    def on_followup(self, client: bytes, rid: bytes, body: list[bytes]) -> None:
        """More work of a user's that a worker asks for (a recalculation after an edit):
        queued in that user's turn like a request; its reply goes to the wssvc `client`."""
        try:
            check_rid(rid)
            user = request_user(body[0])
        except FrameError as exc:
            self.complain(f"malformed follow-up from a worker, dropped: {exc}")
            return
        self.on_request(Job(client, rid, body, user, time.monotonic()))

    def on_ready(self, identity: bytes, worker: WorkerState | None) -> None:
        if worker is not None:  # a READY from a known worker: it restarted its session
            self.drop_worker(worker, "worker said READY again")
        self.workers[identity] = WorkerState(identity, time.monotonic() + self.expiry_span)
        self.idle.append(identity)
        self.unstaffed_since = None
        log.info("worker ready", extra={"worker": identity.hex(), "workers": len(self.workers)})
        self.dispatch()

    def on_reply(self, worker: WorkerState, client: bytes, rid: bytes,
                 body: list[bytes]) -> None:
        job = worker.job
        if job is None or (job.client, job.rid) != (client, rid):
            self.complain("reply for a request the worker did not hold",
                          worker=worker.identity.hex())
            return
        worker.job = None
        self.handled += 1
        took = time.monotonic() - worker.started
        self.service_time += (took - self.service_time) * 0.1
        self.counts.count("ok")
        self.reply_to_client(client, rid, body)
        if worker.leaving:
            self.drop_worker(worker, "worker left after its request")
            self._send(self.backend, [worker.identity, WORKER, DISCONNECT])
        else:
            self.idle.append(worker.identity)
            self.dispatch()

    def on_leaving(self, worker: WorkerState) -> None:
        """It is stopping: let it finish its job, then acknowledge."""
        if worker.job is None:
            self.drop_worker(worker, "worker disconnected")
            self._send(self.backend, [worker.identity, WORKER, DISCONNECT])
        elif not worker.leaving:
            worker.leaving = True
            log.info("worker leaving after its request", extra={"worker": worker.identity.hex()})

    def dispatch(self) -> None:
        while self.idle and self.waiting:
            identity = self.idle.popleft()
            worker = self.workers.get(identity)
            if worker is None:
                continue
            job = self.waiting.pop()
            assert job is not None
            if self._send(self.backend, [identity, WORKER, REQUEST, job.client, job.rid,
                                         *job.body]):
                worker.job = job
                worker.started = time.monotonic()
            else:
                self.waiting.push(job, first=True)
                self.drop_worker(worker, "worker unreachable")

    def drop_worker(self, worker: WorkerState, why: str) -> None:
        self.workers.pop(worker.identity, None)
        try:
            self.idle.remove(worker.identity)
        except ValueError:
            pass
        if worker.job is not None:
            self.counts.count("worker_lost")
            self.reply_to_client(worker.job.client, worker.job.rid, error_body(
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
        for job in self.waiting.pop_older(queued_before):
            returned += self._send(self.frontend, [job.client, CLIENT, RETURN, job.rid,
                                                   *job.body])
        if returned:
            self.counts.count("returned", returned)
            log.warning("no worker: requests returned to wssvc", extra={"returned": returned})

    def on_zap(self, frames: list[bytes]) -> None:
        assert self.gatekeeper is not None
        answer = self.gatekeeper.on_request(frames)
        if answer is not None:
            self.gatekeeper.sock.send_multipart(answer)

    def loop(self, stop: threading.Event) -> None:
        poller = zmq.Poller()
        poller.register(self.frontend, zmq.POLLIN)
        poller.register(self.backend, zmq.POLLIN)
        gate = self.gatekeeper
        if gate is not None:
            poller.register(gate.sock, zmq.POLLIN)
        next_beat = time.monotonic() + self.interval
        while not stop.is_set():
            # a parked ZAP request is answered as soon as a registry read covers it
            most = 0.02 if gate is not None and gate.parked else 0.25
            timeout = max(0.0, min(next_beat - time.monotonic(), most))
            events = dict(poller.poll(timeout * 1000))
            if gate is not None:
                if gate.sock in events:
                    self._drain(gate.sock, self.on_zap)
                for answer in gate.settle():
                    gate.sock.send_multipart(answer)
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

    def _drain(self, sock: zmq.Socket, handle, limit: int = 1000) -> None:
        """Handle what the poller said is waiting; asking ZMQ_EVENTS after each message costs
        less than the zmq.Again exception an empty recv raises."""
        for _ in range(limit):
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                handle(frames)
            except Exception:  # a bug must not take the broker down: log it, carry on
                self.complain("failed to handle a message", exc_info=True)
            if not sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                return

    def close(self) -> None:
        self.frontend.close(0)
        self.backend.close(0)
        if self.gatekeeper is not None:
            self.gatekeeper.close()


CLIENT_FRAMES = {REQUEST: 6, HEARTBEAT: 3, DISCONNECT: 3}  # frames, routing id included
WORKER_FRAMES = {READY: 4, REPLY: -6, HEARTBEAT: 3, DISCONNECT: 3, FOLLOWUP: 7}  # -n: at least n


def _command(frames: list[bytes], header: bytes, counts: dict[bytes, int]) -> bytes:
    """The command of a message whose header and frame count are right, else FrameError."""
    if len(frames) < 3 or frames[1] != header:
        raise FrameError(f"expected {header.decode()} and a command")
    command = frames[2]
    want = counts.get(command)
    if want is None:
        raise FrameError(f"unexpected command {command[:8].hex()}")
    if (want > 0 and len(frames) != want) or (want < 0 and len(frames) < -want):
        raise FrameError(f"{COMMAND_NAMES[command]} with {len(frames) - 1} frames")
    return command


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


class KeyKeeper:
    """Reads, every registry interval and whenever an unknown key knocks, the public keys the
    gatekeeper admits: the live wssvc of the broker's pool (frontend) and the live workers of
    the cluster (backend, since workers choose their broker)."""

    def __init__(self, db: Database, gate: Gatekeeper, pool: str, *, interval: float,
                 liveness: float) -> None:
        self.db = db
        self.gate = gate
        self.pool = pool
        self.interval = interval
        self.liveness = liveness
        self.knock = asyncio.Event()
        loop = asyncio.get_running_loop()
        gate.wake = lambda: loop.call_soon_threadsafe(self.knock.set)

    async def read(self) -> None:
        upto = self.gate.seq  # the ZAP requests parked before this read began
        wssvc = await live(self.db, "wssvc", self.liveness, pool=self.pool)
        workers = await live(self.db, "worker", self.liveness)
        self.gate.admit({FRONTEND: public_keys(wssvc), BACKEND: public_keys(workers)}, upto)

    async def run(self) -> None:
        while True:
            self.knock.clear()
            try:
                await self.read()
            except StorageError as exc:  # the registration notices a lasting outage
                log.warning("cannot read the keys to admit: %s", exc)
            try:
                await asyncio.wait_for(self.knock.wait(), self.interval)
            except TimeoutError:
                pass
            await asyncio.sleep(min(0.25, self.interval))  # at most ~4 reads a second


async def run(cfg: Config, stop: asyncio.Event) -> int:
    ctx = zmq.Context()
    broker = Broker(ctx, interval=cfg.heartbeat.interval, liveness=cfg.heartbeat.liveness,
                    queue_limit=cfg.broker.queue_limit, queue_per_user=cfg.broker.queue_per_user,
                    security=LinkSecurity.from_config(cfg, "broker"))
    try:
        async with running(cfg, stop) as program:
            front, back = broker.bind(cfg.broker.host, cfg.broker.frontend_port,
                                      cfg.broker.backend_port)
            pool = await choose_pool(cfg, program.db, stop)
            if pool is None:
                return 0
            watch(broker, pool)
            await _admit_keys(cfg, program, broker, pool)
            host = cfg.broker.advertise_host or cfg.broker.host
            reg = await program.register("broker", pool=pool, endpoint=f"tcp://{host}:{front}",
                                         extra={"backend": f"tcp://{host}:{back}"},
                                         publish=broker.security.published,
                                         load=lambda: len(broker.workers))
            program.background(_publish_load(reg, broker, cfg.heartbeat.registry_interval))
            log.info("serving", extra={"pool": pool, "frontend": front, "backend": back,
                                       "curve": broker.gatekeeper is not None})
            await _serve(broker, program.halt)
    finally:
        broker.close()
        ctx.term()
    return 0


async def _publish_load(reg: Registration, broker: Broker, interval: float) -> None:
    """The queue and busy workers in the registry entry, for `etckit status`."""
    backend = reg.extra["backend"]
    while True:
        busy = len(broker.workers) - len(broker.idle)
        reg.extra = {"backend": backend, "queue": len(broker.waiting), "busy": busy}
        await asyncio.sleep(min(0.5, interval))


def watch(broker: Broker, pool: str) -> None:
    """The broker's metrics: its pool's label, its queue and workers read when scraped."""
    broker.counts.pool = pool
    metrics.watch_broker(pool, lambda: len(broker.waiting), lambda: len(broker.idle),
                         lambda: len(broker.workers) - len(broker.idle))


async def _admit_keys(cfg: Config, program: Running, broker: Broker, pool: str) -> None:
    """With CURVE: know the keys to admit before anyone knows this broker, then keep them."""
    if broker.gatekeeper is None:
        return
    keeper = KeyKeeper(program.db, broker.gatekeeper, pool,
                       interval=cfg.heartbeat.registry_interval,
                       liveness=cfg.heartbeat.registry_liveness)
    await keeper.read()
    program.background(keeper.run(), name="broker-keys")


async def _serve(broker: Broker, halt: asyncio.Event) -> None:
    """The ZeroMQ loop in its thread until halt (or until it crashes, which re-raises)."""
    stop_loop = threading.Event()
    loop_task = asyncio.create_task(asyncio.to_thread(broker.loop, stop_loop))
    halted = asyncio.create_task(halt.wait())
    await asyncio.wait({loop_task, halted}, return_when=asyncio.FIRST_COMPLETED)
    stop_loop.set()
    halted.cancel()
    await loop_task


__all__ = ["Broker", "run"]
