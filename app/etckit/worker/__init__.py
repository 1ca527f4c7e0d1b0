"""The worker program: joins a broker of a pool and runs handlers.

session.py moves frames (the broker session), dispatch.py turns a request into a reply inside
its error handling, handlers/ does the work, compute.py runs calculations in the sandbox.
"""

from __future__ import annotations

import asyncio

from .. import metrics
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
        instrument(compute)
        reg = await program.register(
            "worker", pool=cfg.worker.pool,
            publish=LinkSecurity.from_config(cfg, "worker").published)
        await Worker(cfg, program.db, reg, services=compute).run(program.halt)
    return 0


def instrument(compute: Compute) -> None:
    """The worker's metrics: sandbox calculation and plot times, the result cache's counts."""
    sandbox = compute.sandbox
    sandbox.calculate = metrics.timed(metrics.CALCULATION_SECONDS, sandbox.calculate)
    sandbox.render = metrics.timed(metrics.PLOT_SECONDS, sandbox.render)
    metrics.watch_cache("result", compute.results)
