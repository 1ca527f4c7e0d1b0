"""Sources as astronomers describe them: lines, extinction, bandpass normalization, uploaded
spectra (issue 16 item 2), against dust_extinction and analytic values."""

import copy
import io
import json

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from dust_extinction import averages, parameter_averages
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etckit.engine import calculate, normalize_source, uploads, validate_source
from etckit.engine import instruments as inst
from etckit.engine import physics as phys
from etckit.engine import sources as spectral
from etckit.engine.validation import ValidationError

C_UM_S = 2.99792458e14


def src(**kw):
    d = {"shape": {"kind": "point"}, "spectrum": {"kind": "flat"},
         "normalization": {"value": 1.0, "unit": "mJy", "wavelength_um": 2.0}}
    d.update(kw)
    return validate_source(d)


def test_milky_way_extinction_after_redshift_matches_dust_extinction():
    s = src(redshift=1.0, extinction=[{"law": "G23", "a_v": 1.0, "r_v": 3.1,
                                       "applied": "after_redshift"}])
    w = np.array([0.8, 1.5, 4.0])
    f = spectral.observed_fnu_jy(s, w)
    k = parameter_averages.G23(Rv=3.1)(np.append(w, 2.0) * u.um)
    want = 1e-3 * 10 ** (-0.4 * (k[:3] - k[3]))  # normalized at 2 um after reddening
    assert f == pytest.approx(want, rel=2e-3)


def test_host_extinction_before_redshift_uses_rest_wavelengths():
    s = src(redshift=2.0, extinction={"law": "G03_SMCBar", "ebv": 0.2,
                                      "applied": "before_redshift"})
    assert s.extinction[0].a_v == pytest.approx(2.74 * 0.2)  # A_V = R_V E(B-V)
    w = np.array([0.9, 3.0])
    f = spectral.observed_fnu_jy(s, w)
    k = averages.G03_SMCBar()(np.array([0.3, 1.0, 2.0 / 3.0]) * u.um)
    a_v = 2.74 * 0.2
    assert f[0] / f[1] == pytest.approx(10 ** (-0.4 * a_v * (k[0] - k[1])), rel=2e-3)


def test_fixed_r_v_table_matches_the_package():
    for law, rv in spectral.FIXED_R_V.items():
        assert getattr(averages, law)().Rv == pytest.approx(rv)


def test_magellanic_curve_continues_with_the_mw_shape_beyond_its_range():
    w, k = spectral.extinction_curve("G03_LMCAvg", 3.41)
    edge = 1 / averages.G03_LMCAvg().x_range[0]
    a = spectral.a_lambda_over_a_v("G03_LMCAvg", 3.41, np.array([0.99, 1.01, 1.5]) * edge)
    assert a[1] == pytest.approx(a[0], rel=0.05)  # continuous at the red end (2% apart)
    assert 0 < a[2] < a[1]
    si = spectral.a_lambda_over_a_v("G03_LMCAvg", 3.41, np.array([6.5, 9.7]))
    assert si[1] > si[0]  # the MW shape's 10 um silicate feature carries on
    assert np.all(np.isfinite(k)) and np.all(k > 0)


def test_emission_line_flux_integrates_to_the_given_flux():
    flux = 3e-17  # erg/s/cm2
    line = {"kind": "emission", "center_um": 0.6563, "fwhm_um": 0.002, "flux_erg_s_cm2": flux}
    s = src(redshift=2.0, lines=[line])
    base = src(redshift=2.0)
    w = np.linspace(1.9, 2.04, 20001)
    diff = spectral.observed_fnu_jy(s, w) - spectral.observed_fnu_jy(base, w)
    f_lam = diff * phys.JY_CGS * C_UM_S / w**2  # erg/s/cm2/um
    assert np.trapezoid(f_lam, w) == pytest.approx(flux, rel=1e-4)
    assert w[np.argmax(diff)] == pytest.approx(0.6563 * 3, abs=1e-4)  # at (1+z) lambda_0


