"""The System page in a browser: an admin sees charts drawn and the alerts; anyone else 404."""

from __future__ import annotations

import asyncio
import threading

import pytest
import websockets

from tests.browser.conftest import System, fake_login, shot
from tests.support.chain import Client
from tests.support.procs import wait_for

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def admin_system(tmp_path_factory):
    system = System(tmp_path_factory.mktemp("system-page"), main_server__admins="root").start()
    yield system
    system.stop()


async def _traffic(system: System) -> None:
    """Requests through pool p1's wssvc, as a page would send them."""
    (endpoint,), = system.query("SELECT endpoint FROM services WHERE kind = 'wssvc'")
    await system.chain.ensure_user("alice")
    ws = await websockets.connect(f"{endpoint}/ws?ticket={system.chain.ticket(pool='p1')}",
                                  origin=system.url)
    alice = Client(ws)
    await alice.recv()  # hello
    for n in range(20):
        assert (await alice.request("echo", data=n))["type"] == "echo"
    await alice.close()


def test_admin_sees_charts_and_alerts(admin_system, context):
    page = context.new_page()
    fake_login(page, admin_system.url, "root")
    traffic = threading.Thread(target=asyncio.run, args=(_traffic(admin_system),))
    traffic.start()  # in a thread: Playwright's sync API holds this thread's event loop
    traffic.join(60)
    page.goto(admin_system.url + "/system")
    page.wait_for_selector("body[data-ready=true]")
    assert page.locator("#alerts li.ok").count() == 1  # healthy: no alert

    def rps_seen() -> bool:  # the sampler has two samples with the traffic between them
        data = page.evaluate("fetch('/api/system').then(r => r.json())")
        return any((v or 0) > 0 for v in data["pools"].get("p1", {}).get("rps", []))

    wait_for(rps_seen, timeout=40, interval=1, what="a requests/s sample")
    page.reload()  # drawn from that data now, not at the next refresh
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_function("document.querySelectorAll('#pools .chart canvas').length >= 4")
    painted = page.evaluate("""() => [...document.querySelectorAll('#pools .chart canvas')]
        .map(c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                    let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n; })""")
    assert all(n > 100 for n in painted), painted
    services = page.locator("#services tbody tr")
    assert services.count() == 3
    shot(page, "system-admin")

    admin_system.pools["p1"][2].stop()  # the pool's only worker
    page.wait_for_selector("#alerts li.alert", timeout=30000)
    assert "pool p1 has no worker" in page.locator("#alerts").inner_text()
    shot(page, "system-alert")


def test_normal_user_gets_404(admin_system, context):
    page = context.new_page()
    fake_login(page, admin_system.url, "alice")
    response = page.goto(admin_system.url + "/system")
    assert response.status == 404
    assert page.evaluate("fetch('/api/system').then(r => r.status)") == 404
