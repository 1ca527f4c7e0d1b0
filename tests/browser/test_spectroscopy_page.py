"""The Workbook page builds a NIRSpec fixed-slit calculation through the form and shows its
spectroscopic plots (issue 16 item 1)."""

from __future__ import annotations

from tests.browser.conftest import fake_login, shot, source_in_a_scene
from tests.browser.test_workbook_page import _create_and_open

SPECTRO_KINDS = ("snr_vs_wavelength", "extracted_flux", "detector_2d", "snr_2d")


def test_build_a_nirspec_calculation_and_see_its_plots(context, system):
    page = context.new_page()
    fake_login(page, system.url, "spectroscopist")
    _create_and_open(page, system.url, "Spectra")

    source_in_a_scene(page, "2000")

    page.locator("#add-calculation").click()
    form = page.locator("#calculation-form")
    form.locator("[name='data.instrument']").select_option("nirspec")
    form.locator("[name='data.disperser']").select_option("G235M")
    assert form.locator("[name='data.filter']").input_value() == "F170LP"
    assert form.locator("[name='data.aperture_radius_arcsec']").input_value() == "0.42"
    # a reference wavelength outside G235M/F170LP's range is refused naming the field
    form.locator("[name='data.reference_wavelength_um']").fill("4.0")
    form.locator("[name='name']").fill("G235M deep")
    page.locator("#form-save").click()
    error = page.locator("#form-error")
    error.wait_for()
    assert "reference_wavelength_um" in error.inner_text()
    assert "1.66-3.07" in error.inner_text()
    assert form.locator("[name='data.reference_wavelength_um']").get_attribute("class") == \
        "invalid"

    form.locator("[name='data.reference_wavelength_um']").fill("2.2")
    form.locator("[name='data.readout_pattern']").select_option("NRSIRS2")
    form.locator("[name='data.groups']").fill("14")
    form.locator("[name='data.exposures']").fill("4")
    page.locator("#form-save").click()
    row = page.locator("#calculation-list tr[data-status=ok]")
    row.wait_for()
    assert "G235M/F170LP" in row.inner_text()
    assert float(row.locator("[data-field=snr]").inner_text()) > 1

    row.get_by_role("link", name="G235M deep").click()
    for kind in SPECTRO_KINDS:
        img = page.locator(f"#plots img[data-plot={kind}]")
        img.wait_for()
        page.wait_for_function(
            "(img) => img.complete && img.naturalWidth > 100", arg=img.element_handle())
    assert page.locator("#plots img[data-plot=snr_map]").count() == 0
    shot(page, "workbook-nirspec-calculation")
