"""Slit spectroscopy: a scene through the slit, dispersed onto a 2-D trace, extracted.

The detector stamp has one column per spectral pixel (wavelengths from the disperser's
dispersion curve) and one row per pixel along the slit, the trace centred on the middle row.
Per column: the source light that passes the slit (the monochromatic PSF of ``physics`` or the
source's own profile, integrated over the slit's width, binned into rows), blurred along the
dispersion by the resolution element; the sky through the slit; dark current. Noise and
saturation per pixel come from ``detector``; the extraction sums an aperture of rows and
subtracts the mean of the background regions on both sides, as the JWST ETC's ``specapphot``
strategy does. See docs/engine.md, "Spectroscopy".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from . import background as bgm
from . import detector as det
from . import instruments as inst
from . import physics as phys
from . import sources as spectral
from .validation import Calculation, Scene, Source

X_CELLS = 16  # samples across the slit's width
Y_SUB = 8  # samples per pixel along the slit
WAVE_NODES = 24  # wavelengths at which the light through the slit is computed


# --------------------------------------------------------------------------- the disperser


def _curve(pairs: tuple[tuple[float, float], ...], wave: np.ndarray) -> np.ndarray:
    w = np.array([p[0] for p in pairs])
    v = np.array([p[1] for p in pairs])
    return np.interp(wave, w, v)


def dispersion_um(config: inst.Configuration, wave_um: np.ndarray) -> np.ndarray:
    """Dispersion [um per pixel] at ``wave_um``."""
    return _curve(config.dispersion, np.asarray(wave_um, dtype=float))


def resolving_power(mode: inst.SpecMode, config: inst.Configuration,
                    wave_um: np.ndarray) -> np.ndarray:
    """R = lambda / (resolution element in pixels x dispersion)."""
    w = np.asarray(wave_um, dtype=float)
    return w / (mode.resolution_element_pixels * dispersion_um(config, w))


def pce(config: inst.Configuration, wave_um: np.ndarray) -> np.ndarray:
    """Total system PCE (no slit loss), zero outside the pair's range."""
    w = np.asarray(wave_um, dtype=float)
    lo, hi = config.range_um
    return np.where((w >= lo) & (w <= hi), np.maximum(_curve(config.pce, w), 0.0), 0.0)


@lru_cache(maxsize=16)
def pixel_edges(instrument: str, mode_name: str, config_name: str) -> np.ndarray:
    """Wavelength [um] of the spectral pixels' edges across the pair's range: the pixel
    coordinate is the integral of d lambda / dispersion."""
    config = inst.spec_mode(instrument, mode_name).configurations[config_name]
    lo, hi = config.range_um
    w = np.linspace(lo, hi, 8001)
    inv = 1.0 / dispersion_um(config, w)
    x = np.concatenate([[0.0], np.cumsum(0.5 * (inv[1:] + inv[:-1]) * np.diff(w))])
    edges = np.interp(np.arange(0.0, math.floor(x[-1]) + 1.0), x, w)
    edges.setflags(write=False)
    return edges


# --------------------------------------------------------------------------- the slit


@dataclass(frozen=True)
class Geometry:
    """Rows along the slit and the sub-samples of the slit's area (arcsec)."""

    pixel: float
    rows: int
    x: np.ndarray  # cell centres across the slit's width
    y: np.ndarray  # sub-sample centres along the slit, Y_SUB per row
    in_slit: np.ndarray  # per row: the fraction of the row inside the slit's length
    y_in: np.ndarray  # per sub-sample: inside the slit's length (1.0) or not (0.0)
    cell_area: float


def geometry(mode: inst.SpecMode) -> Geometry:
    p = mode.pixel_scale_arcsec
    half = mode.slit_length_arcsec / 2
    rows = 2 * math.ceil(half / p - 0.5) + 1
    edges = (np.arange(rows + 1) - rows / 2) * p
    in_slit = (np.minimum(edges[1:], half) - np.maximum(edges[:-1], -half)).clip(0) / p
    sub = p / Y_SUB
    y = edges[0] + (np.arange(rows * Y_SUB) + 0.5) * sub
    w = mode.slit_width_arcsec
    x = -w / 2 + (np.arange(X_CELLS) + 0.5) * w / X_CELLS
    return Geometry(p, rows, x, y, in_slit, (np.abs(y) <= half).astype(float),
                    sub * w / X_CELLS)


