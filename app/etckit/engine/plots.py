"""PNG plots of a calculation, drawn with matplotlib's object API (Agg, no pyplot state).

Why templates: most of a fresh figure's cost is matplotlib's, not ours: a layout engine
(constrained layout draws every figure twice), and tick objects and text metrics made anew
for every figure. Each kind is therefore drawn into a figure *template* built once per
process (fixed margins, its axes, lines, image, colour bar and circles made in advance); a
render only sets the data, limits and texts of this calculation and saves the PNG. What a
render draws depends only on its inputs: everything a previous render may have changed is
set again, the artists made per render (legend, contour, one line per source, the filter
curve) are removed first, and a render that fails drops its template. Titles are pinned above
their axes and x labels where the template's first draw put them, so that a draw does not
measure every tick label again to place them; ``warm`` builds every template up front.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Circle
from matplotlib.ticker import LogFormatter, MaxNLocator

from . import detector as det
from . import instruments as inst
from . import physics as phys
from . import sources as spectral
from .calculator import Result, measure, prepare, run
from .cost import CostLimits
from .validation import ValidationError

IMAGING_KINDS = ("snr_vs_time", "spectrum", "snr_map", "saturation_map", "background")
SPECTROSCOPY_KINDS = ("snr_vs_wavelength", "extracted_flux", "detector_2d", "snr_2d")
KINDS = IMAGING_KINDS + SPECTROSCOPY_KINDS
SIZE_IN = (4.8, 3.4)
DPI = 80
# axes boxes in figure fractions (left, bottom, width, height); 384 x 272 pixels in all
_PLOT_BOX = (0.13, 0.14, 0.84, 0.78)
_SPECTRUM_BOX = (0.165, 0.14, 0.685, 0.78)
_MAP_BOX = (0.155, 0.14, 0.55, 0.78)  # square in pixels (211 x 212), the colour bar beside
_COLORBAR_BOX = (0.75, 0.14, 0.03, 0.78)


@dataclass
class _Template:
    """One kind's reusable figure and the artists a render updates."""

    fig: Figure
    ax: Axes
    parts: dict[str, Any]
    made: list[Any] = field(default_factory=list)  # artists of the last render, removed next

    def clear(self) -> None:
        for artist in self.made:
            artist.remove()
        self.made.clear()
        if self.ax.legend_ is not None:
            self.ax.legend_.remove()


_TEMPLATES: dict[str, _Template] = {}  # per process; the sandbox child renders one at a time


PNG_COMPRESS_LEVEL = 3  # zlib: a third less encoding time than the default 6, no larger here


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, pil_kwargs={"compress_level": PNG_COMPRESS_LEVEL})
    return buf.getvalue()


def user_label(text: str) -> str:
    """A name a user typed, as a legend shows it, literally: ``$`` escaped (matplotlib
    would parse ``$...$`` as mathtext, and a malformed formula fails the whole render),
    and a leading ``_`` kept visible (matplotlib leaves such labels out of a legend)."""
    text = text.replace("$", r"\$")
    return " " + text if text.startswith("_") else text


def _plain_log(ax: Axes, which: str) -> None:
    """A log scale on ``which`` ("x", "y") labelled 20, 300, 1e+04: no mathtext to lay out."""
    getattr(ax, f"set_{which}scale")("log")
    axis = getattr(ax, f"{which}axis")
    axis.set_major_formatter(LogFormatter())
    axis.set_minor_formatter(LogFormatter(labelOnlyBase=False))


