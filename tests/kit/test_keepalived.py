"""Two load balancers with a floating address (etckit_lb_vip): keepalived and the firewall.

The topology scenario (molecule/topology/verify_drills.py) shows the failover itself; here
the generated files: each load balancer's keepalived.conf names the other as its unicast VRRP
peer, the first one has the highest priority, both carry the floating address, and each
firewall admits VRRP from the other load balancer only, while nothing else changes.
"""

from __future__ import annotations

import re

from tests.kit.support import render
from tests.kit.test_firewall import EXPECTED, admitted

LB1, LB2, VIP = "192.0.2.10", "192.0.2.13", "192.0.2.100"


def _two_load_balancers(inventory) -> None:
    def add_lb2(hosts):
        hosts["all"]["children"]["loadbalancers"]["hosts"]["lb2"] = None
        hosts["all"]["hosts"]["lb2"] = {"ansible_host": LB2}
    inventory.edit_hosts(add_lb2)
    inventory.edit_vars("all/main.yml", lambda v: v.update(etckit_lb_vip=VIP))


def _vrrp_sources(nftables: str) -> list[str]:
    return re.findall(r"ip saddr \{ ([^}]*) \} ip protocol vrrp accept", nftables)


def test_the_load_balancers_share_the_address_and_admit_vrrp_from_each_other(
        inventory, test_certs, tmp_path):
    _two_load_balancers(inventory)
    out = render(inventory, test_certs, tmp_path / "out")
    priorities = {}
    for me, peer in (("lb1", LB2), ("lb2", LB1)):
        conf = (out / me / "keepalived.conf").read_text()
        assert re.search(r"unicast_peer \{\s*" + re.escape(peer) + r"\s*\}", conf), conf
        assert f"{VIP}/32 dev " in conf
        assert 'script "/usr/bin/systemctl is-active --quiet haproxy.service"' in conf
        priorities[me] = int(re.search(r"priority (\d+)", conf)[1])
        nftables = (out / me / "nftables.conf").read_text()
        assert [s.strip() for s in _vrrp_sources(nftables)] == [peer], me
    assert priorities["lb1"] > priorities["lb2"], priorities
    # The other hosts: no VRRP, and the load balancers reach main_server as before (lb2 too).
    for host in ("front1", "front2", "internal1"):
        assert not _vrrp_sources((out / host / "nftables.conf").read_text()), host
    assert admitted(out / "front1" / "nftables.conf") == EXPECTED["front1"] | {(LB2, 8080)}


def test_without_a_floating_address_there_is_no_keepalived(example_render):
    assert not (example_render / "lb1" / "keepalived.conf").exists()
    assert not _vrrp_sources((example_render / "lb1" / "nftables.conf").read_text())
