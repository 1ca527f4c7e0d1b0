"""Validation never raises anything but ValidationError, names the field, and the normalizers
return only known, JSON-ready fields (issue 11, items 1 and 7)."""

import copy
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etckit import engine
from etckit.engine import ValidationError

D = engine.defaults()
SOURCE = dict(D["source"], shape={"kind": "gaussian", "fwhm_arcsec": 0.3},
              spectrum={"kind": "power_law", "index": 1.0})
SCENE = {"sources": [{"source_id": "1", "offset_x_arcsec": 0.1, "offset_y_arcsec": 0.0}]}
CALC = dict(D["calculation"], strategy={"kind": "time_for_snr", "target_snr": 10})

SPECTRO = {"instrument": "nirspec", "mode": "fixed_slit", "disperser": "G395M",
           "filter": "F290LP", "readout_pattern": "NRSIRS2RAPID", "groups": 20, "integrations": 1,
           "exposures": 2, "reference_wavelength_um": 4.0, "background_subtraction": True,
           "aperture_radius_arcsec": 0.3, "annulus_inner_arcsec": 0.5,
           "annulus_outer_arcsec": 1.0, "strategy": {"kind": "time_for_snr", "target_snr": 10}}

VALIDATE = {"source": (engine.validate_source, SOURCE),
            "scene": (engine.validate_scene, SCENE),
            "calculation": (engine.validate_calculation, CALC),
            "spectroscopy": (engine.validate_calculation, SPECTRO)}
NORMALIZE = {"source": engine.normalize_source, "scene": engine.normalize_scene,
             "calculation": engine.normalize_calculation,
             "spectroscopy": engine.normalize_calculation}


def _with(base, path, value):
    d = copy.deepcopy(base)
    keys = path.split(".")
    o = d
    for k in keys[:-1]:
        o = o[int(k)] if isinstance(o, list) else o[k]
    o[int(keys[-1]) if isinstance(o, list) else keys[-1]] = value
    return d


def _refused(kind, data, field):
    validate = VALIDATE[kind][0]
    with pytest.raises(ValidationError) as e:
        validate(data, field="data")
    assert e.value.field == field, e.value
    str(e.value).encode("utf-8")  # the message itself is valid Unicode
    assert len(str(e.value)) < 400
    with pytest.raises(ValidationError):
        NORMALIZE[kind](data)
    return e.value


NUMBERS = [("source", "redshift"), ("source", "normalization.value"),
           ("source", "normalization.wavelength_um"), ("source", "shape.fwhm_arcsec"),
           ("source", "spectrum.index"), ("scene", "sources.0.offset_x_arcsec"),
           ("calculation", "groups"), ("calculation", "integrations"),
           ("calculation", "exposures"), ("calculation", "aperture_radius_arcsec"),
           ("calculation", "annulus_outer_arcsec"), ("calculation", "background_scale"),
           ("calculation", "strategy.target_snr")]


@pytest.mark.parametrize("kind,path", NUMBERS)
@pytest.mark.parametrize("value", [10**400, -(10**400), math.nan, math.inf, -math.inf,
                                   [], {}, "3", True])
def test_bad_numbers_are_refused_naming_the_field(kind, path, value):
    # 10**400 raised OverflowError before
    _refused(kind, _with(VALIDATE[kind][1], path, value), f"data.{path}")


CHOICES = [("source", "shape.kind"), ("source", "spectrum.kind"), ("source", "normalization.unit"),
           ("calculation", "instrument"), ("calculation", "mode"), ("calculation", "filter"),
           ("calculation", "readout_pattern"), ("calculation", "strategy.kind")]


@pytest.mark.parametrize("kind,path", CHOICES)
@pytest.mark.parametrize("value", [[], {}, ["F200W"], 1, 1.5, False, "\ud83d", "x" * 100000])
def test_unhashable_or_wrong_choices_are_refused(kind, path, value):
    # filter: [] raised TypeError (unhashable) before
    err = _refused(kind, _with(VALIDATE[kind][1], path, value), f"data.{path}")
    assert len(err.message) < 300