def _figure(box: tuple[float, float, float, float]) -> tuple[Figure, Axes]:
    """A figure and its axes at ``box``; the axes' title pinned just above them (no top
    ticks: where matplotlib would place it, without measuring every tick label each draw)."""
    fig = Figure(figsize=SIZE_IN, dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes(box)
    ax.set_title("", y=1.0)
    return fig, ax


def _pin_xlabels(fig: Figure) -> Figure:
    """Fix every x-axis label where the first draw put it: below one line of tick labels,
    whose height never changes (plain numbers, one font size), so later draws skip
    measuring every tick label of the axes and its siblings to place it again."""
    fig.canvas.draw()
    for ax in fig.axes:
        label = ax.xaxis.label
        if label.get_text():
            ax.xaxis.set_label_coords(*label.get_position(), transform=label.get_transform())
    return fig


# --------------------------------------------------------------------------- S/N vs time


def _snr_vs_time_template() -> _Template:
    fig, ax = _figure(_PLOT_BOX)
    parts = {
        "ints": ax.plot([], [], "-", color="C0")[0],
        "groups": ax.plot([], [], "--", color="C1", label="varying groups")[0],
        "this": ax.plot([], [], "o", color="C3", label="this setup")[0],
        "target": ax.axhline(1.0, color="0.5", lw=0.8, ls=":"),
        "none": ax.text(0.5, 0.5, "no S/N: the aperture saturates", ha="center",
                        va="center", transform=ax.transAxes),
    }
    ax.set_xlabel("total exposure time [s]")
    ax.set_ylabel("S/N")
    return _Template(_pin_xlabels(fig), ax, parts)


def _snr_curves(result: Result, calc: Any) -> tuple[list, list, list, list]:
    """(times, S/N) varying integrations, then varying groups, of the calculated setup."""
    images = result.images["images"]
    exp0 = result.images["exposure"]
    mode = inst.mode(calc.instrument, calc.mode)

    def curve(setups) -> tuple[list, list]:
        t, s = [], []
        for groups, ints in setups:
            e = det.make_exposure(mode, exp0.pattern.name, groups, ints, exp0.exposures)
            m = measure(images, e, mode.full_well_e)
            if m.snr is not None:
                t.append(e.total_exposure_time_s)
                s.append(m.snr)
        return t, s

    nints = np.unique(np.round(np.geomspace(1, max(8, 8 * exp0.integrations), 24)).astype(int))
    step = max(1, exp0.pattern.max_groups // 25)
    return (*curve((exp0.groups, int(k)) for k in nints),
            *curve((n, exp0.integrations) for n in range(2, exp0.pattern.max_groups + 1, step)))


def _snr_vs_time(tp: _Template, result: Result, calc: Any, **_: Any) -> None:
    t, s, tg, sg = _snr_curves(result, calc)
    exp0 = result.images["exposure"]
    ax, p = tp.ax, tp.parts
    p["ints"].set_data(t, s)
    p["ints"].set_label(f"{exp0.groups} groups, varying integrations")
    p["groups"].set_data(tg, sg)
    this = [result.total_exposure_time_s], [result.snr]
    p["this"].set_data(*(this if result.snr is not None else ([], [])))
    target = result.strategy.get("target_snr")
    p["target"].set_visible(bool(target))
    p["target"].set_ydata([target or 1.0] * 2)
    data = bool(s or sg)
    p["none"].set_visible(not data)
    ax.set_autoscale_on(True)
    if data:
        if ax.get_xscale() != "log":
            _plain_log(ax, "x")
            _plain_log(ax, "y")
        ax.relim(visible_only=True)
        ax.autoscale_view()
        ax.legend(handles=[h for h in (p["ints"], p["groups"], p["this"])
                           if len(h.get_xdata())], fontsize=7)
    else:
        ax.set_xscale("linear")
        ax.set_yscale("linear")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    ax.set_title(f"{calc.instrument.upper()} {calc.filter} {exp0.pattern.name}", fontsize=9)


# --------------------------------------------------------------------------- spectrum


def _spectrum_template() -> _Template:
    fig, ax = _figure(_SPECTRUM_BOX)
    _plain_log(ax, "y")
    ax.set_xlabel("wavelength [µm]")
    ax.set_ylabel("f$_\\nu$ [µJy]")
    ax2 = ax.twinx()
    ax2.set_ylim(0, 1)
    return _Template(_pin_xlabels(fig), ax, {"pce": ax2})


def _spectrum(tp: _Template, result: Result, calc: Any, sources: Any = None,
              **_: Any) -> None:
    filt = inst.mode(calc.instrument, calc.mode).filters[calc.filter]
    ax, ax2 = tp.ax, tp.parts["pce"]
    lo, hi = filt.pivot_um - 2.5 * filt.bandwidth_um, filt.pivot_um + 2.5 * filt.bandwidth_um
    w = np.geomspace(max(lo, 0.1), hi, 300)
    for i, (sid, src) in enumerate(sources.items()):
        ws = spectral.wave_grid(src.lines, src.redshift, w)
        fnu = spectral.observed_fnu_jy(src, ws, f"sources.{sid}")
        tp.made += ax.plot(ws, np.maximum(fnu, 1e-30) * 1e6, color=f"C{i % 10}",
                           label=user_label(src.name or sid))
    tp.made.append(ax2.fill_between(w, phys.throughput(filt, w), color="0.6", alpha=0.3, lw=0))
    ax.relim()
    ax2.relim()  # the x range is shared: neither may keep the last render's extent
    ax.autoscale_view()
    ax2.set_ylim(0, 1)
    ax2.set_ylabel(f"{calc.filter} PCE")
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title(f"source spectrum and {calc.filter} throughput", fontsize=9)


# --------------------------------------------------------------------------- maps


def _map_template(cmap: str, label: str, title: str = "") -> _Template:
    fig, ax = _figure(_MAP_BOX)
    im = ax.imshow(np.zeros((2, 2)), origin="lower", cmap=cmap, interpolation="nearest")
    fig.colorbar(im, cax=fig.add_axes(_COLORBAR_BOX), label=label)
    circles = [ax.add_patch(Circle((0, 0), 1.0, fill=False, color=c, lw=0.8))
               for c in ("w", "c", "c")]
    ax.set_xlabel("Δx [arcsec]")
    ax.set_ylabel("Δy [arcsec]")
    ax.set_title(title, fontsize=9)
    return _Template(_pin_xlabels(fig), ax, {"image": im, "circles": circles})


def _show_map(tp: _Template, values: np.ndarray, images: Any, calc: Any) -> list[float]:
    h = images.source.shape[0] // 2
    e = (h + 0.5) * images.pixel_arcsec
    extent = [-e, e, -e, e]
    im = tp.parts["image"]
    im.set_data(values)
    im.set_extent(extent)
    tp.ax.set_xlim(-e, e)
    tp.ax.set_ylim(-e, e)
    radii = (calc.aperture_radius_arcsec, calc.annulus_inner_arcsec, calc.annulus_outer_arcsec)
    for circle, r in zip(tp.parts["circles"], radii, strict=True):
        circle.set_radius(r)
    return extent


def _snr_map(tp: _Template, result: Result, calc: Any, **_: Any) -> None:
    images = result.images["images"]
    m = result.images["measurement"]
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(np.isfinite(m.var_pix), images.source / np.sqrt(m.var_pix), 0.0)
    _show_map(tp, snr, images, calc)
    tp.parts["image"].autoscale()  # the colour range of this map's finite values


def _saturation_map(tp: _Template, result: Result, calc: Any, **_: Any) -> None:
    images = result.images["images"]
    exp = result.images["exposure"]
    fw = inst.mode(calc.instrument, calc.mode).full_well_e
    fill = images.total * exp.integration_time_s / fw
    extent = _show_map(tp, np.minimum(fill, 2.0), images, calc)
    tp.parts["image"].set_clim(0, max(1.0, min(float(fill.max()), 2.0)))
    sat = fill >= 1.0
    if sat.any():
        tp.made.append(tp.ax.contour(sat.astype(float), levels=[0.5], colors="c",
                                     linewidths=0.8, extent=extent, origin="lower"))
    tp.ax.set_title(f"well fill at end of integration (max {fill.max():.2g})", fontsize=9)


# --------------------------------------------------------------------------- spectroscopy


def _line_template(ylabel: str, log_y: bool = False) -> _Template:
    fig, ax = _figure(_PLOT_BOX)
    if log_y:
        _plain_log(ax, "y")
    parts = {"a": ax.plot([], [], "-", color="C0", lw=0.9)[0],
             "b": ax.plot([], [], "-", color="C1", lw=0.9)[0],
             "ref": ax.axvline(1.0, color="C3", lw=0.8, ls="--"),
             "target": ax.axhline(1.0, color="0.5", lw=0.8, ls=":")}
    ax.set_xlabel("wavelength [µm]")
    ax.set_ylabel(ylabel)
    return _Template(_pin_xlabels(fig), ax, parts)


def _spectral_axes(tp: _Template, result: Result, ys: list[np.ndarray], labels: list[str],
                   title: str) -> None:
    spec = result.spectrum
    w = np.asarray(spec["wavelength_um"])
    for key, y, label in zip(("a", "b"), ys + [None], labels + [None], strict=False):
        line = tp.parts[key]
        if y is None:
            line.set_data([], [])
        else:
            line.set_data(w, y)
        line.set_label(label or "")
    tp.parts["ref"].set_xdata([spec["reference_wavelength_um"]] * 2)
    target = result.strategy.get("target_snr")
    tp.parts["target"].set_visible(bool(target) and len(ys) == 1)
    tp.parts["target"].set_ydata([target or 1.0] * 2)
    tp.ax.relim(visible_only=True)
    tp.ax.autoscale_view()
    if len(ys) > 1:
        tp.ax.legend(handles=[tp.parts["a"], tp.parts["b"]], fontsize=7)
    tp.ax.set_title(title, fontsize=9)


def _snr_vs_wavelength(tp: _Template, result: Result, calc: Any, **_: Any) -> None:
    snr = np.array([np.nan if x is None else x for x in result.spectrum["snr"]], dtype=float)
    _spectral_axes(tp, result, [snr], ["S/N"],
                   f"{calc.instrument.upper()} {result.filter}: S/N per pixel")


def _extracted_flux(tp: _Template, result: Result, calc: Any, **_: Any) -> None:
    flux = np.maximum(np.asarray(result.spectrum["flux_e_s"]), 1e-12)
    noise = np.maximum(np.asarray(result.spectrum["noise_e_s"]), 1e-12)
    _spectral_axes(tp, result, [flux, noise], ["extracted flux", "noise"],
                   "extracted flux and noise [e-/s per pixel]")


def _trace_template(cmap: str, label: str) -> _Template:
    fig, ax = _figure((0.13, 0.14, 0.66, 0.78))
    im = ax.imshow(np.zeros((2, 2)), origin="lower", cmap=cmap, interpolation="nearest",
                   aspect="auto")
    fig.colorbar(im, cax=fig.add_axes((0.82, 0.14, 0.03, 0.78)), label=label)
    lines = [ax.axhline(0.0, color=c, lw=0.7, ls=ls)
             for c, ls in (("w", "-"), ("w", "-"), ("c", ":"), ("c", ":"), ("c", ":"),
                           ("c", ":"))]
    ax.set_xlabel("wavelength [µm]")
    ax.set_ylabel("along the slit [arcsec]")
    return _Template(_pin_xlabels(fig), ax, {"image": im, "lines": lines})


def _show_trace(tp: _Template, values: np.ndarray, result: Result, calc: Any) -> None:
    trace = result.images["trace"]
    half = values.shape[0] / 2 * inst.spec_mode(calc.instrument, calc.mode).pixel_scale_arcsec
    ncol = values.shape[1]
    im = tp.parts["image"]
    im.set_data(values)
    im.set_extent([0, ncol, -half, half])  # columns are pixels: the dispersion is not linear
    im.autoscale()
    tp.ax.set_xlim(0, ncol)
    tp.ax.set_ylim(-half, half)
    ticks = MaxNLocator(6).tick_values(trace.edges_um[0], trace.edges_um[-1])
    ticks = ticks[(ticks >= trace.edges_um[0]) & (ticks <= trace.edges_um[-1])]
    tp.ax.set_xticks(np.interp(ticks, trace.edges_um, np.arange(ncol + 1)),
                     [f"{t:g}" for t in ticks])
    r, ri, ro = (calc.aperture_radius_arcsec, calc.annulus_inner_arcsec,
                 calc.annulus_outer_arcsec)
    ys = (r, -r, ri, -ri, ro, -ro)
    for i, (line, y) in enumerate(zip(tp.parts["lines"], ys, strict=True)):
        line.set_ydata([y, y])
        line.set_visible(i < 2 or calc.background_subtraction)


def _detector_2d(tp: _Template, result: Result, calc: Any, **_: Any) -> None:
    trace = result.images["trace"]
    _show_trace(tp, trace.total, result, calc)
    tp.ax.set_title(f"detector: source + sky + dark [e-/s] ({result.filter})", fontsize=9)


def _snr_2d(tp: _Template, result: Result, calc: Any, **_: Any) -> None:
    trace, ex = result.images["trace"], result.images["extraction"]
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(np.isfinite(ex.var_pix), trace.source / np.sqrt(ex.var_pix), 0.0)
    _show_trace(tp, snr, result, calc)
    tp.ax.set_title("S/N per pixel", fontsize=9)


_BUILD = {"snr_vs_time": _snr_vs_time_template, "spectrum": _spectrum_template,
          "snr_map": lambda: _map_template("viridis", "S/N per pixel", "S/N per pixel"),
          "saturation_map": lambda: _map_template("magma", "fraction of full well"),
          "snr_vs_wavelength": lambda: _line_template("S/N per spectral pixel"),
          "extracted_flux": lambda: _line_template("e-/s per spectral pixel", log_y=True),
          "detector_2d": lambda: _trace_template("magma", "e-/s per pixel"),
          "snr_2d": lambda: _trace_template("viridis", "S/N per pixel")}
_DRAW = {"snr_vs_time": _snr_vs_time, "spectrum": _spectrum, "snr_map": _snr_map,
         "saturation_map": _saturation_map, "snr_vs_wavelength": _snr_vs_wavelength,
         "extracted_flux": _extracted_flux, "detector_2d": _detector_2d, "snr_2d": _snr_2d}


def kinds_for(calculation: Any) -> tuple[str, ...]:
    """The plot kinds of a validated calculation: imaging or spectroscopic ones."""
    return SPECTROSCOPY_KINDS if calculation.spectroscopic else IMAGING_KINDS


def _draw(kind: str, result: Result, calc: Any, scene: Any, sources: Any) -> bytes:
    tp = _TEMPLATES.get(kind)
    if tp is None:
        tp = _TEMPLATES[kind] = _BUILD[kind]()
    try:
        tp.clear()
        _DRAW[kind](tp, result, calc, scene=scene, sources=sources)
        return _png(tp.fig)
    except BaseException:
        del _TEMPLATES[kind]  # possibly half-updated: the next render builds a fresh one
        raise


def warm() -> None:
    """Build every kind's template and draw a default imaging calculation's plots once, so
    that a new process (a sandbox child, before its first request) has its templates, fonts
    and the benchmark's year of zodiacal light ready: the first plots a user asks for then
    cost what later ones do."""
    from . import defaults

    d = defaults()
    c, s, src = d["calculation"], d["scene"], {"1": d["source"]}
    result = run(*prepare(c, s, src, None, None))
    for kind in IMAGING_KINDS:
        render(kind, c, s, src, result=result)
    for kind in SPECTROSCOPY_KINDS:
        if kind not in _TEMPLATES:
            _TEMPLATES[kind] = _BUILD[kind]()


def render(kind: str, calculation_dict: dict, scene_dict: Any, sources_by_id: dict,
           result: Result | None = None, limits: CostLimits | None = None,
           spectra: dict | None = None) -> bytes:
    """PNG bytes of plot ``kind`` (one of KINDS). Pass ``result`` from ``calculate`` with the
    same inputs to skip recomputing it; ``limits`` as for ``calculate``."""
    if kind not in KINDS:
        raise ValueError(f"unknown plot kind {kind!r}; expected one of {', '.join(KINDS)}")
    if kind == "background":  # needs the calculation only (drawn below, not a template)
        return render_background(calculation_dict)
    calc, scene, sources = prepare(calculation_dict, scene_dict, sources_by_id, limits, spectra)
    if kind not in kinds_for(calc):
        what = "a spectroscopic" if calc.spectroscopic else "an imaging"
        raise ValidationError("kind", f"{kind} is not a plot of {what} calculation; its plots "
                                      f"are {', '.join(kinds_for(calc))}")
    if result is None or result.images is None:
        result = run(calc, scene, sources)
    return _draw(kind, result, calc, scene, sources)



# --------------------------------------------------------------------------- compare
# Not a per-calculation kind: the curves of several calculations in one figure (issue 16).


def _compare_axes(curves: list[tuple[str, Any, tuple[float, float] | None]], title: str
                  ) -> bytes:
    """One line per (label, Curve, marked point or None), log-log, legend in order."""
    fig, ax = _figure(_PLOT_BOX)
    drawn = False
    for i, (label, curve, point) in enumerate(curves):
        x, y = np.asarray(curve.x.values, float), np.asarray(curve.y.values, float)
        ok = (x > 0) & (y > 0)
        ax.plot(x[ok], y[ok], color=f"C{i % 10}", lw=1.3, label=user_label(label[:40]))
        if point is not None and point[0] > 0 and point[1] > 0:
            ax.plot([point[0]], [point[1]], "o", color=f"C{i % 10}", ms=4)
        drawn = drawn or bool(ok.any())
    first = curves[0][1]
    unit = f" [{first.x.unit}]" if first.x.unit else ""
    ax.set_xlabel(first.x.name.replace("_", " ") + unit)
    ax.set_ylabel("S/N")
    if drawn:
        _plain_log(ax, "x")
        _plain_log(ax, "y")
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no S/N to compare", ha="center", transform=ax.transAxes)
    ax.set_title(title, fontsize=9)
    return _png(fig)


def render_compare(limits: CostLimits, kind: str,
                   entries: list[tuple[str, dict, Result]]) -> bytes:
    """PNG of the ``kind`` curves (COMPARE_CURVES) of several calculations: ``entries`` are
    (label, calculation dict, its Result with images); a sandbox function (``limits`` unused
    since every result is already computed). A calculation without such a curve is a
    ValidationError naming ``calculations.<i>``."""
    from .products import COMPARE_CURVES, MAX_COMPARED, compare_point, curves
    from .validation import ValidationError, validate_calculation

    if not isinstance(kind, str) or kind not in COMPARE_CURVES:
        raise ValueError(f"unknown compare kind {kind!r}")
    if not 1 <= len(entries) <= MAX_COMPARED:
        raise ValidationError("calculations", f"must list 1 to {MAX_COMPARED} calculations")
    lines = []
    for i, (label, calc_dict, result) in enumerate(entries):
        calc = validate_calculation(calc_dict)
        found = [c for c in curves(result, calc) if c.name == COMPARE_CURVES[kind]]
        if not found:
            what, other = (("a spectroscopic", "snr_vs_wavelength") if calc.spectroscopic
                           else ("an imaging", "snr_vs_time"))
            raise ValidationError(f"calculations.{i}", f"is {what} calculation: it has no "
                                  f"{kind} curve (compare it with {other})")
        lines.append((label, found[0], compare_point(kind, result)))
    return _compare_axes(lines, f"{len(lines)} calculations: {kind.replace('_', ' ')}")


# --------------------------------------------------------------------------- background
# The background of a calculation: its spectrum by part, and its zodiacal light over the year
# (the target's, with its observable days; the benchmark's line of sight without a target).
# A template like the others: two axes, the spectrum's legend made once (its labels never
# change), the year's legend made per render (the chosen day is its label).

_BG_SPECTRUM_BOX = (0.14, 0.14, 0.34, 0.76)
_BG_YEAR_BOX = (0.64, 0.14, 0.34, 0.76)
_BG_WAVES = np.geomspace(0.6, 28.5, 300)


def _background_template() -> _Template:
    from .background import PERCENTILE_YEAR

    fig, sp = _figure(_BG_SPECTRUM_BOX)
    lines = {"total": sp.plot([], [], color="k", lw=1.2, label="total")[0],
             "zodi": sp.plot([], [], color="C0", lw=1.0, label="zodiacal")[0],
             "rest": sp.plot([], [], color="C3", lw=1.0, label="thermal + stray")[0],
             "pivot": sp.axvline(1.0, color="0.5", lw=0.8, ls=":")}
    _plain_log(sp, "x")
    _plain_log(sp, "y")
    sp.set_xlabel("wavelength [µm]", fontsize=8)
    sp.set_ylabel("background [MJy/sr]", fontsize=8)
    sp.legend(fontsize=6, loc="upper left")
    sp.tick_params(labelsize=7)
    ax = fig.add_axes(_BG_YEAR_BOX)
    lines |= {"no": ax.plot([], [], color="0.7", lw=1.0, label="not observable")[0],
              "ok": ax.plot([], [], color="C0", lw=1.4, label="observable")[0],
              "day": ax.plot([], [], "o", color="C1", ms=4)[0]}
    _plain_log(ax, "y")
    sp.axis((0.6, 28.5, 0.1, 10.0))  # positive limits to draw once (each render sets them)
    ax.axis((1, 365, 0.1, 10.0))
    ax.set_xlabel(f"day of {PERCENTILE_YEAR}", fontsize=8)
    ax.tick_params(labelsize=7)
    return _Template(_pin_xlabels(fig), ax, {"spectrum": sp, **lines})


def _background_spectrum(tp: _Template, calc: Any, zodi: Any, pivot_um: float) -> None:
    from .background import Scale

    sp, p, w = tp.parts["spectrum"], tp.parts, _BG_WAVES
    total = phys.background_mjy_sr(w, calc.background_scale, zodi)
    zero = phys.background_mjy_sr(w, calc.background_scale, Scale(0.0, 0.0))
    p["total"].set_data(w, total)
    p["zodi"].set_data(w, total - zero)
    p["rest"].set_data(w, zero)
    p["pivot"].set_xdata([pivot_um] * 2)
    sp.relim()
    sp.set_autoscalex_on(True)
    sp.autoscale_view(scaley=False)
    sp.set_ylim(max(float(total.min()) * 0.5, 1e-3), float(total.max()) * 2)


def _background_year(tp: _Template, calc: Any, pivot_um: float) -> None:
    from . import background as bg

    ax, p, b = tp.ax, tp.parts, calc.background
    ra, dec = (b.ra_deg, b.dec_deg) if b is not None else bg.BENCHMARK[:2]
    parts = tuple(float(x[0]) for x in bg.benchmark_parts(np.array([pivot_um])))
    days, z, ok = bg.over_year(ra, dec, pivot_um, parts)
    doy = np.arange(1, len(days) + 1)
    z = z * calc.background_scale
    p["no"].set_data(doy, np.where(ok, np.nan, z))
    p["ok"].set_data(doy, np.where(ok, z, np.nan))
    handles, k = [p["no"], p["ok"]], None
    if b is not None:
        chosen = bg.zodi_at_pivot(b, pivot_um).sight.date
        k = next((i for i, d in enumerate(days) if d.isoformat()[5:] == chosen[5:]), None)
        p["day"].set_label(chosen)
    p["day"].set_data(*(([doy[k]], [z[k]]) if k is not None else ([], [])))
    if k is not None:
        handles.append(p["day"])
    ax.relim()
    ax.set_autoscaley_on(True)
    ax.autoscale_view(scalex=False)
    ax.set_xlim(1, len(days))
    ax.set_ylabel(f"zodi at {pivot_um:.2g} µm [MJy/sr]", fontsize=8)
    ax.legend(handles=handles, fontsize=6)


def _background(tp: _Template, result: Any, calc: Any, **_: Any) -> None:
    """The calculation's background spectrum by part, and the zodiacal light at its band's
    pivot (a spectroscopic calculation: its reference wavelength) over the year."""
    from .background import zodi_at_pivot

    pivot = (float(calc.reference_wavelength_um) if calc.spectroscopic
             else inst.mode(calc.instrument, calc.mode).filters[calc.filter].pivot_um)
    zodi = zodi_at_pivot(calc.background, pivot) if calc.background is not None else None
    _background_spectrum(tp, calc, zodi, pivot)
    _background_year(tp, calc, pivot)
    where = ("benchmark" if calc.background is None else
             f"RA {calc.background.ra_deg:g} Dec {calc.background.dec_deg:g}, "
             f"{zodi.sight.date}")
    tp.fig.suptitle(f"background: {where}", fontsize=8, y=0.985)


def render_background(calculation_dict: dict) -> bytes:
    """PNG of the ``background`` kind: only the calculation is needed (ValidationError as
    usual)."""
    from .validation import validate_calculation

    calc = validate_calculation(calculation_dict)
    return _draw("background", None, calc, None, None)


_BUILD["background"] = _background_template
_DRAW["background"] = _background