def test_equivalent_widths_in_the_rest_frame():
    em = {"kind": "emission", "center_um": 1.0, "fwhm_um": 0.01, "equivalent_width_um": 0.05}
    ab = {"kind": "absorption", "center_um": 1.2, "fwhm_um": 0.02, "equivalent_width_um": 0.01}
    s = src(redshift=0.5, lines=[em, ab], spectrum={"kind": "power_law", "index": 1.0})
    base = src(redshift=0.5, spectrum={"kind": "power_law", "index": 1.0})
    rest = np.linspace(0.9, 1.3, 40001)
    ratio = spectral.observed_fnu_jy(s, rest * 1.5) / spectral.observed_fnu_jy(base, rest * 1.5)
    near_em, near_ab = rest < 1.1, rest >= 1.1
    assert np.trapezoid(ratio[near_em] - 1, rest[near_em]) == pytest.approx(0.05, rel=1e-4)
    assert np.trapezoid(1 - ratio[near_ab], rest[near_ab]) == pytest.approx(0.01, rel=1e-4)


def test_narrow_line_is_counted_by_the_calculation():
    # a line 100x narrower than the band grid's step: its electrons = A/h F T / (h nu) ...
    calc = {"instrument": "nircam", "mode": "sw_imaging", "filter": "F200W",
            "readout_pattern": "MEDIUM8", "groups": 10, "integrations": 1, "exposures": 1}
    scene = {"sources": [{"source_id": "a"}]}
    flux = 1e-17
    base = {"spectrum": {"kind": "flat"},
            "normalization": {"value": 1e-9, "unit": "nJy", "wavelength_um": 2.0}}
    line = dict(base, lines=[{"kind": "emission", "center_um": 2.0, "fwhm_um": 1e-4,
                              "flux_erg_s_cm2": flux}])
    r0 = calculate(calc, scene, {"a": base}).to_dict()
    r1 = calculate(calc, scene, {"a": line}).to_dict()
    filt = inst.mode("nircam", "sw_imaging").filters["F200W"]
    photons = flux / (phys.H_ERG_S * C_UM_S / 2.0)  # per cm2 per s
    want = photons * inst.telescope().area_cm2 * float(phys.throughput(filt, np.array(2.0)))
    total = r1["extracted_source_rate_e_s"] / r1["aperture_source_fraction"]
    assert total - r0["extracted_source_rate_e_s"] / r0["aperture_source_fraction"] == \
        pytest.approx(want, rel=2e-3)


def test_bandpass_normalization_sets_the_band_mean():
    s = src(spectrum={"kind": "blackbody", "temperature": 3000.0},
            normalization={"value": 5.0, "unit": "uJy", "bandpass": "F770W"})
    filt = spectral.band_filter("F770W")
    w = phys.band_grid(filt)
    assert spectral.band_mean_fnu(spectral.observed_fnu_jy(s, w), w, filt) == \
        pytest.approx(5e-6, rel=1e-9)