def _psf_profile(wave_um: float, r_max: float) -> tuple[np.ndarray, np.ndarray]:
    """The monochromatic PSF (per arcsec^2) on a radius grid fine enough for its rings."""
    step = phys.lambda_over_d_arcsec(wave_um) / 8.0
    r = np.arange(0.0, r_max + 2 * step, step)
    return r, phys.psf_radial(r, wave_um)


def _surface(src: Source, dx: np.ndarray, dy: np.ndarray, wave_um: float,
             profile: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Fraction of the source's light per arcsec^2 at offsets (dx, dy) from its centre, as
    imaged by the telescope: the PSF (``profile``) for a point source or a disk smaller than
    a sample; a Gaussian source widened by the PSF core (in quadrature); a disk as it is."""
    if profile is not None:  # a point, or a disk smaller than a sample
        return np.interp(np.hypot(dx, dy), *profile, right=0.0)
    if src.shape.kind == "gaussian":
        core = 1.03 * phys.lambda_over_d_arcsec(wave_um)
        sig = math.hypot(src.shape.fwhm_arcsec, core) / 2.3548
        return np.exp(-0.5 * (dx**2 + dy**2) / sig**2) / (2 * math.pi * sig**2)
    r = src.shape.radius_arcsec
    return (np.hypot(dx, dy) <= r) / (math.pi * r * r)


def slit_rows(src: Source, offset: tuple[float, float], geo: Geometry,
              wave_um: float) -> np.ndarray:
    """Fraction of the source's total light that passes the slit and lands in each row."""
    ox, oy = offset
    dx = geo.x[None, :] - ox
    dy = geo.y[:, None] - oy
    r_max = float(np.hypot(np.abs(dx).max(), np.abs(dy).max()))
    sample = max(geo.pixel / Y_SUB, float(geo.x[1] - geo.x[0]))
    tiny = src.shape.kind == "disk" and src.shape.radius_arcsec < sample
    profile = _psf_profile(wave_um, r_max) if src.shape.kind == "point" or tiny else None
    per_sub = _surface(src, dx, dy, wave_um, profile).sum(axis=1) * geo.cell_area * geo.y_in
    return per_sub.reshape(geo.rows, Y_SUB).sum(axis=1)


def wave_nodes(edges: np.ndarray) -> np.ndarray:
    return np.geomspace(edges[0], edges[-1], WAVE_NODES)


def through_slit(src: Source, offset: tuple[float, float], geo: Geometry,
                 centres: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """(rows, columns): fraction of the light per row at each column's wavelength
    (computed at ``nodes`` and interpolated linearly between them)."""
    at_nodes = np.stack([slit_rows(src, offset, geo, float(w)) for w in nodes], axis=1)
    idx = np.clip(np.searchsorted(nodes, centres) - 1, 0, len(nodes) - 2)
    t = ((centres - nodes[idx]) / (nodes[idx + 1] - nodes[idx])).clip(0.0, 1.0)
    return at_nodes[:, idx] * (1 - t) + at_nodes[:, idx + 1] * t


# --------------------------------------------------------------------------- the trace


def _band_rates(fnu_jy: np.ndarray, grid: np.ndarray, edges: np.ndarray,
                config: inst.Configuration) -> np.ndarray:
    """Electrons/s per spectral pixel without slit loss: A/h x integral of f_nu PCE d ln
    lambda over each pixel (cumulative trapezoid on ``grid``, read at the edges)."""
    integrand = fnu_jy * pce(config, grid) / grid
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (integrand[1:] + integrand[:-1])
                                           * np.diff(grid))])
    at_edges = np.interp(edges, grid, cum)
    return inst.telescope().area_cm2 * phys.PHOTONS_PER_JY_DLNL * np.diff(at_edges)


def _lsf(rates: np.ndarray, resel_pixels: float) -> np.ndarray:
    """Blurred along the dispersion by a Gaussian line-spread function one resolution
    element wide (FWHM)."""
    sig = resel_pixels / 2.3548
    k = np.arange(-math.ceil(4 * sig), math.ceil(4 * sig) + 1)
    kernel = np.exp(-0.5 * (k / sig) ** 2)
    return np.convolve(rates, kernel / kernel.sum(), mode="same")


def _fine_grid(edges: np.ndarray, src: Source) -> np.ndarray:
    sub = (edges[:-1, None] + np.diff(edges)[:, None] * np.linspace(0, 1, 4, endpoint=False)
           ).ravel()
    return spectral.wave_grid(src.lines, src.redshift, np.append(sub, edges[-1]))


