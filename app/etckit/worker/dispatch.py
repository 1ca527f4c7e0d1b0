"""The worker's dispatch: decode a request, run its handler, encode the reply.

Everything happens inside the error handling: a handler that raises HandlerError answers that
error; any other exception (a bug) answers ``internal`` to the requester and logs the
traceback; a body that cannot be decoded is logged and dropped. Encoding cannot fail (lone
surrogates are escaped) and a reply over ``quotas.reply_max_bytes`` is refused ``too_large``.
Nothing a request holds can make the worker exit.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..config import Config
from ..messaging.protocol import ProtocolError, dumps, error_message, reply_body
from ..storage import Database

log = logging.getLogger("etckit.worker")

MAX_DEPTH = 64  # JSON nesting the worker decodes (wssvc refuses deeper long before)


class HandlerError(Exception):
    """An error the client should see: code, one clear message, extra fields."""

    def __init__(self, code: str, message: str, field: str | None = None,
                 **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.extra = extra

    def to_message(self, ref: Any) -> dict[str, Any]:
        error = error_message(self.code, self.message, ref)
        if self.field:
            error["field"] = self.field
        error.update(self.extra)
        return error


@dataclass
class Context:
    """What a handler knows about the request, and how it answers."""

    db: Database
    cfg: Config
    client: str
    user: str
    workbook: str | None
    request_id: Any
    services: Any = None  # the worker's long-lived helpers (compute, caches)
    message_type: str = ""  # what worker/rights.py checks the user's right against
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    followups: list[dict[str, Any]] = field(default_factory=list)

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

    def follow_up(self, message: dict[str, Any]) -> None:
        """Work to do after the reply, as a request of this user's of its own (queued by the
        broker in the user's turn, so a wide edit cannot hold a worker for long)."""
        self.followups.append(message)


Handler = Callable[[Context, dict[str, Any]], Awaitable[None]]
HANDLERS: dict[str, Handler] = {}
INTERNAL_TYPES = frozenset({"calculation.recalculate"})  # follow-ups only, never a browser's