@pytest.mark.parametrize("bad, field", [
    ({"lines": [{"kind": "emission", "center_um": 1.0, "fwhm_um": 0.01}]},
     "source.lines.0.flux_erg_s_cm2"),
    ({"lines": [{"kind": "emission", "center_um": 1.0, "fwhm_um": 0.01, "flux_erg_s_cm2": 1e-17,
                 "equivalent_width_um": 0.1}]}, "source.lines.0.flux_erg_s_cm2"),
    ({"lines": [{"kind": "absorption", "center_um": 1.0, "fwhm_um": 0.01,
                 "equivalent_width_um": 0.02}]}, "source.lines.0.equivalent_width_um"),
    ({"lines": [{"kind": "emission", "center_um": 1.0, "fwhm_um": 0.01, "flux_erg_s_cm2": 1e-17,
                 "junk": 1}]}, "source.lines.0.junk"),
    ({"lines": [{"kind": "emission", "center_um": float("nan"), "fwhm_um": 0.01,
                 "flux_erg_s_cm2": 1e-17}]}, "source.lines.0.center_um"),
    ({"lines": [{"kind": "emission", "center_um": 1.0, "fwhm_um": 0.01,
                 "flux_erg_s_cm2": 1e-17}] * 21}, "source.lines"),
    ({"extinction": [{"law": "G03_SMCBar", "a_v": 1, "r_v": 3.1, "applied": "after_redshift"}]},
     "source.extinction.0.r_v"),
    ({"extinction": [{"law": "G23", "a_v": 1, "ebv": 0.3, "applied": "after_redshift"}]},
     "source.extinction.0.a_v"),
    ({"extinction": [{"law": "CCM89", "a_v": 1, "applied": "after_redshift"}]},
     "source.extinction.0.law"),
    ({"extinction": [{"law": "G23", "a_v": 1, "applied": "after_redshift"},
                     {"law": "G23", "a_v": 2, "applied": "after_redshift"}]},
     "source.extinction.1.applied"),
    ({"normalization": {"value": 1, "unit": "mJy", "bandpass": "V"}},
     "source.normalization.bandpass"),
    ({"spectrum": {"kind": "uploaded"}}, "source.spectrum.spectrum_id"),
])
def test_bad_source_fields_are_named(bad, field):
    d = {"spectrum": {"kind": "flat"},
         "normalization": {"value": 1.0, "unit": "mJy", "wavelength_um": 2.0}}
    d.update(bad)
    with pytest.raises(ValidationError) as e:
        validate_source(d)
    assert e.value.field == field


def test_normalize_source_keeps_the_new_fields_and_is_idempotent():
    d = {"spectrum": {"kind": "uploaded", "spectrum_id": "sp1", "index": None},
         "normalization": {"value": 1.0, "unit": "mJy", "bandpass": "F200W",
                           "wavelength_um": None},
         "lines": [{"kind": "emission", "center_um": 1.0, "fwhm_um": 0.01,
                    "flux_erg_s_cm2": 1e-17, "equivalent_width_um": None}],
         "extinction": {"law": "G23", "ebv": 0.1, "applied": "before_redshift"}}
    n = normalize_source(d)
    assert n["spectrum"] == {"kind": "uploaded", "spectrum_id": "sp1"}
    assert n["normalization"] == {"value": 1.0, "unit": "mJy", "bandpass": "F200W"}
    assert n["lines"] == [{"kind": "emission", "center_um": 1.0, "fwhm_um": 0.01,
                           "flux_erg_s_cm2": 1e-17}]
    assert n["extinction"] == [{"law": "G23", "a_v": pytest.approx(0.31), "r_v": 3.1,
                                "applied": "before_redshift"}]
    assert normalize_source(n) == n


# --------------------------------------------------------------------------- uploads


def test_ascii_upload_round_trip_and_units():
    text = "# wavelength_um flux_mJy\n1.0 2.0\n\n1.5, 3.0\n2.0 4.0\n"
    w, f = uploads.parse(text.encode(), "ascii", "mJy")
    assert list(w) == [1.0, 1.5, 2.0]
    assert f == pytest.approx([2e-3, 3e-3, 4e-3])
    w2, f2 = uploads.from_stored(uploads.to_stored(w, f))
    assert list(w2) == list(w) and list(f2) == list(f)
    # f_lambda per Angstrom: f_nu = f_lambda lambda^2 / c
    _, fl = uploads.parse(b"2.0 1e-18\n3.0 1e-18\n", "ascii", "erg/s/cm2/A")
    want = 1e-18 * 1e4 * np.array([2.0, 3.0]) ** 2 / C_UM_S / 1e-23  # per A -> per um
    assert fl == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("text, message", [
    ("1 2\n2 3 4\n", "line 2: expected two columns"),
    ("# h\n1 2\n2 x\n", "line 3: column 2 is not a number"),
    ("1 2\n1 3\n", "line 2, column 1: wavelengths must increase"),
    ("1 2\n2 -3\n", "line 2, column 2: the flux must be"),
    ("1 2\n2 nan\n", "line 2, column 2: the flux must be"),
    ("1 2\n", "needs at least 2 points"),
    ("1 0\n2 0\n", "zero everywhere"),
])
def test_ascii_upload_errors_name_the_line(text, message):
    with pytest.raises(ValidationError) as e:
        uploads.parse(text.encode(), "ascii", "mJy")
    assert e.value.field == "spectrum.content"
    assert message in e.value.message


