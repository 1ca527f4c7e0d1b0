"""Logging out in one tab sends the other tabs back to the login page (close code 4003)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .conftest import fake_login, open_list, shot

pytestmark = pytest.mark.browser


def test_logout_in_one_tab_ends_the_other_tabs_websocket(system, context):
    lister = context.new_page()
    fake_login(lister, system.url, "olga")
    open_list(lister, system.url)
    expect(lister.locator("#connection-status")).to_have_text("Connected")
    asked = []  # 4003 is handled on the spot: no new /api/assign (which would answer 401)
    lister.on("request", lambda r: asked.append(r.url) if "/api/assign" in r.url else None)

    other = context.new_page()  # same browser, same session cookie
    other.goto(system.url + "/welcome")
    other.locator("#logout").click()
    other.wait_for_url(system.url + "/")

    # wssvc sees the session ended at its next check (auth.session_check_interval, 3 s)
    # and closes the socket with 4003; the page goes to the login page, not reconnecting
    lister.wait_for_url(system.url + "/", timeout=15000)
    expect(lister.locator("#fake-name")).to_be_visible()
    assert asked == []
    shot(lister, "30-logged-out-elsewhere")
