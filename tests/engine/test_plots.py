import struct
import zlib

import numpy as np
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


# --------------------------------------------------------------------------- background

TARGET_DATE = {"ra_deg": 80.0, "dec_deg": -69.0, "date": "2027-10-01"}
TARGET_HIGH = {"ra_deg": 150.1, "dec_deg": 2.2, "percentile": "high"}


def _lines(ax):
    return [(ln.get_label(), np.asarray(ln.get_xdata(), float), np.asarray(ln.get_ydata(), float))
            for ln in ax.get_lines()]


def test_background_plot_draws_the_models_data(inputs):
    """What the background figure draws is the model's data, computed here without any cache:
    the spectrum by part, the zodiacal light of every day of the year split by observability,
    and the chosen day; with its labels, legends and title."""
    from etckit.engine import background as bg
    from etckit.engine import physics as phys
    from etckit.engine import plots
    from etckit.engine.instruments import mode

    c = dict(inputs[0], background_scale=1.5, background=TARGET_DATE)
    _png_size(render("background", c, *inputs[1:]))
    tp = plots._TEMPLATES["background"]
    sp, year = tp.parts["spectrum"], tp.ax
    pivot = mode(c["instrument"], c["mode"]).filters[c["filter"]].pivot_um
    target = bg.Background(80.0, -69.0, date="2027-10-01")
    zodi = bg.zodi(target, pivot, tuple(float(p[0]) for p in
                                        bg.benchmark_parts(np.array([pivot]))))
    w = np.geomspace(0.6, 28.5, 300)
    total = phys.background_mjy_sr(w, 1.5, zodi)
    rest = phys.background_mjy_sr(w, 1.5, bg.Scale(0.0, 0.0))
    drawn = _lines(sp)
    assert [d[0] for d in drawn[:3]] == ["total", "zodiacal", "thermal + stray"]
    for (_, x, y), want in zip(drawn[:3], (total, total - rest, rest), strict=True):
        np.testing.assert_allclose(x, w)
        np.testing.assert_allclose(y, want, rtol=1e-12)
    assert drawn[3][1][0] == pytest.approx(pivot)  # the pivot's dotted line

    days, ok, (lon, lat), sun_lon, sun_dist, e = bg._year(80.0, -69.0, bg.PERCENTILE_YEAR)
    s, t = bg.cloud_intensity(lon, lat, sun_lon, sun_dist)
    s0, t0 = bg.cloud_intensity(*bg.ecliptic(*bg.BENCHMARK[:2]), *bg.sun(
        bg.parse_date(bg.BENCHMARK[2])))
    parts = bg.benchmark_parts(np.array([pivot]))
    therm = np.array([bg.thermal_factor(row, np.array(pivot)) for row in t / t0])
    z = np.where(e >= 45.0, parts[0][0] * s / s0 + parts[1][0] * therm, np.nan) * 1.5
    (_, x_no, y_no), (_, x_ok, y_ok), (label, x_day, y_day) = _lines(year)
    np.testing.assert_array_equal(x_no, np.arange(1, len(days) + 1))
    np.testing.assert_allclose(y_ok, np.where(ok, z, np.nan), rtol=1e-9)
    np.testing.assert_allclose(y_no, np.where(ok, np.nan, z), rtol=1e-9)
    k = days.index(bg.parse_date("2027-10-01"))
    assert (label, list(x_day), list(y_day)) == ("2027-10-01", [k + 1], [pytest.approx(z[k])])
    assert [t.get_text() for t in year.get_legend().get_texts()] == [
        "not observable", "observable", "2027-10-01"]
    assert sp.get_xlabel() == "wavelength [µm]" and sp.get_ylabel() == "background [MJy/sr]"
    assert year.get_xlabel() == f"day of {bg.PERCENTILE_YEAR}"
    assert year.get_ylabel() == f"zodi at {pivot:.2g} µm [MJy/sr]"
    assert tp.fig._suptitle.get_text() == "background: RA 80 Dec -69, 2027-10-01"


