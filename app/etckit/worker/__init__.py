"""The worker program: joins a broker of a pool and runs handlers.

session.py moves frames (the broker session), dispatch.py turns a request into a reply inside
its error handling, handlers/ does the work, compute.py runs calculations in the sandbox.
"""

from __future__ import annotations

import asyncio

from ..bootstrap import running
from ..config import Config
from ..messaging.curve import LinkSecurity
from . import handlers  # noqa: F401  (registers the handlers)
from .compute import Compute
from .dispatch import HANDLERS, INTERNAL_TYPES, Context, HandlerError, handler
from .session import Worker

__all__ = ["HANDLERS", "INTERNAL_TYPES", "Context", "HandlerError", "handler", "run"]


async def run(cfg: Config, stop: asyncio.Event) -> int:
    async with running(cfg, stop) as program:
        compute = Compute(cfg)
        program.on_exit(compute.close)
        await compute.start()
        reg = await program.register(
            "worker", pool=cfg.worker.pool,
            publish=LinkSecurity.from_config(cfg, "worker").published)
        await Worker(cfg, program.db, reg, services=compute).run(program.halt)
    return 0
