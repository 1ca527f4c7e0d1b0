"""Serving a Quart app with Hypercorn inside an etckit program."""

from __future__ import annotations

import asyncio
import logging

from hypercorn.asyncio import serve
from hypercorn.config import Config as HypercornConfig

log = logging.getLogger(__name__)


async def serve_app(app, *, host: str, port: int, stop: asyncio.Event,
                    certfile: str = "", keyfile: str = "",
                    max_ws_message: int = 16 * 1024 * 1024) -> None:
    hc = HypercornConfig()
    hc.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    hc.accesslog = None
    hc.errorlog = logging.getLogger("hypercorn.error")
    hc.graceful_timeout = 3.0
    hc.websocket_ping_interval = None
    hc.backlog = 2048
    hc.websocket_max_message_size = max_ws_message
    if certfile:
        hc.certfile = certfile
        hc.keyfile = keyfile
    await serve(app, hc, shutdown_trigger=stop.wait)
