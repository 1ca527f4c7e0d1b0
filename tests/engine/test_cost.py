"""Cost limits refuse expensive calculations up front, naming the field; an unreachable target
S/N is an error of that calculation only (issue 11, items 3 and 7)."""

import dataclasses
import json

import numpy as np
import pytest

from etckit import engine
from etckit.engine import CostLimits, TooExpensive, ValidationError
from etckit.engine import calculator as calc_mod

D = engine.defaults()


def heavy(n=20, kind="gaussian", filt="F070W", aperture=3.9):
    """The issue's bad case: n Gaussian sources of FWHM 5" on NIRCam F070W, a 3.9" aperture,
    time_for_snr (about 15 s of CPU and 670 MB before)."""
    calc = dict(D["calculation"], filter=filt, aperture_radius_arcsec=aperture,
                annulus_inner_arcsec=3.94, annulus_outer_arcsec=4.03,
                strategy={"kind": "time_for_snr", "target_snr": 10})
    shape = {"kind": "gaussian", "fwhm_arcsec": 5.0} if kind == "gaussian" else {"kind": kind}
    sources = {str(i): dict(D["source"], shape=shape) for i in range(n)}
    scene = {"sources": [{"source_id": str(i), "offset_x_arcsec": i % 5 - 2.0,
                          "offset_y_arcsec": i // 5 - 2.0} for i in range(n)]}
    return calc, scene, sources


def test_the_known_heavy_case_is_refused_naming_the_field():
    with pytest.raises(TooExpensive) as e:
        engine.check_cost(*heavy(), CostLimits())
    assert e.value.field == "scene.sources"
    assert "max_extended_sources" in e.value.message
    with pytest.raises(TooExpensive):
        engine.calculate(*heavy(), limits=CostLimits())


def test_too_expensive_is_not_a_validation_error():
    # a worker maps ValidationError to "invalid" and TooExpensive to "too_expensive"
    assert not issubclass(TooExpensive, ValidationError)
    assert TooExpensive("a.b", "m").to_dict() == {"field": "a.b", "message": "m"}


def test_point_sources_on_the_largest_image_are_limited_by_samples():
    with pytest.raises(TooExpensive) as e:
        engine.check_cost(*heavy(n=8, kind="point"), CostLimits())
    assert e.value.field == "scene.sources" and "max_source_samples" in e.value.message
    assert "at most 7 sources" in e.value.message
    engine.check_cost(*heavy(n=7, kind="point"), CostLimits())  # accepted
    engine.check_cost(*heavy(n=20, kind="point", filt="F200W"), CostLimits())


@pytest.mark.parametrize("limits,field", [
    (CostLimits(max_sources=3), "scene.sources"),
    (CostLimits(max_offset_arcsec=1.5), "scene.sources.0.offset_x_arcsec"),
    (CostLimits(max_source_size_arcsec=2.0), "sources.0.shape.fwhm_arcsec"),
    (CostLimits(max_aperture_arcsec=1.0), "calculation.aperture_radius_arcsec"),
    (CostLimits(max_annulus_arcsec=2.0), "calculation.annulus_outer_arcsec"),
    (CostLimits(max_image_subpixels=1_000_000), "calculation.annulus_outer_arcsec"),
])
def test_each_limit_names_its_field(limits, field):
    limits = dataclasses.replace(limits, max_extended_sources=20, max_source_samples=10**9)
    with pytest.raises(TooExpensive) as e:
        engine.check_cost(*heavy(n=4), limits)
    assert e.value.field == field
    name = next(f for f in CostLimits.__dataclass_fields__ if f in e.value.message)
    assert getattr(limits, name) != getattr(CostLimits(), name)


def test_validation_comes_before_cost():
    calc, scene, sources = heavy()
    with pytest.raises(ValidationError):
        engine.check_cost(dict(calc, filter=[]), scene, sources, CostLimits())


def test_default_inputs_pass_the_default_limits():
    engine.check_cost(D["calculation"], D["scene"], {"1": D["source"]})
    r = engine.calculate(D["calculation"], D["scene"], {"1": D["source"]}, limits=CostLimits())
    assert r.snr > 0


def test_an_unreachable_target_snr_is_an_error_of_that_calculation():
    # (target / S/N)**2 raised OverflowError before and aborted the whole request
    calc = dict(D["calculation"], strategy={"kind": "time_for_snr", "target_snr": 10})
    faint = dict(D["source"], normalization={"value": 1e-300, "unit": "Jy",
                                             "wavelength_um": 2.0})
    r = engine.calculate(calc, D["scene"], {"1": faint})
    assert [e["code"] for e in r.errors] == ["snr_unreachable"]
    assert r.strategy["reachable"] is False
    json.loads(r.to_json())


def test_one_convolution_equals_the_full_linear_convolution():
    rng = np.random.default_rng(1)
    n = 45
    coords = (np.arange(n) - (n - 1) / 2.0) * 0.01
    r_prof = np.linspace(0.0, 1.0, 500)
    psf_prof = np.exp(-r_prof / 0.05)
    a = rng.random((n, n))
    kernel = np.interp(np.hypot(coords[None, :], coords[:, None]), r_prof, psf_prof) * 0.01**2
    full = np.fft.irfft2(np.fft.rfft2(a, s=(2 * n, 2 * n)) * np.fft.rfft2(kernel, s=(2 * n, 2 * n)),
                         s=(2 * n, 2 * n))[n // 2:n // 2 + n, n // 2:n // 2 + n]
    got = calc_mod._convolved_with_psf([a.copy()], coords, (r_prof, psf_prof, 0.01))
    np.testing.assert_allclose(got, full, rtol=1e-10, atol=1e-15)


def test_extended_sources_add_linearly():
    calc = D["calculation"]
    src = dict(D["source"], shape={"kind": "gaussian", "fwhm_arcsec": 0.4})
    disk = dict(D["source"], shape={"kind": "disk", "radius_arcsec": 0.2})
    one = {"sources": [{"source_id": "a", "offset_x_arcsec": 0.1}]}
    two = {"sources": [{"source_id": "b", "offset_y_arcsec": -0.1}]}
    both = {"sources": one["sources"] + two["sources"]}
    srcs = {"a": src, "b": disk}
    ra = engine.calculate(calc, one, srcs).extracted_source_rate_e_s
    rb = engine.calculate(calc, two, srcs).extracted_source_rate_e_s
    assert engine.calculate(calc, both, srcs).extracted_source_rate_e_s == pytest.approx(
        ra + rb, rel=1e-9)
