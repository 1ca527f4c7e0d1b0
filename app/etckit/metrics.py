"""Prometheus metrics: the families every program exports, and their HTTP endpoint.

Each program serves ``/metrics`` on ``metrics.address:metrics.port`` (0: no endpoint) from a
thread of prometheus_client's, so a scrape never waits for the event loop. The families are
module-level objects, as prometheus_client intends; ``registry_for(program)`` gathers the
ones a program fills (its own, the database's and the process's), so each endpoint shows
only what that program measures (docs/operations.md, "Metrics and status").

Hooks on hot paths are cheap: wssvc's per-message counts are plain integers turned into
families only when scraped (RequestCounts), other labelled children are looked up once and
kept (BrokerCounts), and what is a state rather than an event (queue depth, open
websockets, workers, cache counts) is read only when Prometheus scrapes (``watch_*``).
Labels are bounded sets: message types, error codes, pools, login kinds; never a user or
workbook id.
"""

from __future__ import annotations

import time
import weakref
from bisect import bisect_left
from collections.abc import Callable, Iterable
from itertools import accumulate
from typing import Any

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from .config import Config

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
WORK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
DB_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)

# the outcomes a request may have: ok, or an error code (docs/protocol.md); anything else a
# peer might send is counted as "other", so the label set stays bounded
OUTCOMES = frozenset({
    "ok", "invalid", "not_found", "bad_unicode", "too_deep", "too_large", "bad_json",
    "too_expensive", "rate_limited", "quota", "busy", "unavailable", "internal", "timeout",
    "worker_lost", "no_worker", "in_use", "binary_frame", "not_object", "missing_id",
    "bad_id", "missing_type", "unknown_type", "conflict", "not_allowed", "forbidden",
})

# -- wssvc ------------------------------------------------------------------------------
# etckit_requests_total and etckit_request_duration_seconds: see RequestCounts (plain counts
# on the hot path, turned into the two families when scraped)
WEBSOCKETS = Gauge("etckit_websockets_open", "Websockets open on this wssvc", registry=None)
BROKERS = Gauge("etckit_wssvc_brokers_connected", "Brokers this wssvc sends to (with "
                "workers)", registry=None)
TICKETS_REFUSED = Counter("etckit_tickets_refused", "Tickets refused: not issued by "
                          "main_server, or not redeemed by wssvc, by reason", ["reason"],
                          registry=None)
# -- broker -----------------------------------------------------------------------------
QUEUE_DEPTH = Gauge("etckit_broker_queue_depth", "Requests waiting for a worker", ["pool"],
                    registry=None)
WORKERS = Gauge("etckit_broker_workers", "Workers of this broker, free or busy",
                ["pool", "state"], registry=None)
BROKER_REQUESTS = Counter("etckit_broker_requests", "Requests the broker finished: ok "
                          "(a worker replied), busy or rate_limited (refused), returned (no "
                          "worker), worker_lost", ["pool", "outcome"], registry=None)
# -- worker -----------------------------------------------------------------------------
CALCULATION_SECONDS = Histogram("etckit_worker_calculation_seconds", "Engine calculations "
                                "in the sandbox", buckets=WORK_BUCKETS, registry=None)
PLOT_SECONDS = Histogram("etckit_worker_plot_seconds", "Plot renders in the sandbox",
                         buckets=WORK_BUCKETS, registry=None)
# -- main_server ------------------------------------------------------------------------
LOGINS = Counter("etckit_logins", "Logins, by kind (anonymous, fake, sso)", ["kind"],
                 registry=None)
ASSIGNMENTS = Counter("etckit_assignments", "wssvc assignments made (a ticket issued)",
                      registry=None)
# -- every program ----------------------------------------------------------------------
DB_TRANSACTION_SECONDS = Histogram("etckit_db_transaction_seconds", "Database transactions,"
                                   " from BEGIN to COMMIT or ROLLBACK", buckets=DB_BUCKETS,
                                   registry=None)


class _CacheCounts(Collector):
    """etckit_worker_cache_requests_total from a cache's own hits and misses, read when
    scraped (the cache counts anyway; nothing is added to its hot path)."""

    def __init__(self) -> None:
        self.caches: dict[str, Any] = {}  # name -> object with .hits and .misses

    def collect(self) -> Iterable[CounterMetricFamily]:
        family = CounterMetricFamily("etckit_worker_cache_requests", "Worker cache lookups,"
                                     " by cache and result (hit or miss)",
                                     labels=["cache", "result"])
        for name, cache in self.caches.items():
            family.add_metric([name, "hit"], cache.hits)
            family.add_metric([name, "miss"], cache.misses)
        yield family


