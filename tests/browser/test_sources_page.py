"""The Workbook page's source forms for issue 16: an uploaded spectrum used by a source with an
emission line and extinction, and a bad line refused naming its field."""

from __future__ import annotations

import numpy as np

from tests.browser.conftest import fake_login, shot
from tests.browser.test_workbook_page import _create_and_open

FLAT = "".join(f"{w:.3f} 1.0\n" for w in np.linspace(0.5, 30.0, 200)).encode()


def test_uploaded_spectrum_lines_and_extinction_through_the_forms(context, system):
    page = context.new_page()
    fake_login(page, system.url, "astronomer")
    _create_and_open(page, system.url, "Sources")

    page.locator("#spectrum-file").set_input_files(
        files=[{"name": "flat.txt", "mimeType": "text/plain", "buffer": FLAT}])
    page.locator("#spectrum-unit").select_option("mJy")
    page.locator("#spectrum-upload").click()
    page.wait_for_selector("#spectrum-list tr[data-id]")
    assert "200 points" in page.locator("#spectrum-list").inner_text()

    page.locator("#add-source").click()
    form = page.locator("#source-form")
    form.locator("[name='data.spectrum.kind']").select_option("uploaded")
    form.locator("[name='data.spectrum.spectrum_id']").select_option(label="flat.txt")
    form.locator("[name='data.normalization.bandpass']").select_option("F200W")
    form.locator("#add-lines").click()
    form.locator("#add-extinction").click()
    form.locator("[name='data.lines.0.fwhm_um']").fill("0")
    form.locator("[name='name']").fill("Dusty")
    page.locator("#form-save").click()
    error = page.locator("#form-error")
    error.wait_for()
    assert "lines.0.fwhm_um" in error.inner_text()
    assert form.locator("[name='data.lines.0.fwhm_um']").get_attribute("class") == "invalid"
    shot(page, "source-bad-line")

    form.locator("[name='data.lines.0.fwhm_um']").fill("0.002")
    page.locator("#form-save").click()
    row = page.locator("#source-list tr[data-id]")
    row.wait_for()
    text = row.inner_text()
    assert "uploaded flat.txt" in text and "1 line(s)" in text and "G23" in text
    assert "in F200W" in text

    page.locator("#add-scene").click()
    page.locator("#form-save").click()
    page.wait_for_selector("#scene-list tr[data-id]")
    page.locator("#add-calculation").click()
    page.locator("#form-save").click()
    calc = page.locator("#calculation-list tr[data-status=ok]")
    calc.wait_for()
    assert float(calc.locator("[data-field=snr]").inner_text()) > 1
    shot(page, "source-uploaded-spectrum")
