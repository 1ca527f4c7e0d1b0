"""The service registry: wssvc, brokers and workers announce themselves and keep a heartbeat.

A row per running process; heartbeat_at is refreshed every registry_interval seconds and a row
older than registry_liveness is ignored by everyone (and swept by the next registration).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

from . import __version__
from .storage import Database, StorageError

log = logging.getLogger(__name__)


class Registration:
    def __init__(self, db: Database, kind: str, *, pool: str = "", endpoint: str = "",
                 host: str | None = None, extra: dict[str, Any] | None = None,
                 interval: float = 2.0, liveness: float = 10.0,
                 load: Callable[[], int] | None = None,
                 publish: dict[str, Any] | None = None) -> None:
        self.db = db
        self.kind = kind
        self.id = f"{kind}-{uuid.uuid4().hex[:12]}"
        self.pool = pool
        self.endpoint = endpoint
        self.host = host or socket.gethostname()
        self.extra = extra or {}
        self.published = publish or {}  # always in extra, whatever the program sets there
        self.interval = interval
        self.liveness = liveness
        self.load = load or (lambda: 0)
        self._task: asyncio.Task[None] | None = None
        self._halt = asyncio.Event()
        self.failures = 0
        self.lost = asyncio.Event()  # set when the heartbeat failed for a whole liveness window

    async def start(self) -> None:
        await self._insert()
        log.info("registered", extra={"service": self.id, "pool": self.pool,
                                      "endpoint": self.endpoint})
        self._task = asyncio.create_task(self._beat(), name=f"registry-{self.id}")

    async def _insert(self) -> None:
        now = time.time()
        async with self.db.transaction() as tx:
            await tx.execute("DELETE FROM services WHERE heartbeat_at < :old",
                             {"old": now - 10 * self.liveness})
            await tx.execute(
                "INSERT INTO services (id, kind, host, pid, pool, endpoint, extra, load,"
                " version, started_at, heartbeat_at) VALUES (:id, :kind, :host, :pid, :pool,"
                " :endpoint, :extra, :load, :version, :now, :now)",
                {"id": self.id, "kind": self.kind, "host": self.host, "pid": os.getpid(),
                 "pool": self.pool, "endpoint": self.endpoint, "extra": self._extra(),
                 "load": self.load(), "version": __version__, "now": now},
            )

    def _extra(self) -> str:
        return json.dumps({**self.extra, **self.published})

    async def beat(self) -> None:
        n = await self.db.execute(
            "UPDATE services SET heartbeat_at = :now, load = :load, pool = :pool,"
            " extra = :extra WHERE id = :id",
            {"now": time.time(), "load": self.load(), "pool": self.pool,
             "extra": self._extra(), "id": self.id},
        )
        if n == 0:  # swept by someone while we were stalled: come back
            await self._insert()

    async def _beat(self) -> None:
        last_ok = time.monotonic()
        while True:
            try:
                await asyncio.wait_for(self._halt.wait(), self.interval)
                return
            except TimeoutError:
                pass
            try:
                await self.beat()
                self.failures = 0
                last_ok = time.monotonic()
            except StorageError as exc:
                self.failures += 1
                log.warning("registry heartbeat failed: %s", exc,
                            extra={"failures": self.failures})
                if time.monotonic() - last_ok > self.liveness:
                    log.error("registry unreachable for longer than the liveness window")
                    self.lost.set()
                    return

    async def halt(self) -> None:
        """Stop refreshing the heartbeat (never in the middle of a transaction)."""
        self._halt.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, self.liveness)
            except TimeoutError:
                pass
            self._task = None

    async def stop(self) -> None:
        await self.halt()
        try:
            await self.db.execute("DELETE FROM services WHERE id = :id", {"id": self.id})
        except StorageError as exc:
            log.warning("could not deregister: %s", exc)


async def live(db: Database, kind: str, liveness: float, pool: str | None = None
               ) -> list[dict[str, Any]]:
    """Registered services of a kind with a fresh heartbeat, least loaded first."""
    sql = ("SELECT id, kind, host, pid, pool, endpoint, extra, load, version, started_at,"
           " heartbeat_at FROM services WHERE kind = :kind AND heartbeat_at >= :fresh")
    params: dict[str, Any] = {"kind": kind, "fresh": time.time() - liveness}
    if pool is not None:
        sql += " AND pool = :pool"
        params["pool"] = pool
    rows = await db.fetchall(sql + " ORDER BY load, started_at, id", params)
    for row in rows:
        row["extra"] = json.loads(row["extra"] or "{}")
    return rows


async def everything(db: Database) -> list[dict[str, Any]]:
    """Every registered service, fresh or stale (for `etckit status` and the System page)."""
    async with db.read() as tx:
        rows = await tx.fetchall(
            "SELECT id, kind, host, pid, pool, endpoint, extra, load, version, started_at,"
            " heartbeat_at FROM services ORDER BY pool, kind, host, id")
    for row in rows:
        try:
            extra = json.loads(row["extra"] or "{}")
        except ValueError:
            extra = {}
        row["extra"] = extra if isinstance(extra, dict) else {}
    return rows


def problems(rows: list[dict[str, Any]], now: float, liveness: float) -> list[str]:
    """What an operator must act on, one line each: stale heartbeats, a wssvc without a
    broker, a pool without a worker, no wssvc at all. Empty: healthy."""
    found = [f"stale heartbeat: {r['kind']} {r['id']} on {r['host']} (pool {r['pool'] or '-'}"
             f", {now - r['heartbeat_at']:.0f} s ago)"
             for r in rows if now - r["heartbeat_at"] > liveness]
    live = [r for r in rows if now - r["heartbeat_at"] <= liveness]
    pools = {r["pool"] for r in live if r["kind"] == "wssvc"}
    for kind in ("broker", "worker"):
        have = {r["pool"] for r in live if r["kind"] == kind}
        for pool in sorted(pools - have):
            found.append(f"wssvc pool {pool} has no broker" if kind == "broker"
                         else f"pool {pool} has no worker")
            if kind == "broker":
                pools.discard(pool)  # no broker: "no worker" would say nothing more
    if not any(r["kind"] == "wssvc" for r in live):
        found.append("no wssvc is running")
    return found
