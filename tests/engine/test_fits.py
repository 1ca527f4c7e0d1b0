"""The FITS download (engine.fits + engine.products): a tarball that astropy reads back, with
the images, curves, units and values of the result it was made from."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest
from astropy.io import fits as afits

from etckit import engine
from etckit.engine import fits, products
from etckit.engine.validation import defaults, validate_calculation


def _inputs():
    d = defaults()
    src = {**d["source"], "name": "star"}
    scene = {"sources": [{"source_id": "s1", "offset_x_arcsec": 0.0, "offset_y_arcsec": 0.0}]}
    return d["calculation"], scene, {"s1": src}


def _members(blob: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


@pytest.fixture(scope="module")
def made():
    calc, scene, sources = _inputs()
    result = engine.calculate(calc, scene, sources)
    images, curves = products.products(result, validate_calculation(calc))
    blob = fits.tarball("calc", {"calculation": calc, "scene": scene, "sources": sources},
                        result.to_dict(), images, curves, {"ETCKVER": "test"})
    return result, _members(blob), calc


def test_the_tarball_holds_fits_inputs_and_report(made):
    result, members, calc = made
    assert sorted(members) == ["calc/curves.fits", "calc/images.fits", "calc/input.json",
                               "calc/report.json", "calc/report.txt"]
    assert json.loads(members["calc/input.json"])["calculation"] == calc
    assert json.loads(members["calc/report.json"])["snr"] == pytest.approx(result.snr)
    assert f"snr = {json.dumps(result.snr)}" in members["calc/report.txt"].decode()


def test_images_carry_units_scale_and_the_engine_values(made):
    result, members, _ = made
    with afits.open(io.BytesIO(members["calc/images.fits"])) as hdul:
        assert hdul[0].header["ETCKVER"] == "test"
        source = hdul["SOURCE"]
        assert source.header["BUNIT"] == "electron / s"
        assert source.header["CDELT1"] == pytest.approx(result.images["images"].pixel_arcsec)
        assert source.header["CUNIT2"] == "arcsec"
        np.testing.assert_allclose(source.data, result.images["images"].source, rtol=1e-6)
        ap = hdul["APWEIGHT"].data
        assert ap.sum() == pytest.approx(result.aperture_pixels, rel=1e-5)
        fill = hdul["FILL"]
        assert fill.data.max() == pytest.approx(result.saturation["max_fill_fraction"],
                                                rel=1e-5)
        assert hdul["SNR"].header["BUNIT"] == ""


def test_the_snr_curve_is_a_table_with_units_through_the_calculated_point(made):
    result, members, _ = made
    with afits.open(io.BytesIO(members["calc/curves.fits"])) as hdul:
        table = hdul["SNR_TIME"]
        assert table.header["TUNIT1"] == "s"
        assert table.columns.names == ["time", "snr", "integrations"]
        rows = table.data
        at = rows["integrations"] == result.integrations
        assert at.sum() == 1
        assert rows["time"][at][0] == pytest.approx(result.total_exposure_time_s)
        assert rows["snr"][at][0] == pytest.approx(result.snr, rel=1e-9)
        assert np.all(np.diff(rows["time"]) > 0)


def test_any_curve_with_named_columns_and_units_is_written():
    wave = np.linspace(1.0, 5.0, 7)
    curve = products.Curve("SNR_WAVE", products.Column("wavelength", wave, "um"),
                           products.Column("snr", wave * 2), title="S/N per wavelength")
    blob = fits.tarball("x", {}, {"snr": 1.0}, [], [curve])
    with afits.open(io.BytesIO(_members(blob)["x/curves.fits"])) as hdul:
        t = hdul["SNR_WAVE"]
        assert (t.header["TUNIT1"], t.header["TITLE"]) == ("um", "S/N per wavelength")
        np.testing.assert_allclose(t.data["snr"], wave * 2)


def test_the_archive_is_bounded():
    big = products.Image("BIG", np.random.default_rng(1).random((400, 400)), "", 0.1)
    with pytest.raises(fits.TooLarge, match="larger than 10000 bytes"):
        fits.tarball("x", {}, {}, [big], [], max_bytes=10_000)
