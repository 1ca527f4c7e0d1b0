"""Serving a Quart app with Hypercorn inside an etckit program.

Why the permessage-deflate adapter: Hypercorn offers every websocket wsproto's
``PerMessageDeflate()`` with its defaults (15-bit windows, context kept between messages), so
each open socket may hold a zlib compressor and decompressor (~300 KB) for its whole life.
wssvc chooses instead (``wssvc.compression``): "message" compresses each message on its own
(no_context_takeover both ways: no zlib state kept between messages), "stream" is wsproto's
default, "off" declines the extension. Hypercorn names the class in one place when it accepts
a websocket; we swap that name for a factory of the chosen kind.
"""

from __future__ import annotations

import asyncio
import logging

from hypercorn.asyncio import serve
from hypercorn.config import Config as HypercornConfig
from hypercorn.protocol import ws_stream
from wsproto.extensions import PerMessageDeflate

log = logging.getLogger(__name__)

COMPRESSION = ("message", "stream", "off")


class _Declined(PerMessageDeflate):
    """permessage-deflate refused: the browser's offer gets no extension in the answer."""

    def accept(self, offer: str) -> None:
        return None


def _per_message() -> PerMessageDeflate:
    return PerMessageDeflate(client_no_context_takeover=True, server_no_context_takeover=True)


_FACTORIES = {"message": _per_message, "stream": PerMessageDeflate, "off": _Declined}


def use_ws_compression(kind: str) -> None:
    """How this process's websockets answer a permessage-deflate offer (one of COMPRESSION)."""
    if kind not in _FACTORIES:
        raise ValueError(f"websocket compression must be one of {', '.join(COMPRESSION)}")
    ws_stream.PerMessageDeflate = _FACTORIES[kind]


async def serve_app(app, *, host: str, port: int, stop: asyncio.Event,
                    certfile: str = "", keyfile: str = "",
                    max_ws_message: int = 16 * 1024 * 1024,
                    ws_compression: str = "stream") -> None:
    use_ws_compression(ws_compression)
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
