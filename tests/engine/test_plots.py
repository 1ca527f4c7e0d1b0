import struct
import zlib

import pytest

from etckit.engine import ValidationError, calculate, defaults
from etckit.engine.plots import IMAGING_KINDS, KINDS, SPECTROSCOPY_KINDS, render


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, ctype = struct.unpack(">I4s", data[8:16])
    assert ctype == b"IHDR"
    w, h = struct.unpack(">II", data[16:24])
    assert zlib.crc32(data[12:16 + length]) == struct.unpack(">I", data[16 + length:20 + length])[0]
    assert data[-8:-4] == b"IEND"
    return w, h


@pytest.fixture(scope="module")
def inputs():
    d = defaults()
    return d["calculation"], d["scene"], {"1": d["source"]}


@pytest.mark.parametrize("kind", IMAGING_KINDS)
def test_plot_is_valid_png(kind, inputs):
    c, s, src = inputs
    result = calculate(c, s, src)
    w, h = _png_size(render(kind, c, s, src, result=result))
    assert (w, h) == (384, 272)


def test_plot_without_result_and_saturated(inputs):
    c, s, src = inputs
    src = {"1": dict(src["1"], normalization={"value": 10, "unit": "abmag",
                                              "wavelength_um": 2})}
    for kind in IMAGING_KINDS:
        _png_size(render(kind, c, s, src))


def test_unknown_kind(inputs):
    with pytest.raises(ValueError):
        render("pie", *inputs)


def test_reused_template_draws_only_this_calculation(inputs):
    """A template reused after other inputs (two sources, a saturated source, another
    filter, a target S/N) draws exactly what a fresh one draws."""
    from etckit.engine import plots

    c, s, src = inputs
    two = {"1": src["1"], "2": dict(src["1"], name="second",
                                    normalization={"value": 20, "unit": "abmag",
                                                   "wavelength_um": 2})}
    scene2 = {"sources": [*s["sources"], dict(s["sources"][0], source_id="2",
                                                offset_x_arcsec=0.3)]}
    bright = {"1": dict(src["1"], normalization={"value": 10, "unit": "abmag",
                                                 "wavelength_um": 2})}
    other = dict(c, filter="F070W", aperture_radius_arcsec=0.2,
                 strategy={"kind": "time_for_snr", "target_snr": 10})
    for kind in IMAGING_KINDS:
        plots._TEMPLATES.clear()
        fresh = render(kind, c, s, src)
        for args in ((c, scene2, two), (c, s, bright), (other, s, src)):
            render(kind, *args)
        assert render(kind, c, s, src) == fresh, kind


def test_failed_render_drops_its_template(inputs, monkeypatch):
    from etckit.engine import plots

    c, s, src = inputs
    render("snr_map", c, s, src)
    before = plots._TEMPLATES["snr_map"]

    def broken(*args, **kwargs):
        raise RuntimeError("drawing failed")

    monkeypatch.setitem(plots._DRAW, "snr_map", broken)
    with pytest.raises(RuntimeError):
        render("snr_map", c, s, src)
    assert "snr_map" not in plots._TEMPLATES
    monkeypatch.undo()
    render("snr_map", c, s, src)
    assert plots._TEMPLATES["snr_map"] is not before


# --------------------------------------------------------------------------- spectroscopy

SPEC = {"instrument": "nirspec", "mode": "fixed_slit", "disperser": "G140M", "filter": "F100LP",
        "readout_pattern": "NRSIRS2", "groups": 14, "integrations": 1, "exposures": 10,
        "reference_wavelength_um": 1.4}


def _spec_inputs(ujy: float = 1.0):
    src = {"shape": {"kind": "point"}, "spectrum": {"kind": "flat"},
           "normalization": {"value": ujy, "unit": "uJy", "wavelength_um": 1.4}}
    return SPEC, {"sources": [{"source_id": "s"}]}, {"s": src}


@pytest.mark.parametrize("kind", SPECTROSCOPY_KINDS)
def test_spectroscopic_plot_is_valid_png(kind):
    c, s, src = _spec_inputs()
    result = calculate(c, s, src)
    assert _png_size(render(kind, c, s, src, result=result)) == (384, 272)
    _png_size(render(kind, c, s, _spec_inputs(5e6)[2]))  # saturated: no S/N anywhere


def test_plot_kinds_follow_the_calculation():
    c, s, src = _spec_inputs()
    assert set(KINDS) == set(IMAGING_KINDS) | set(SPECTROSCOPY_KINDS)
    with pytest.raises(ValidationError) as e:
        render("snr_map", c, s, src)
    assert e.value.field == "kind" and "snr_2d" in e.value.message
    d = defaults()
    with pytest.raises(ValidationError) as e:
        render("snr_2d", d["calculation"], d["scene"], {"1": d["source"]})
    assert e.value.field == "kind" and "snr_map" in e.value.message


def test_reused_spectroscopic_template_draws_only_this_calculation():
    from etckit.engine import plots

    c, s, src = _spec_inputs()
    lrs = {"instrument": "miri", "mode": "lrs_slit", "disperser": "P750L",
           "readout_pattern": "FASTR1", "groups": 50, "integrations": 1, "exposures": 1,
           "background_subtraction": False, "strategy": {"kind": "time_for_snr",
                                                         "target_snr": 5}}
    lrs_src = {"s": dict(src["s"], normalization={"value": 30, "unit": "uJy",
                                                   "wavelength_um": 7.5})}
    for kind in SPECTROSCOPY_KINDS:
        plots._TEMPLATES.clear()
        fresh = render(kind, c, s, src)
        render(kind, lrs, s, lrs_src)
        render(kind, c, s, _spec_inputs(5e6)[2])
        assert render(kind, c, s, src) == fresh, kind