class RequestCounts(Collector):
    """wssvc's answered requests, counted with plain integers on the event loop and read
    as etckit_requests_total{type,outcome} and etckit_request_duration_seconds{type} when
    scraped (from the exporter's thread: it copies before iterating). A prometheus_client
    child costs a lock per increment (three per observed request); this costs a dict lookup
    and an add. Labels stay bounded: message types are checked before counting, outcomes
    outside OUTCOMES are counted as "other"."""

    def __init__(self) -> None:
        self.counts: dict[str, dict[str, int]] = {}  # type -> outcome -> answered
        self.latency: dict[str, list[float]] = {}  # type -> per-bucket counts, +Inf, sum

    def answered(self, mtype: str, outcome: str, started: float | None = None) -> None:
        outcomes = self.counts.get(mtype)
        if outcomes is None:
            outcomes = self.counts[mtype] = {}
        n = outcomes.get(outcome)
        if n is None:
            if outcome not in OUTCOMES:
                outcome = "other"
            n = outcomes.get(outcome, 0)
        outcomes[outcome] = n + 1
        if started is not None:
            took = time.monotonic() - started
            hist = self.latency.get(mtype)
            if hist is None:
                hist = self.latency[mtype] = [0.0] * (len(LATENCY_BUCKETS) + 2)
            hist[bisect_left(LATENCY_BUCKETS, took)] += 1
            hist[-1] += took

    def cumulative(self, hist: list[float]) -> list[float]:
        """Cumulative bucket counts (LATENCY_BUCKETS, then +Inf) of one type's histogram."""
        return list(accumulate(hist[:-1]))

    def collect(self) -> Iterable[Any]:
        counts = CounterMetricFamily("etckit_requests", "Browser messages answered by wssvc,"
                                     " by message type and outcome (ok or the error code)",
                                     labels=["type", "outcome"])
        for mtype, outcomes in list(self.counts.items()):
            for outcome, n in list(outcomes.items()):
                counts.add_metric([mtype, outcome], n)
        yield counts
        seconds = HistogramMetricFamily("etckit_request_duration_seconds", "wssvc: from a "
                                        "request's arrival to its reply being queued for the"
                                        " browser", labels=["type"])
        bounds = [*map(floatToGoString, LATENCY_BUCKETS), "+Inf"]
        for mtype, hist in list(self.latency.items()):
            hist = list(hist)
            seconds.add_metric([mtype], list(zip(bounds, self.cumulative(hist), strict=True)),
                               sum_value=hist[-1])
        yield seconds


REQUEST_COUNTS = RequestCounts()

CACHES = _CacheCounts()


class _PoolUse(Collector):
    """etckit_db_pool_*: the program's database connections (summed over its databases:
    a program keeps one for its work and one for the service registry), read when scraped
    from each backend's own counters (``Database.pool_use``)."""

    def __init__(self) -> None:
        self.databases: weakref.WeakSet[Any] = weakref.WeakSet()

    def collect(self) -> Iterable[GaugeMetricFamily]:
        busy = idle = most = waiting = 0
        for db in list(self.databases):
            b, i, m, w = db.pool_use()
            busy, idle, most, waiting = busy + b, idle + i, most + m, waiting + w
        connections = GaugeMetricFamily("etckit_db_pool_connections", "Open database "
                                        "connections, busy (in a transaction) or idle",
                                        labels=["state"])
        connections.add_metric(["busy"], busy)
        connections.add_metric(["idle"], idle)
        yield connections
        yield GaugeMetricFamily("etckit_db_pool_max_connections", "The most database "
                                "connections the pools may open (database.pool_max)",
                                value=most)
        yield GaugeMetricFamily("etckit_db_pool_waiting", "Transactions waiting for a free "
                                "database connection", value=waiting)


POOLS = _PoolUse()

FAMILIES: dict[str, tuple[Collector, ...]] = {
    "wssvc": (REQUEST_COUNTS, WEBSOCKETS, BROKERS, TICKETS_REFUSED),
    "broker": (QUEUE_DEPTH, WORKERS, BROKER_REQUESTS),
    "worker": (CALCULATION_SECONDS, PLOT_SECONDS, CACHES),
    "main_server": (LOGINS, ASSIGNMENTS, TICKETS_REFUSED),
}
COMMON: tuple[Collector, ...] = (DB_TRANSACTION_SECONDS, POOLS, PROCESS_COLLECTOR,
                                 PLATFORM_COLLECTOR, GC_COLLECTOR)


def registry_for(program: str) -> CollectorRegistry:
    """A registry of the families `program` exports (KeyError for an unknown program)."""
    registry = CollectorRegistry(auto_describe=True)
    for family in (*FAMILIES[program], *COMMON):
        registry.register(family)
    return registry


class Exporter:
    """The /metrics endpoint of one program; `close()` stops it."""

    def __init__(self, server: Any, thread: Any, port: int) -> None:
        self.server, self.thread, self.port = server, thread, port

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class MetricsError(Exception):
    """The endpoint cannot be served (the port is taken, the address is wrong)."""


def serve(cfg: Config, program: str) -> Exporter | None:
    """Serve `program`'s metrics on metrics.address:metrics.port; None when the port is 0."""
    port = cfg.metrics.port
    if not port:
        return None
    address = cfg.metrics.address
    try:
        server, thread = start_http_server(port, addr=address, registry=registry_for(program))
    except OSError as exc:
        raise MetricsError(f"cannot serve metrics on {address}:{port} (metrics.address, "
                           f"metrics.port): {exc.strerror or exc}") from None
    return Exporter(server, thread, server.server_port)