def handler(message_type: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        if message_type in HANDLERS:
            raise ValueError(f"two handlers for {message_type!r}")
        HANDLERS[message_type] = fn
        return fn

    return register


def _decode(data: bytes) -> Any:
    """JSON, refusing nesting deeper than MAX_DEPTH before the decoder could recurse."""
    if data.count(b"[") + data.count(b"{") > MAX_DEPTH and _depth(data) > MAX_DEPTH:
        raise ProtocolError(f"nested deeper than {MAX_DEPTH}")
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ProtocolError(f"body is not JSON: {str(exc)[:80]}") from None


def _depth(data: bytes) -> int:
    """Bracket depth outside strings (a scan, no recursion)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


WHO_KEPT = 4096  # meta frames remembered (a client sends the same one with every message)
_WHO: dict[bytes, tuple[str, str, str | None]] = {}


def _who(meta: bytes) -> tuple[str, str, str | None]:
    """(client, user, workbook) of a request's meta frame, or ProtocolError; valid ones are
    remembered, so their JSON is read once per client, not per request."""
    known = _WHO.get(meta)
    if known is not None:
        return known
    who = _decode(meta)
    if not isinstance(who, dict):
        raise ProtocolError("request and message must be JSON objects")
    client, user, workbook = who.get("client"), who.get("user"), who.get("workbook")
    if not isinstance(client, str) or not isinstance(user, str) or not user:
        raise ProtocolError("request needs string client and user")
    if workbook is not None and not isinstance(workbook, str):
        raise ProtocolError("request workbook must be a string or null")
    if len(_WHO) >= WHO_KEPT:
        _WHO.clear()
    known = _WHO[meta] = (client, user, workbook)
    return known


def request_context(db: Database, cfg: Config, body: list[bytes],
                    services: Any = None) -> tuple[Context, dict[str, Any]]:
    """The context and the message of a request body, or ProtocolError."""
    if len(body) != 2:
        raise ProtocolError(f"expected 2 body frames, got {len(body)}")
    client, user, workbook = _who(body[0])
    message = _decode(body[1])
    if not isinstance(message, dict):
        raise ProtocolError("request and message must be JSON objects")
    rid = message.get("id")
    if not isinstance(rid, str | int) or isinstance(rid, bool):
        rid = None
    mtype = message.get("type")
    return Context(db=db, cfg=cfg, client=client, user=user, workbook=workbook,
                   request_id=rid, services=services,
                   message_type=mtype if isinstance(mtype, str) else ""), message


async def run_handler(ctx: Context, message: dict[str, Any],
                      handlers: dict[str, Handler]) -> None:
    mtype = message.get("type")
    fn = handlers.get(mtype) if isinstance(mtype, str) else None
    try:
        if fn is None:
            shown = mtype if isinstance(mtype, str) else type(mtype).__name__
            raise HandlerError("unknown_type", f"no handler for type {str(shown)[:40]!r}")
        await fn(ctx, message)
    except HandlerError as exc:
        ctx.deliveries = [{"to": {"client": ctx.client},
                           "message": exc.to_message(ctx.request_id)}]
        ctx.followups = []
    except Exception:
        log.exception("handler failed", extra={"type": str(mtype)[:40]})
        ctx.deliveries = [{"to": {"client": ctx.client}, "message": error_message(
            "internal", "the server failed to handle this request", ctx.request_id)}]
        ctx.followups = []


_TO_CLIENT: dict[str, bytes] = {}  # client -> the meta frame of a reply to it alone


def _reply_body(ctx: Context) -> list[bytes]:
    """reply_body(ctx.deliveries); the common one, a single message to the requester, with
    its meta frame encoded once per client (WHO_KEPT clients remembered)."""
    deliveries = ctx.deliveries
    if len(deliveries) != 1 or deliveries[0]["to"] != {"client": ctx.client}:
        return reply_body(deliveries)
    meta = _TO_CLIENT.get(ctx.client)
    if meta is None:
        if len(_TO_CLIENT) >= WHO_KEPT:
            _TO_CLIENT.clear()
        meta = _TO_CLIENT[ctx.client] = dumps({"to": [{"client": ctx.client}]})
    return [meta, dumps(deliveries[0]["message"])]


def encode(ctx: Context) -> list[bytes]:
    """The REPLY body; a reply over the size limit becomes a too_large error."""
    body = _reply_body(ctx)
    limit = ctx.cfg.quotas.reply_max_bytes
    if sum(len(frame) for frame in body) > limit:
        log.warning("reply over quotas.reply_max_bytes refused", extra={"limit": limit})
        error = HandlerError("too_large", f"the reply is larger than {limit} bytes"
                             " (quotas.reply_max_bytes)", limit="quotas.reply_max_bytes",
                             value=limit)
        body = reply_body([{"to": {"client": ctx.client},
                            "message": error.to_message(ctx.request_id)}])
    return body


async def handle(db: Database, cfg: Config, body: list[bytes],
                 handlers: dict[str, Handler] | None = None, services: Any = None
                 ) -> tuple[list[bytes] | None, list[list[bytes]]]:
    """One request body (who, message) through its handler: (the REPLY body, or None when
    the body was malformed and dropped; the follow-up request bodies)."""
    try:
        ctx, message = request_context(db, cfg, body, services)
    except ProtocolError as exc:
        log.warning("malformed request body, dropped: %s", exc)
        return None, []
    await run_handler(ctx, message, HANDLERS if handlers is None else handlers)
    try:
        reply = encode(ctx)
    except Exception:  # a handler put something JSON cannot hold: still answer
        log.exception("reply could not be encoded")
        reply = reply_body([{"to": {"client": ctx.client}, "message": error_message(
            "internal", "the server failed to encode its reply", ctx.request_id)}])
    if not ctx.followups:  # almost always: no meta frame to encode
        return reply, []
    who = dumps({"client": ctx.client, "user": ctx.user, "workbook": ctx.workbook})
    return reply, [[who, dumps(m)] for m in ctx.followups]
