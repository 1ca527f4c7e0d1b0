"""An item's history on the Workbook page: its revisions with what changed, and a restore
(issue 17, item 4)."""

from __future__ import annotations

from tests.browser.conftest import fake_login, open_list, shot

FLUX_STARTS = ("(v) => document.querySelector('#source-list tr[data-id] td:nth-child(4)')"
               "?.textContent.startsWith(v + ' ')")


def test_history_lists_revisions_and_restores_one(context, system):
    page = context.new_page()
    fake_login(page, system.url, "historian")
    open_list(page, system.url)
    page.locator("#new-name").fill("Versions")
    page.locator("#create").click()
    page.locator("tr", has_text="Versions").locator("a.open-workbook").click()
    page.wait_for_selector("body[data-ready=true]")
    page.locator("#add-source").click()
    page.locator("#source-form [name='name']").fill("Comet")
    page.locator("#form-save").click()
    row = page.locator("#source-list tr[data-id]")
    row.wait_for()
    for value in ("200", "400"):
        row.get_by_role("button", name="Edit").click()
        page.locator("#source-form [name='data.normalization.value']").fill(value)
        page.locator("#form-save").click()
        page.wait_for_selector("#source-form", state="detached")
    page.wait_for_function(FLUX_STARTS, arg="400")

    row.get_by_role("button", name="History").click()
    panel = page.locator("#history")
    panel.wait_for()
    assert panel.locator("tbody tr").evaluate_all("rs => rs.map(r => r.dataset.revision)") == \
        ["3", "2", "1"]
    assert "normalization.value" in panel.locator("tr[data-revision='2']").inner_text()
    assert "created" in panel.locator("tr[data-revision='1']").inner_text()
    shot(page, "workbook-history")
    panel.locator("tr[data-revision='1'] [data-action=restore]").click()
    page.wait_for_selector("#history tr[data-revision='4']")
    page.wait_for_function(FLUX_STARTS, arg="100")
