"""The wssvc Quart app (placeholder until the message chain lands)."""

from __future__ import annotations

import asyncio
import logging

from quart import Quart, jsonify

from .. import __version__
from ..config import Config
from ..http import serve_app
from ..registry import Registration
from ..storage import connect

log = logging.getLogger(__name__)


def create_app(cfg: Config) -> Quart:
    app = Quart(__name__)

    @app.get("/healthz")
    async def healthz():
        return jsonify(status="ok", version=__version__)

    return app


async def run(cfg: Config, stop: asyncio.Event) -> int:
    db = await connect(cfg)
    port = cfg.wssvc.public_port or cfg.wssvc.port
    reg = Registration(db, "wssvc", pool=cfg.wssvc.pool or f"{cfg.wssvc.public_host}:{port}",
                       endpoint=f"{cfg.wssvc.public_host}:{port}",
                       interval=cfg.heartbeat.registry_interval,
                       liveness=cfg.heartbeat.registry_liveness)
    await reg.start()
    try:
        await serve_app(create_app(cfg), host=cfg.wssvc.host, port=cfg.wssvc.port, stop=stop,
                        certfile=cfg.wssvc.certfile, keyfile=cfg.wssvc.keyfile)
    finally:
        await reg.stop()
        await db.close()
    return 0
