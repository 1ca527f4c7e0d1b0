"""The Workbook page: build a calculation through the forms, see its results and plots."""

from __future__ import annotations

from tests.browser.conftest import fake_login, open_list, shot, source_in_a_scene


def _create_and_open(page, base: str, name: str) -> None:
    open_list(page, base)
    page.locator("#new-name").fill(name)
    page.locator("#create").click()
    page.locator("tr", has_text=name).locator("a.open-workbook").click()
    page.wait_for_selector("body[data-ready=true]")


def test_build_a_calculation_through_the_forms_and_see_its_plots(context, system):
    page = context.new_page()
    fake_login(page, system.url, "astronomer")
    _create_and_open(page, system.url, "Forms")

    source_in_a_scene(page, "250", "Quasar")

    page.locator("#add-calculation").click()
    page.locator("#calculation-form [name='data.filter']").select_option("F150W")
    page.locator("#calculation-form [name='name']").fill("Deep F150W")
    page.locator("#form-save").click()
    row = page.locator("#calculation-list tr[data-status=ok]")
    row.wait_for()
    snr = float(row.locator("[data-field=snr]").inner_text())
    assert snr > 1

    row.get_by_role("link", name="Deep F150W").click()
    for kind in ("snr_vs_time", "spectrum", "snr_map", "saturation_map"):
        img = page.locator(f"#plots img[data-plot={kind}]")
        img.wait_for()
        page.wait_for_function(
            "(img) => img.complete && img.naturalWidth > 100", arg=img.element_handle())
    shot(page, "workbook-with-calculation")

    # an invalid edit names the field, keeps the form and changes nothing
    row.get_by_role("button", name="Edit").click()
    page.locator("#calculation-form [name='data.groups']").fill("0")
    page.locator("#form-save").click()
    error = page.locator("#form-error")
    error.wait_for()
    assert "groups" in error.inner_text()
    assert page.locator("#calculation-form [name='data.groups']").get_attribute("class") == \
        "invalid"
    shot(page, "workbook-invalid-edit")
    assert float(row.locator("[data-field=snr]").inner_text()) == snr


def test_a_second_window_sees_edits_and_recalculations(context, system):
    one = context.new_page()
    fake_login(one, system.url, "pair")
    _create_and_open(one, system.url, "Shared")
    two = context.new_page()
    two.goto(one.url)
    two.wait_for_selector("body[data-ready=true]")
    one.locator("#add-source").click()
    one.locator("#form-save").click()
    two.wait_for_selector("#source-list tr[data-id]")
    one.locator("#add-scene").click()
    one.locator("#form-save").click()
    one.locator("#add-calculation").click()
    one.locator("#form-save").click()
    two_row = two.locator("#calculation-list tr[data-status=ok]")
    two_row.wait_for()
    before = float(two_row.locator("[data-field=snr]").inner_text())
    # window one makes the source brighter: window two sees the recalculated S/N
    one.locator("#source-list tr[data-id]").get_by_role("button", name="Edit").click()
    one.locator("#source-form [name='data.normalization.value']").fill("3000")
    one.locator("#form-save").click()
    two.wait_for_function(
        "(before) => { const c = document.querySelector("
        "'#calculation-list tr[data-status=ok] [data-field=snr]');"
        " return c && parseFloat(c.textContent) > 3 * before; }", arg=before)
    shot(two, "workbook-second-window")
