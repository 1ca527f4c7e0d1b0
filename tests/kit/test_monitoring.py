"""Monitoring in the kit: Prometheus scrapes exactly the inventory's hosts and ports.

The tables below are the example inventory written out by hand (docs/operations.md,
"Monitoring"): per host, the node exporter, each etckit program's metrics port (main_server
9301, wssvc 9302, brokers from 9303 in pool order, worker instance N 9310+N), HAProxy's and
PostgreSQL's exporters and Prometheus itself. The rendered file_sd files must say exactly that,
and prometheus.yml and the alert rules must pass promtool (installed in CI from Debian's
`prometheus` package; skipped here without it, failed under CI=true).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.kit.support import REPO, Inventory, run_playbook
from tests.support.system import IN_CI

LB1, FRONT1, FRONT2, INTERNAL1, MONITOR1 = ("192.0.2.10", "192.0.2.11", "192.0.2.12",
                                            "192.0.2.21", "192.0.2.31")
NODE = ("node", 9100, ())


def worker(port: int, pool: str, n: int) -> tuple[str, int, tuple]:
    return ("etckit_worker", port, (("pool", pool), ("worker", f"{pool}-{n}")))


# host -> {(address, (job, port, extra labels))}
EXPECTED = {
    "lb1": {(LB1, NODE), (LB1, ("haproxy", 8405, ()))},
    "front1": {(FRONT1, NODE), (FRONT1, ("etckit_main_server", 9301, ())),
               (FRONT1, ("etckit_wssvc", 9302, ())),
               (FRONT1, ("etckit_broker", 9303, (("pool", "front1"),))),
               (FRONT1, worker(9311, "front1", 1)),
               (FRONT1, worker(9312, "front1", 2))},
    "front2": {(FRONT2, NODE), (FRONT2, ("etckit_main_server", 9301, ())),
               (FRONT2, ("etckit_wssvc", 9302, ())),
               (FRONT2, ("etckit_broker", 9303, (("pool", "front2"),))),
               (FRONT2, worker(9311, "front2", 1)),
               (FRONT2, worker(9312, "front2", 2))},
    "internal1": {(INTERNAL1, NODE),
                  (INTERNAL1, ("etckit_broker", 9303, (("pool", "front1"),))),
                  (INTERNAL1, ("etckit_broker", 9304, (("pool", "front2"),))),
                  (INTERNAL1, worker(9311, "front1", 1)),
                  (INTERNAL1, worker(9312, "front1", 2)),
                  (INTERNAL1, worker(9313, "front2", 1)),
                  (INTERNAL1, worker(9314, "front2", 2)),
                  (INTERNAL1, ("postgresql", 9187, ()))},
    "monitor1": {(MONITOR1, NODE), (MONITOR1, ("prometheus", 9090, ()))},
}
TLS = {"lb1": {f"{LB1}:443"}, "front1": {f"{FRONT1}:8081"}, "front2": {f"{FRONT2}:8081"},
       "internal1": set(), "monitor1": set()}


def _key(host: str, entry: tuple[str, tuple[str, int, tuple]]) -> tuple:
    address, (job, port, labels) = entry
    return (f"{address}:{port}", tuple(sorted({"job": job, "host": host, **dict(labels)}.items())))


def targets(file_sd: Path) -> set[tuple]:
    """(target, sorted labels) pairs of a file_sd file; one target per entry."""
    entries = yaml.safe_load(file_sd.read_text()) or []
    pairs = set()
    for entry in entries:
        assert len(entry["targets"]) == 1, entry
        pairs.add((entry["targets"][0], tuple(sorted(entry["labels"].items()))))
    assert len(pairs) == len(entries), "a target is listed twice"
    return pairs


def render_monitoring(inventory: Inventory, out: Path, limit: str | None = None) -> Path:
    result = run_playbook(REPO / "tests" / "kit" / "render_monitoring.yml", inventory,
                          out / "work", {"etckit_test_out": str(out)}, limit=limit)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def monitoring_render(tmp_path_factory, test_certs) -> Path:
    base = tmp_path_factory.mktemp("monitoring")
    return render_monitoring(Inventory(base / "inventory", test_certs), base / "out")


@pytest.mark.parametrize("host", sorted(EXPECTED))
def test_each_hosts_targets_are_its_programs_and_exporters(monitoring_render, host):
    expected = {_key(host, entry) for entry in EXPECTED[host]}
    assert targets(monitoring_render / host / "targets.yml") == expected


@pytest.mark.parametrize("host", sorted(TLS))
def test_the_tls_ports_are_probed(monitoring_render, host):
    found = {target for target, _ in targets(monitoring_render / host / "tls.yml")}
    assert found == TLS[host]


def test_every_inventory_host_has_a_targets_file(monitoring_render, inventory):
    rendered = {path.parent.name for path in monitoring_render.glob("*/targets.yml")}
    assert rendered == set(EXPECTED)


def test_a_host_added_with_limit_gets_its_own_targets_only(inventory, tmp_path):
    """site.yml --limit newhost: the new host's play writes its file and no other."""
    def add(data):
        data["all"]["children"]["workers"]["hosts"]["internal2"] = {
            "etckit_worker_counts": {"front1": 3}}
        data["all"]["hosts"]["internal2"] = {"ansible_host": "192.0.2.22"}
    inventory.edit_hosts(add)
    out = render_monitoring(inventory, tmp_path / "out", limit="internal2")
    assert sorted(path.parent.name for path in out.glob("*/targets.yml")) == ["internal2"]
    labels = tuple(sorted({"job": "etckit_worker", "host": "internal2", "pool": "front1",
                           "worker": "front1-3"}.items()))
    assert ("192.0.2.22:9313", labels) in targets(out / "internal2" / "targets.yml")


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        reason = "promtool is not installed (apt-get install prometheus; .ci/run does)"
        if IN_CI:
            pytest.fail(f"CI=true but {reason}", pytrace=False)
        pytest.skip(reason)
    return found


