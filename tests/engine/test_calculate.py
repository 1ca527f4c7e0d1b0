import json

import pytest

from etckit.engine import ValidationError, calculate, catalog, defaults


def _inputs(**calc):
    d = defaults()
    c = dict(d["calculation"], **calc)
    return c, d["scene"], {"1": d["source"]}


def test_default_calculation_runs_and_serialises():
    r = calculate(*_inputs())
    assert r.snr and r.snr > 10
    assert r.total_exposure_time_s > r.measurement_time_s > 0
    d = json.loads(r.to_json())
    assert d["saturation"]["max_fill_fraction"] < 0.1
    assert "images" not in d
    csv = r.to_csv()
    assert csv.splitlines()[0] == "quantity,value"
    assert any(line.startswith("snr,") for line in csv.splitlines())


def test_snr_grows_as_sqrt_of_integrations_when_background_limited():
    a = calculate(*_inputs(integrations=1)).snr
    b = calculate(*_inputs(integrations=4)).snr
    assert b / a == pytest.approx(2.0, rel=0.02)


def test_time_for_snr_reaches_target():
    c, s, src = _inputs(strategy={"kind": "time_for_snr", "target_snr": 25})
    r = calculate(c, s, src)
    assert r.strategy["reachable"]
    assert r.snr >= 25
    c2 = dict(c, groups=r.groups, integrations=max(1, r.integrations - 1),
              strategy={"kind": "snr"})
    if r.integrations > 1:
        assert calculate(c2, s, src).snr < 25


def test_bright_source_saturates():
    c, s, src = _inputs()
    src["1"] = dict(src["1"], normalization={"value": 12, "unit": "abmag", "wavelength_um": 2})
    r = calculate(c, s, src)
    assert "full_saturation" in r.flags and r.errors and r.snr is None
    assert r.saturation["max_fill_fraction"] > 1
    json.loads(r.to_json())


def test_partial_saturation_warns():
    c, s, src = _inputs(readout_pattern="RAPID", groups=10)
    src["1"] = dict(src["1"], normalization={"value": 17.5, "unit": "abmag",
                                             "wavelength_um": 2})
    r = calculate(c, s, src)
    assert "partial_saturation" in r.flags
    assert 2 <= r.saturation["groups_before_saturation"] < 10


def test_unreachable_snr_is_an_error_of_that_calculation():
    c, s, src = _inputs(strategy={"kind": "time_for_snr", "target_snr": 1e4})
    src["1"] = dict(src["1"], normalization={"value": 1, "unit": "nJy", "wavelength_um": 2})
    r = calculate(c, s, src)
    assert "snr_unreachable" in r.flags
    assert [e["code"] for e in r.errors] == ["snr_unreachable"]
    json.loads(r.to_json())


def test_extended_source_is_fainter_per_aperture_than_point():
    c, s, src = _inputs()
    point = calculate(c, s, src)
    src["1"] = dict(src["1"], shape={"kind": "gaussian", "fwhm_arcsec": 0.5})
    ext = calculate(c, s, src)
    assert ext.extracted_source_rate_e_s < 0.5 * point.extracted_source_rate_e_s
    src["1"] = dict(src["1"], shape={"kind": "disk", "radius_arcsec": 0.3})
    assert calculate(c, s, src).snr < point.snr


def test_offset_source_loses_signal():
    c, s, src = _inputs()
    s2 = {"sources": [{"source_id": "1", "offset_x_arcsec": 0.3, "offset_y_arcsec": 0}]}
    assert calculate(c, s2, src).extracted_source_rate_e_s < 0.05 * calculate(c, s, src)\
        .extracted_source_rate_e_s


def test_blackbody_and_redshift():
    c, s, src = _inputs(instrument="miri", mode="imaging", filter="F1000W",
                        readout_pattern="FASTR1", groups=50,
                        aperture_radius_arcsec=None, annulus_inner_arcsec=None,
                        annulus_outer_arcsec=None)
    src["1"] = {"spectrum": {"kind": "blackbody", "temperature": 300},
                "normalization": {"value": 1, "unit": "mJy", "wavelength_um": 10}}
    a = calculate(c, s, src).extracted_source_rate_e_s
    src["1"]["redshift"] = 1.0
    b = calculate(c, s, src).extracted_source_rate_e_s
    assert a > 0 and b > 0 and a != pytest.approx(b)


