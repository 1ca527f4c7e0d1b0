"""Several wssvc on one host (etckit_wssvc_more_instances): each its own unit, port, pool and
metrics port, opened, probed and checked like the first (issue 15: the kit supports the choice).

front1 of the example inventory gets a second wssvc `b` on port 8082 for pool front1b, served
by a broker instance and a worker of its own on front1.
"""

from __future__ import annotations

import importlib.util

import pytest

from tests.kit.support import REPO, render, run_playbook
from tests.kit.test_firewall import EXPECTED as FIREWALL
from tests.kit.test_firewall import FRONT1, admitted
from tests.kit.test_monitoring import _env_file, render_monitoring, targets

PREFLIGHT = REPO / "playbooks" / "preflight.yml"


def _second_wssvc(inventory, instances=None) -> None:
    def change(hosts):
        children = hosts["all"]["children"]
        children["wssvc_servers"]["hosts"]["front1"] = {"etckit_wssvc_more_instances": (
            instances if instances is not None else {"b": {"port": 8082, "pool": "front1b"}})}
        children["brokers"]["hosts"]["front1"]["etckit_broker_instances"]["front1b"] = {
            "frontend_port": 5553, "backend_port": 5554}
        children["workers"]["hosts"]["front1"]["etckit_worker_counts"]["front1b"] = 1
    inventory.edit_hosts(change)


@pytest.fixture(scope="module")
def second(tmp_path_factory, test_certs):
    from tests.kit.support import Inventory
    base = tmp_path_factory.mktemp("second-wssvc")
    inventory = Inventory(base / "inventory", test_certs)
    _second_wssvc(inventory)
    return inventory, render(inventory, test_certs, base / "out", limit="front1") / "front1"


def test_each_wssvc_has_its_settings_and_the_second_a_template_unit(second):
    _, out = second
    first, more = _env_file(out / "wssvc.env"), _env_file(out / "wssvc-b.env")
    assert (first["ETCKIT_WSSVC__PORT"], first["ETCKIT_WSSVC__POOL"],
            first["ETCKIT_METRICS__PORT"]) == ("8081", "front1", "9302")
    assert (more["ETCKIT_WSSVC__PORT"], more["ETCKIT_WSSVC__PUBLIC_PORT"],
            more["ETCKIT_WSSVC__POOL"], more["ETCKIT_METRICS__PORT"]) == (
        "8082", "8082", "front1b", "9401")
    assert more["ETCKIT_WSSVC__PUBLIC_HOST"] == first["ETCKIT_WSSVC__PUBLIC_HOST"]
    unit = (out / "etckit-wssvc@.service").read_text()
    assert "EnvironmentFile=/" in unit and "/wssvc-%i.env\n" in unit, unit
    assert "SyslogIdentifier=etckit-wssvc-%i\n" in unit
    assert "LimitNOFILE=65536\n" in unit and "MemoryMax=1G\n" in unit
    assert "ETCKIT_METRICS__PORT" not in unit  # in each instance's environment file


def test_the_firewall_opens_the_second_port_and_its_brokers(second):
    _, out = second
    assert admitted(out / "nftables.conf") == FIREWALL["front1"] | {
        ("any", 8082),                        # browsers reach the second wssvc
        ("192.0.2.31", 9401),                 # its metrics, from the monitoring host
        ("192.0.2.31", 9304), ("192.0.2.31", 9313),  # the front1b broker's and worker's
        (FRONT1, 5553), (FRONT1, 5554)}       # broker front1b: its wssvc and its worker


def test_monitoring_scrapes_and_probes_the_second_wssvc(second, tmp_path):
    inventory, _ = second
    out = render_monitoring(inventory, tmp_path / "out", limit="front1") / "front1"
    labels = tuple(sorted({"job": "etckit_wssvc", "host": "front1", "pool": "front1b",
                           "wssvc": "b"}.items()))
    assert ("192.0.2.11:9401", labels) in targets(out / "targets.yml")
    assert {target for target, _ in targets(out / "tls.yml")} == {"192.0.2.11:8081",
                                                                   "192.0.2.11:8082"}


def test_preflight_passes_the_second_wssvc(second, tmp_path):
    inventory, _ = second
    result = run_playbook(PREFLIGHT, inventory, tmp_path / "work")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


@pytest.mark.parametrize(("instances", "message"), [
    ({"b": {"port": 8081, "pool": "front1b"}},
     "host front1: two wssvc of this host share the port 8081; each needs its own"),
    ({"b": {"port": 8082, "pool": "front1"}},
     "host front1: two wssvc of this host share the pool front1; each needs its own"),
    ({"B!": {"port": 8082, "pool": "front1b"}},
     "etckit_wssvc_more_instances['B!']: a name is 1-32 lower-case letters"),
    ({"b": {"port": 70000, "pool": "front1b"}},
     "etckit_wssvc_more_instances['b'].port must be a TCP port (1-65535), not 70000"),
    ({"b": {"pool": "front1b"}}, "etckit_wssvc_more_instances['b'] must be a mapping with port"),
])
def test_preflight_refuses_a_bad_second_wssvc_by_name(inventory, tmp_path, instances, message):
    _second_wssvc(inventory, instances)
    result = run_playbook(PREFLIGHT, inventory, tmp_path / "work")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert message in output, output[-3000:]


def test_more_than_nine_are_refused():
    spec = importlib.util.spec_from_file_location(
        "etckit_metrics", REPO / "roles" / "etckit_base" / "filter_plugins" / "etckit_metrics.py")
    metrics = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(metrics)
    hostvars = {"inventory_hostname": "front1", "group_names": ["wssvc_servers"],
                "etckit_wssvc_more_instances": {f"w{i}": {"port": 8100 + i, "pool": f"p{i}"}
                                                for i in range(10)}}
    with pytest.raises(metrics.WssvcInstanceError, match="at most 9 fit the metrics ports"):
        metrics.wssvc_instances(hostvars)
    hostvars["etckit_wssvc_more_instances"].pop("w9")
    assert [w["metrics_port"] for w in metrics.wssvc_instances(hostvars)] == [
        9302, *range(9401, 9410)]
