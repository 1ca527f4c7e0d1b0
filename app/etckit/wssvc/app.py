"""wssvc: the browser's websocket, forwarded to the pool's brokers, replies fanned out.

A websocket is accepted only with a valid ticket (single use, bound to this wssvc's pool) and
a permitted Origin. Every text message is checked here (size, nesting depth, JSON with finite
numbers, an object, valid Unicode, id, known type); what fails gets an error reply and never
reaches a worker; too many failures close with 1008. Each connection and each user has a
fair share (limits.py): over it, the answer is `rate_limited` with `retry_after`. Every
request sent on gets exactly one answer: the worker's reply or an error.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import itertools
import json
import logging
import math
import re
import time
from collections import OrderedDict
from typing import Any
from urllib.parse import urlsplit

import zmq
from quart import Quart, jsonify, make_response, request

from .. import __version__, metrics
from ..auth import keys
from ..bootstrap import running
from ..config import Config
from ..http import serve_app
from ..lifecycle import Fatal
from ..messaging.curve import LinkSecurity
from ..messaging.protocol import (
    ProtocolError,
    broker_error,
    dumps,
    error_message,
    loads,
    request_body,
)
from ..messaging.types import ID_MAX, LOCAL_TYPES, PLOT_KINDS, READ_TYPES, REQUEST_TYPES
from ..registry import Registration
from ..storage import Database
from .asgi import Connection, Front
from .hub import Client, Hub
from .limits import (
    DECODER,
    Limits,
    Rates,
    deeper_than,
    has_surrogate,
    may_hold_surrogates,
    surrogate_at,
)
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
        # rid -> (client, message id, type, arrival), or a future for wssvc's own requests
        # (plots); in arrival order (expire)
        self.pending: dict[bytes, tuple[Client, Any, str, float] | asyncio.Future] = {}
        self.plots = PlotCache(cfg.wssvc.plot_cache_bytes)
        w = cfg.wssvc
        self.limits = Limits(Rates(w.max_in_flight, w.connection_rate, w.connection_burst,
                                   w.user_rate, w.user_burst, w.max_refusals,
                                   w.block_seconds))
        self._rids = itertools.count(1)
        self.requests = metrics.REQUEST_COUNTS  # etckit_requests_total, the latency histogram
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
        """A reply: recipients (JSON) and message texts, passed on without decoding them.
        The requesting client always hears something: the reply, or an error."""
        entry = self.pending.pop(rid, None)
        if (type(entry) is tuple and len(body) == 2 and body[0] == entry[0].reply_to
                and self._answer(entry, body[1])):
            return
        meta = _reply_meta(body)
        if isinstance(entry, asyncio.Future):  # a request of wssvc's own (a plot)
            if not entry.done():
                entry.set_result((meta, body[1:]))
            return
        client, mid = entry[:2] if entry is not None else (None, None)
        if client is not None and client.limit is not None:
            client.limit.in_flight.release()
        if len(entry or ()) == 4:  # (client, id, type, arrival): counted and timed
            self.requests.answered(entry[2], _outcome(meta, body, client), entry[3])
        if "error" in meta:
            if client is not None:
                client.send(broker_error(meta["error"], mid))
            return
        try:
            self.hub.deliver(meta["to"], body[1:])
        except (UnicodeDecodeError, TypeError, AttributeError) as exc:
            log.warning("undeliverable reply from a worker: %s", exc)
            if client is not None:
                client.send(error_message("internal", "the worker's reply was unreadable", mid))
            return
        if client is not None and not any(client.addressed_by(to) for to in meta["to"]):
            log.warning("a worker's reply did not answer its requester",
                        extra={"client": client.id})
            client.send(error_message("internal", "the worker sent no reply", mid))

    def _answer(self, entry: tuple, raw: bytes) -> bool:
        """The common reply, a message to its requester alone (its meta frame is the one
        worker.dispatch encodes for that): passed on without reading the meta frame's JSON.
        False (nothing done) if the text is not UTF-8: the general path answers that."""
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            return False
        client = entry[0]
        if client.limit is not None:
            client.limit.in_flight.release()
        if len(entry) == 4:
            self.requests.answered(entry[2], metrics.reply_outcome(raw), entry[3])
        if self.hub.clients.get(client.id) is client:  # still connected
            client.send(text)
        return True

    def on_broker_lost(self, broker_id: str) -> None:
        log.warning("broker lost: closing every client with 1012",
                    extra={"broker": broker_id, "clients": len(self.hub)})
        for entry in self.pending.values():
            if isinstance(entry, asyncio.Future):
                if not entry.done():
                    entry.set_result(({"error": {"code": "unavailable",
                                                 "message": "broker lost"}}, []))
            elif entry[0].limit is not None:
                entry[0].limit.in_flight.release()
        self.pending.clear()
        self.hub.close_all(CLOSE_SERVICE_RESTART, "broker restarting, please reconnect")

    # -- from a browser ------------------------------------------------------------------

    def check(self, data: str | bytes | None) -> dict[str, Any]:
        """The message, or raise _Bad(code, text, ref). Nothing that passes can make a reader
        recurse too deep or fail to encode it (docs/protocol.md, "Errors")."""
        if data is None or isinstance(data, bytes):  # Quart gives None for an empty one
            raise _Bad("binary_frame", "binary frames are not accepted; send JSON text")
        limit = self.cfg.wssvc.max_message_bytes
        if len(data) > limit or (len(data) * 4 > limit
                                 and len(data.encode("utf-8", "surrogatepass")) > limit):
            raise _Bad("too_large", f"message is larger than {limit} bytes")
        depth = self.cfg.wssvc.max_json_depth
        if deeper_than(data, depth):
            raise _Bad("too_deep", f"message nests arrays and objects more than {depth} deep")
        try:
            message = DECODER.decode(data)
        except ValueError as exc:
            raise _Bad("bad_json", f"message is not JSON: {exc}") from None
        except RecursionError:  # not reached: deeper_than came first
            raise _Bad("too_deep", "message nests too deep") from None
        if not isinstance(message, dict):
            raise _Bad("not_object", "message must be a JSON object")
        mid = message.get("id")
        ref = mid if _valid_id(mid) else None
        if may_hold_surrogates(data):
            where = surrogate_at(message)
            if where is not None:
                raise _Bad("bad_unicode", f"message is not valid Unicode: {where} holds a "
                           "lone UTF-16 surrogate", ref)
        if mid is None:
            raise _Bad("missing_id", "message has no id")
        if ref is None:
            raise _Bad("bad_id", f"id must be a string or integer of at most {ID_MAX} chars")
        mtype = message.get("type")
        if not isinstance(mtype, str) or not mtype:
            raise _Bad("missing_type", "message has no type", mid)
        if mtype not in REQUEST_TYPES and mtype not in LOCAL_TYPES:
            raise _Bad("unknown_type", f"unknown message type {mtype[:ID_MAX]!r}", mid)
        return message

    def handle(self, client: Client, message: dict[str, Any], text: str) -> None:
        arrived = time.monotonic()
        mtype = message["type"]
        if mtype == "pong":
            return
        local = mtype in LOCAL_TYPES
        refused = client.scope == "read" and mtype not in READ_TYPES  # the one scope check
        wait = self.limits.admit(client.limit, client.user, in_flight=not (local or refused))
        if wait:
            self.requests.answered(mtype, "rate_limited")
            client.send(rate_limited(wait, message["id"]))
            if client.limit is not None and self.limits.ignored(client.user):
                # a flood that ignores retry_after: each refusal still costs wssvc a parse
                # and a reply, so the socket goes (1008), and her new sockets are refused
                # at the handshake until her refusals have filled up again (Limits.blocked)
                client.close(CLOSE_POLICY, "kept sending while told to wait (retry_after)")
            return
        if refused:
            self.requests.answered(mtype, "forbidden")
            client.send(error_message("forbidden", f"this API token has read scope: {mtype} "
                                      "would change stored data", message["id"]))
            return
        if local:
            self.requests.answered(mtype, "ok")
            client.send({"type": "pong", "ref": message["id"]})
            return
        rid = str(next(self._rids)).encode()
        if not client.who:  # the meta frames are the same for every message of a client
            client.who = request_body(client.id, client.user, client.workbook, b"")[0]
            client.reply_to = dumps({"to": [{"client": client.id}]})
        body = [client.who, text.encode()]
        try:
            sent = self.upstream.send(rid, body)
        except zmq.ZMQError:  # Again (the broker's queue is full) or a link closing
            sent = None
        if sent is None:
            if client.limit is not None:
                client.limit.in_flight.release()
            self.requests.answered(mtype, "unavailable")
            client.send(error_message("unavailable", "no broker is available; retrying helps",
                                      message["id"]))
            return
        self.pending[rid] = (client, message["id"], mtype, arrived)

    async def ask_worker(self, client: Client, message: dict[str, Any]) -> dict[str, Any]:
        """A request of wssvc's own on behalf of a client; the worker's message (a dict), or
        an error message (`timeout` after wssvc.request_timeout)."""
        rid = str(next(self._rids)).encode()
        body = request_body(f"wssvc:{rid.decode()}", client.user, client.workbook,
                            dumps(message))
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        try:
            sent = self.upstream.send(rid, body)
        except zmq.ZMQError:
            sent = None
        if sent is None:
            return error_message("unavailable", "no broker is available")
        self.pending[rid] = future
        try:
            meta, texts = await asyncio.wait_for(future, self.cfg.wssvc.request_timeout)
        except TimeoutError:
            return error_message("timeout", "the worker did not answer in time")
        finally:
            self.pending.pop(rid, None)
        if "error" in meta:
            return error_message(meta["error"]["code"], meta["error"]["message"])
        try:
            reply = loads(texts[0])
        except (ProtocolError, IndexError):
            reply = None
        if not isinstance(reply, dict):
            log.warning("unreadable reply from a worker to wssvc's own request")
            return error_message("internal", "unreadable reply")
        return reply

    async def read(self, client: Client, conn: Connection) -> None:
        """A client's messages, each checked then handled, until the peer leaves or too many
        were bad (1008). Awaits only conn.next_text() and conn.drained() (asgi.py)."""
        bad = 0
        queue = client.queue
        while True:
            if queue.qsize() * 2 >= queue.maxsize:
                # answers wssvc makes itself (errors, pongs, rate_limited) wait to be sent
                # before the next message is read: a fast sender is slowed down by TCP, not
                # closed as a slow reader (4001)
                await conn.drained()
            data = await conn.next_text()
            if data is None:
                return
            client.last_seen = time.monotonic()
            try:
                message = self.check(data)
            except _Bad as exc:
                bad += 1
                self.requests.answered("unknown", exc.code)
                client.send(error_message(exc.code, exc.text, exc.ref))
                if bad >= self.cfg.wssvc.max_bad_messages:
                    await conn.drained()  # the errors reach the browser before the close
                    client.close(CLOSE_POLICY, "too many bad messages")
                    return
                continue
            try:
                self.handle(client, message, data)
            except Exception:  # a bug of wssvc's: said to the client, the connection kept
                log.exception("handling a message failed", extra={"client": client.id})
                client.send(error_message("internal", "wssvc failed to handle this message",
                                          message["id"]))

    def expire(self, now: float) -> int:
        """Requests that waited past wssvc.request_timeout for a reply (a broker or worker
        lost them without a word): answered `timeout` and their in-flight slots freed, so no
        loss leaves a page waiting or a socket short of slots. A late reply is delivered like
        a broadcast. The count of those answered."""
        cutoff = now - self.cfg.wssvc.request_timeout
        late = []
        for rid, entry in self.pending.items():  # in arrival order: stop at the first young
            if type(entry) is tuple:
                if entry[3] >= cutoff:
                    break
                late.append(rid)
        for rid in late:
            client, mid, mtype, arrived = self.pending.pop(rid)
            if client.limit is not None:
                client.limit.in_flight.release()
            self.requests.answered(mtype, "timeout", arrived)
            if self.hub.clients.get(client.id) is client:
                client.send(error_message("timeout", "no reply within "
                                          f"{self.cfg.wssvc.request_timeout:g} s; it may or "
                                          "may not have been done", mid))
        if late:
            log.warning("requests unanswered: told timeout", extra={"requests": len(late)})
        return len(late)

    async def expire_all(self) -> None:
        """expire() a few times per request_timeout."""
        while True:
            await asyncio.sleep(min(5.0, self.cfg.wssvc.request_timeout / 4))
            self.expire(time.monotonic())

    async def ping_all(self) -> None:
        """One task pings every client; a client silent for PING_GRACE intervals is closed."""
        interval = self.cfg.wssvc.ping_interval
        for n in itertools.count(1):
            await asyncio.sleep(interval)
            now = time.monotonic()
            ping = json.dumps({"type": "ping", "id": f"s{n}"})
            self.limits.prune()  # users whose bucket filled up again are forgotten
            for client in list(self.hub.clients.values()):
                if now - client.last_seen > interval * PING_GRACE:
                    client.close(CLOSE_PING_TIMEOUT, "no answer to ping")
                else:
                    client.send(ping)


class _Bad(Exception):
    def __init__(self, code: str, text: str, ref: Any = None) -> None:
        super().__init__(text)
        self.code, self.text, self.ref = code, text, ref


def _valid_id(mid: Any) -> bool:
    """A usable message id: a string or integer of at most ID_MAX characters, valid Unicode."""
    if isinstance(mid, str):
        return len(mid) <= ID_MAX and not has_surrogate(mid)
    return isinstance(mid, int) and not isinstance(mid, bool) and len(str(mid)) <= ID_MAX


def rate_limited(wait: float, ref: Any = None) -> dict[str, Any]:
    retry_after = round(max(wait, 0.001), 3)
    error = error_message("rate_limited", f"too many requests; retry in {retry_after} s", ref)
    error["retry_after"] = retry_after
    return error


def _outcome(meta: dict[str, Any], body: list[bytes], client: Client | None) -> str:
    """ok or the error code of a reply, as its requester sees it (for the metrics)."""
    if "error" in meta:
        return str(meta["error"].get("code"))
    for to, text in zip(meta["to"], body[1:], strict=False):
        if client is not None and client.addressed_by(to):
            return metrics.reply_outcome(text)
    return "ok"


def _reply_meta(body: list[bytes]) -> dict[str, Any]:
    """A reply's first frame: {"to": [TO, ...]} or {"error": {"code", "message"}}; anything
    else (a broker or worker bug) becomes an error for the requester."""
    try:
        meta = loads(body[0])
    except (ProtocolError, IndexError) as exc:
        log.warning("unreadable reply from a broker: %s", exc)
        meta = None
    if isinstance(meta, dict):
        error = meta.get("error")
        if error is None:
            to = meta.get("to")
            if isinstance(to, list) and all(isinstance(t, dict) for t in to):
                return meta
        elif (isinstance(error, dict) and isinstance(error.get("code"), str)
              and isinstance(error.get("message"), str)):
            return meta
        log.warning("malformed reply from a broker", extra={"reply": str(meta)[:200]})
    return {"error": {"code": "internal", "message": "unreadable reply"}}


class PlotCache:
    """Identical plot requests are served from memory (bounded in bytes, least recently used
    first out). Keys carry the user, the socket's workbook and the calculation's revision, so
    an edit never serves a stale picture, one user never gets another's, and a user whose
    share was revoked gets none (see _render)."""

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
               "timeout": 504, "worker_lost": 503, "no_worker": 503, "rate_limited": 429,
               "too_expensive": 422}
ITEM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
REVISION = re.compile(r"[0-9]{1,18}")


def _plot_error(code: str, message: str, status: int, **extra: Any):
    return jsonify(error=code, message=message, **extra), status


def _plot_url_problem(calculation: str, revision: str, kind: str) -> str | None:
    if not ITEM_ID.fullmatch(calculation):
        return "calculation must be a calculation id"
    if not REVISION.fullmatch(revision):
        return "revision must be a whole number"
    if kind not in PLOT_KINDS:
        return f"kind must be one of {', '.join(PLOT_KINDS)}"
    return None


def _plot_client(service: Service):
    """The client a plot request comes from (?client=ID&key=its plot key), or None. The key
    is compared as bytes: any text a URL can carry is answered 401, never an error."""
    client = service.hub.clients.get(request.args.get("client", ""))
    key = request.args.get("key", "").encode("utf-8", "surrogatepass")
    if client is None or not hmac.compare_digest(client.plot_key.encode(), key):
        return None
    return client


async def _render(service: Service, client: Client, calculation: str, revision: int,
                  kind: str):
    """(PNG bytes, whether from the cache), or (an error reply, False): from the cache or a
    worker, never under a revision other than the one the worker drew. Cached only under the
    workbook of the client's socket, and only when the calculation is of that workbook: a hit
    then needs the user's socket on it, whose access the SessionWatcher checks (revoked:
    4004), so a revoked share or a deleted workbook is never drawn from memory."""
    cache_key = (client.user, client.workbook, calculation, revision, kind)
    png = service.plots.get(cache_key)
    if png is not None:
        return png, True
    reply = await service.ask_worker(client, {"id": "plot", "type": "plot.render",
                                              "calculation": calculation, "kind": kind,
                                              "revision": revision})
    if reply.get("type") == "error":
        return _plot_error(reply["code"], reply["message"],
                           PLOT_STATUS.get(reply["code"], 502)), False
    if reply.get("revision") != revision:  # the calculation changed: not this URL's picture
        return _plot_error("not_found", f"no revision {revision} of calculation "
                           f"{calculation}", 404), False
    try:
        png = base64.b64decode(reply["png"], validate=True)
    except (KeyError, TypeError, ValueError, binascii.Error):
        log.warning("a worker's plot reply holds no PNG")
        return _plot_error("internal", "unreadable plot from the worker", 502), False
    if client.workbook is not None and reply.get("workbook") == client.workbook:
        service.plots.put(cache_key, png)
    return png, False


def create_app(service: Service) -> Quart:
    app = Quart(__name__)

    @app.get("/plots/<calculation>/<revision>/<kind>.png")
    async def plot(calculation: str, revision: str, kind: str):
        """A plot for the page that holds a websocket here: ?client=ID&key=its plot key."""
        client = _plot_client(service)
        if client is None:
            return _plot_error("not_authenticated",
                               "open the workbook's websocket on this wssvc first", 401)
        wrong = _plot_url_problem(calculation, revision, kind)
        if wrong:
            return _plot_error("invalid", wrong, 400)
        wait = service.limits.admit(None, client.user, in_flight=False)
        if wait:
            error = rate_limited(wait)
            response = await make_response(_plot_error(
                "rate_limited", error["message"], 429, retry_after=error["retry_after"]))
            response.headers["Retry-After"] = str(math.ceil(wait))
            return response
        png, hit = await _render(service, client, calculation, int(revision), kind)
        if not isinstance(png, bytes):
            return png  # an error reply
        response = await make_response(png)
        response.headers.update({"Content-Type": "image/png",
                                 "Cache-Control": "private, max-age=3600",
                                 "Access-Control-Allow-Origin": "*",
                                 "X-Plot-Cache": "hit" if hit else "miss"})
        return response

    @app.get("/healthz")
    async def healthz():
        ready = bool(service.upstream.ready)
        body = {"status": "ok" if ready else "no_broker", "version": __version__,
                "pool": service.pool, "clients": len(service.hub),
                "brokers": len(service.upstream.ready)}
        return jsonify(body), 200 if ready else 503

    return app


async def run(cfg: Config, stop: asyncio.Event) -> int:
    try:  # wssvc holds only the public key: it can check tickets, never make one
        await asyncio.to_thread(keys.load_public_keys, cfg.auth.ticket_public_key)
    except keys.SecretError as exc:
        raise Fatal(str(exc)) from None
    port = cfg.wssvc.public_port or cfg.wssvc.port
    pool = cfg.wssvc.pool or f"{cfg.wssvc.public_host}:{port}"
    scheme = "wss" if cfg.wssvc.certfile else "ws"
    async with running(cfg, stop) as program:
        service = Service(cfg, program.db, pool)
        program.on_exit(service.upstream.stop)
        reg = await program.register(
            "wssvc", pool=pool, endpoint=f"{scheme}://{cfg.wssvc.public_host}:{port}",
            load=lambda: len(service.hub), publish=service.upstream.security.published)
        service.upstream.start()
        metrics.watch_wssvc(lambda: len(service.hub), lambda: len(service.upstream.ready))
        program.background(_publish_brokers(cfg, reg, service))
        program.background(service.ping_all())
        program.background(service.expire_all())
        program.background(  # logout ends the websocket (close code 4003)
            SessionWatcher(program.db, service.hub, cfg.auth.session_check_interval).run())
        await _serve_http(cfg, service, program.halt, pool)
    return 0


async def _publish_brokers(cfg: Config, reg: Registration, service: Service) -> None:
    while True:
        reg.extra = {"brokers": len(service.upstream.ready), **metrics.wssvc_totals()}
        await asyncio.sleep(min(0.5, cfg.heartbeat.registry_interval))


async def _serve_http(cfg: Config, service: Service, halt: asyncio.Event, pool: str) -> None:
    """Serve until halt; then say goodbye to the browsers before the server stops."""
    http_stop = asyncio.Event()

    async def shutdown() -> None:
        await halt.wait()
        service.hub.close_all(1001, "server shutting down")
        await asyncio.sleep(0.2)
        http_stop.set()

    closer = asyncio.create_task(shutdown())
    try:
        log.info("listening", extra={"host": cfg.wssvc.host, "port": cfg.wssvc.port,
                                     "pool": pool})
        await serve_app(Front(service, create_app(service)), host=cfg.wssvc.host,
                        port=cfg.wssvc.port, stop=http_stop, certfile=cfg.wssvc.certfile,
                        keyfile=cfg.wssvc.keyfile,
                        max_ws_message=cfg.wssvc.max_message_bytes * 4 + 4096,
                        ws_compression=cfg.wssvc.compression)
    finally:
        closer.cancel()