@pytest.mark.parametrize("kind,path,value", [
    ("source", "name", "bad\ud83dname"),
    ("source", "name", "bell\x07"),
    ("source", "name", "nul\x00"),
    ("source", "name", "c1\x85"),
    ("source", "name", "x" * (engine.validation.MAX_NAME_CHARS + 1)),
    ("source", "name", 5),
    ("scene", "sources.0.source_id", "\udc80"),
    ("scene", "sources.0.source_id", "a\nb"),
    ("scene", "sources.0.source_id", "x" * 10000),
    ("scene", "sources.0.source_id", ""),
    ("scene", "sources.0.source_id", ["1"]),
])
def test_bad_strings_are_refused(kind, path, value):
    # a lone surrogate in a stored string killed every later workbook.open before
    _refused(kind, _with(VALIDATE[kind][1], path, value), f"data.{path}")


@pytest.mark.parametrize("kind,path", [
    ("source", "junk"), ("source", "shape.junk"), ("source", "spectrum.junk"),
    ("source", "normalization.junk"), ("scene", "junk"), ("scene", "sources.0.junk"),
    ("calculation", "junk"), ("calculation", "strategy.junk"),
])
def test_unknown_keys_are_refused_naming_them(kind, path):
    # 20 sources with a 1 MB junk field made one workbook.open reply 20 MB before
    err = _refused(kind, _with(VALIDATE[kind][1], path, "x" * 1_000_000), f"data.{path}")
    assert err.message == "unknown field"


def test_an_unprintable_unknown_key_is_escaped_in_the_path():
    err = _refused("source", dict(SOURCE, **{"\ud83d" + "k" * 100: 1}), "data.'\\ud83d"
                   + "k" * 39 + "'...")
    err.field.encode("utf-8")


def test_absurd_lengths_are_refused_before_any_work():
    many = {"sources": [{"source_id": "1"}] * 1_000_000}
    _refused("scene", many, "data.sources")
    deep: list = []
    for _ in range(100_000):  # repr() of this would overflow the stack
        deep = [deep]
    _refused("calculation", dict(CALC, filter=deep), "data.filter")
    _refused("source", dict(SOURCE, shape=deep), "data.shape")


def test_normalizers_keep_only_known_fields_that_apply():
    src = dict(SOURCE, shape={"kind": "point", "fwhm_arcsec": 0.5, "radius_arcsec": None},
               spectrum={"kind": "flat", "index": 2, "temperature": None})
    assert engine.normalize_source(src) == {
        "name": "New source", "shape": {"kind": "point"}, "spectrum": {"kind": "flat"},
        "redshift": 0.0,
        "normalization": {"value": 100.0, "unit": "nJy", "wavelength_um": 2.0}}
    calc = dict(CALC, groups=10.0, strategy={"kind": "snr", "target_snr": None})
    out = engine.normalize_calculation(calc)
    assert out["groups"] == 10 and isinstance(out["groups"], int)
    assert out["strategy"] == {"kind": "snr"}
    imaging_keys = set(engine.validation.CALCULATION_KEYS) - set(
        engine.validation.SPECTROSCOPY_KEYS) - {"background"}  # when given
    assert set(out) == imaging_keys  # an imaging calculation keeps no spectroscopic field
    leftovers = dict(calc, disperser="G140M", reference_wavelength_um=1.4,
                     background_subtraction=False)
    assert engine.normalize_calculation(leftovers) == out
    assert engine.normalize_scene([{"source_id": "a"}]) == {
        "sources": [{"source_id": "a", "offset_x_arcsec": 0.0, "offset_y_arcsec": 0.0}]}


def test_a_form_value_that_is_not_a_number_in_an_unused_field_is_refused():
    src = dict(SOURCE, shape={"kind": "point", "fwhm_arcsec": "abc"})
    _refused("source", src, "data.shape.fwhm_arcsec")


def test_null_apertures_stay_null_and_follow_the_filter():
    calc = dict(CALC, aperture_radius_arcsec=None, annulus_inner_arcsec=None,
                annulus_outer_arcsec=None)
    out = engine.normalize_calculation(calc)
    assert out["aperture_radius_arcsec"] is None and out["annulus_outer_arcsec"] is None


def test_normalized_inputs_compute_the_same_result():
    raw = (CALC, SCENE, {"1": SOURCE})
    normalized = (engine.normalize_calculation(CALC), engine.normalize_scene(SCENE),
                  {"1": engine.normalize_source(SOURCE)})
    assert engine.calculate(*normalized).to_dict() == engine.calculate(*raw).to_dict()
    spectro = engine.normalize_calculation(SPECTRO)
    assert (engine.calculate(spectro, SCENE, {"1": SOURCE}).to_dict()
            == engine.calculate(SPECTRO, SCENE, {"1": SOURCE}).to_dict())
    for norm, data in zip(NORMALIZE.values(), (SOURCE, SCENE, CALC, SPECTRO), strict=True):
        once = norm(data)
        assert norm(once) == once  # idempotent


