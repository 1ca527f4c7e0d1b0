"""The calculation: scene -> detector images -> aperture photometry -> S/N, times, saturation."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from . import background
from . import detector as det
from . import instruments as inst
from . import physics as phys
from . import sources as spectral
from .cost import CostLimits, check_limits, image_grid
from .validation import (
    MAX_INTEGRATIONS,
    Calculation,
    Scene,
    Source,
    validate_calculation,
    validate_scene,
    validate_sources,
)

# --------------------------------------------------------------------------- result


@dataclass
class Result:
    """What one calculation reports. ``to_dict``/``to_json``/``to_csv`` leave out the images."""

    snr: float | None
    extracted_source_rate_e_s: float
    background_rate_e_s: float
    dark_rate_e_s: float
    total_exposure_time_s: float
    measurement_time_s: float
    integration_time_s: float
    instrument: str
    mode: str
    filter: str
    readout_pattern: str
    groups: int
    integrations: int
    exposures: int
    aperture_radius_arcsec: float
    annulus_inner_arcsec: float
    annulus_outer_arcsec: float
    aperture_pixels: float
    annulus_pixels: float
    aperture_source_fraction: float
    background_per_pixel_e_s: float
    background_mjy_sr: float
    saturation: dict[str, Any]
    strategy: dict[str, Any]
    flags: list[str] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    background: dict[str, Any] = field(default_factory=dict)  # the zodiacal light's day
    images: Any = field(default=None, repr=False, compare=False)
    # spectroscopic calculations only: the per-wavelength results (docs/engine.md)
    spectrum: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("images", None)
        if d.get("spectrum") is None:
            d.pop("spectrum", None)
        return _clean(d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), allow_nan=False)

    def to_csv(self) -> str:
        """Two columns, ``quantity,value``; nested fields as dotted names."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["quantity", "value"])
        for k, v in _flatten(self.to_dict()):
            w.writerow([k, "" if v is None else v])
        return buf.getvalue()


def _clean(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, np.integer):
        return int(v)
    return v


def _flatten(d: Any, prefix: str = ""):
    if isinstance(d, dict):
        for k, v in d.items():
            yield from _flatten(v, f"{prefix}.{k}" if prefix else k)
    elif isinstance(d, list):
        if all(isinstance(x, dict) and "code" in x for x in d):
            for x in d:
                yield f"{prefix}.{x['code']}", x.get("message", "")
        else:
            yield prefix, ";".join(str(x) for x in d)
    else:
        yield prefix, d


# --------------------------------------------------------------------------- images


@dataclass
class Images:
    """Per-pixel maps on a (2H+1)^2 stamp centred on the aperture; rates in e-/s."""

    pixel_arcsec: float
    source: np.ndarray  # source electrons/s per pixel
    background: float  # sky electrons/s per pixel
    dark: float
    ap_weight: np.ndarray  # fraction of each pixel inside the aperture
    ann_weight: np.ndarray  # fraction inside the background annulus
    total_source_rate: float  # all scene light reaching the detector (not only the stamp)

    @property
    def total(self) -> np.ndarray:
        return self.source + self.background + self.dark


def _block_sum(a: np.ndarray, os: int) -> np.ndarray:
    n = a.shape[0] // os
    return a.reshape(n, os, n, os).sum(axis=(1, 3))


