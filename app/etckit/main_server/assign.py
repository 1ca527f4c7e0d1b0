"""Which wssvc a browser should use, recorded in the database.

A *scope* is what a websocket is for: ``list:<user>`` (the Workbook List of one user) or
``workbook:<id>`` (one open workbook, whoever opens it: its owner and every user it is shared
with). Replies fan out only among the clients of one wssvc, so every socket of one workbook is
sent to the same wssvc, and a scope sticks to the wssvc it was given as long as that wssvc is
alive:

1. the wssvc recorded for the scope, if it is still live;
2. for a workbook not yet placed (or whose wssvc was lost): the live wssvc that rendezvous
   hashing of the workbook id picks (the highest sha256(workbook, wssvc id)), the same for
   every user and every main_server, so a workbook's users meet there again after a loss;
3. for a list: the least loaded live wssvc.

Live means a fresh registry heartbeat *and* at least one broker behind it. The choice and its
recording happen in one transaction under a lock on the scope, so two main_server processes
placing the same workbook at once agree.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from .. import registry
from ..storage import Database


class NoService(Exception):
    """No live wssvc with a broker: the page should retry shortly."""


@dataclass(frozen=True)
class Assignment:
    service_id: str
    pool: str
    endpoint: str


def scope_of(user_id: str, purpose: str, workbook: str | None) -> str:
    return f"workbook:{workbook}" if purpose == "workbook" else f"list:{user_id}"


def _lock_key(scope: str) -> int:
    return int.from_bytes(hashlib.sha256(scope.encode()).digest()[:8], "big", signed=True)


def rendezvous(workbook: str, live: list[dict[str, Any]]) -> dict[str, Any]:
    """The wssvc where a workbook's users meet: the highest hash of (workbook, wssvc id)."""
    return max(live, key=lambda r: hashlib.sha256(f"{workbook}\0{r['id']}".encode()).digest())


def usable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if int((r.get("extra") or {}).get("brokers", 0)) > 0]


async def assign(db: Database, *, user_id: str, purpose: str, workbook: str | None,
                 liveness: float) -> Assignment:
    live = usable(await registry.live(db, "wssvc", liveness))
    if not live:
        raise NoService("no websocket service is available")
    by_id = {r["id"]: r for r in live}
    scope = scope_of(user_id, purpose, workbook)
    async with db.transaction() as tx:
        await tx.lock(_lock_key(scope))
        row = await tx.fetchone("SELECT service_id FROM assignments WHERE scope = :s",
                                {"s": scope})
        if row is not None and row["service_id"] in by_id:
            chosen = by_id[row["service_id"]]
        elif purpose == "workbook" and workbook is not None:
            chosen = rendezvous(workbook, live)
        else:
            chosen = live[0]  # least loaded (registry.live orders by load)
        await tx.execute(
            "INSERT INTO assignments (scope, user_id, service_id, pool, assigned_at)"
            " VALUES (:s, :u, :id, :pool, :now) ON CONFLICT (scope) DO UPDATE SET"
            " service_id = excluded.service_id, pool = excluded.pool,"
            " assigned_at = excluded.assigned_at",
            {"s": scope, "u": user_id, "id": chosen["id"], "pool": chosen["pool"],
             "now": time.time()})
    return Assignment(chosen["id"], chosen["pool"], chosen["endpoint"])
