"""A spectroscopic result's download products and compare curves (engine.products, fits,
plots.render_compare), without the chain."""

from __future__ import annotations

import io
import tarfile
import warnings

import numpy as np
import pytest
from astropy.io import fits as afits

from etckit.engine import ValidationError, calculate, fits, products
from etckit.engine.plots import render_compare
from etckit.engine.validation import defaults, validate_calculation

G395M = {"instrument": "nirspec", "mode": "fixed_slit", "disperser": "G395M", "filter": "F290LP",
         "readout_pattern": "NRSIRS2", "groups": 14, "integrations": 1, "exposures": 10,
         "reference_wavelength_um": 4.0}
SCENE = {"sources": [{"source_id": "s"}]}
SRC = {"s": {"shape": {"kind": "point"}, "spectrum": {"kind": "flat"},
             "normalization": {"value": 2.0, "unit": "uJy", "wavelength_um": 4.0}}}


def test_the_tarball_of_a_spectrum_is_valid_fits_with_units():
    r = calculate(G395M, SCENE, SRC)
    images, curves = products.products(r, validate_calculation(G395M))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no card truncated, no unit astropy rejects
        blob = fits.tarball("g395m", {"calculation": G395M}, r.to_dict(), images, curves)
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        data = tar.extractfile("g395m/curves.fits").read()
        pics = tar.extractfile("g395m/images.fits").read()
    j = r.spectrum["reference_pixel"]
    with afits.open(io.BytesIO(data)) as hdul:
        t = hdul["SPECTRUM"]
        assert t.columns["dispersion"].unit == "um / pix"
        assert t.data["snr"][j] == pytest.approx(r.snr, rel=1e-12)
        assert t.data["source_fnu"][j] == pytest.approx(2e-3, rel=0.02)  # 2 uJy in mJy
        assert np.all(np.diff(t.data["wavelength"]) > 0)
    with afits.open(io.BytesIO(pics)) as hdul:
        total = hdul["TOTAL"]
        assert total.header["WAVEMAX"] == pytest.approx(float(r.images["trace"].edges_um[-1]))
        assert np.allclose(total.data, r.images["trace"].total, rtol=1e-6)


def test_compare_marks_the_reference_wavelength_and_refuses_imaging():
    r = calculate(G395M, SCENE, SRC)
    assert products.compare_point("snr_vs_wavelength", r) == (4.0, r.snr)
    png = render_compare(None, "snr_vs_wavelength", [("a", G395M, r), ("b", G395M, r)])
    assert png.startswith(b"\x89PNG")
    d = defaults()
    imaging = calculate(d["calculation"], SCENE, {"s": d["source"]})
    with pytest.raises(ValidationError) as exc:
        render_compare(None, "snr_vs_wavelength", [("a", G395M, r),
                                                   ("i", d["calculation"], imaging)])
    assert exc.value.field == "calculations.1" and "imaging" in exc.value.message
    with pytest.raises(ValidationError) as exc:
        render_compare(None, "snr_vs_time", [("a", G395M, r)])
    assert exc.value.field == "calculations.0" and "snr_vs_wavelength" in exc.value.message
    with pytest.raises(ValueError):
        render_compare(None, ["snr_vs_time"], [("a", G395M, r)])
