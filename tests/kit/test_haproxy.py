"""HAProxy's configuration, generated from the inventory, checked by a real `haproxy -c`."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.kit.support import render
from tests.support.system import require_program


def haproxy_check(config: Path) -> None:
    haproxy = require_program("haproxy", "haproxy")
    result = subprocess.run([haproxy, "-c", "-f", str(config)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def backend_servers(config: str) -> dict[str, str]:
    backend = config.split("\nbackend etckit_main_servers\n", 1)[1]
    return dict(re.findall(r"^\s+server (\S+) (\S+)", backend, re.M))


def test_example_config_passes_haproxy_check(example_render):
    haproxy_check(example_render / "lb1" / "haproxy.cfg")


def test_every_main_server_is_a_backend_server_checked_on_healthz(example_render):
    config = (example_render / "lb1" / "haproxy.cfg").read_text()
    assert backend_servers(config) == {"front1": "192.0.2.11:8080", "front2": "192.0.2.12:8080"}
    assert "option httpchk" in config
    assert "http-check send meth GET uri /healthz" in config
    assert "http-check expect status 200" in config
    assert re.search(r"default-server check ", config)


def test_tls_redirect_hsts_forwarded_headers_and_stats_socket(example_render, test_certs):
    config = (example_render / "lb1" / "haproxy.cfg").read_text()
    assert f"bind :443 ssl crt {test_certs / 'wildcard.pem'}" in config
    assert "ssl-min-ver TLSv1.2" in config
    assert "http-request redirect scheme https code 301" in config
    assert 'Strict-Transport-Security "max-age=63072000' in config
    assert "option forwardfor" in config
    assert "X-Forwarded-Proto https" in config
    assert "X-Forwarded-Host" in config
    assert "stats socket /run/haproxy/admin.sock mode 660 level admin expose-fd listeners" in config


def test_adding_a_host_to_main_servers_adds_it_to_the_backend(inventory, test_certs, tmp_path):
    def add_front3(hosts):
        hosts["all"]["hosts"]["front3"] = {"ansible_host": "192.0.2.13"}
        hosts["all"]["children"]["main_servers"]["hosts"]["front3"] = None

    inventory.edit_hosts(add_front3)
    out = render(inventory, test_certs, tmp_path / "out", limit="loadbalancers")
    config = out / "lb1" / "haproxy.cfg"
    assert backend_servers(config.read_text()) == {
        "front1": "192.0.2.11:8080", "front2": "192.0.2.12:8080", "front3": "192.0.2.13:8080",
    }
    haproxy_check(config)


def test_a_host_own_main_server_port_is_its_backend_port(inventory, test_certs, tmp_path):
    inventory.edit_hosts(lambda h: h["all"]["hosts"]["front2"].update(etckit_main_server_port=9090))
    out = render(inventory, test_certs, tmp_path / "out", limit="loadbalancers")
    assert backend_servers((out / "lb1" / "haproxy.cfg").read_text())["front2"] == "192.0.2.12:9090"
