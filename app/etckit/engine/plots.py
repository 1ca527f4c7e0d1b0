"""PNG plots of a calculation, drawn with matplotlib's object API (Agg, no pyplot state)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Circle

from . import detector as det
from . import instruments as inst
from . import physics as phys
from . import sources as spectral
from .calculator import Result, measure, prepare, run
from .cost import CostLimits

KINDS = ("snr_vs_time", "spectrum", "snr_map", "saturation_map")
SIZE_IN = (4.8, 3.4)
DPI = 80


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _figure() -> Figure:
    return Figure(figsize=SIZE_IN, dpi=DPI, layout="constrained")


def _snr_vs_time(result: Result, calc, **_: Any) -> Figure:
    images = result.images["images"]
    exp0 = result.images["exposure"]
    mode = inst.mode(calc.instrument, calc.mode)
    fig = _figure()
    ax = fig.add_subplot()
    nints = np.unique(np.round(np.geomspace(1, max(8, 8 * exp0.integrations), 24)).astype(int))
    t, s = [], []
    for k in nints:
        e = det.make_exposure(mode, exp0.pattern.name, exp0.groups, int(k), exp0.exposures)
        m = measure(images, e, mode.full_well_e)
        if m.snr is not None:
            t.append(e.total_exposure_time_s)
            s.append(m.snr)
    ax.plot(t, s, "-", color="C0", label=f"{exp0.groups} groups, varying integrations")
    tg, sg = [], []
    for n in range(2, exp0.pattern.max_groups + 1, max(1, exp0.pattern.max_groups // 25)):
        e = det.make_exposure(mode, exp0.pattern.name, n, exp0.integrations, exp0.exposures)
        m = measure(images, e, mode.full_well_e)
        if m.snr is not None:
            tg.append(e.total_exposure_time_s)
            sg.append(m.snr)
    ax.plot(tg, sg, "--", color="C1", label="varying groups")
    if result.snr is not None:
        ax.plot([result.total_exposure_time_s], [result.snr], "o", color="C3", label="this setup")
    if result.strategy.get("target_snr"):
        ax.axhline(result.strategy["target_snr"], color="0.5", lw=0.8, ls=":")
    if s or sg:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no S/N: the aperture saturates", ha="center", va="center",
                transform=ax.transAxes)
    ax.set_xlabel("total exposure time [s]")
    ax.set_ylabel("S/N")
    ax.set_title(f"{calc.instrument.upper()} {calc.filter} {exp0.pattern.name}", fontsize=9)
    return fig


def _spectrum(result: Result, calc, scene=None, sources=None, **_: Any) -> Figure:
    filt = inst.mode(calc.instrument, calc.mode).filters[calc.filter]
    fig = _figure()
    ax = fig.add_subplot()
    lo, hi = filt.pivot_um - 2.5 * filt.bandwidth_um, filt.pivot_um + 2.5 * filt.bandwidth_um
    w = np.geomspace(max(lo, 0.1), hi, 300)
    for i, (sid, src) in enumerate(sources.items()):
        ws = spectral.wave_grid(src.lines, src.redshift, w)
        fnu = spectral.observed_fnu_jy(src, ws, f"sources.{sid}")
        ax.plot(ws, np.maximum(fnu, 1e-30) * 1e6, color=f"C{i % 10}", label=src.name or sid)
    ax.set_yscale("log")
    ax.set_xlabel("wavelength [µm]")
    ax.set_ylabel("f$_\\nu$ [µJy]")
    ax2 = ax.twinx()
    ax2.fill_between(w, phys.throughput(filt, w), color="0.6", alpha=0.3, lw=0)
    ax2.set_ylabel(f"{calc.filter} PCE")
    ax2.set_ylim(0, 1)
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title(f"source spectrum and {calc.filter} throughput", fontsize=9)
    return fig


def _extent(images) -> list[float]:
    h = images.source.shape[0] // 2
    e = (h + 0.5) * images.pixel_arcsec
    return [-e, e, -e, e]


def _circles(ax, calc) -> None:
    for r, c in ((calc.aperture_radius_arcsec, "w"), (calc.annulus_inner_arcsec, "c"),
                 (calc.annulus_outer_arcsec, "c")):
        ax.add_patch(Circle((0, 0), r, fill=False, color=c, lw=0.8))


def _snr_map(result: Result, calc, **_: Any) -> Figure:
    images = result.images["images"]
    m = result.images["measurement"]
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(np.isfinite(m.var_pix), images.source / np.sqrt(m.var_pix), 0.0)
    fig = _figure()
    ax = fig.add_subplot()
    im = ax.imshow(snr, origin="lower", extent=_extent(images), cmap="viridis",
                   interpolation="nearest")
    _circles(ax, calc)
    fig.colorbar(im, ax=ax, label="S/N per pixel")
    ax.set_xlabel("Δx [arcsec]")
    ax.set_ylabel("Δy [arcsec]")
    ax.set_title("S/N per pixel", fontsize=9)
    return fig


def _saturation_map(result: Result, calc, **_: Any) -> Figure:
    images = result.images["images"]
    exp = result.images["exposure"]
    fw = inst.mode(calc.instrument, calc.mode).full_well_e
    fill = images.total * exp.integration_time_s / fw
    fig = _figure()
    ax = fig.add_subplot()
    im = ax.imshow(np.minimum(fill, 2.0), origin="lower", extent=_extent(images), cmap="magma",
                   vmin=0, vmax=max(1.0, min(float(fill.max()), 2.0)), interpolation="nearest")
    sat = fill >= 1.0
    if sat.any():
        ax.contour(sat.astype(float), levels=[0.5], colors="c", linewidths=0.8,
                   extent=_extent(images), origin="lower")
    _circles(ax, calc)
    fig.colorbar(im, ax=ax, label="fraction of full well")
    ax.set_xlabel("Δx [arcsec]")
    ax.set_ylabel("Δy [arcsec]")
    ax.set_title(f"well fill at end of integration (max {fill.max():.2g})", fontsize=9)
    return fig


_DRAW = {"snr_vs_time": _snr_vs_time, "spectrum": _spectrum, "snr_map": _snr_map,
         "saturation_map": _saturation_map}


def render(kind: str, calculation_dict: dict, scene_dict: Any, sources_by_id: dict,
           result: Result | None = None, limits: CostLimits | None = None,
           spectra: dict | None = None) -> bytes:
    """PNG bytes of plot ``kind`` (one of KINDS). Pass ``result`` from ``calculate`` with the
    same inputs to skip recomputing it; ``limits`` as for ``calculate``."""
    if kind not in _DRAW:
        raise ValueError(f"unknown plot kind {kind!r}; expected one of {', '.join(KINDS)}")
    calc, scene, sources = prepare(calculation_dict, scene_dict, sources_by_id, limits, spectra)
    if result is None or result.images is None:
        result = run(calc, scene, sources)
    fig = _DRAW[kind](result, calc, scene=scene, sources=sources)
    return _png(fig)