# -- hooks ------------------------------------------------------------------------------

ERROR_PREFIX = b'{"type":"error","code":"'


def reply_outcome(text: bytes) -> str:
    """ok, or the code of an error message as the worker encodes it (protocol.dumps of
    error_message: its first keys are type and code); read without decoding the JSON."""
    if not text.startswith(ERROR_PREFIX):
        return "ok"
    end = text.find(b'"', len(ERROR_PREFIX), len(ERROR_PREFIX) + 40)
    code = text[len(ERROR_PREFIX):end].decode("ascii", "replace") if end > 0 else "other"
    return code if code in OUTCOMES else "other"


TICKET_REASONS = (("no ticket", "missing"), ("malformed", "malformed"),
                  ("signature", "bad_signature"), ("expired", "expired"),
                  ("another wssvc", "wrong_pool"), ("session", "session_ended"),
                  ("already used", "used"), ("ignoring retry_after", "blocked"))


def ticket_refused(message: str) -> None:
    """Count a ticket wssvc refused, by a reason read from TicketError's message."""
    reason = next((why for words, why in TICKET_REASONS if words in message), "other")
    TICKETS_REFUSED.labels(reason).inc()


class BrokerCounts:
    """The broker's finished requests, per outcome, for its pool (known once chosen)."""

    def __init__(self) -> None:
        self.pool = ""
        self._children: dict[str, Any] = {}

    def count(self, outcome: str, n: int = 1) -> None:
        child = self._children.get(outcome)
        if child is None:
            child = self._children[outcome] = BROKER_REQUESTS.labels(self.pool, outcome)
        child.inc(n)


def watch_wssvc(clients: Callable[[], int], brokers: Callable[[], int]) -> None:
    """Read wssvc's open websockets and connected brokers when scraped."""
    WEBSOCKETS.set_function(clients)
    BROKERS.set_function(brokers)


def watch_broker(pool: str, queued: Callable[[], int], free: Callable[[], int],
                 busy: Callable[[], int]) -> None:
    """Read a broker's queue and workers when scraped."""
    QUEUE_DEPTH.labels(pool).set_function(queued)
    WORKERS.labels(pool, "free").set_function(free)
    WORKERS.labels(pool, "busy").set_function(busy)


def watch_cache(name: str, cache: Any) -> None:
    """Export a worker cache's own hit and miss counts (it has .hits and .misses)."""
    CACHES.caches[name] = cache


def watch_database(db: Any) -> None:
    """Export a connected database's pool use (see _PoolUse); forgotten once it is gone."""
    POOLS.databases.add(db)


def timed(histogram: Histogram, func: Callable[..., Any]) -> Callable[..., Any]:
    """An async function that observes how long `func` took (also when it failed)."""
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await func(*args, **kwargs)
        finally:
            histogram.observe(time.perf_counter() - started)

    return wrapper


class transaction_timer:  # noqa: N801 - used like a function: ``async with transaction_timer()``
    """Observes a database transaction's duration into etckit_db_transaction_seconds."""

    __slots__ = ("started",)

    async def __aenter__(self) -> None:
        self.started = time.perf_counter()

    async def __aexit__(self, *exc: object) -> None:
        DB_TRANSACTION_SECONDS.observe(time.perf_counter() - self.started)


def wssvc_totals() -> dict[str, Any]:
    """What wssvc publishes in its registry entry for main_server's System page: requests
    answered so far, and the latency histogram's cumulative bucket counts (over all types,
    the bounds are LATENCY_BUCKETS then +Inf)."""
    requests = sum(n for outcomes in list(REQUEST_COUNTS.counts.values())
                   for n in list(outcomes.values()))
    latency = [0.0] * (len(LATENCY_BUCKETS) + 1)
    for hist in list(REQUEST_COUNTS.latency.values()):
        for i, n in enumerate(REQUEST_COUNTS.cumulative(list(hist))):
            latency[i] += n
    return {"requests": int(requests), "latency": [int(v) for v in latency]}


def quantile(q: float, counts: list[float], bounds: tuple[float, ...] = LATENCY_BUCKETS
             ) -> float | None:
    """The q-quantile of cumulative bucket counts (bounds, then +Inf), interpolated inside
    its bucket as Prometheus's histogram_quantile does; None without observations."""
    total = counts[-1] if counts else 0
    if total <= 0:
        return None
    rank = q * total
    for i, cumulative in enumerate(counts):
        if cumulative >= rank:
            if i >= len(bounds):
                return bounds[-1]
            lower = bounds[i - 1] if i else 0.0
            below = counts[i - 1] if i else 0.0
            inside = cumulative - below
            return lower + (bounds[i] - lower) * ((rank - below) / inside if inside else 1.0)
    return bounds[-1]
