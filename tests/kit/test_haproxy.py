"""HAProxy's configuration, generated from the inventory, checked by a real `haproxy -c`."""

from __future__ import annotations

import http.client
import http.server
import json
import re
import socket
import subprocess
import threading
import time
from pathlib import Path

from tests.kit.support import render
from tests.support.system import free_port, require_program


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


def test_rate_limits_on_login_and_assign_are_stick_tables(example_render):
    config = (example_render / "lb1" / "haproxy.cfg").read_text()
    assert "acl etckit_login path_beg /login/" in config
    assert "acl etckit_assign path /api/assign" in config
    assert "http-request track-sc0 src table etckit_rate_login if etckit_login" in config
    assert "http-request track-sc1 src table etckit_rate_assign if etckit_assign" in config
    assert "sc0_http_req_rate(etckit_rate_login) gt 30 }" in config
    assert "sc1_http_req_rate(etckit_rate_assign) gt 120 }" in config
    assert ("stick-table type ipv6 size 200k expire 120s store http_req_rate(60s)"
            in config.split("backend etckit_rate_login\n", 1)[1])


class _Backend(http.server.BaseHTTPRequestHandler):
    """A stand-in main_server: 200 to everything."""

    def _answer(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    do_GET = do_POST = _answer

    def log_message(self, *args) -> None:
        pass


def _local_config(config: str, port: int) -> str:
    """The rendered configuration, runnable here: plain HTTP on loopback, no chroot or user."""
    dropped = ("    chroot", "    user ", "    group ", "    daemon", "    stats ",
               "    ssl-default")
    lines = [line for line in config.splitlines() if not line.startswith(dropped)]
    text = "\n".join(lines) + "\n"
    text = re.sub(r"^    bind :443 .*$", f"    bind 127.0.0.1:{port}", text, flags=re.M)
    return re.sub(r"^    bind :80$", f"    bind 127.0.0.1:{free_port()}", text, flags=re.M)


def _post(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", path, body=b"{}", headers={"Host": "www.etc.example.org"})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def test_a_client_over_the_login_rate_gets_429_with_retry_after(inventory, test_certs, tmp_path):
    """The rendered limits, run by a real HAProxy: the 4th login in a minute is refused."""
    haproxy = require_program("haproxy", "haproxy")
    backend = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Backend)
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    metrics = free_port()
    inventory.edit_vars("all/main.yml", lambda data: data.update({
        "etckit_haproxy_login_rate": 3, "etckit_haproxy_assign_rate": 5,
        "etckit_haproxy_ipv6": False, "etckit_haproxy_backend_group": "nobody",
        "etckit_haproxy_metrics_address": "127.0.0.1", "etckit_haproxy_metrics_port": metrics,
        "etckit_haproxy_extra_servers": [
            {"name": "stub", "address": "127.0.0.1", "port": backend.server_address[1]}]}))
    out = render(inventory, test_certs, tmp_path / "out", limit="loadbalancers")
    port = free_port()
    local = tmp_path / "local.cfg"
    local.write_text(_local_config((out / "lb1" / "haproxy.cfg").read_text(), port))
    proxy = subprocess.Popen([haproxy, "-db", "-f", str(local)], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_port(port)
        logins = [_post(port, "/login/anonymous") for _ in range(4)]
        assert [status for status, _, _ in logins] == [200, 200, 200, 429]
        _, headers, body = logins[-1]
        assert headers["retry-after"] == "60"
        refusal = json.loads(body)
        assert (refusal["type"], refusal["code"], refusal["retry_after"]) == (
            "error", "rate_limited", 60)
        # Other paths, and /api/assign's own counter, are not affected by the login limit.
        assert _post(port, "/api/me")[0] == 200
        assigns = [_post(port, "/api/assign")[0] for _ in range(6)]
        assert assigns == [200] * 5 + [429]
        # HAProxy's Prometheus endpoint (etckit_monitoring scrapes it) counts the 429s.
        conn = http.client.HTTPConnection("127.0.0.1", metrics, timeout=10)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        family = 'haproxy_frontend_http_responses_total{proxy="etckit_https",code="'
        by_code = {line[len(family):].split('"')[0]: int(line.rsplit(" ", 1)[1])
                   for line in text.splitlines() if line.startswith(family)}
        assert by_code["4xx"] >= 2 and by_code["5xx"] == 0, by_code  # the two 429s at least
    finally:
        proxy.terminate()
        output = proxy.communicate(timeout=10)[0]
        backend.shutdown()
    # The request log is on HAProxy's standard output (systemd's journal keeps it): one line
    # for each request, with its status, the refused ones too.
    logged = [line for line in output.splitlines() if "etckit_https" in line]
    assert sum(" 429 " in line and '"POST /login/anonymous HTTP/1.1"' in line
               for line in logged) == 1, output
    assert sum(" 200 " in line and '"POST /api/assign HTTP/1.1"' in line
               for line in logged) == 5, output


def wait_for_port(port: int, attempts: int = 100) -> None:
    """Until something accepts on 127.0.0.1:port (HAProxy binds it at start)."""
    for _ in range(attempts):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")
