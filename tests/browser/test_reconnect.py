"""Killing the wssvc that serves a tab: the page says it is reconnecting, then carries on."""

from __future__ import annotations

import signal

import pytest
from playwright.sync_api import expect

from tests.support.procs import wait_for

from .conftest import System, fake_login, open_list, shot

pytestmark = pytest.mark.browser


@pytest.fixture
def two_pools(tmp_path):
    system = System(tmp_path).start(pools=2)
    yield system
    system.stop()


def test_page_reconnects_to_a_live_wssvc(two_pools, context):
    system = two_pools
    page = context.new_page()
    fake_login(page, system.url, "dave")
    open_list(page, system.url)
    page.locator("#new-name").fill("before the crash")
    page.locator("#create").click()
    expect(page.locator("tr", has_text="before the crash")).to_be_visible()

    [(pool,)] = system.query("SELECT pool FROM assignments WHERE scope LIKE 'list:%'")
    other = next(p for p in system.pools if p != pool)
    page.locator("#new-name").fill("typed, not yet sent")

    system.pools[pool][0].signal(signal.SIGKILL)  # the wssvc serving this tab
    expect(page.locator("#connection-status")).to_contain_text("reconnecting", timeout=10000)
    shot(page, "11-reconnecting")
    expect(page.locator("#connection-status")).to_have_text("Connected", timeout=30000)
    expect(page.locator("#new-name")).to_have_value("typed, not yet sent")  # nothing lost
    wait_for(lambda: system.query("SELECT pool FROM assignments WHERE scope LIKE 'list:%'")
             == [(other,)], timeout=5, what="the list assigned to the live wssvc")

    page.locator("#create").click()
    expect(page.locator("tr", has_text="typed, not yet sent")).to_be_visible()
    expect(page.locator("tr", has_text="before the crash")).to_be_visible()
    shot(page, "12-reconnected")