@dataclass
class Trace:
    """The 2-D spectral trace, (rows along the slit, spectral pixels), rates in e-/s."""

    wave_um: np.ndarray  # column centres
    edges_um: np.ndarray
    source: np.ndarray
    sky: np.ndarray
    dark: float
    ap_weight: np.ndarray  # per row: fraction inside the extraction aperture
    bg_weight: np.ndarray  # per row: fraction inside the background regions
    source_fnu_jy: np.ndarray  # the scene's total observed f_nu at the column centres
    total_rate: np.ndarray  # the scene's e-/s per column before the slit

    @property
    def total(self) -> np.ndarray:
        return self.source + self.sky + self.dark


def _row_weights(geo: Geometry, lo: float, hi: float) -> np.ndarray:
    """Fraction of each row within lo <= |y| <= hi."""
    e = (np.arange(geo.rows + 1) - geo.rows / 2) * geo.pixel
    a, b = e[:-1], e[1:]
    up = (np.minimum(b, hi) - np.maximum(a, lo)).clip(0)
    down = (np.minimum(b, -lo) - np.maximum(a, -hi)).clip(0)
    both = up + down if lo > 0 else (np.minimum(b, hi) - np.maximum(a, -hi)).clip(0)
    return both / geo.pixel


def zodi_of(calc: Calculation) -> bgm.Zodi | None:
    """The zodiacal factors of the calculation's target and date or percentile (the
    percentile's day ranked at the reference wavelength), None for the benchmark."""
    if calc.background is None:
        return None
    return bgm.zodi_at_pivot(calc.background, float(calc.reference_wavelength_um))


def build_trace(calc: Calculation, scene: Scene, sources: dict[str, Source]) -> Trace:
    mode = inst.spec_mode(calc.instrument, calc.mode)
    config = mode.configurations[calc.configuration]
    edges = pixel_edges(calc.instrument, calc.mode, config.name)
    centres = 0.5 * (edges[1:] + edges[:-1])
    geo = geometry(mode)
    nodes = wave_nodes(edges)
    image = np.zeros((geo.rows, len(centres)))
    fnu_total = np.zeros(len(centres))
    total_rate = np.zeros(len(centres))
    for p in scene.sources:
        src = sources[p.source_id]
        grid = _fine_grid(edges, src)
        fnu = spectral.observed_fnu_jy(src, grid, f"sources.{p.source_id}")
        rates = _lsf(_band_rates(fnu, grid, edges, config), mode.resolution_element_pixels)
        total_rate += rates
        fnu_total += np.interp(centres, grid, fnu)
        image += rates * through_slit(src, (p.offset_x_arcsec, p.offset_y_arcsec), geo,
                                      centres, nodes)
    omega_sr = mode.slit_width_arcsec * geo.pixel * phys.ARCSEC_RAD**2
    sky_jy = (phys.background_mjy_sr(centres, calc.background_scale, zodi_of(calc)) * 1e6
              * omega_sr)
    sky = (inst.telescope().area_cm2 * phys.PHOTONS_PER_JY_DLNL * sky_jy * pce(config, centres)
           * np.diff(edges) / centres)
    bg = (_row_weights(geo, calc.annulus_inner_arcsec, calc.annulus_outer_arcsec)
          if calc.background_subtraction else np.zeros(geo.rows))
    return Trace(centres, edges, image, geo.in_slit[:, None] * sky[None, :],
                 mode.dark_current_e_s, _row_weights(geo, 0.0, calc.aperture_radius_arcsec),
                 bg, fnu_total, total_rate)


# --------------------------------------------------------------------------- extraction


@dataclass
class Extraction:
    """Per spectral pixel: extracted signal and noise [e-/s], S/N (NaN where the aperture
    saturates), saturated pixels in the aperture; per pixel: groups used and variance."""

    signal: np.ndarray
    noise: np.ndarray
    snr: np.ndarray
    full_sat: np.ndarray
    partial_sat: np.ndarray
    full_sat_bg: np.ndarray
    n_eff: np.ndarray
    var_pix: np.ndarray


