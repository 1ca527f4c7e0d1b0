"""Prometheus metrics: each program's endpoint serves its families, and the counters move when
the matching thing happens (a request, an error, a queued request, a refused ticket)."""

from __future__ import annotations

import asyncio
import subprocess

import httpx
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from etckit import metrics
from etckit.config import load
from etckit.worker import instrument
from etckit.worker.compute import Compute
from tests.support.chain import ORIGIN, Chain
from tests.support.procs import Proc, env_with, etckit_argv, wait_for, wait_http
from tests.support.system import free_port


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of an endpoint."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def names(samples: dict) -> set[str]:
    return {name for name, _ in samples}


@pytest.fixture
def chain(tmp_path):
    c = Chain(tmp_path)
    c.mports = {p: free_port() for p in ("wssvc", "broker", "worker")}
    c.wssvc = c.start("wssvc", metrics__port=str(c.mports["wssvc"]))
    c.broker = c.start("broker", metrics__port=str(c.mports["broker"]))
    c.workers = [c.start("worker", metrics__port=str(c.mports["worker"]))]
    c.wait_ready(timeout=60)
    yield c
    c.stop()


async def test_wssvc_counts_requests_errors_latency_and_sockets(chain):
    port = chain.mports["wssvc"]
    alice = await chain.connect()
    before = scrape(port)
    assert value(before, "etckit_websockets_open") == 1
    assert value(before, "etckit_wssvc_brokers_connected") == 1
    assert {"process_cpu_seconds_total", "etckit_db_transaction_seconds_count"} <= names(before)
    assert (await alice.request("echo", data=1))["type"] == "echo"
    await alice.request("workbook.open", workbook="nope")  # not_found from the worker
    await alice.send("garbage")
    assert (await alice.recv())["code"] == "bad_json"
    after = scrape(port)
    assert value(after, "etckit_requests_total", type="echo", outcome="ok") == 1
    assert value(after, "etckit_requests_total", type="workbook.open",
                 outcome="not_found") == 1
    assert value(after, "etckit_requests_total", type="unknown", outcome="bad_json") == 1
    assert value(after, "etckit_request_duration_seconds_count", type="echo") == 1
    assert value(after, "etckit_request_duration_seconds_bucket", type="echo", le="+Inf") == 1
    with pytest.raises(websockets.InvalidStatus):  # a used ticket is refused
        ticket = chain.ticket()
        await (await websockets.connect(chain.url(ticket), origin=ORIGIN)).close()
        await websockets.connect(chain.url(ticket), origin=ORIGIN)
    assert value(scrape(port), "etckit_tickets_refused_total", reason="used") == 1
    await alice.close()
    wait_for(lambda: value(scrape(port), "etckit_websockets_open") == 0, timeout=10)


async def test_broker_counts_queued_and_served_requests(chain):
    port = chain.mports["broker"]
    wait_for(lambda: value(scrape(port), "etckit_broker_workers", pool="p1", state="free") == 1,
             timeout=10)
    first = scrape(port)
    assert value(first, "etckit_broker_workers", pool="p1", state="busy") == 0
    assert value(first, "etckit_broker_queue_depth", pool="p1") == 0
    alice = await chain.connect()
    await alice.send({"id": "slow", "type": "test.sleep", "seconds": 2})
    await alice.send({"id": "queued", "type": "echo", "data": 1})
    wait_for(lambda: value(scrape(port), "etckit_broker_queue_depth", pool="p1") == 1,
                   timeout=5)
    assert value(scrape(port), "etckit_broker_workers", pool="p1", state="busy") == 1
    replies = {(await alice.recv(10))["ref"] for _ in range(2)}
    assert replies == {"slow", "queued"}
    done = scrape(port)
    assert value(done, "etckit_broker_requests_total", pool="p1", outcome="ok") == 2
    assert value(done, "etckit_broker_queue_depth", pool="p1") == 0
    await alice.close()


async def test_worker_serves_its_families(chain):
    port = chain.mports["worker"]
    wait_for(lambda: ("etckit_worker_cache_requests_total", (("cache", "result"),
                                                             ("result", "miss"))) in scrape(port),
             timeout=20)  # the worker has started its sandbox
    samples = scrape(port)
    assert {"etckit_worker_calculation_seconds_count", "etckit_worker_plot_seconds_count",
            "etckit_db_transaction_seconds_count", "process_resident_memory_bytes"
            } <= names(samples)
    assert value(samples, "etckit_worker_cache_requests_total", cache="result",
                 result="miss") == 0
    assert "etckit_requests_total" not in names(samples)  # only the worker's own families


class StubSandbox:
    limits = None

    async def calculate(self, *inputs):
        await asyncio.sleep(0)
        return "result"

    async def render(self, kind, *inputs):
        return b"png"


