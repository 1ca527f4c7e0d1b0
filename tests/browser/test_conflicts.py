"""Two windows edit one source: the later save is refused with `conflict`, and the page shows
both versions field by field and saves the ones chosen (issue 17, item 3)."""

from __future__ import annotations

from tests.browser.conftest import fake_login, open_list, shot


def _open(page, base: str, workbook_url: str) -> None:
    page.goto(workbook_url)
    page.wait_for_selector("body[data-ready=true]")


def test_a_conflicting_edit_is_resolved_field_by_field(context, system):
    first = context.new_page()
    fake_login(first, system.url, "editor")
    open_list(first, system.url)
    first.locator("#new-name").fill("Shared edits")
    first.locator("#create").click()
    first.locator("tr", has_text="Shared edits").locator("a.open-workbook").click()
    first.wait_for_selector("body[data-ready=true]")
    first.locator("#add-source").click()
    first.locator("#source-form [name='name']").fill("Nebula")
    first.locator("#form-save").click()
    row = first.locator("#source-list tr[data-id]")
    row.wait_for()
    second = context.new_page()
    _open(second, system.url, first.url)

    row.get_by_role("button", name="Edit").click()  # the first window's form opens ...
    second.locator("#source-list tr[data-id]").get_by_role("button", name="Edit").click()
    second.locator("#source-form [name='data.redshift']").fill("2")
    second.locator("#form-save").click()  # ... and the second window saves first
    second.wait_for_selector("#source-form", state="detached")
    first.wait_for_function(
        "() => document.querySelector('#source-list tr[data-id] td:nth-child(5)')"
        "?.textContent === '2'")

    first.locator("#source-form [name='data.normalization.value']").fill("300")
    first.locator("#form-save").click()
    panel = first.locator("#conflict")
    panel.wait_for()
    fields = sorted(panel.locator("tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.field)"))
    assert fields == ["data.normalization.value", "data.redshift"]
    shot(first, "workbook-conflict")
    panel.locator("input[data-field='data.redshift'][data-pick=theirs]").check()
    panel.locator("#conflict-keep").click()  # mine for the flux, theirs for the redshift
    first.wait_for_selector("#source-form", state="detached")
    cells = row.locator("td")
    first.wait_for_function(
        "() => document.querySelector('#source-list tr[data-id] td:nth-child(4)')"
        "?.textContent.startsWith('300 ')")
    assert cells.nth(4).inner_text() == "2"
    ((revision, data),) = system.query("SELECT item_revision, data FROM sources WHERE name = ?",
                                       ("Nebula",))
    assert revision == 3 and '"redshift": 2' in data
