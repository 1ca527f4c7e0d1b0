"""A result from an older engine is marked on the Workbook page and recomputed with one click
(issue 17, item 6)."""

from __future__ import annotations

from tests.browser.conftest import fake_login, open_list, shot


def test_outdated_results_are_marked_and_recalculated_in_one_click(context, system):
    page = context.new_page()
    fake_login(page, system.url, "upgrader")
    open_list(page, system.url)
    page.locator("#new-name").fill("Old results")
    page.locator("#create").click()
    page.locator("tr", has_text="Old results").locator("a.open-workbook").click()
    page.wait_for_selector("body[data-ready=true]")
    for kind in ("source", "scene", "calculation"):
        page.locator(f"#add-{kind}").click()
        page.locator("#form-save").click()
        page.wait_for_selector(f"#{kind}-list tr[data-id]")
    page.wait_for_selector("#calculation-list tr[data-status=ok]")
    assert page.locator("#outdated").count() == 0

    system.query("UPDATE calculations SET engine_version = '0.0.1'")  # an older release's
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    page.locator("#outdated").wait_for()
    assert "engine 0.0.1" in page.locator("#calculation-list td[data-outdated=true]").inner_text()
    shot(page, "workbook-outdated-results")
    page.locator("#recalculate-outdated").click()
    page.wait_for_selector("#outdated", state="detached")
    page.wait_for_selector("#calculation-list tr[data-status=ok]")
    assert page.locator("#calculation-list td[data-outdated=true]").count() == 0
    ((engine,),) = system.query("SELECT engine_version FROM calculations")
    assert engine != "0.0.1"
