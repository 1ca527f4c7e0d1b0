"""The Workbook page overplots spectroscopic calculations against wavelength (issue 16 item 5):
two NIRSpec calculations built through the form (PRISM/CLEAR and G235M/F170LP), both ticked,
the compare's kind chosen in #compare-kind; the wrong kind is refused naming the calculation."""

from __future__ import annotations

import base64

from tests.browser.conftest import fake_login, shot, source_in_a_scene
from tests.browser.test_workbook_page import _create_and_open

CALCULATIONS = (("PRISM deep", "PRISM", "CLEAR"), ("G235M deep", "G235M", "F170LP"))


def _spectroscopic_calculation(page, name: str, disperser: str, filt: str) -> None:
    page.locator("#add-calculation").click()
    form = page.locator("#calculation-form")
    form.locator("[name='data.instrument']").select_option("nirspec")
    form.locator("[name='data.disperser']").select_option(disperser)
    assert form.locator("[name='data.filter']").input_value() == filt
    form.locator("[name='name']").fill(name)
    page.locator("#form-save").click()
    page.locator("#calculation-list tr[data-status=ok]", has_text=name).wait_for()


def _png_of(img) -> bytes:
    src = img.get_attribute("src")
    assert src.startswith("data:image/png;base64,")
    return base64.b64decode(src.split(",", 1)[1])


def test_compare_two_spectra_against_wavelength(context, system):
    page = context.new_page()
    fake_login(page, system.url, "comparer")
    _create_and_open(page, system.url, "Spectra compared")
    source_in_a_scene(page, "2000")
    for name, disperser, filt in CALCULATIONS:
        _spectroscopic_calculation(page, name, disperser, filt)
    for name, _, _ in CALCULATIONS:  # ticked in this order: calculations.0 is the PRISM one
        page.locator("#calculation-list tr", has_text=name).locator("input[data-compare]").check()

    # S/N against time has no curve for a spectrum: refused naming the first ticked one
    page.locator("#compare-kind").select_option("snr_vs_time")
    page.locator("#compare").click()
    error = page.locator("#batch-error")
    error.wait_for()
    assert error.inner_text().startswith(
        "calculations.0: is a spectroscopic calculation: it has no snr_vs_time curve")
    prism_box = page.locator("#calculation-list tr", has_text="PRISM deep").locator(
        "input[data-compare]")
    assert "invalid" in prism_box.get_attribute("class")
    assert page.locator("#compare-plot").count() == 0

    page.locator("#compare-kind").select_option("snr_vs_wavelength")
    page.locator("#compare").click()
    plot = page.locator("#compare-plot")
    plot.wait_for()
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 100 && "
                           "img.naturalHeight > 100", arg=plot.element_handle())
    assert error.is_hidden()
    assert "invalid" not in (prism_box.get_attribute("class") or "")
    png = _png_of(plot)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert plot.get_attribute("data-kind") == "snr_vs_wavelength"
    # one curve per ticked calculation, named in the legend's caption in the ticked order
    assert plot.get_attribute("data-curves") == "2"
    names = page.locator("#compare-figure figcaption .curve").all_inner_texts()
    assert names == [name for name, _, _ in CALCULATIONS]
    assert "wavelength" in plot.get_attribute("alt")
    plot.scroll_into_view_if_needed()
    shot(page, "workbook-compare-wavelength")

    # one spectrum alone: a one-curve compare (the auto kind picks wavelength for spectra)
    page.locator("#calculation-list tr", has_text="G235M deep").locator(
        "input[data-compare]").uncheck()
    page.locator("#compare-kind").select_option("auto")
    page.locator("#compare").click()
    page.wait_for_function(
        "() => document.querySelector('#compare-plot')?.dataset.curves === '1'")
    single = page.locator("#compare-plot")
    assert single.get_attribute("data-kind") == "snr_vs_wavelength"
    assert page.locator("#compare-figure figcaption .curve").all_inner_texts() == ["PRISM deep"]
    assert _png_of(single) != png