def test_the_alert_rules_pass_promtool(monitoring_render):
    rules = monitoring_render / "monitor1" / "etckit-rules.yml"
    result = subprocess.run([promtool(), "check", "rules", str(rules)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    names = {rule["alert"] for group in yaml.safe_load(rules.read_text())["groups"]
             for rule in group["rules"]}
    assert {"EtckitPoolWithoutWorkers", "EtckitWssvcWithoutBroker", "EtckitQueueDepthHigh",
            "EtckitLatencyHigh", "EtckitHttp5xxRatioHigh", "EtckitCertificateExpiresSoon",
            "EtckitPostgresqlDown", "EtckitPostgresqlReplicaLagging", "EtckitDiskFull"} <= names


def test_prometheus_yml_passes_promtool(monitoring_render, tmp_path):
    config = monitoring_render / "monitor1" / "prometheus.yml"
    # prometheus.yml names the installed rules file: point it at the rendered one.
    text = config.read_text().replace("/etc/prometheus/etckit-rules.yml",
                                      str(monitoring_render / "monitor1" / "etckit-rules.yml"))
    (tmp_path / "prometheus.yml").write_text(text)
    result = subprocess.run([promtool(), "check", "config", str(tmp_path / "prometheus.yml")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_thresholds_come_from_the_role_variables(inventory, tmp_path):
    inventory.edit_vars("all/main.yml", lambda v: v.update(etckit_monitoring_queue_depth=77,
                                                           etckit_monitoring_certificate_days=9))
    out = render_monitoring(inventory, tmp_path / "out", limit="monitor1")
    rules = {rule["alert"]: rule for group in
             yaml.safe_load((out / "monitor1" / "etckit-rules.yml").read_text())["groups"]
             for rule in group["rules"]}
    assert rules["EtckitQueueDepthHigh"]["expr"].endswith("> 77")
    assert "< 9 * 86400" in rules["EtckitCertificateExpiresSoon"]["expr"]


def _metrics_module():
    path = REPO / "roles" / "etckit_base" / "filter_plugins" / "etckit_metrics.py"
    spec = importlib.util.spec_from_file_location("etckit_metrics", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_too_many_workers_for_the_port_range_is_refused_by_name():
    metrics = _metrics_module()
    host = {"inventory_hostname": "big1", "group_names": ["workers"],
            "etckit_worker_counts": {"front1": 90}}
    with pytest.raises(metrics.MetricsPortError, match="big1: etckit_worker_counts has 90"):
        metrics.metrics_ports(host)
    host["etckit_worker_counts"] = {"front1": 89}
    assert max(metrics.metrics_ports(host).values()) == 9399


def test_an_ipv6_address_is_bracketed():
    metrics = _metrics_module()
    host = {"inventory_hostname": "v6", "group_names": [], "etckit_address": "2001:db8::5"}
    assert metrics.scrape_file(host)[0]["targets"] == ["[2001:db8::5]:9100"]


PREFLIGHT = REPO / "playbooks" / "preflight.yml"


@pytest.mark.parametrize(("setting", "message"), [
    ({"etckit_monitoring_queue_depth_for": "five minutes"},
     "etckit_monitoring_queue_depth_for must be a Prometheus duration"),
    ({"etckit_monitoring_disk_used_ratio": 85},
     "etckit_monitoring_disk_used_ratio must be a number from 0.01 to 1"),
    ({"etckit_monitoring_alertmanagers": ["alerts.example.org"]},
     "etckit_monitoring_alertmanagers: 'alerts.example.org' is not host:port"),
])
def test_preflight_refuses_bad_monitoring_settings_by_name(inventory, tmp_path, setting, message):
    inventory.edit_vars("all/main.yml", lambda v: v.update(setting))
    result = run_playbook(PREFLIGHT, inventory, tmp_path / "work")
    output = result.stdout + result.stderr
    assert result.returncode != 0 and message in output, output[-3000:]


def test_preflight_refuses_more_workers_than_metrics_ports(inventory, tmp_path):
    inventory.edit_hosts(lambda data: data["all"]["children"]["workers"]["hosts"]["internal1"]
                         .update(etckit_worker_counts={"front1": 60, "front2": 30}))
    result = run_playbook(PREFLIGHT, inventory, tmp_path / "work")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "internal1: at most 7 brokers (etckit_broker_instances" in output, output[-3000:]


def _unit_environment(unit: Path) -> dict[str, str]:
    pairs = {}
    for line in unit.read_text().splitlines():
        if line.startswith("Environment="):
            for item in line.removeprefix("Environment=").split():
                key, _, value = item.partition("=")
                pairs[key] = value
    return pairs


def _env_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines()
                if line and not line.startswith("#"))


@pytest.mark.parametrize(("host", "address"), [("front1", FRONT1), ("internal1", INTERNAL1)])
def test_each_program_serves_metrics_on_its_table_port(example_render, host, address):
    """The units and environment files say the ports the scrape targets say (one table)."""
    out = example_render / host
    scraped = {(labels.get("worker") or labels.get("pool") or labels["job"], target)
               for target, labels in ((t, dict(ls)) for t, ls in targets_of(host))
               if labels["job"].startswith("etckit_")}
    served = set()
    for unit in out.glob("etckit-*.service"):
        environment = _unit_environment(unit)
        assert environment["ETCKIT_METRICS__ADDRESS"] == address, unit.name
        if "ETCKIT_METRICS__PORT" in environment:
            job = "etckit_" + unit.name.removesuffix(".service").removeprefix("etckit-") \
                .replace("-", "_")
            served.add((job, f"{address}:{environment['ETCKIT_METRICS__PORT']}"))
    for env in [*out.glob("broker-*.env"), *out.glob("worker-*.env")]:
        name = env.name.removesuffix(".env").split("-", 1)[1]
        served.add((name, f"{address}:{_env_file(env)['ETCKIT_METRICS__PORT']}"))
    for env in out.glob("wssvc*.env"):  # wssvc.env; wssvc-NAME.env are labelled by pool
        settings = _env_file(env)
        name = "etckit_wssvc" if env.name == "wssvc.env" else settings["ETCKIT_WSSVC__POOL"]
        served.add((name, f"{address}:{settings['ETCKIT_METRICS__PORT']}"))
    assert served == scraped


def targets_of(host: str) -> set[tuple]:
    """The example inventory's expected targets of a host, as targets() reads them."""
    return {_key(host, entry) for entry in EXPECTED[host]}
