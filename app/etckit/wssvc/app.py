"""wssvc: the browser's websocket, forwarded to the pool's brokers, replies fanned out.

A websocket is accepted only with a valid ticket (single use, bound to this wssvc's pool) and
a permitted Origin. Every text message is checked here (JSON object, id, known type, size);
what fails gets an error reply and never reaches a worker; too many failures close with 1008.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import itertools
import json
import logging
import secrets
import time
import uuid
from collections import OrderedDict
from typing import Any
from urllib.parse import urlsplit

import zmq
from quart import Quart, jsonify, make_response, request, websocket

from .. import __version__
from ..auth import keys, tickets
from ..config import Config
from ..http import serve_app
from ..lifecycle import Fatal, wait_first
from ..messaging.curve import LinkSecurity
from ..messaging.protocol import (
    ProtocolError,
    broker_error,
    dumps,
    error_message,
    loads,
    request_body,
)
from ..messaging.types import ID_MAX, LOCAL_TYPES, REQUEST_TYPES
from ..registry import Registration
from ..storage import Database, connect
from .hub import Client, Hub
from .sessions import SessionWatcher
from .upstream import Upstream

log = logging.getLogger(__name__)

CLOSE_SERVICE_RESTART = 1012  # the broker behind this wssvc went away: reconnect
CLOSE_POLICY = 1008  # too many bad messages
CLOSE_PING_TIMEOUT = 4002  # no answer to the application ping
PING_GRACE = 2.5  # pings without any message from the client before it is closed


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class Service:
    """The state of one wssvc: its clients, its brokers, its requests in flight."""

    def __init__(self, cfg: Config, db: Database, pool: str) -> None:
        self.cfg = cfg
        self.db = db
        self.pool = pool
        # verify only; none configured (in-process tests): every ticket is refused, and run()
        # does not start without them
        self.ticket_keys = (keys.load_public_keys(cfg.auth.ticket_public_key)
                            if cfg.auth.ticket_public_key else ())
        self.hub = Hub()
        # rid -> (client id, message id), or a future for wssvc's own requests (plots)
        self.pending: dict[bytes, tuple[str, Any] | asyncio.Future] = {}
        self.plots = PlotCache(cfg.wssvc.plot_cache_bytes)
        self._rids = itertools.count(1)
        self.allowed_origins = set(cfg.wssvc.allowed_origins or
                                   [origin_of(cfg.main_server.public_url)])
        self.upstream = Upstream(
            db, pool, interval=cfg.heartbeat.interval, liveness=cfg.heartbeat.liveness,
            registry_interval=cfg.heartbeat.registry_interval,
            registry_liveness=cfg.heartbeat.registry_liveness,
            on_reply=self.on_reply, on_broker_lost=self.on_broker_lost,
            security=LinkSecurity.from_config(cfg, "wssvc"))

    # -- from the brokers ----------------------------------------------------------------

    def on_reply(self, rid: bytes, body: list[bytes]) -> None:
        """A reply: recipients (JSON) and message texts, passed on without decoding them."""
        entry = self.pending.pop(rid, None)
        try:
            meta = loads(body[0])
        except ProtocolError as exc:
            log.warning("unreadable reply from a broker: %s", exc)
            meta = {"error": {"code": "internal", "message": "unreadable reply"}}
        if isinstance(entry, asyncio.Future):  # a request of wssvc's own (a plot)
            if not entry.done():
                entry.set_result((meta, body[1:]))
            return
        if "error" in meta:
            if entry is not None:
                client = self.hub.clients.get(entry[0])
                if client is not None:
                    client.send(broker_error(meta["error"], entry[1]))
            return
        self.hub.deliver(meta.get("to", []), body[1:])

    def on_broker_lost(self, broker_id: str) -> None:
        log.warning("broker lost: closing every client with 1012",
                    extra={"broker": broker_id, "clients": len(self.hub)})
        for entry in self.pending.values():
            if isinstance(entry, asyncio.Future) and not entry.done():
                entry.set_result(({"error": {"code": "unavailable", "message": "broker lost"}},
                                  []))
        self.pending.clear()
        self.hub.close_all(CLOSE_SERVICE_RESTART, "broker restarting, please reconnect")

    # -- from a browser ------------------------------------------------------------------

    def check(self, data: str | bytes) -> dict[str, Any]:
        """The message, or raise _Bad(code, text, ref)."""
        if isinstance(data, bytes):
            raise _Bad("binary_frame", "binary frames are not accepted; send JSON text")
        limit = self.cfg.wssvc.max_message_bytes
        if len(data) > limit or (len(data) * 4 > limit and len(data.encode()) > limit):
            raise _Bad("too_large", f"message is larger than {limit} bytes")
        try:
            message = json.loads(data)
        except ValueError as exc:
            raise _Bad("bad_json", f"message is not JSON: {exc}") from None
        if not isinstance(message, dict):
            raise _Bad("not_object", "message must be a JSON object")
        mid = message.get("id")
        if mid is None:
            raise _Bad("missing_id", "message has no id")
        if isinstance(mid, bool) or not isinstance(mid, str | int) or len(str(mid)) > ID_MAX:
            raise _Bad("bad_id", f"id must be a string or integer of at most {ID_MAX} chars")
        mtype = message.get("type")
        if not isinstance(mtype, str) or not mtype:
            raise _Bad("missing_type", "message has no type", mid)
        if mtype not in REQUEST_TYPES and mtype not in LOCAL_TYPES:
            raise _Bad("unknown_type", f"unknown message type {mtype!r}", mid)
        return message

    def handle(self, client: Client, message: dict[str, Any], text: str) -> None:
        mtype = message["type"]
        if mtype == "ping":
            client.send({"type": "pong", "ref": message["id"]})
            return
        if mtype == "pong":
            return
        rid = str(next(self._rids)).encode()
        body = request_body(client.id, client.user, client.workbook, text.encode())
        try:
            sent = self.upstream.send(rid, body)
        except zmq.Again:
            sent = None
        if sent is None:
            client.send(error_message("unavailable", "no broker is available; retrying helps",
                                      message["id"]))
            return
        self.pending[rid] = (client.id, message["id"])

    async def ask_worker(self, client: Client, message: dict[str, Any],
                         timeout: float = 60.0) -> dict[str, Any]:
        """A request of wssvc's own on behalf of a client; the worker's message (or error)."""
        rid = str(next(self._rids)).encode()
        body = request_body(f"wssvc:{rid.decode()}", client.user, client.workbook,
                            dumps(message))
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        try:
            sent = self.upstream.send(rid, body)
        except zmq.Again:
            sent = None
        if sent is None:
            return error_message("unavailable", "no broker is available")
        self.pending[rid] = future
        try:
            meta, texts = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return error_message("timeout", "the worker did not answer in time")
        finally:
            self.pending.pop(rid, None)
        if "error" in meta:
            return error_message(meta["error"]["code"], meta["error"]["message"])
        if not texts:
            return error_message("internal", "empty reply")
        return loads(texts[0])

    async def serve_client(self, ticket: tickets.Ticket) -> None:
        ws = websocket._get_current_object()
        client = Client(id=uuid.uuid4().hex, user=ticket.user, workbook=ticket.workbook,
                        session=ticket.session,
                        queue=asyncio.Queue(self.cfg.wssvc.client_queue),
                        last_seen=time.monotonic(), plot_key=secrets.token_urlsafe(18))
        self.hub.add(client)
        client.send({"type": "hello", "client": client.id, "workbook": ticket.workbook,
                     "version": __version__, "plot_key": client.plot_key})
        tasks = [asyncio.create_task(self._send_loop(ws, client)),
                 asyncio.create_task(self._receive_loop(ws, client))]
        try:
            await asyncio.wait([*tasks, client.closed], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            self.hub.remove(client)
        if client.close_code is not None:
            await ws.close(client.close_code, client.close_reason)

    async def _send_loop(self, ws, client: Client) -> None:
        while True:
            await ws.send(await client.queue.get())

    async def _receive_loop(self, ws, client: Client) -> None:
        bad = 0
        while True:
            data = await ws.receive()
            client.last_seen = time.monotonic()
            try:
                message = self.check(data)
            except _Bad as exc:
                bad += 1
                client.send(error_message(exc.code, exc.text, exc.ref))
                if bad >= self.cfg.wssvc.max_bad_messages:
                    client.close(CLOSE_POLICY, "too many bad messages")
                    return
                continue
            self.handle(client, message, data)

    async def ping_all(self) -> None:
        """One task pings every client; a client silent for PING_GRACE intervals is closed."""
        interval = self.cfg.wssvc.ping_interval
        for n in itertools.count(1):
            await asyncio.sleep(interval)
            now = time.monotonic()
            ping = json.dumps({"type": "ping", "id": f"s{n}"})
            for client in list(self.hub.clients.values()):
                if now - client.last_seen > interval * PING_GRACE:
                    client.close(CLOSE_PING_TIMEOUT, "no answer to ping")
                else:
                    client.send(ping)


class _Bad(Exception):
    def __init__(self, code: str, text: str, ref: Any = None) -> None:
        super().__init__(text)
        self.code, self.text, self.ref = code, text, ref


class PlotCache:
    """Identical plot requests are served from memory (bounded in bytes, least recently used
    first out). Keys carry the user and the calculation's revision, so an edit never serves a
    stale picture and one user never gets another's."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit = limit_bytes
        self.size = 0
        self.items: OrderedDict[tuple, bytes] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, key: tuple) -> bytes | None:
        png = self.items.get(key)
        if png is None:
            self.misses += 1
            return None
        self.items.move_to_end(key)
        self.hits += 1
        return png

    def put(self, key: tuple, png: bytes) -> None:
        if len(png) > self.limit:
            return
        if key in self.items:
            self.size -= len(self.items.pop(key))
        self.items[key] = png
        self.size += len(png)
        while self.size > self.limit:
            _, old = self.items.popitem(last=False)
            self.size -= len(old)