async def test_worker_times_calculations_and_counts_its_cache():
    compute = Compute(load(None, environ={}))
    compute.sandbox = StubSandbox()
    instrument(compute)
    registry = metrics.registry_for("worker")

    def get(name, **labels):
        return registry.get_sample_value(name, labels) or 0.0

    calcs, plots = get("etckit_worker_calculation_seconds_count"), get(
        "etckit_worker_plot_seconds_count")
    await compute.result(("c1", 1), ({}, {}, {}))
    await compute.result(("c1", 1), ({}, {}, {}))  # from the cache
    await compute.render("snr", ("c1", 1), ({}, {}, {}))
    assert get("etckit_worker_calculation_seconds_count") == calcs + 1
    assert get("etckit_worker_plot_seconds_count") == plots + 1
    assert get("etckit_worker_cache_requests_total", cache="result", result="hit") == 2
    assert get("etckit_worker_cache_requests_total", cache="result", result="miss") == 1


def test_reply_outcome_reads_the_error_code_without_decoding():
    assert metrics.reply_outcome(b'{"type":"echo","data":1}') == "ok"
    assert metrics.reply_outcome(b'{"type":"error","code":"quota","message":"x"}') == "quota"
    assert metrics.reply_outcome(b'{"type":"error","code":"made_up","message":"x"}') == "other"
    assert metrics.reply_outcome(b'{"type":"error","code":"') == "other"


def test_a_taken_metrics_port_is_one_clear_line(tmp_path):
    port = free_port()
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        env = env_with(metrics__port=str(port), database__url=f"sqlite:///{tmp_path}/x.db")
        result = subprocess.run(etckit_argv("broker"), env=env, capture_output=True,
                                text=True, timeout=60)
    assert result.returncode == 1
    assert f"cannot serve metrics on 127.0.0.1:{port}" in result.stdout + result.stderr


def test_main_server_serves_its_families(tmp_path):
    port, mport = free_port(), free_port()
    chain_env = Chain(tmp_path).env(main_server__port=str(port), metrics__port=str(mport))
    server = Proc("main-server", etckit_argv("main-server"), chain_env, tmp_path)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc=server, timeout=60)
        samples = scrape(mport)
        text = httpx.get(f"http://127.0.0.1:{mport}/metrics", timeout=5).text
        for family in ("etckit_logins_total", "etckit_assignments_total",
                       "etckit_tickets_refused_total", "etckit_db_transaction_seconds"):
            assert f"# TYPE {family.removesuffix('_total')}" in text, family
        assert value(samples, "etckit_assignments_total") == 0
    finally:
        server.stop()


def test_dev_gives_each_child_a_metrics_port():
    from etckit.dev import Child, metrics_ports

    children = [Child(n, []) for n in ("main-server", "wssvc", "broker", "worker-1",
                                       "worker-2")]
    base = free_port()
    while base + 11 > 65535:
        base = free_port()
    ports = metrics_ports(load(None, environ={"ETCKIT_METRICS__PORT": str(base)}), children)
    expected = {"main-server": base, "wssvc": base + 1, "broker": base + 2,
                "worker-1": base + 10, "worker-2": base + 11}
    assert ports == {k: v for k, v in expected.items() if k in ports}
    assert len(ports) >= 4  # a port another test holds is left out, with a warning
    for child in children:
        if child.name in ports:
            assert child.env["ETCKIT_METRICS__PORT"] == str(ports[child.name])
    default = metrics_ports(load(None, environ={}), [Child("broker", [])])
    assert default in ({"broker": 9303}, {})


def pool_samples() -> dict:
    registry = metrics.registry_for("main_server")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in registry.collect() for s in family.samples}


async def test_database_pool_use_is_exported_and_follows_transactions(db_url):
    """etckit_db_pool_*: a connected database counts, a transaction makes one connection
    busy, and a second one waiting for the only SQLite connection shows as waiting."""
    from etckit.storage import connected

    cfg = load(None, {"ETCKIT_DATABASE__URL": db_url, "ETCKIT_DATABASE__POOL_MAX": "3"})
    async with connected(cfg) as db:
        idle = pool_samples()
        assert value(idle, "etckit_db_pool_connections", state="busy") == 0
        assert value(idle, "etckit_db_pool_max_connections") == (1 if "sqlite" in db_url else 3)
        inside = asyncio.Event()
        release = asyncio.Event()

        async def hold() -> None:
            async with db.transaction() as tx:
                await tx.fetchval("SELECT 1 AS one")
                inside.set()
                await release.wait()

        holder = asyncio.create_task(hold())
        await inside.wait()
        waiter = asyncio.create_task(db.fetchval("SELECT 2 AS two"))
        await asyncio.sleep(0.2)
        busy = pool_samples()
        assert value(busy, "etckit_db_pool_connections", state="busy") >= 1
        if "sqlite" in db_url:  # the second transaction waits for the one connection
            assert value(busy, "etckit_db_pool_waiting") == 1
        release.set()
        await holder
        assert await waiter == 2
        assert value(pool_samples(), "etckit_db_pool_waiting") == 0
    assert value(pool_samples(), "etckit_db_pool_connections", state="busy") == 0
