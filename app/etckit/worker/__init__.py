"""The worker program: joins a broker of a pool and runs handlers."""

from __future__ import annotations

import asyncio

from ..config import Config
from ..lifecycle import Fatal, wait_first
from ..messaging.curve import LinkSecurity
from ..registry import Registration
from ..storage import connect
from . import contents, handlers  # noqa: F401  (registers the handlers)
from .core import HANDLERS, Context, HandlerError, Worker, handler

__all__ = ["HANDLERS", "Context", "HandlerError", "handler", "run"]


async def run(cfg: Config, stop: asyncio.Event) -> int:
    db = await connect(cfg)
    reg = Registration(db, "worker", pool=cfg.worker.pool,
                       interval=cfg.heartbeat.registry_interval,
                       liveness=cfg.heartbeat.registry_liveness,
                       publish=LinkSecurity.from_config(cfg, "worker").published)
    await reg.start()
    halt = asyncio.Event()  # stop asked, or the registry lost

    async def watch() -> None:
        await wait_first(stop, reg.lost)
        halt.set()

    watcher = asyncio.create_task(watch())
    try:
        await Worker(cfg, db, reg).run(halt)
    finally:
        watcher.cancel()
        await reg.stop()
        await db.close()
    if reg.lost.is_set():
        raise Fatal("the database (service registry) is unreachable")
    return 0
