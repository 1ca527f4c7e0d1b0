"""The System page: the cluster as an operator sees it, for the users of main_server.admins.

Everyone else gets 404 (the page does not exist for them). While main_server serves, a
sampler reads the service registry every SAMPLE_INTERVAL seconds and keeps an hour of samples
per pool in memory: clients (wssvc), queue and busy workers (brokers), workers, and from each
wssvc's published counters (metrics.wssvc_totals) requests/s and p50/p99 latency. Each
main_server instance samples for itself, so any of them draws the same picture; a restarted
one starts a new hour. The alerts are the conditions `etckit status` reports.

    GET /system          the page (static/system.html, charts drawn with uPlot)
    GET /api/system      its data: pools' series, services, alerts
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from functools import partial, wraps
from typing import Any

from quart import Blueprint, Quart, current_app, jsonify

from .. import metrics, registry
from ..storage import Database, StorageError
from .web import current_site, current_user, not_here

log = logging.getLogger(__name__)

SAMPLE_INTERVAL = 10.0  # seconds between samples
HOUR = 3600.0

blueprint = Blueprint("system", __name__)


class History:
    """An hour of registry samples: (time, {pool: {...}}), oldest first."""

    def __init__(self, interval: float = SAMPLE_INTERVAL) -> None:
        self.samples: deque[tuple[float, dict[str, dict[str, Any]]]] = deque(
            maxlen=int(HOUR / interval) + 1)

    def add(self, now: float, rows: list[dict[str, Any]], liveness: float) -> None:
        self.samples.append((now, pools_of(rows, now, liveness)))

    def series(self) -> dict[str, dict[str, list]]:
        """Per pool: t, clients, queue, busy, workers, rps, p50, p99 (None: no data)."""
        out: dict[str, dict[str, list]] = {}
        previous: dict[str, Any] = {}
        last_t = 0.0
        for t, pools in self.samples:
            for name, pool in pools.items():
                s = out.setdefault(name, {k: [] for k in (
                    "t", "clients", "queue", "busy", "workers", "rps", "p50", "p99")})
                for key in ("clients", "queue", "busy", "workers"):
                    s[key].append(pool[key])
                s["t"].append(round(t, 1))
                rps, p50, p99 = _rates(previous.get(name), pool["wssvc"], t - last_t)
                s["rps"].append(rps)
                s["p50"].append(p50)
                s["p99"].append(p99)
            previous = {name: pool["wssvc"] for name, pool in pools.items()}
            last_t = t
        return out


def pools_of(rows: list[dict[str, Any]], now: float, liveness: float
             ) -> dict[str, dict[str, Any]]:
    """One sample: per pool, from the live registry entries."""
    pools: dict[str, dict[str, Any]] = {}
    for r in rows:
        if now - r["heartbeat_at"] > liveness or not r["pool"]:
            continue
        pool = pools.setdefault(r["pool"], {"clients": 0, "queue": 0, "busy": 0, "workers": 0,
                                            "wssvc": {}})
        extra = r["extra"]
        if r["kind"] == "wssvc":
            pool["clients"] += int(r["load"] or 0)
            if isinstance(extra.get("latency"), list):
                pool["wssvc"][r["id"]] = (int(extra.get("requests", 0)), extra["latency"])
        elif r["kind"] == "broker":
            pool["queue"] += int(extra.get("queue", 0))
            pool["busy"] += int(extra.get("busy", 0))
        elif r["kind"] == "worker":
            pool["workers"] += 1
    return pools


def _rates(before: dict[str, Any] | None, after: dict[str, Any], seconds: float
           ) -> tuple[float | None, float | None, float | None]:
    """requests/s, p50 and p99 between two samples, over the wssvc present in both (a
    restarted wssvc has a new id, so its counters never go backwards here)."""
    if before is None or seconds <= 0:
        return None, None, None
    requests, counts = 0, [0] * (len(metrics.LATENCY_BUCKETS) + 1)
    for sid, (n, latency) in after.items():
        if sid not in before or len(latency) != len(counts):
            continue
        n0, latency0 = before[sid]
        requests += max(0, n - n0)
        for i, (a, b) in enumerate(zip(latency, latency0, strict=False)):
            counts[i] += max(0, a - b)
    p50, p99 = metrics.quantile(0.5, counts), metrics.quantile(0.99, counts)
    return round(requests / seconds, 3), _ms(p50), _ms(p99)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


async def sample(db: Database, history: History, liveness: float) -> list[dict[str, Any]]:
    rows = await registry.everything(db)
    history.add(time.time(), rows, liveness)
    return rows


async def sampler(db: Database, history: History, liveness: float,
                  interval: float = SAMPLE_INTERVAL) -> None:
    while True:
        try:
            await sample(db, history, liveness)
        except StorageError as exc:
            log.warning("system page: cannot read the registry: %s", exc)
        await asyncio.sleep(interval)


async def is_admin() -> bool:
    """A user main_server.admins lists: an SSO user by e-mail (the provider's claim, never
    the display name a user may choose there), a fake login (test systems) by its name.
    Anonymous users never."""
    user = await current_user()
    if user is None:
        return False
    admins = current_site().cfg.main_server.admins
    if user.kind == "sso":
        return bool(user.email) and user.email in admins
    return user.kind == "fake" and user.display_name in admins


def admins_only(handler: Callable[..., Any]) -> Callable[..., Any]:
    """A route that does not exist (404) for anyone but an admin."""
    @wraps(handler)
    async def wrapper() -> Any:
        if not await is_admin():
            return not_here()
        return await handler()
    return wrapper


@blueprint.get("/system")
@admins_only
async def system_page():
    return await current_app.send_static_file("system.html")


@blueprint.get("/api/system")
@admins_only
async def system_data():
    site = current_site()
    history: History = current_app.extensions["etckit.system"]
    liveness = site.cfg.heartbeat.registry_liveness
    try:
        rows = await registry.everything(site.db)
    except StorageError as exc:
        return jsonify(error="unavailable", message=f"cannot read the registry: {exc}"), 503
    now = time.time()
    services = [{k: r[k] for k in ("id", "kind", "host", "pool", "load")}
                | {"age": round(now - r["heartbeat_at"], 1)} for r in rows]
    return jsonify(now=now, interval=SAMPLE_INTERVAL, pools=history.series(),
                   services=services, alerts=registry.problems(rows, now, liveness))


def install(app: Quart, db: Database, liveness: float) -> None:
    """The page's routes, its history, and the sampler while the app serves."""
    history = app.extensions["etckit.system"] = History()
    app.register_blueprint(blueprint)
    app.while_serving(partial(_sampling, db, history, liveness))


async def _sampling(db: Database, history: History, liveness: float) -> AsyncIterator[None]:
    task = asyncio.create_task(sampler(db, history, liveness))
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
