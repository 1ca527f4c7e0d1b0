"""`etckit status`: the registry as a table or JSON; exit 1 saying why on a problem. Against
SQLite and PostgreSQL (the db_url fixture)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from etckit import cli
from etckit.storage import open_database, upgrade

LIVENESS = 10.0  # heartbeat.registry_liveness's default


async def _register(url: str, services: list[tuple]) -> None:
    async with open_database(url) as db:
        await upgrade(db)
        now = time.time()
        for sid, kind, host, pool, load, extra, age in services:
            await db.execute(
                "INSERT INTO services (id, kind, host, pid, pool, endpoint, extra, load,"
                " version, started_at, heartbeat_at) VALUES (:id, :kind, :host, 1, :pool,"
                " 'tcp://x:1', :extra, :load, 'x', :now, :beat)",
                {"id": sid, "kind": kind, "host": host, "pool": pool, "load": load,
                 "extra": json.dumps(extra), "now": now - age, "beat": now - age})


def status(url: str, services: list[tuple], capsys, monkeypatch, *args: str):
    asyncio.run(_register(url, services))
    monkeypatch.setenv("ETCKIT_DATABASE__URL", url)
    code = cli.main(["status", *args])
    out, err = capsys.readouterr()
    return code, out, err


HEALTHY = [
    ("wssvc-a", "wssvc", "front1", "p1", 3, {"brokers": 1}, 1.0),
    ("broker-a", "broker", "front1", "p1", 2, {"queue": 4, "busy": 1}, 0.5),
    ("worker-a", "worker", "front1", "p1", 0, {"broker": "broker-a"}, 0.5),
    ("worker-b", "worker", "internal", "p1", 0, {"broker": "broker-a"}, 1.5),
]


def test_healthy_cluster_is_a_table_and_exit_0(db_url, capsys, monkeypatch):
    code, out, err = status(db_url, HEALTHY, capsys, monkeypatch)
    assert code == 0, err
    assert err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["host", "program", "pool", "clients/workers", "queue",
                                "heartbeat"]
    assert len(lines) == 5
    broker = next(line for line in lines if " broker " in line).split()
    assert broker[:3] == ["front1", "broker", "p1"]
    assert "2 workers (1 busy)" in " ".join(broker) and broker[-4] == "4"
    assert any(line.split()[:4] == ["front1", "wssvc", "p1", "3"] for line in lines)


def test_json_lists_services_and_problems(db_url, capsys, monkeypatch):
    code, out, _ = status(db_url, HEALTHY, capsys, monkeypatch, "--json")
    body = json.loads(out)
    assert code == 0 and body["healthy"] is True and body["problems"] == []
    assert sorted(s["id"] for s in body["services"]) == ["broker-a", "worker-a", "worker-b",
                                                         "wssvc-a"]
    wssvc = next(s for s in body["services"] if s["kind"] == "wssvc")
    assert wssvc["load"] == 3 and 0.5 < wssvc["heartbeat_age"] < 60


def test_pool_without_workers_exits_1_saying_so(db_url, capsys, monkeypatch):
    services = [s for s in HEALTHY if s[1] != "worker"]
    code, out, err = status(db_url, services, capsys, monkeypatch)
    assert code == 1
    assert "pool p1 has no worker" in err
    assert "broker" in out  # the table is still printed


def test_wssvc_without_broker_exits_1(db_url, capsys, monkeypatch):
    services = [HEALTHY[0], ("wssvc-b", "wssvc", "front2", "p2", 0, {"brokers": 0}, 1.0),
                *HEALTHY[1:]]
    code, _, err = status(db_url, services, capsys, monkeypatch, "--json")
    assert code == 1
    assert err.strip() == "etckit status: wssvc pool p2 has no broker"


def test_stale_heartbeat_exits_1_naming_the_service(db_url, capsys, monkeypatch):
    services = [*HEALTHY, ("worker-c", "worker", "internal", "p1", 0, {}, LIVENESS + 20)]
    code, out, err = status(db_url, services, capsys, monkeypatch, "--json")
    assert code == 1
    assert "stale heartbeat: worker worker-c on internal" in err
    assert json.loads(out)["problems"] == [err.strip().removeprefix("etckit status: ")]


@pytest.mark.parametrize("url", ["sqlite:////nonexistent/dir/x.db"])
def test_unreadable_registry_is_one_line_exit_2(url, capsys, monkeypatch):
    monkeypatch.setenv("ETCKIT_DATABASE__URL", url)
    assert cli.main(["status"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("etckit status: cannot read the service registry:")
    assert len(err.strip().splitlines()) == 1


def test_status_of_a_running_chain(tmp_path):
    import subprocess

    from tests.support.chain import Chain
    from tests.support.procs import etckit_argv, wait_for

    chain = Chain(tmp_path)
    chain.start_all(workers=1)

    def run() -> tuple[int, dict, str]:
        done = subprocess.run(etckit_argv("status", "--json"), env=chain.env(),
                              capture_output=True, text=True, timeout=60)
        return done.returncode, json.loads(done.stdout or "{}"), done.stderr

    def healthy_and_counted() -> bool:
        code, body, _ = run()
        loads = [s["load"] for s in body.get("services", []) if s["kind"] == "broker"]
        return code == 0 and loads == [1]

    try:
        # healthy as soon as the worker registered; the broker's own entry (its load) is
        # refreshed every registry_interval, so wait for it to count the worker too
        wait_for(healthy_and_counted, timeout=30,
                 what="a healthy status whose broker counts its worker")
        code, body, _ = run()
        assert sorted(s["kind"] for s in body["services"]) == ["broker", "worker", "wssvc"]
        broker = next(s for s in body["services"] if s["kind"] == "broker")
        assert code == 0 and broker["load"] == 1 and broker["extra"]["queue"] == 0
        chain.workers[0].stop()
        wait_for(lambda: run()[0] == 1, timeout=30, what="an unhealthy status")
        assert "pool p1 has no worker" in run()[2]
    finally:
        chain.stop()
