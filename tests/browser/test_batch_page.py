"""The Workbook page (issue 16): a calculation with a target-and-date background built through
the form (an unobservable date refused naming the field), expanded over groups with its
progress shown, the expansion compared in one plot, and its FITS download."""

from __future__ import annotations

import io
import tarfile

from tests.browser.conftest import fake_login, open_list, shot, source_in_a_scene


def _calculation_with_a_background(page) -> None:
    source_in_a_scene(page)
    page.locator("#add-calculation").click()
    form = page.locator("#calculation-form")
    form.locator("[name='name']").fill("Field")
    form.locator("#background-target").check()
    form.locator("[name='data.background.ra_deg']").fill("150")
    form.locator("[name='data.background.dec_deg']").fill("20")
    form.locator("[name='data.background.percentile']").select_option("date")
    form.locator("[name='data.background.date']").fill("2027-08-01")
    page.locator("#form-save").click()
    error = page.locator("#form-error")
    error.wait_for()
    assert "data.background.date: not observable on 2027-08-01" in error.inner_text()
    assert form.locator("[name='data.background.date']").get_attribute("class") == "invalid"
    form.locator("[name='data.background.date']").fill("2027-04-20")
    page.locator("#form-save").click()
    page.locator("#calculation-list tr[data-status=ok]").wait_for()


def test_expand_compare_and_download_fits(context, system):
    page = context.new_page()
    fake_login(page, system.url, "batcher")
    open_list(page, system.url)
    page.locator("#new-name").fill("Batch")
    page.locator("#create").click()
    page.locator("tr", has_text="Batch").locator("a.open-workbook").click()
    page.wait_for_selector("body[data-ready=true]")
    _calculation_with_a_background(page)

    page.locator("#calculation-list tr[data-id]").get_by_role("link", name="Field").click()
    img = page.locator("#plots img[data-plot=background]")
    img.wait_for()
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 100",
                           arg=img.element_handle())

    page.locator("#expand-parameter").select_option("groups")
    page.locator("#expand-values").fill("3, 6, 9")
    page.locator("#expand").click()
    page.wait_for_selector("#expand-progress[data-done=true]", timeout=120_000)
    assert page.locator("#expand-progress").inner_text().startswith("Expanded: 3 of 3")
    assert page.locator("#calculation-list tr[data-status=ok]").count() == 4
    for n in (3, 6, 9):  # an expansion is ticked for comparison
        assert page.locator("#calculation-list tr", has_text=f"Field groups={n}").locator(
            "input[data-compare]").is_checked()

    page.locator("#calculation-list tr", has_text="Field groups=3").locator(
        "input[data-compare]").uncheck()
    page.locator("#calculation-list tr[data-id]").first.locator("input[data-compare]").check()
    page.locator("#compare").click()
    plot = page.locator("#compare-plot")
    plot.wait_for()
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 100",
                           arg=plot.element_handle())
    caption = page.locator("#compare-figure figcaption").inner_text()
    assert "Field groups=6" in caption and "Field groups=3" not in caption
    plot.scroll_into_view_if_needed()
    shot(page, "workbook-expand-and-compare")

    page.locator("#expand-values").fill("3, 3")
    page.locator("#expand").click()
    page.locator("#batch-error").wait_for()
    assert page.locator("#batch-error").inner_text().startswith("values.1: repeats values.0")

    first = page.locator("#calculation-list tr[data-id]").first
    with page.expect_download() as download:
        first.locator("button[data-action=fits]").click()
    assert download.value.suggested_filename == "Field.tar.gz"
    with tarfile.open(fileobj=io.BytesIO(open(download.value.path(), "rb").read())) as tar:
        assert "Field/images.fits" in tar.getnames()
