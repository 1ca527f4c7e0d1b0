import struct
import zlib

import pytest

from etckit.engine import calculate, defaults
from etckit.engine.plots import KINDS, render


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


@pytest.mark.parametrize("kind", KINDS)
def test_plot_is_valid_png(kind, inputs):
    c, s, src = inputs
    result = calculate(c, s, src)
    w, h = _png_size(render(kind, c, s, src, result=result))
    assert (w, h) == (384, 272)


def test_plot_without_result_and_saturated(inputs):
    c, s, src = inputs
    src = {"1": dict(src["1"], normalization={"value": 10, "unit": "abmag",
                                              "wavelength_um": 2})}
    for kind in KINDS:
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
    for kind in KINDS:
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