PLOT_STATUS = {"not_found": 404, "invalid": 400, "unavailable": 503, "busy": 503,
               "timeout": 504, "worker_lost": 503, "no_worker": 503}


def create_app(service: Service) -> Quart:
    app = Quart(__name__)

    @app.get("/plots/<calculation>/<int:revision>/<kind>.png")
    async def plot(calculation: str, revision: int, kind: str):
        """A plot for the page that holds a websocket here: ?client=ID&key=its plot key."""
        client = service.hub.clients.get(request.args.get("client", ""))
        key = request.args.get("key", "")
        if client is None or not hmac.compare_digest(client.plot_key, key):
            return jsonify(error="not_authenticated",
                           message="open the workbook's websocket on this wssvc first"), 401
        cache_key = (client.user, calculation, revision, kind)
        png = service.plots.get(cache_key)
        hit = png is not None
        if png is None:
            reply = await service.ask_worker(client, {"id": "plot", "type": "plot.render",
                                                      "calculation": calculation, "kind": kind})
            if reply.get("type") == "error":
                return jsonify(error=reply["code"], message=reply["message"]), \
                    PLOT_STATUS.get(reply["code"], 502)
            png = base64.b64decode(reply["png"])
            if reply.get("revision") == revision:
                service.plots.put(cache_key, png)
        response = await make_response(png)
        response.headers["Content-Type"] = "image/png"
        response.headers["Cache-Control"] = "private, max-age=3600"
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["X-Plot-Cache"] = "hit" if hit else "miss"
        return response

    @app.get("/healthz")
    async def healthz():
        ready = bool(service.upstream.ready)
        body = {"status": "ok" if ready else "no_broker", "version": __version__,
                "pool": service.pool, "clients": len(service.hub),
                "brokers": len(service.upstream.ready)}
        return jsonify(body), 200 if ready else 503

    @app.websocket("/ws")
    async def ws():
        origin = websocket.headers.get("Origin", "")
        if origin not in service.allowed_origins:
            log.info("websocket refused: origin", extra={"origin": origin})
            return "origin not allowed", 403
        if not service.upstream.ready:
            return "no broker available, ask main_server again", 503
        try:
            ticket = await tickets.redeem(service.db, service.ticket_keys,
                                          websocket.args.get("ticket", ""), pool=service.pool)
        except tickets.TicketError as exc:
            log.info("websocket refused: %s", exc)
            return f"ticket refused: {exc}", 403
        await websocket.accept()
        await service.serve_client(ticket)
        return None

    return app