def test_background_year_is_computed_once_per_target(inputs, monkeypatch):
    """The year's 365 line-of-sight integrals are cached per target and year: a second
    plot of the same target (another filter, scale or date) integrates nothing again."""
    from etckit.engine import background as bg

    bg._year_ratios.cache_clear()
    bg.zodi_at_pivot.cache_clear()
    calls = []
    real = bg.cloud_intensity
    monkeypatch.setattr(bg, "cloud_intensity", lambda *a: calls.append(np.size(a[2])) or real(*a))
    c = dict(inputs[0], background=TARGET_DATE)
    render("background", c, *inputs[1:])
    assert 365 in calls
    calls.clear()
    render("background", dict(c, filter="F070W", background_scale=2.0,
                              background=dict(TARGET_DATE, date="2027-10-03")), *inputs[1:])
    assert 365 not in calls and calls  # only the new date's single day
    days, z, ok = bg.over_year(80.0, -69.0, 2.0, (0.1, 0.2))
    ok[:] = False  # the caller's copy: the cached arrays stay as they were
    assert bg.over_year(80.0, -69.0, 2.0, (0.1, 0.2))[2].any()


def test_reused_background_template_draws_only_this_calculation(inputs):
    from etckit.engine import plots

    c, s, src = inputs
    dated = dict(c, background=TARGET_DATE)
    plots._TEMPLATES.clear()
    fresh = render("background", dated, s, src)
    for other in (c, dict(c, filter="F070W", background_scale=3.0, background=TARGET_HIGH),
                  dict(SPEC, background=TARGET_HIGH)):
        render("background", other, s, src)
    assert render("background", dated, s, src) == fresh


# --------------------------------------------------------------------------- cheaper figures


def _idat_flevel(data: bytes) -> int:
    """The zlib compression class of a PNG's first IDAT chunk (0 fastest .. 3 best)."""
    at = data.index(b"IDAT") + 4
    return data[at + 1] >> 6


@pytest.mark.parametrize("kind", IMAGING_KINDS)
def test_png_is_encoded_fast_and_decodes(kind, inputs):
    """zlib level 3 ("fast" class 1, not the default 6 = class 2); the image still decodes to
    the figure's pixels."""
    from PIL import Image

    from etckit.engine import plots

    png = render(kind, *inputs)
    assert _idat_flevel(png) == 1
    canvas = np.asarray(plots._TEMPLATES[kind].fig.canvas.buffer_rgba())
    decoded = np.asarray(Image.open(__import__("io").BytesIO(png)).convert("RGBA"))
    np.testing.assert_array_equal(decoded, canvas)


@pytest.mark.parametrize("kind", IMAGING_KINDS)
def test_pinned_labels_stay_clear_of_the_tick_labels(kind, inputs):
    """The x labels (pinned where the first draw put them) and the titles (pinned above the
    axes) stay inside the figure, below / above every tick label, whatever the data: a faint
    source, a saturated one, another filter with a target S/N."""
    from etckit.engine import plots

    c, s, src = inputs
    bright = {"1": dict(src["1"], normalization={"value": 10, "unit": "abmag",
                                                 "wavelength_um": 2})}
    other = dict(c, filter="F070W", strategy={"kind": "time_for_snr", "target_snr": 10},
                 background={"ra_deg": 150.1, "dec_deg": 2.2, "percentile": "high"})
    for args in ((c, s, src), (c, s, bright), (other, s, src)):
        render(kind, *args)
        fig = plots._TEMPLATES[kind].fig
        r = fig.canvas.get_renderer()
        for ax in fig.axes:
            label = ax.xaxis.label
            if not label.get_text():
                continue
            ticks = [t.get_window_extent(r) for t in ax.get_xticklabels()
                     if t.get_visible() and t.get_text()]
            box = label.get_window_extent(r)
            assert ticks and box.y1 <= min(t.y0 for t in ticks) and box.y0 >= 0, (kind, args)
            title = ax.title.get_window_extent(r)
            if ax.title.get_text():
                assert ax.bbox.y1 <= title.y0 and title.y1 <= fig.bbox.y1, kind