# --------------------------------------------------------------------------- property test

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=10**300)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20)
    | st.sampled_from(["F200W", "point", "gaussian", "nircam", "abmag", "snr", "\ud83d", "\x00"]),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8)

FIELDS = {kind: [p for k, p in NUMBERS + CHOICES if k == kind] for kind in VALIDATE}
FIELDS["source"] += ["name", "shape", "spectrum", "normalization", "shape.radius_arcsec",
                     "spectrum.temperature"]
FIELDS["scene"] += ["sources", "sources.0", "sources.0.source_id", "sources.0.offset_y_arcsec"]
FIELDS["calculation"] += ["annulus_inner_arcsec", "strategy", "disperser",
                          "reference_wavelength_um", "background_subtraction"]
FIELDS["spectroscopy"] = [k for k in SPECTRO if k != "strategy"] + ["strategy.target_snr"]


def _check(kind, data):
    validate, _ = VALIDATE[kind]
    try:
        validate(data, field="data")
    except ValidationError as e:
        str(e).encode("utf-8")
        with pytest.raises(ValidationError):
            NORMALIZE[kind](data)
        return
    out = NORMALIZE[kind](data)
    text = json.dumps(out, allow_nan=False)
    text.encode("utf-8")
    assert NORMALIZE[kind](json.loads(text)) == out


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(sorted(VALIDATE)), data=st.data(), value=JSON)
def test_random_json_in_any_field_is_refused_or_normalized(kind, data, value):
    path = data.draw(st.sampled_from(FIELDS[kind]))
    _check(kind, _with(VALIDATE[kind][1], path, value))


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from(sorted(VALIDATE)), value=JSON)
def test_random_json_as_a_whole_input_is_refused_or_normalized(kind, value):
    _check(kind, value)


@settings(max_examples=100, deadline=None)
@given(kind=st.sampled_from(sorted(VALIDATE)), key=st.text(max_size=50), value=JSON)
def test_random_extra_keys_are_refused(kind, key, value):
    base = VALIDATE[kind][1]
    if key in base:
        return
    with pytest.raises(ValidationError) as e:
        VALIDATE[kind][0](dict(base, **{key: value}), field="data")
    assert e.value.message == "unknown field"
    e.value.field.encode("utf-8")


@settings(max_examples=40, deadline=None)
@given(shape=st.sampled_from([{"kind": "point"}, {"kind": "gaussian", "fwhm_arcsec": 1e-6},
                              {"kind": "disk", "radius_arcsec": 1e-6},
                              {"kind": "gaussian", "fwhm_arcsec": 5.0}]),
       spectrum=st.sampled_from([{"kind": "flat"}, {"kind": "power_law", "index": -10},
                                 {"kind": "power_law", "index": 10},
                                 {"kind": "blackbody", "temperature": 2.7},
                                 {"kind": "blackbody", "temperature": 1e6}]),
       value=st.sampled_from([(-10, "abmag"), (50, "abmag"), (1e-300, "Jy"), (1e12, "Jy")]),
       wave=st.sampled_from([0.1, 2.0, 1000.0]), redshift=st.sampled_from([0, 30]),
       strategy=st.sampled_from([{"kind": "snr"}, {"kind": "time_for_snr", "target_snr": 1e5},
                                 {"kind": "time_for_snr", "target_snr": 1e-300}]),
       offset=st.sampled_from([0.0, -5.0, 5.0]))
def test_extreme_valid_inputs_compute_or_are_refused(shape, spectrum, value, wave, redshift,
                                                     strategy, offset):
    src = {"shape": shape, "spectrum": spectrum, "redshift": redshift,
           "normalization": {"value": value[0], "unit": value[1], "wavelength_um": wave}}
    scene = {"sources": [{"source_id": "1", "offset_x_arcsec": offset}]}
    try:
        r = engine.calculate(dict(CALC, strategy=strategy), scene, {"1": src},
                             limits=engine.CostLimits())
    except (ValidationError, engine.TooExpensive) as e:
        str(e).encode("utf-8")
        return
    json.loads(r.to_json())
