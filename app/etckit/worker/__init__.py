"""The worker program: joins a broker of a pool and runs handlers.

session.py moves frames (the broker session), dispatch.py turns a request into a reply inside
its error handling, handlers/ does the work, compute.py runs calculations in the sandbox.
"""

from __future__ import annotations

import asyncio

from ..config import Config
from ..lifecycle import Fatal, wait_first
from ..messaging.curve import LinkSecurity
from ..registry import Registration
from ..storage import connect
from . import handlers  # noqa: F401  (registers the handlers)
from .compute import Compute
from .dispatch import HANDLERS, INTERNAL_TYPES, Context, HandlerError, handler
from .session import Worker

__all__ = ["HANDLERS", "INTERNAL_TYPES", "Context", "HandlerError", "handler", "run"]


async def run(cfg: Config, stop: asyncio.Event) -> int:
    db = await connect(cfg)
    registry_db = await connect(cfg)  # its own connection: app work never delays a heartbeat
    reg = Registration(registry_db, "worker", pool=cfg.worker.pool,
                       interval=cfg.heartbeat.registry_interval,
                       liveness=cfg.heartbeat.registry_liveness,
                       publish=LinkSecurity.from_config(cfg, "worker").published)
    compute = Compute(cfg)
    await compute.start()
    await reg.start()
    halt = asyncio.Event()  # stop asked, or the registry lost

    async def watch() -> None:
        await wait_first(stop, reg.lost)
        halt.set()

    watcher = asyncio.create_task(watch())
    try:
        await Worker(cfg, db, reg, services=compute).run(halt)
    finally:
        watcher.cancel()
        await reg.stop()
        await compute.close()
        await registry_db.close()
        await db.close()
    if reg.lost.is_set():
        raise Fatal("the database (service registry) is unreachable")
    return 0
