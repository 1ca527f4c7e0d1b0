"""Diagnostics: echo (benchmarks, health probes) and, with worker.diagnostics, the
fault-injection helpers the tests use."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..dispatch import Context, HandlerError, handler

log = logging.getLogger(__name__)


@handler("echo")
async def echo(ctx: Context, message: dict[str, Any]) -> None:
    """A round trip through the whole chain (used by the benchmark and health probes)."""
    ctx.reply({"type": "echo", "data": message.get("data")})


def _diagnostics_only(ctx: Context, name: str) -> None:
    if not ctx.cfg.worker.diagnostics:
        raise HandlerError("unknown_type", f"no handler for type {name!r}")


@handler("test.sleep")
async def sleep(ctx: Context, message: dict[str, Any]) -> None:
    """Hold the worker for a while."""
    _diagnostics_only(ctx, "test.sleep")
    seconds = message.get("seconds", 1)
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) \
            or not 0 <= seconds <= 60:
        raise HandlerError("invalid", "seconds must be a number from 0 to 60", field="seconds")
    log.info("test.sleep holding the worker", extra={"seconds": seconds})  # tests wait for it
    await asyncio.sleep(seconds)
    ctx.reply({"type": "test.slept", "seconds": seconds})


def _count(message: dict[str, Any], field: str, default: int, hi: int) -> int:
    value = message.get(field, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= hi:
        raise HandlerError("invalid", f"{field} must be an integer from 1 to {hi}", field=field)
    return value


@handler("test.broadcast")
async def broadcast(ctx: Context, message: dict[str, Any]) -> None:
    """Send `count` messages of `size` bytes to the user's other clients (slow readers)."""
    _diagnostics_only(ctx, "test.broadcast")
    count = _count(message, "count", 1, 1000)
    size = _count(message, "size", 10, 1_000_000)
    for i in range(count):
        ctx.to_user({"type": "test.noise", "n": i, "data": "x" * size}, except_sender=True)
    ctx.reply({"type": "test.broadcast", "count": count})
