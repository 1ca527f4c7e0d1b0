"""The firewall the kit generates from the inventory: each port admits exactly its peers.

The rendered nftables.conf of every host is read back into (source, port) pairs: `any` for a
rule without `saddr`, one pair per address otherwise. The tables below are the example
inventory's topology written out by hand (docs/security.md, "Kit"): a broker's frontend from
its pool's wssvc host, its backend from the hosts with workers of its pool, PostgreSQL from
the etckit hosts, main_server from the load balancer. Anything more or less fails.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.kit.support import render

LB1, FRONT1, FRONT2, INTERNAL1 = "192.0.2.10", "192.0.2.11", "192.0.2.12", "192.0.2.21"
INTERNAL2, MONITOR1 = "192.0.2.22", "192.0.2.31"


def metrics(*ports: int) -> set[tuple[str, int]]:
    """Metrics and exporter ports: from the monitoring host only (node exporter on every host)."""
    return {(MONITOR1, port) for port in (9100, *ports)}


SSH = {("any", 22)}
EXPECTED = {
    "lb1": SSH | {("any", 80), ("any", 443)} | metrics(8405),
    "front1": SSH | metrics(9301, 9302, 9303, 9311, 9312) | {("any", 8081), (LB1, 8080),
                     (FRONT1, 5551),                       # broker front1: its wssvc
                     (FRONT1, 5552), (INTERNAL1, 5552)},   # and the hosts with front1 workers
    "front2": SSH | metrics(9301, 9302, 9303, 9311, 9312) | {("any", 8081), (LB1, 8080),
                     (FRONT2, 5551),
                     (FRONT2, 5552), (INTERNAL1, 5552)},
    "internal1": SSH | metrics(9303, 9304, 9311, 9312, 9313, 9314, 9187)
                 | {(FRONT1, 5551), (FRONT1, 5552), (INTERNAL1, 5552),
                    (FRONT2, 5553), (FRONT2, 5554), (INTERNAL1, 5554),
                    (FRONT1, 5432), (FRONT2, 5432), (INTERNAL1, 5432)},
    "monitor1": SSH | metrics(9090),                     # Prometheus, and its own node exporter
}

ACCEPT = re.compile(r"^(?:(?:ip|ip6) saddr (?P<sources>\{[^}]*\}|\S+) )?"
                    r"tcp dport (?P<ports>\{[^}]*\}|\d+) accept$")
# What every host accepts whatever the inventory says: replies, loopback, ICMP.
GENERAL = {"ct state established,related accept", "ct state invalid drop", "iif lo accept",
           "meta l4proto { icmp, ipv6-icmp } accept"}


def _items(text: str) -> list[str]:
    return [item.strip() for item in text.strip("{} ").split(",")]


def admitted(nftables_conf: Path) -> set[tuple[str, int]]:
    """The (source, port) pairs the input chain accepts; fails on any rule it cannot read."""
    chain = nftables_conf.read_text().split("chain input {", 1)[1].split("}\n\n", 1)[0]
    pairs = set()
    for line in chain.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or line.startswith("type filter") \
                or line in GENERAL:
            continue
        match = ACCEPT.match(line)
        assert match, f"a rule the table test does not understand: {line}"
        sources = _items(match["sources"]) if match["sources"] else ["any"]
        pairs |= {(source, int(port)) for source in sources for port in _items(match["ports"])}
    return pairs


def test_the_input_chain_drops_by_default(example_render):
    for host in EXPECTED:
        text = (example_render / host / "nftables.conf").read_text()
        assert "type filter hook input priority filter; policy drop;" in text
        assert "type filter hook forward priority filter; policy drop;" in text


@pytest.mark.parametrize("host", sorted(EXPECTED))
def test_each_port_admits_exactly_the_inventory_peers(example_render, host):
    assert admitted(example_render / host / "nftables.conf") == EXPECTED[host]


def test_the_reader_sees_every_kind_of_rule(tmp_path):
    """The table test's parser, on a chain with each shape of rule the template writes."""
    conf = tmp_path / "nftables.conf"
    conf.write_text("table inet etckit {\n    chain input {\n"
                    "        type filter hook input priority filter; policy drop;\n"
                    "        iif lo accept\n"
                    "        tcp dport 22 accept\n"
                    "        tcp dport { 80, 443 } accept\n"
                    "        ip saddr { 10.0.0.1, 10.0.0.2 } tcp dport 5551 accept\n"
                    "        ip6 saddr { 2001:db8::1 } tcp dport 5432 accept\n"
                    "    }\n\n    chain forward {\n    }\n}\n")
    assert admitted(conf) == {("any", 22), ("any", 80), ("any", 443), ("10.0.0.1", 5551),
                              ("10.0.0.2", 5551), ("2001:db8::1", 5432)}
    conf.write_text(conf.read_text().replace("iif lo accept", "ip saddr 10.0.0.0/8 accept"))
    with pytest.raises(AssertionError, match="does not understand"):
        admitted(conf)


def test_ssh_and_metrics_admit_the_configured_networks_only(inventory, test_certs, tmp_path):
    def restrict(data):
        data.update({"etckit_firewall_ssh_sources": ["198.51.100.0/24"],
                     "etckit_firewall_metrics_port": 9100,
                     "etckit_firewall_metrics_sources": ["198.51.100.7", "2001:db8::7"]})
    inventory.edit_vars("all/main.yml", restrict)
    out = render(inventory, test_certs, tmp_path / "out", limit="lb1")
    assert admitted(out / "lb1" / "nftables.conf") == {
        ("198.51.100.0/24", 22), ("198.51.100.7", 9100), ("2001:db8::7", 9100),
        ("any", 80), ("any", 443)} | metrics(8405)


def test_a_new_worker_host_opens_exactly_what_it_needs(inventory, test_certs, tmp_path):
    """docs/operations.md "Add a machine": internal2 with workers of both pools."""
    def add_internal2(hosts):
        hosts["all"]["children"]["workers"]["hosts"]["internal2"] = {
            "etckit_worker_counts": {"front1": 1, "front2": 1}}
        hosts["all"]["hosts"]["internal2"] = {"ansible_host": INTERNAL2}
    inventory.edit_hosts(add_internal2)
    out = render(inventory, test_certs, tmp_path / "out")
    opened = {
        "front1": {(INTERNAL2, 5552)},
        "front2": {(INTERNAL2, 5552)},
        "internal1": {(INTERNAL2, 5552), (INTERNAL2, 5554), (INTERNAL2, 5432)},
        "lb1": set(),
        "monitor1": set(),
    }
    for host, more in opened.items():
        assert admitted(out / host / "nftables.conf") == EXPECTED[host] | more, host
    # The new host runs no server: SSH, and its metrics to the monitoring host.
    assert admitted(out / "internal2" / "nftables.conf") == SSH | metrics(9311, 9312)


def test_brokers_and_workers_may_reach_the_cluster_only(example_render):
    cluster = {LB1, FRONT1, FRONT2, INTERNAL1, MONITOR1}
    for host in ("front1", "front2", "internal1"):
        lines = (example_render / host / "ipaddress.conf").read_text().splitlines()
        allow = [line.split("=", 1)[1].split() for line in lines
                 if line.startswith("IPAddressAllow=")]
        assert [set(addresses) for addresses in allow] == [cluster], host
    assert not (example_render / "lb1" / "ipaddress.conf").exists()
