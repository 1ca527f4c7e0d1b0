"""etckit-haproxy-servers, the wait the rolling playbooks take a main_server out and put it back
with (playbooks/tasks/main-server-out.yml, -in.yml), against a real HAProxy."""

from __future__ import annotations

import http.client
import http.server
import importlib.util
import subprocess
import sys
import threading
from importlib.machinery import SourceFileLoader
from pathlib import Path

import pytest

from tests.kit.support import render
from tests.kit.test_haproxy import _local_config, wait_for_port
from tests.support.procs import wait_for
from tests.support.system import free_port, require_program

TOOL = Path(__file__).parents[2] / "roles" / "etckit_haproxy" / "files" / "etckit-haproxy-servers"
_loader = SourceFileLoader("etckit_haproxy_servers", str(TOOL))
tool = importlib.util.module_from_spec(importlib.util.spec_from_loader(_loader.name, _loader))
_loader.exec_module(tool)

STAT = """# pxname,svname,status,check_status
etckit_main_servers,FRONTEND,OPEN,
etckit_main_servers,front1,UP 1/3,L7OK
etckit_main_servers,front2,MAINT,
etckit_main_servers,BACKEND,UP,
other,front3,UP,L7OK
"""


def test_the_servers_of_one_backend_are_read_from_show_stat():
    assert tool.servers(STAT, "etckit_main_servers") == {"front1": "UP 1/3", "front2": "MAINT"}
    assert tool.servers(STAT, "nothing") == {}


def test_a_server_one_failed_check_from_down_is_not_fully_up():
    assert tool.verdict({"front1": "UP 1/3"}, "front1", None) == "front1 is UP 1/3"
    assert tool.verdict({"front1": "UP"}, "front1", None) is None
    assert tool.verdict({"front1": "no check"}, "front1", None) is None
    assert tool.verdict({"front1": "UP"}, "front9", None) == "no server front9"


def test_a_host_goes_out_only_while_another_is_fully_up_or_there_is_no_other():
    assert tool.verdict({"front1": "UP", "front2": "UP 2/3"}, None, "front1") == (
        "no server but front1 is fully up")
    assert tool.verdict({"front1": "UP", "front2": "DOWN"}, None, "front1") is not None
    assert tool.verdict({"front1": "DOWN", "front2": "UP"}, None, "front1") is None
    assert tool.verdict({"front1": "UP"}, None, "front1") is None  # a backend of one server


class _Health(http.server.BaseHTTPRequestHandler):
    """A stand-in main_server: 200, or 503 while its server's `healthy` is false."""

    def do_GET(self) -> None:
        status = 200 if self.server.healthy else 503  # type: ignore[attr-defined]
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:
        pass


CONFIG = """global
    stats socket {socket} mode 600 level admin
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
frontend www
    bind 127.0.0.1:{port}
    default_backend etckit_main_servers
backend etckit_main_servers
    option httpchk
    http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host localhost
    http-check expect status 200
    default-server check inter 300ms fall 3 rise 2
    server front1 127.0.0.1:{front1}
    server front2 127.0.0.1:{front2}
"""


@pytest.fixture
def haproxy(tmp_path):
    """A real HAProxy over two stand-in main_servers, front1 and front2 (their servers)."""
    program = require_program("haproxy", "haproxy")
    fronts = {}
    for name in ("front1", "front2"):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
        server.healthy = True  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        fronts[name] = server
    port, socket = free_port(), tmp_path / "admin.sock"
    config = tmp_path / "haproxy.cfg"
    config.write_text(CONFIG.format(socket=socket, port=port, **{
        name: server.server_address[1] for name, server in fronts.items()}))
    proxy = subprocess.Popen([program, "-db", "-f", str(config)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield port, str(socket), fronts
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)
        for server in fronts.values():
            server.shutdown()


def run(socket: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), f"--socket={socket}",
                           "etckit_main_servers", *args], capture_output=True, text=True,
                          timeout=60)


def status(socket: str, name: str) -> str:
    return tool.servers(tool.ask(socket, "show stat"), "etckit_main_servers")[name]


