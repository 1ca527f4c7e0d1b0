"""The broker (placeholder until the message chain lands): registers and waits."""

from __future__ import annotations

import asyncio

from .config import Config
from .registry import Registration
from .storage import connect


async def run(cfg: Config, stop: asyncio.Event) -> int:
    db = await connect(cfg)
    reg = Registration(db, "broker", pool=cfg.broker.pool,
                       interval=cfg.heartbeat.registry_interval,
                       liveness=cfg.heartbeat.registry_liveness)
    await reg.start()
    try:
        await stop.wait()
    finally:
        await reg.stop()
        await db.close()
    return 0