async def run(cfg: Config, stop: asyncio.Event) -> int:
    try:  # wssvc holds only the public key: it can check tickets, never make one
        await asyncio.to_thread(keys.load_public_keys, cfg.auth.ticket_public_key)
    except keys.SecretError as exc:
        raise Fatal(str(exc)) from None
    db = await connect(cfg)
    port = cfg.wssvc.public_port or cfg.wssvc.port
    pool = cfg.wssvc.pool or f"{cfg.wssvc.public_host}:{port}"
    service = Service(cfg, db, pool)
    scheme = "wss" if cfg.wssvc.certfile else "ws"
    reg = Registration(db, "wssvc", pool=pool, endpoint=f"{scheme}://{cfg.wssvc.public_host}:{port}",
                       interval=cfg.heartbeat.registry_interval,
                       liveness=cfg.heartbeat.registry_liveness,
                       load=lambda: len(service.hub),
                       publish=service.upstream.security.published)
    await reg.start()
    service.upstream.start()

    async def publish_brokers() -> None:
        while True:
            reg.extra = {"brokers": len(service.upstream.ready)}
            await asyncio.sleep(min(0.5, cfg.heartbeat.registry_interval))

    publisher = asyncio.create_task(publish_brokers())
    pinger = asyncio.create_task(service.ping_all())
    watcher = asyncio.create_task(  # logout ends the websocket (close code 4003)
        SessionWatcher(db, service.hub, cfg.auth.session_check_interval).run())
    http_stop = asyncio.Event()

    async def shutdown() -> None:  # say goodbye to the browsers before the server stops
        await wait_first(stop, reg.lost)
        service.hub.close_all(1001, "server shutting down")
        await asyncio.sleep(0.2)
        http_stop.set()

    closer = asyncio.create_task(shutdown())
    try:
        app = create_app(service)
        log.info("listening", extra={"host": cfg.wssvc.host, "port": cfg.wssvc.port,
                                     "pool": pool})
        await serve_app(app, host=cfg.wssvc.host, port=cfg.wssvc.port, stop=http_stop,
                        certfile=cfg.wssvc.certfile, keyfile=cfg.wssvc.keyfile,
                        max_ws_message=cfg.wssvc.max_message_bytes * 4 + 4096)
    finally:
        publisher.cancel()
        pinger.cancel()
        watcher.cancel()
        closer.cancel()
        await service.upstream.stop()
        await reg.stop()
        await db.close()
    if reg.lost.is_set():
        raise Fatal("the database (service registry) is unreachable")
    return 0
