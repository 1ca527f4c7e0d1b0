"""One bootstrap for the programs that register in the service registry (wssvc, broker,
worker): connect, register, run until asked to stop or the registry is lost, clean up.

    async with running(cfg, stop) as program:
        reg = await program.register("worker", pool=..., publish=...)
        program.background(some_loop())           # cancelled on the way out
        program.on_exit(resource.close)           # awaited on the way out, newest first
        await work_until(program.halt)            # halt: stop asked, or the registry lost

The registration has a database connection of its own, so no application transaction can
delay a heartbeat. When the registry was lost, leaving the block raises Fatal (exit status 1,
and systemd restarts the program).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from .config import Config
from .lifecycle import Fatal, wait_first
from .registry import Registration
from .storage import Database, connect

log = logging.getLogger(__name__)


class Running:
    """A program's database, its registration and what to undo when it stops."""

    def __init__(self, cfg: Config, stop: asyncio.Event, db: Database,
                 registry_db: Database) -> None:
        self.cfg = cfg
        self.stop = stop
        self.db = db
        self.registry_db = registry_db
        self.reg: Registration | None = None
        self.halt = asyncio.Event()  # stop asked, or the registry lost
        self._tasks: list[asyncio.Task] = []
        self._exits: list[Callable[[], Awaitable[Any]]] = []

    async def register(self, kind: str, **fields: Any) -> Registration:
        """Enter the registry (and keep the heartbeat) as a `kind` program."""
        self.reg = Registration(self.registry_db, kind,
                                interval=self.cfg.heartbeat.registry_interval,
                                liveness=self.cfg.heartbeat.registry_liveness, **fields)
        await self.reg.start()
        self.background(self._watch(self.reg), name=f"{kind}-halt")
        return self.reg

    async def _watch(self, reg: Registration) -> None:
        await wait_first(self.stop, reg.lost)
        self.halt.set()

    def background(self, coro: Coroutine[Any, Any, Any], name: str | None = None
                   ) -> asyncio.Task:
        task = asyncio.create_task(coro, name=name)
        self._tasks.append(task)
        return task

    def on_exit(self, cleanup: Callable[[], Awaitable[Any]]) -> None:
        self._exits.append(cleanup)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for cleanup in reversed(self._exits):
            try:
                await cleanup()
            except Exception:
                log.exception("cleanup failed")
        if self.reg is not None:
            await self.reg.stop()
        await self.registry_db.close()
        await self.db.close()

    @property
    def registry_lost(self) -> bool:
        return self.reg is not None and self.reg.lost.is_set()


@asynccontextmanager
async def running(cfg: Config, stop: asyncio.Event) -> AsyncIterator[Running]:
    db = await connect(cfg)
    try:
        registry_db = await connect(cfg)
    except BaseException:
        await db.close()
        raise
    program = Running(cfg, stop, db, registry_db)
    try:
        yield program
    finally:
        await program.close()
    if program.registry_lost:
        raise Fatal("the database (service registry) is unreachable")
