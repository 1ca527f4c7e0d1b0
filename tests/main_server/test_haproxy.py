"""Two main_server processes behind one HAProxy address, without affinity, serve one user's
consecutive requests interchangeably; the assignment never hands out a stopped wssvc."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from collections import Counter

import httpx
import pytest
import websockets

from tests.support.chain import Chain
from tests.support.procs import Proc, wait_http
from tests.support.system import free_port, require_program

pytestmark = pytest.mark.slow

HAPROXY_CFG = """\
global
    maxconn 256
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
frontend www
    bind 127.0.0.1:{port}
    default_backend main_servers
backend main_servers
    balance roundrobin
    http-response set-header X-Served-By %[srv_name]
    server ms1 127.0.0.1:{ms1}
    server ms2 127.0.0.1:{ms2}
"""


@pytest.fixture
def site(tmp_path):
    haproxy = require_program("haproxy", "haproxy")
    port, ms1, ms2 = free_port(), free_port(), free_port()
    public = f"http://127.0.0.1:{port}"
    chain = Chain(tmp_path, main_server__public_url=public, auth__fake_login="true")
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(HAPROXY_CFG.format(port=port, ms1=ms1, ms2=ms2))
    subprocess.run([haproxy, "-c", "-q", "-f", str(cfg)], check=True, timeout=30)
    try:
        chain.start_all(workers=1)
        mains = [chain.start("main-server", main_server__port=str(p)) for p in (ms1, ms2)]
        for proc, p in zip(mains, (ms1, ms2), strict=True):
            wait_http(f"http://127.0.0.1:{p}/healthz", proc=proc)
        lb = Proc("haproxy", [haproxy, "-db", "-f", str(cfg)], {}, tmp_path)
        chain.procs.append(lb)
        wait_http(f"{public}/healthz", proc=lb)
        yield chain, public
    finally:
        chain.stop()


def test_two_main_servers_serve_one_user_interchangeably(site):
    chain, public = site
    served = Counter()
    with httpx.Client(base_url=public, headers={"Origin": public}, timeout=10) as http:
        def call(method: str, path: str, **kw) -> httpx.Response:
            response = http.request(method, path, **kw)
            served[response.headers["X-Served-By"]] += 1
            return response

        csrf = call("GET", "/api/login-options").json()["csrf"]
        login = call("POST", "/login/fake", data={"name": "erin", "csrf": csrf})
        assert login.status_code == 303, login.text
        by_server: dict[str, set] = {}
        services = set()
        for _ in range(4):
            me = call("GET", "/api/me")
            assert me.status_code == 200
            by_server.setdefault(me.headers["X-Served-By"], set()).add(me.json()["user"]["id"])
        assert set(by_server) == {"ms1", "ms2"}  # really round robin, no affinity
        assert len(set.union(*by_server.values())) == 1  # one user, whoever answers
        assigners = set()
        for _ in range(4):
            assigned = call("POST", "/api/assign", json={"purpose": "list"})
            assert assigned.status_code == 200, assigned.text
            services.add(assigned.json()["service"])
            assigners.add(assigned.headers["X-Served-By"])
        assert assigners == {"ms1", "ms2"}
        assert len(services) == 1  # one wssvc for the user's list, whoever assigns

        async def use(url: str) -> dict:
            async with websockets.connect(url, origin=public) as ws:
                return json.loads(await asyncio.wait_for(ws.recv(), 10))
        hello = asyncio.run(use(call("POST", "/api/assign", json={"purpose": "list"})
                                .json()["url"]))
        assert hello["type"] == "hello"

        me = call("GET", "/api/me")
        token = me.json()["csrf"]
        assert call("POST", "/logout", data={"csrf": token}).status_code == 303
        for _ in range(2):  # the session is gone on both
            assert call("GET", "/api/me").status_code == 401

        # a stopped wssvc is never assigned, by either main_server
        call("POST", "/login/fake", data={"name": "erin", "csrf": token})
        chain.wssvc.signal(signal.SIGTERM)
        chain.wssvc.wait(15)
        for _ in range(2):
            response = call("POST", "/api/assign", json={"purpose": "list"})
            assert response.status_code == 503, response.text
            assert response.json()["error"] == "no_wssvc"
    assert served["ms1"] > 3 and served["ms2"] > 3