def get(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/api/me")
        return conn.getresponse().status
    finally:
        conn.close()


def test_a_server_back_from_maintenance_is_waited_for_until_fully_up(haproxy):
    _, socket, _ = haproxy
    assert run(socket, "--wait-up=front1").returncode == 0
    tool.ask(socket, "disable server etckit_main_servers/front1")
    tool.ask(socket, "enable server etckit_main_servers/front1")
    # HAProxy counts it up at once, one failed check from DOWN ("UP 1/3")
    assert status(socket, "front1").startswith("UP "), status(socket, "front1")
    done = run(socket, "--wait-up=front1")
    assert done.returncode == 0, done.stderr
    assert "front1 UP\n" in done.stdout
    assert status(socket, "front1") == "UP"


def test_one_failed_check_after_maintenance_takes_the_server_down(haproxy):
    """Why the rolling playbooks wait for full health: front2 out for its upgrade, front1 just
    back and failing one check, and HAProxy has no server left (503 for everyone)."""
    port, socket, fronts = haproxy
    assert run(socket, "--wait-up=front1").returncode == 0
    assert run(socket, "--wait-up=front2").returncode == 0
    tool.ask(socket, "disable server etckit_main_servers/front1")
    fronts["front1"].healthy = False
    tool.ask(socket, "enable server etckit_main_servers/front1")
    refused = run(socket, "--wait-up=front1", "--timeout=1")
    assert refused.returncode == 1 and "front1 is" in refused.stderr, refused
    wait_for(lambda: status(socket, "front1").startswith("DOWN"), what="front1 DOWN")
    tool.ask(socket, "disable server etckit_main_servers/front2")
    assert get(port) == 503


def test_a_host_goes_out_only_while_another_is_fully_up(haproxy):
    port, socket, fronts = haproxy
    assert run(socket, "--wait-up=front2").returncode == 0
    fronts["front2"].healthy = False
    wait_for(lambda: status(socket, "front2").startswith("DOWN"), what="front2 DOWN")
    refused = run(socket, "--wait-other-up=front1", "--timeout=1")
    assert refused.returncode == 1, refused
    assert "no server but front1 is fully up" in refused.stderr
    assert "front2 DOWN" in refused.stdout
    assert run(socket, "--wait-other-up=front2").returncode == 0  # front1 is up
    fronts["front2"].healthy = True
    back = run(socket, "--wait-other-up=front1")
    assert back.returncode == 0, back.stderr
    assert status(socket, "front2") == "UP"
    assert get(port) == 200


def test_a_missing_backend_or_socket_is_named(haproxy, tmp_path):
    _, socket, _ = haproxy
    wrong = subprocess.run([sys.executable, str(TOOL), f"--socket={socket}", "nothing"],
                           capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 2 and "no backend 'nothing'" in wrong.stderr
    gone = run(str(tmp_path / "none.sock"), "--wait-up=front1")
    assert gone.returncode == 2 and "cannot ask HAProxy at" in gone.stderr


def test_a_server_that_refuses_the_connection_is_retried_on_another(inventory, test_certs,
                                                                     tmp_path):
    """The rendered configuration, run by a real HAProxy: a main_server that died between two
    health checks (HAProxy still counts it up for three failed checks) costs no request;
    each goes on to another server (`retries`, `option redispatch`)."""
    program = require_program("haproxy", "haproxy")
    fronts = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health) for _ in range(2)]
    for server in fronts:
        server.healthy = True  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
    inventory.edit_vars("all/main.yml", lambda data: data.update({
        "etckit_haproxy_ipv6": False, "etckit_haproxy_backend_group": "nobody",
        "etckit_haproxy_metrics_port": 0, "etckit_haproxy_extra_servers": [
            {"name": name, "address": "127.0.0.1", "port": server.server_address[1]}
            for name, server in zip(("live", "dying"), fronts, strict=True)]}))
    out = render(inventory, test_certs, tmp_path / "out", limit="loadbalancers")
    port, socket = free_port(), str(tmp_path / "admin.sock")
    config = _local_config((out / "lb1" / "haproxy.cfg").read_text(), port).replace(
        "global\n", f"global\n    stats socket {socket} mode 600 level admin\n", 1)
    (tmp_path / "local.cfg").write_text(config)
    proxy = subprocess.Popen([program, "-db", "-f", str(tmp_path / "local.cfg")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        for name in ("live", "dying"):
            assert run(socket, f"--wait-up={name}").returncode == 0
        fronts[1].shutdown()
        fronts[1].server_close()  # its port now refuses connections
        statuses = [get(port) for _ in range(4)]
        seen = status(socket, "dying")
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)
        fronts[0].shutdown()
    assert statuses == [200] * 4
    assert seen.startswith("UP"), f"dying was {seen} before the requests ended"