def test_upload_limits_and_bad_bytes():
    lim = uploads.UploadLimits(max_bytes=100, max_points=3)
    with pytest.raises(ValidationError, match="at most 100 bytes"):
        uploads.parse(b"1 1\n" * 40, "ascii", "mJy", limits=lim)
    with pytest.raises(ValidationError, match="at most 3 points"):
        uploads.parse(b"1 1\n2 1\n3 1\n4 1\n", "ascii", "mJy", limits=lim)
    with pytest.raises(ValidationError, match="line 2: not UTF-8"):
        uploads.parse(b"1 1\n\xff\xfe 2\n", "ascii", "mJy")
    with pytest.raises(ValidationError) as e:
        uploads.parse(b"1 1\n2 1\n", "ascii", "W/m2")
    assert e.value.field == "spectrum.flux_unit"


def _fits(cols) -> bytes:
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols)]).writeto(buf)
    return buf.getvalue()


def test_fits_upload_reads_columns_and_units():
    data = _fits([fits.Column(name="WAVELENGTH", format="D", unit="Angstrom",
                              array=np.array([10000.0, 20000.0])),
                  fits.Column(name="FLUX", format="D", unit="mJy", array=np.array([1.0, 2.0]))])
    w, f = uploads.parse(data, "fits", "Jy")  # the column's unit wins over the choice
    assert w == pytest.approx([1.0, 2.0])
    assert f == pytest.approx([1e-3, 2e-3])
    bad = _fits([fits.Column(name="WAVE", format="D", array=np.array([1.0, 2.0])),
                 fits.Column(name="COUNTS", format="D", array=np.array([1.0, 2.0]))])
    with pytest.raises(ValidationError, match="no flux column .* the table has WAVE, COUNTS"):
        uploads.parse(bad, "fits", "mJy")
    nan = _fits([fits.Column(name="WAVE", format="D", array=np.array([1.0, 2.0])),
                 fits.Column(name="FLUX", format="D", array=np.array([1.0, np.nan]))])
    with pytest.raises(ValidationError, match="row 2 of column FLUX"):
        uploads.parse(nan, "fits", "mJy")
    with pytest.raises(ValidationError, match="not a readable FITS table"):
        uploads.parse(b"SIMPLE  = nonsense", "fits", "mJy")
    # a vector column (10 numbers per row) beside a scalar one: refused, naming it
    vector = _fits([fits.Column(name="WAVE", format="10D", array=np.ones((2, 10))),
                    fits.Column(name="FLUX", format="D", array=np.array([1.0, 2.0]))])
    with pytest.raises(ValidationError, match="column WAVE must hold one number per row"):
        uploads.parse(vector, "fits", "mJy")