@pytest.mark.parametrize("patch,field", [
    ({"spectrum": {"kind": "blackbody", "temperature": -5}}, "source.spectrum.temperature"),
    ({"spectrum": {"kind": "blackbody"}}, "source.spectrum.temperature"),
    ({"spectrum": {"kind": "rainbow"}}, "source.spectrum.kind"),
    ({"normalization": {"value": "x", "unit": "mJy", "wavelength_um": 2}},
     "source.normalization.value"),
    ({"normalization": {"value": 1, "unit": "erg", "wavelength_um": 2}},
     "source.normalization.unit"),
    ({"normalization": {"value": 1, "unit": "mJy", "wavelength_um": 0}},
     "source.normalization.wavelength_um"),
    ({"shape": {"kind": "gaussian", "fwhm_arcsec": 0}}, "source.shape.fwhm_arcsec"),
    ({"redshift": -1}, "source.redshift"),
])
def test_source_validation_names_field(patch, field):
    from etckit.engine import validate_source
    d = dict(defaults()["source"], **patch)
    with pytest.raises(ValidationError) as e:
        validate_source(d)
    assert e.value.field == field
    assert e.value.message


@pytest.mark.parametrize("patch,field", [
    ({"instrument": "hubble"}, "calculation.instrument"),
    ({"filter": "F560W"}, "calculation.filter"),
    ({"readout_pattern": "FAST"}, "calculation.readout_pattern"),
    ({"groups": 11}, "calculation.groups"),
    ({"groups": 2.5}, "calculation.groups"),
    ({"integrations": 0}, "calculation.integrations"),
    ({"exposures": True}, "calculation.exposures"),
    ({"annulus_inner_arcsec": 0.01}, "calculation.annulus_inner_arcsec"),
    ({"annulus_outer_arcsec": 0.5}, "calculation.annulus_outer_arcsec"),
    ({"strategy": {"kind": "time_for_snr"}}, "calculation.strategy.target_snr"),
    ({"strategy": {"kind": "magic"}}, "calculation.strategy.kind"),
])
def test_calculation_validation_names_field(patch, field):
    from etckit.engine import validate_calculation
    d = dict(defaults()["calculation"], **patch)
    with pytest.raises(ValidationError) as e:
        validate_calculation(d)
    assert e.value.field == field


def test_filter_hint_and_scene_errors():
    from etckit.engine import validate_calculation, validate_scene
    with pytest.raises(ValidationError) as e:
        validate_calculation(dict(defaults()["calculation"], filter="F444W"))
    assert "lw_imaging" in e.value.message
    with pytest.raises(ValidationError) as e:
        validate_scene({"sources": [{"source_id": "a", "offset_x_arcsec": "far"}]})
    assert e.value.field == "scene.sources.0.offset_x_arcsec"
    c, s, _ = _inputs()
    with pytest.raises(ValidationError) as e:
        calculate(c, s, {})
    assert e.value.field == "scene.sources.0.source_id"


def test_catalog_and_defaults_are_json():
    cat = json.loads(json.dumps(catalog()))
    names = {i["name"] for i in cat["instruments"]}
    assert names == {"nircam", "miri", "nirspec"}
    nirspec = next(i for i in cat["instruments"] if i["name"] == "nirspec")
    pairs = {c["name"] for c in nirspec["modes"][0]["configurations"]}
    assert pairs == {"PRISM/CLEAR", "G140M/F100LP", "G235M/F170LP", "G395M/F290LP"}
    nircam = next(i for i in cat["instruments"] if i["name"] == "nircam")
    filters = {f["name"] for m in nircam["modes"] for f in m["filters"]}
    assert {"F070W", "F444W"} <= filters
    pats = {p["name"] for p in nircam["modes"][0]["readout_patterns"]}
    assert {"RAPID", "BRIGHT1", "BRIGHT2", "SHALLOW2", "SHALLOW4", "MEDIUM2", "MEDIUM8",
            "DEEP2", "DEEP8"} == pats
    json.dumps(defaults())