def _source_profile(src: Source, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Intrinsic surface-brightness profile of an extended source, unit total, per sub-pixel;
    ``dx`` (columns) and ``dy`` (rows) are 1-D sub-pixel offsets from the source's centre."""
    if src.shape.kind == "gaussian":  # separable: two 1-D factors, one outer product
        sig = src.shape.fwhm_arcsec / 2.3548
        prof = np.outer(np.exp(-0.5 * (dy / sig) ** 2), np.exp(-0.5 * (dx / sig) ** 2))
    else:  # disk
        r2 = dy[:, None] ** 2 + dx[None, :] ** 2
        prof = (r2 <= src.shape.radius_arcsec**2).astype(float)
        if prof.sum() == 0:  # smaller than a sub-pixel: treat as a point at the nearest one
            prof.flat[np.argmin(r2)] = 1.0
    s = prof.sum()
    return prof / s if s > 0 else prof


def _fast_len(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n (FFT lengths numpy transforms quickly)."""
    best = 2 * n
    p2 = 1
    while p2 < best:
        p3 = p2
        while p3 < best:
            p5 = p3
            while p5 < n:
                p5 *= 5
            best = min(best, p5)
            p3 *= 3
        p2 *= 2
    return best


def _convolved_with_psf(parts: list[np.ndarray], coords: np.ndarray, psf: Any) -> np.ndarray:
    """The centred n x n part of the linear convolution of ``parts.pop()`` (n x n, emptied
    out of the list so that it can be freed early) with the PSF sampled on the same grid.  A
    circular transform of length >= 1.5 n already keeps the wrap-around out of that part."""
    r_prof, psf_prof, sub = psf
    n = len(coords)
    c = n // 2
    size = _fast_len(n + c + 1)
    rr = np.hypot(coords[None, :], coords[:, None])
    kernel_ft = np.fft.rfft2(np.interp(rr, r_prof, psf_prof) * sub**2, s=(size, size))
    del rr
    ft = np.fft.rfft2(parts.pop(), s=(size, size))
    ft *= kernel_ft
    del kernel_ft
    return np.fft.irfft2(ft, s=(size, size))[c:c + n, c:c + n]


def _scene_light(scene: Scene, sources: dict[str, Source], filt: inst.Filter,
                 coords: np.ndarray, psf: Any) -> tuple[np.ndarray, float]:
    """Source electrons/s per sub-pixel and the scene's total rate.  Point sources sample the
    radial PSF; extended sources are summed (weighted by rate) and convolved with the PSF once:
    convolution is linear, so one FFT serves any number of them."""
    r_prof, psf_prof, sub = psf
    n = len(coords)
    points = np.zeros((n, n))
    extended = None
    total_rate = 0.0
    for placement in scene.sources:
        src = sources[placement.source_id]
        wave = spectral.wave_grid(src.lines, src.redshift, phys.band_grid(filt))
        fnu = spectral.observed_fnu_jy(src, wave, f"sources.{placement.source_id}")
        rate = phys.electron_rate(fnu, wave, filt)
        total_rate += rate
        dx = coords - placement.offset_x_arcsec
        dy = coords - placement.offset_y_arcsec
        if src.shape.kind == "point":
            points += rate * sub**2 * np.interp(np.hypot(dx[None, :], dy[:, None]), r_prof,
                                                psf_prof)
        else:
            profile = _source_profile(src, dx, dy)
            profile *= rate
            extended = profile if extended is None else extended + profile
    if extended is not None:
        parts = [extended]
        del extended
        points += np.maximum(_convolved_with_psf(parts, coords, psf), 0.0)
    return points, total_rate


def build_images(
    calc: Calculation, scene: Scene, sources: dict[str, Source], half_size: int | None = None
) -> Images:
    mode = inst.mode(calc.instrument, calc.mode)
    filt = mode.filters[calc.filter]
    p = mode.pixel_scale_arcsec
    h, os = image_grid(calc)
    h = half_size if half_size is not None else h
    npix = 2 * h + 1
    sub = p / os
    coords = (np.arange(npix * os) - (npix * os - 1) / 2.0) * sub

    max_off = max((math.hypot(s.offset_x_arcsec, s.offset_y_arcsec) for s in scene.sources),
                  default=0.0)
    r_max = math.ceil(math.sqrt(2.0) * abs(coords[0]) + max_off + 1.0)
    r_prof, psf_prof = phys.band_psf_profile(calc.instrument, calc.mode, calc.filter, float(r_max))
    src_img, total_rate = _scene_light(scene, sources, filt, coords, (r_prof, psf_prof, sub))
    rr = np.hypot(coords[None, :], coords[:, None])
    ap_sub = (rr <= calc.aperture_radius_arcsec).astype(float)
    ann_sub = ((rr >= calc.annulus_inner_arcsec) & (rr < calc.annulus_outer_arcsec)).astype(float)
    bg = phys.background_rate_per_pixel(filt, p, calc.background_scale, _zodi(calc, filt))
    return Images(
        pixel_arcsec=p,
        source=_block_sum(src_img, os),
        background=bg,
        dark=mode.dark_current_e_s,
        ap_weight=_block_sum(ap_sub, os) / os**2,
        ann_weight=_block_sum(ann_sub, os) / os**2,
        total_source_rate=total_rate,
    )


# --------------------------------------------------------------------------- measurement


@dataclass
class Measurement:
    snr: float | None
    signal: float
    noise: float
    n_eff: np.ndarray
    var_pix: np.ndarray
    full_sat_ap: int
    partial_sat_ap: int
    full_sat_ann: int


def measure(images: Images, exp: det.Exposure, full_well: float) -> Measurement:
    total = images.total
    n_unsat = det.groups_before_saturation(total, exp, full_well)
    n_eff = exp.fit_groups(n_unsat)
    var1 = det.ramp_rate_variance(total, n_eff, exp.nframe, exp.frame_time_s,
                                  exp.group_time_s, exp.read_noise_e)
    var_pix = var1 / exp.n_int_total
    wa, wb = images.ap_weight, images.ann_weight
    in_ap = wa > 0
    sat = n_eff < 2
    full_ap = int(np.count_nonzero(sat & in_ap))
    partial_ap = int(np.count_nonzero((~sat) & (n_unsat < exp.groups) & in_ap))
    wb_ok = np.where(sat, 0.0, wb)
    full_ann = int(np.count_nonzero(sat & (wb > 0)))
    a_ap = wa.sum()
    a_ann = wb_ok.sum()
    if a_ann <= 0:
        return Measurement(None, 0.0, math.inf, n_eff, var_pix, full_ap, partial_ap, full_ann)
    sky_src = (wb_ok * images.source).sum() / a_ann  # source light in the annulus is subtracted
    signal = float((wa * images.source).sum() - a_ap * sky_src)
    var_fin = np.where(np.isfinite(var_pix), var_pix, 0.0)
    var = float((wa * var_fin).sum()) + a_ap**2 * float((wb_ok * var_fin).sum()) / a_ann**2
    noise = float(math.sqrt(var)) if math.isfinite(var) else math.inf
    snr = None if full_ap else (signal / noise if noise > 0 else math.inf)
    return Measurement(snr, signal, noise, n_eff, var_pix, full_ap, partial_ap, full_ann)


def _brightest(images: Images) -> tuple[float, tuple[int, int]]:
    total = images.total
    idx = np.unravel_index(int(np.argmax(total)), total.shape)
    return float(total[idx]), (int(idx[0]), int(idx[1]))


def _saturation_report(images: Images, exp: det.Exposure, full_well: float) -> dict[str, Any]:
    fmax, _ = _brightest(images)
    fill = fmax * exp.integration_time_s / full_well
    kmax = math.floor((full_well / (fmax * exp.frame_time_s) + exp.nskip)
                      / (exp.nframe + exp.nskip)) if fmax > 0 else 10**6
    return {
        "max_fill_fraction": fill,
        "groups_before_saturation": int(min(max(kmax, 0), 10**6)),
        "brightest_pixel_rate_e_s": fmax,
        "full_well_e": full_well,
    }


# --------------------------------------------------------------------------- strategies


def _solve_time_for_snr(images: Images, calc: Calculation, mode: inst.Mode, target: float):
    """Fewest-seconds (groups, integrations) reaching ``target`` with the chosen pattern and
    number of exposures.  Returns (groups, integrations, reachable)."""
    fmax = float(np.max(images.total * (images.ap_weight > 0)))
    return solve_time_for_snr(fmax, lambda e: measure(images, e, mode.full_well_e).snr, calc,
                              mode, target)


def solve_time_for_snr(fmax: float, snr_of, calc: Calculation, mode: Any, target: float):
    """The solver behind time_for_snr: ``fmax`` the brightest measured pixel's rate,
    ``snr_of(exposure)`` the S/N of one integration (None when saturated). Every group count
    up to the pattern's maximum that keeps that pixel unsaturated (<= 40, geometric beyond),
    with the integrations S/N ~ sqrt(N) needs; the shortest total time wins."""
    pattern = inst.patterns(mode.readout_family)[calc.readout_pattern]
    probe = det.make_exposure(mode, calc.readout_pattern, pattern.max_groups, 1, 1)
    n_sat = int(det.groups_before_saturation(np.array([fmax]), probe, mode.full_well_e)[0])
    n_hi = max(2, min(pattern.max_groups, n_sat))
    if n_hi <= 40:
        cands = np.arange(2, n_hi + 1)
    else:
        cands = np.unique(np.round(np.geomspace(2, n_hi, 40)).astype(int))
    best = None
    for n in cands:
        exp1 = det.make_exposure(mode, calc.readout_pattern, int(n), 1, 1)
        snr1 = snr_of(exp1)
        if snr1 is None or not snr1 > 0:
            continue
        # integrations S/N ~ sqrt(N) needs; a tiny S/N makes this huge or infinite
        ratio = target / snr1
        per_exposure = ratio * ratio / calc.exposures if ratio < 1e150 else math.inf
        reachable = per_exposure <= MAX_INTEGRATIONS
        nint = max(1, math.ceil(per_exposure - 1e-9)) if reachable else MAX_INTEGRATIONS
        t = det.make_exposure(mode, calc.readout_pattern, int(n), nint,
                              calc.exposures).total_exposure_time_s
        key = (not reachable, t if reachable else -snr1 * math.sqrt(nint), nint)
        if best is None or key < best[0]:
            best = (key, int(n), nint, reachable)
    if best is None:
        return calc.groups, calc.integrations, False
    return best[1], best[2], best[3]


# --------------------------------------------------------------------------- entry point


@dataclass
class _Notes:
    flags: list[str] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)

    def add(self, kind: str, code: str, message: str) -> None:
        self.flags.append(code)
        getattr(self, kind).append({"code": code, "message": message})


def _apply_strategy(images: Any, calc: Calculation, mode: Any, notes: _Notes, solve=None
                    ) -> tuple[int, int, dict[str, Any]]:
    """(groups, integrations, the result's strategy entry); ``solve(calc, mode, target)``
    replaces the imaging solver (spectroscopy)."""
    strategy: dict[str, Any] = {"kind": calc.strategy.kind}
    if calc.strategy.kind != "time_for_snr":
        return calc.groups, calc.integrations, strategy
    target = float(calc.strategy.target_snr)
    if solve is None:
        groups, nint, reachable = _solve_time_for_snr(images, calc, mode, target)
    else:
        groups, nint, reachable = solve(calc, mode, target)
    strategy.update(target_snr=target, solved_groups=groups, solved_integrations=nint,
                    reachable=reachable)
    if not reachable:
        notes.add("errors", "snr_unreachable", (
            f"S/N {target:g} is not reachable with {calc.readout_pattern} and "
            f"{calc.exposures} exposure(s) within {MAX_INTEGRATIONS} integrations; "
            "showing the longest setup tried"))
    return groups, nint, strategy


def _diagnose(m: Measurement, sat: dict[str, Any], calc: Calculation, groups: int,
              notes: _Notes) -> None:
    if m.full_sat_ap:
        notes.add("errors", "full_saturation", (
            f"{m.full_sat_ap} pixel(s) in the aperture saturate before the second group: "
            "no S/N can be measured. Use fewer groups, a faster readout pattern or a "
            "fainter source"))
    elif m.partial_sat_ap:
        notes.add("warnings", "partial_saturation", (
            f"{m.partial_sat_ap} pixel(s) in the aperture saturate after "
            f"{sat['groups_before_saturation']} of {groups} groups; their slopes use only "
            "the unsaturated groups"))
    if m.full_sat_ann:
        notes.add("warnings", "annulus_saturation", (
            f"{m.full_sat_ann} background-annulus pixel(s) saturate and are left out"))
    if m.snr is not None and m.signal <= 0:
        notes.add("warnings", "no_signal", (
            "no net source signal in the aperture (source outside it or as bright in the "
            "annulus)"))
    if calc.strategy.kind == "snr" and m.snr is not None and m.snr < 3:
        notes.flags.append("low_snr")


def _zodi(calc: Calculation, filt: inst.Filter) -> Any:
    """The zodiacal factors of a calculation's target and date (None: the benchmark)."""
    if calc.background is None:
        return None
    return background.zodi_at_pivot(calc.background, filt.pivot_um)


def run(calc: Calculation, scene: Scene, sources: dict[str, Source]) -> Result:
    if calc.spectroscopic:  # slit spectroscopy (engine/spectroscopy.py)
        from .spectroscopy import run_spectroscopy
        return run_spectroscopy(calc, scene, sources)
    mode = inst.mode(calc.instrument, calc.mode)
    filt = mode.filters[calc.filter]
    images = build_images(calc, scene, sources)
    notes = _Notes()
    groups, nint, strategy = _apply_strategy(images, calc, mode, notes)
    exp = det.make_exposure(mode, calc.readout_pattern, groups, nint, calc.exposures)
    m = measure(images, exp, mode.full_well_e)
    sat = _saturation_report(images, exp, mode.full_well_e)
    sat.update(partial_saturated_pixels=m.partial_sat_ap, full_saturated_pixels=m.full_sat_ap)
    _diagnose(m, sat, calc, groups, notes)
    flags, warnings, errors = notes.flags, notes.warnings, notes.errors

    ap_src = float((images.ap_weight * images.source).sum())
    frac = ap_src / images.total_source_rate if images.total_source_rate > 0 else 0.0
    return Result(
        snr=m.snr,
        extracted_source_rate_e_s=m.signal,
        background_rate_e_s=float(images.ap_weight.sum() * images.background),
        dark_rate_e_s=float(images.ap_weight.sum() * images.dark),
        total_exposure_time_s=exp.total_exposure_time_s,
        measurement_time_s=exp.measurement_time_s,
        integration_time_s=exp.integration_time_s,
        instrument=calc.instrument, mode=calc.mode, filter=calc.filter,
        readout_pattern=calc.readout_pattern, groups=groups, integrations=nint,
        exposures=calc.exposures,
        aperture_radius_arcsec=calc.aperture_radius_arcsec,
        annulus_inner_arcsec=calc.annulus_inner_arcsec,
        annulus_outer_arcsec=calc.annulus_outer_arcsec,
        aperture_pixels=float(images.ap_weight.sum()),
        annulus_pixels=float(images.ann_weight.sum()),
        aperture_source_fraction=frac,
        background_per_pixel_e_s=images.background,
        background_mjy_sr=float(phys.background_mjy_sr(np.array([filt.pivot_um]),
                                                       calc.background_scale,
                                                       _zodi(calc, filt))[0]),
        background=_zodi(calc, filt).to_dict() if calc.background else {"kind": "benchmark"},
        saturation=sat,
        strategy=strategy,
        flags=flags, warnings=warnings, errors=errors,
        images={"images": images, "exposure": exp, "measurement": m},
    )


def prepare(calculation: dict, scene: Any, sources_by_id: dict,
            limits: CostLimits | None = None, spectra: dict | None = None,
            ) -> tuple[Calculation, Scene, dict[str, Source]]:
    """The three inputs validated (ValidationError) and, given ``limits``, checked against
    them (TooExpensive). ``spectra``: the workbook's uploaded spectra, id -> (rest wavelength
    um, f_nu Jy), for the sources that use one."""
    calc = validate_calculation(calculation)
    sc = validate_scene(scene)
    srcs = validate_sources(sc, sources_by_id, spectra)
    if limits is not None:
        check_limits(calc, sc, srcs, limits)
    return calc, sc, srcs


def check_cost(calculation: dict, scene: Any, sources_by_id: dict,
               limits: CostLimits | None = None) -> None:
    """Raise ValidationError or TooExpensive (naming the field) without computing anything."""
    prepare(calculation, scene, sources_by_id, limits or CostLimits())


def calculate(calculation: dict, scene: Any, sources_by_id: dict[str, dict],
              limits: CostLimits | None = None, spectra: dict | None = None) -> Result:
    """Validate the three inputs (raising ValidationError), check them against ``limits``
    when given (raising TooExpensive) and run the calculation."""
    return run(*prepare(calculation, scene, sources_by_id, limits, spectra))
