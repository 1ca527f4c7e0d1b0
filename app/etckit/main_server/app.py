"""The main_server Quart app."""

from __future__ import annotations

import asyncio
import logging

from quart import Quart, jsonify

from .. import __version__
from ..config import Config
from ..http import serve_app
from ..resources import static_dir
from ..storage import Database, StorageError, check_schema, connect

log = logging.getLogger(__name__)


def create_app(cfg: Config, db: Database) -> Quart:
    app = Quart(__name__, static_folder=str(static_dir()), static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = cfg.main_server.max_body_bytes
    app.extensions["etckit.db"] = db
    app.extensions["etckit.config"] = cfg

    @app.get("/healthz")
    async def healthz():
        try:
            await check_schema(db)
        except StorageError as exc:
            log.warning("health check failed: %s", exc)
            return jsonify(status="unhealthy", error=str(exc)), 503
        return jsonify(status="ok", version=__version__)

    @app.get("/")
    async def index():
        return await app.send_static_file("login.html")

    return app


async def run(cfg: Config, stop: asyncio.Event) -> int:
    db = await connect(cfg)
    try:
        app = create_app(cfg, db)
        log.info("listening", extra={"host": cfg.main_server.host, "port": cfg.main_server.port})
        await serve_app(app, host=cfg.main_server.host, port=cfg.main_server.port, stop=stop)
    finally:
        await db.close()
    return 0