def test_uploaded_spectrum_in_a_calculation_round_trip():
    # a flat f_nu uploaded as a table computes what the built-in flat spectrum computes
    calc = {"instrument": "miri", "mode": "imaging", "filter": "F770W",
            "readout_pattern": "FASTR1", "groups": 50, "integrations": 2, "exposures": 1}
    scene = {"sources": [{"source_id": "a"}]}
    norm = {"value": 1.0, "unit": "uJy", "wavelength_um": 7.7}
    table = uploads.parse(b"".join(b"%g 1.0\n" % x for x in np.linspace(3, 12, 50)),
                          "ascii", "mJy")
    up = {"spectrum": {"kind": "uploaded", "spectrum_id": "s1"}, "normalization": norm}
    flat = {"spectrum": {"kind": "flat"}, "normalization": norm}
    r_up = calculate(calc, scene, {"a": up}, spectra={"s1": table}).to_dict()
    r_flat = calculate(calc, scene, {"a": flat}).to_dict()
    assert r_up["snr"] == pytest.approx(r_flat["snr"], rel=1e-9)
    with pytest.raises(ValidationError) as e:
        calculate(calc, scene, {"a": up})
    assert e.value.field == "sources.a.spectrum.spectrum_id"
    outside = dict(up, normalization={"value": 1.0, "unit": "uJy", "wavelength_um": 20.0})
    with pytest.raises(ValidationError) as e:
        calculate(calc, scene, {"a": outside}, spectra={"s1": table})
    assert e.value.field == "sources.a.normalization"


# --------------------------------------------------------------------------- any JSON


RICH = {"spectrum": {"kind": "uploaded", "spectrum_id": "sp",
                     "table": {"wave_um": [1.0, 2.0, 3.0], "fnu_jy": [1.0, 1.0, 0.5]}},
        "normalization": {"value": 1.0, "unit": "uJy", "bandpass": "F200W"},
        "redshift": 0.5,
        "lines": [{"kind": "emission", "center_um": 1.0, "fwhm_um": 0.01,
                   "flux_erg_s_cm2": 1e-17},
                  {"kind": "absorption", "center_um": 1.2, "fwhm_um": 0.02,
                   "equivalent_width_um": 0.005}],
        "extinction": [{"law": "G23", "a_v": 1.0, "r_v": 3.1, "applied": "after_redshift"},
                       {"law": "G03_LMCAvg", "ebv": 0.1, "applied": "before_redshift"}]}
NEW_PATHS = ["spectrum.spectrum_id", "spectrum.table", "spectrum.table.wave_um",
             "spectrum.table.fnu_jy", "spectrum.table.wave_um.1", "normalization.bandpass",
             "lines", "lines.0", "lines.0.kind", "lines.0.center_um", "lines.0.fwhm_um",
             "lines.0.flux_erg_s_cm2", "lines.1.equivalent_width_um", "extinction",
             "extinction.0", "extinction.0.law", "extinction.0.a_v", "extinction.0.r_v",
             "extinction.1.ebv", "extinction.1.applied"]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=10**300)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=10)
    | st.sampled_from(["G23", "F200W", "emission", "after_redshift", "\ud83d", "\x00"]),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
    max_leaves=8)


def _set(d, path, value):
    keys = path.split(".")
    o = d
    for k in keys[:-1]:
        o = o[int(k)] if isinstance(o, list) else o[k]
    o[int(keys[-1]) if isinstance(o, list) else keys[-1]] = value


def test_the_rich_source_is_valid_and_computes():
    assert validate_source(copy.deepcopy(RICH)).spectrum.table is not None
    r = calculate({"instrument": "nircam", "mode": "sw_imaging", "filter": "F200W",
                   "readout_pattern": "RAPID", "groups": 5, "integrations": 1, "exposures": 1},
                  {"sources": [{"source_id": "a"}]}, {"a": copy.deepcopy(RICH)})
    assert r.to_dict()["snr"] > 0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(NEW_PATHS), value=JSON)
def test_any_json_in_a_new_field_is_refused_naming_a_field_or_normalized(path, value):
    d = copy.deepcopy(RICH)
    _set(d, path, value)
    try:
        validate_source(d)
    except ValidationError as e:
        assert e.field.startswith("source.")
        str(e).encode("utf-8")
        return
    out = normalize_source(d)
    assert "table" not in out["spectrum"]  # never stored
    text = json.dumps(out, allow_nan=False)
    assert normalize_source(json.loads(text)) == out