def extract(trace: Trace, exp: det.Exposure, full_well: float) -> Extraction:
    """The ETC's aperture extraction: signal = sum over the aperture rows minus their area
    times the mean of the background rows (source light there is subtracted too); variance =
    aperture variance + area^2 x background variance / background area^2."""
    total = trace.total
    n_unsat = det.groups_before_saturation(total, exp, full_well)
    n_eff = exp.fit_groups(n_unsat)
    var_pix = det.ramp_rate_variance(total, n_eff, exp.nframe, exp.frame_time_s,
                                     exp.group_time_s, exp.read_noise_e) / exp.n_int_total
    wa, wb = trace.ap_weight[:, None], trace.bg_weight[:, None]
    sat = n_eff < 2
    full_ap = np.count_nonzero(sat & (wa > 0), axis=0)
    partial = np.count_nonzero(~sat & (n_unsat < exp.groups) & (wa > 0), axis=0)
    wb_ok = np.where(sat, 0.0, wb)
    a_ap = float(wa.sum())
    a_bg = wb_ok.sum(axis=0)
    var_ok = np.where(np.isfinite(var_pix), var_pix, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        sky_src = np.where(a_bg > 0, (wb_ok * trace.source).sum(axis=0) / a_bg, 0.0)
        bg_var = np.where(a_bg > 0, a_ap**2 * (wb_ok * var_ok).sum(axis=0) / a_bg**2, 0.0)
        signal = (wa * trace.source).sum(axis=0) - a_ap * sky_src
        noise = np.sqrt((wa * var_ok).sum(axis=0) + bg_var)
        lost_bg = trace.bg_weight.sum() > 0 and np.any(a_bg <= 0)
        snr = np.where((full_ap > 0) | (noise <= 0), np.nan, signal / noise)
    if lost_bg:
        snr = np.where(a_bg <= 0, np.nan, snr)
    return Extraction(signal, noise, snr, full_ap, partial,
                      np.count_nonzero(sat & (wb > 0), axis=0), n_eff, var_pix)


# --------------------------------------------------------------------------- the calculation


def _column(trace: Trace, j: int) -> Trace:
    """The trace reduced to spectral pixel ``j`` (for the time_for_snr solver)."""
    cut = slice(j, j + 1)
    return Trace(trace.wave_um[cut], trace.edges_um[j:j + 2], trace.source[:, cut],
                 trace.sky[:, cut], trace.dark, trace.ap_weight, trace.bg_weight,
                 trace.source_fnu_jy[cut], trace.total_rate[cut])


def _solver(trace: Trace, j: int):
    from .calculator import solve_time_for_snr

    col = _column(trace, j)
    fmax = float(np.max(col.total * (col.ap_weight[:, None] > 0)))

    def solve(calc: Calculation, mode: inst.SpecMode, target: float):
        def snr_of(e: det.Exposure) -> float | None:
            s = float(extract(col, e, mode.full_well_e).snr[0])
            return s if math.isfinite(s) else None
        return solve_time_for_snr(fmax, snr_of, calc, mode, target)
    return solve


def _rounded(values: np.ndarray, digits: int = 4) -> list[float | None]:
    """A list of ``digits`` significant figures (null for NaN): a stored result keeps ~1400 of
    these per list, in every reply that lists the workbook's calculations."""
    return [float(f"{x:.{digits}g}") if math.isfinite(x) else None for x in values.tolist()]


def _spectrum_dict(trace: Trace, ex: Extraction, mode: inst.SpecMode,
                   config: inst.Configuration, calc: Calculation, j: int) -> dict[str, Any]:
    ap_src = (trace.ap_weight[:, None] * trace.source).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(trace.total_rate > 0, ap_src / trace.total_rate, 0.0)
    return {
        "disperser": config.disperser, "filter": config.filter, "slit": mode.slit_name,
        "reference_wavelength_um": calc.reference_wavelength_um,
        "reference_pixel": j,
        "wavelength_um": _rounded(trace.wave_um, 7),
        "snr": _rounded(ex.snr),
        "flux_e_s": _rounded(ex.signal),
        "noise_e_s": _rounded(ex.noise),
        "source_fnu_mjy": _rounded(trace.source_fnu_jy * 1e3),
        "background_e_s": _rounded((trace.ap_weight[:, None] * trace.sky).sum(axis=0)),
        "aperture_fraction": _rounded(frac),
        "dispersion_um_per_pixel": _rounded(np.diff(trace.edges_um)),
        "resolving_power": _rounded(resolving_power(mode, config, trace.wave_um), 3),
        "saturated_pixels": ex.full_sat.tolist(),
    }


def run_spectroscopy(calc: Calculation, scene: Scene, sources: dict[str, Source]):
    """The spectroscopic calculation: a ``calculator.Result`` whose scalars are those of the
    reference wavelength's spectral pixel and whose ``spectrum`` holds every pixel's."""
    from .calculator import (
        Measurement,
        Result,
        _apply_strategy,
        _diagnose,
        _Notes,
        _saturation_report,
    )

    mode = inst.spec_mode(calc.instrument, calc.mode)
    config = mode.configurations[calc.configuration]
    trace = build_trace(calc, scene, sources)
    j = int(np.clip(np.searchsorted(trace.edges_um, calc.reference_wavelength_um) - 1, 0,
                    len(trace.wave_um) - 1))
    notes = _Notes()
    groups, nint, strategy = _apply_strategy(trace, calc, mode, notes, _solver(trace, j))
    exp = det.make_exposure(mode, calc.readout_pattern, groups, nint, calc.exposures)
    ex = extract(trace, exp, mode.full_well_e)
    snr_j = float(ex.snr[j])
    m = Measurement(snr_j if math.isfinite(snr_j) else None, float(ex.signal[j]),
                    float(ex.noise[j]), ex.n_eff, ex.var_pix, int(ex.full_sat[j]),
                    int(ex.partial_sat[j]), int(ex.full_sat_bg[j]))
    sat = _saturation_report(trace, exp, mode.full_well_e)
    sat.update(partial_saturated_pixels=int(ex.partial_sat.sum()),
               full_saturated_pixels=int(ex.full_sat.sum()))
    _diagnose(m, sat, calc, groups, notes)
    spectrum = _spectrum_dict(trace, ex, mode, config, calc, j)
    sky_j = float(trace.sky[trace.sky.shape[0] // 2, j])
    zodi = zodi_of(calc)
    a_ap = float(trace.ap_weight.sum())
    return Result(
        snr=m.snr, extracted_source_rate_e_s=m.signal,
        background_rate_e_s=float((trace.ap_weight * trace.sky[:, j]).sum()),
        dark_rate_e_s=a_ap * trace.dark,
        total_exposure_time_s=exp.total_exposure_time_s,
        measurement_time_s=exp.measurement_time_s, integration_time_s=exp.integration_time_s,
        instrument=calc.instrument, mode=calc.mode, filter=config.name,
        readout_pattern=calc.readout_pattern, groups=groups, integrations=nint,
        exposures=calc.exposures, aperture_radius_arcsec=calc.aperture_radius_arcsec,
        annulus_inner_arcsec=calc.annulus_inner_arcsec,
        annulus_outer_arcsec=calc.annulus_outer_arcsec,
        aperture_pixels=a_ap, annulus_pixels=float(trace.bg_weight.sum()),
        aperture_source_fraction=float((trace.ap_weight * trace.source[:, j]).sum()
                                       / trace.total_rate[j]) if trace.total_rate[j] > 0 else 0.0,
        background_per_pixel_e_s=sky_j,
        background_mjy_sr=float(phys.background_mjy_sr(
            np.array([calc.reference_wavelength_um]), calc.background_scale, zodi)[0]),
        background=zodi.to_dict() if zodi is not None else {"kind": "benchmark"},
        saturation=sat, strategy=strategy, flags=notes.flags, warnings=notes.warnings,
        errors=notes.errors, spectrum=spectrum,
        images={"trace": trace, "exposure": exp, "extraction": ex},
    )


def limiting_flux_spectrum(calculation: dict, snr: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """(wavelength um, flux density Jy) per spectral pixel of a flat-f_nu point source at
    the slit's centre that reaches ``snr`` there with the calculation's setup. Variance is
    linear in the source rate while nothing saturates: two traces (with and without the
    source) give S/N(f) = s f / sqrt(V0 + V1 f), solved as a quadratic."""
    from .validation import validate_calculation, validate_scene, validate_source

    calc = validate_calculation(calculation)
    ref_jy = 1e-6
    src = validate_source({"shape": {"kind": "point"}, "spectrum": {"kind": "flat"},
                           "normalization": {"value": ref_jy, "unit": "Jy",
                                             "wavelength_um": calc.reference_wavelength_um}})
    trace = build_trace(calc, validate_scene([{"source_id": "s"}]), {"s": src})
    mode = inst.spec_mode(calc.instrument, calc.mode)
    exp = det.make_exposure(mode, calc.readout_pattern, calc.groups, calc.integrations,
                            calc.exposures)
    e1 = extract(trace, exp, mode.full_well_e)
    trace.source = trace.source * 0.0
    e0 = extract(trace, exp, mode.full_well_e)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = e1.signal / ref_jy
        v0 = e0.noise**2
        v1 = (e1.noise**2 - v0) / ref_jy
        a, b, c = s * s, -(snr**2) * v1, -(snr**2) * v0
        flux = (-b + np.sqrt(b * b - 4 * a * c)) / (2 * a)
    return trace.wave_um, np.where(s > 0, flux, np.inf)
