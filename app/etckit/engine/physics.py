"""Spectra, bandpasses, background and the point-spread function (numpy only).

Units: wavelength in micrometres, flux density f_nu in Jy, surface brightness in MJy/sr,
angles in arcseconds, rates in electrons per second.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from . import instruments as inst

H_ERG_S = 6.62607015e-27  # Planck constant [erg s]
HC_K_UM = 14387.7688  # h c / k  [um K]
JY_CGS = 1e-23  # erg s^-1 cm^-2 Hz^-1
AB_ZERO_JY = 3631.0
ARCSEC_RAD = np.pi / (180.0 * 3600.0)
# photons s^-1 cm^-2 per Jy per unit ln(lambda): 1e-23 / h
PHOTONS_PER_JY_DLNL = JY_CGS / H_ERG_S

FLUX_UNITS_JY = {"Jy": 1.0, "mJy": 1e-3, "uJy": 1e-6, "nJy": 1e-9}


# --------------------------------------------------------------------------- spectra


def planck_nu_shape(wave_um: np.ndarray, temperature_k: float) -> np.ndarray:
    """B_nu(T) up to a constant: nu^3 / (exp(h nu / k T) - 1), with nu ~ 1/lambda."""
    x = HC_K_UM / (np.asarray(wave_um, dtype=float) * temperature_k)
    x = np.minimum(x, 700.0)
    return wave_um ** -3.0 / np.expm1(x)


@dataclass(frozen=True)
class SpectrumSpec:
    kind: str  # flat | power_law | blackbody | uploaded
    index: float = 0.0  # power law: f_nu ~ lambda**index
    temperature: float = 5000.0  # blackbody temperature [K]
    spectrum_id: str = ""  # uploaded: the workbook's spectrum
    # uploaded: (rest wavelength um, f_nu Jy), read-only arrays; None until resolved
    table: tuple[np.ndarray, np.ndarray] | None = field(default=None, compare=False, repr=False)


def spectrum_shape(spec: SpectrumSpec, wave_obs_um: np.ndarray, redshift: float) -> np.ndarray:
    """Unnormalised observed f_nu at ``wave_obs_um`` (rest-frame shape at lambda/(1+z))."""
    rest = np.asarray(wave_obs_um, dtype=float) / (1.0 + redshift)
    if spec.kind == "flat":
        return np.ones_like(rest)
    if spec.kind == "power_law":
        return rest ** spec.index
    if spec.kind == "blackbody":
        return planck_nu_shape(rest, spec.temperature)
    raise ValueError(f"unknown spectrum kind {spec.kind!r}")


def normalization_jy(value: float, unit: str) -> float:
    """Flux density in Jy of a normalisation given as AB magnitude or mJy/uJy/nJy/Jy."""
    if unit == "abmag":
        return AB_ZERO_JY * 10.0 ** (-0.4 * value)
    return value * FLUX_UNITS_JY[unit]


def source_fnu_jy(
    spec: SpectrumSpec, redshift: float, norm_jy: float, norm_wave_um: float, wave_um: np.ndarray
) -> np.ndarray:
    """Observed f_nu [Jy] on ``wave_um``, scaled to ``norm_jy`` at ``norm_wave_um``."""
    ref = spectrum_shape(spec, np.array([norm_wave_um]), redshift)[0]
    if not np.isfinite(ref) or ref <= 0:
        raise ValueError("spectrum is zero at the normalisation wavelength")
    return norm_jy * spectrum_shape(spec, wave_um, redshift) / ref


# --------------------------------------------------------------------------- bandpass


def band_grid(filt: inst.Filter, n: int = 301) -> np.ndarray:
    """Log-spaced wavelength grid covering the filter and its wings."""
    lo = filt.pivot_um - 1.2 * filt.bandwidth_um
    hi = filt.pivot_um + 1.2 * filt.bandwidth_um
    return np.geomspace(max(lo, 0.05), hi, n)


def throughput(filt: inst.Filter, wave_um: np.ndarray) -> np.ndarray:
    """Total system PCE: a flat-topped band (8th-order Butterworth), FWHM = bandwidth."""
    u = (np.asarray(wave_um) - filt.pivot_um) / (0.5 * filt.bandwidth_um)
    return filt.pce / (1.0 + u**16)


def electron_rate(fnu_jy: np.ndarray, wave_um: np.ndarray, filt: inst.Filter) -> float:
    """Electrons/s collected by the telescope: A/h * integral(f_nu * T d ln lambda)."""
    tel = inst.telescope()
    integrand = fnu_jy * throughput(filt, wave_um)
    return float(tel.area_cm2 * PHOTONS_PER_JY_DLNL * np.trapezoid(integrand, np.log(wave_um)))


# --------------------------------------------------------------------------- background


def background_mjy_sr(wave_um: np.ndarray, scale: float = 1.0, zodi: Any = None) -> np.ndarray:
    """Benchmark background surface brightness [MJy/sr]: zodi scattered + zodi thermal (diluted
    blackbodies anchored at one wavelength each; from ~5 um on, the ETC benchmark's tabulated
    zodiacal emission + scattered zodi instead) + the NIRCam stray light (tabulated, <= 5 um) +
    the observatory's thermal self-emission (the JWST background model's curve, >= 5 um).
    ``zodi`` (engine.background: a target and date) scales the two zodiacal parts."""
    b = inst.background_model()
    w = np.asarray(wave_um, dtype=float)
    scat = b.scattered_at_1um * planck_nu_shape(w, b.scattered_temp_k) / planck_nu_shape(
        np.array(1.0), b.scattered_temp_k
    )
    therm = b.thermal_at_12um * planck_nu_shape(w, b.thermal_temp_k) / planck_nu_shape(
        np.array(12.0), b.thermal_temp_k
    )
    if b.zodi_benchmark:  # the ETC benchmark's zodiacal light from its first point on
        zw = np.log(np.array([p[0] for p in b.zodi_benchmark]))
        zv = np.log(np.array([p[1] for p in b.zodi_benchmark]))
        lw_ = np.log(np.maximum(w, 1e-3))
        tab = np.exp(np.interp(lw_, zw, zv))
        scat = np.where(lw_ >= zw[0], 0.0, scat)
        therm = np.where(lw_ >= zw[0], tab, therm)
    if zodi is not None:
        scat, therm = scat * zodi.scattered, therm * zodi.thermal(w)
    sw = np.array([p[0] for p in b.stray_light])
    sv = np.log(np.array([p[1] for p in b.stray_light]))
    stray = np.where(w <= sw[-1], np.exp(np.interp(w, sw, sv)), 0.0)
    tw = np.log(np.array([p[0] for p in b.observatory_thermal]))
    tv = np.log(np.array([p[1] for p in b.observatory_thermal]))
    lw = np.log(np.maximum(w, 1e-3))
    obs = np.where(lw >= tw[0], np.exp(np.interp(lw, tw, tv, right=tv[-1])), 0.0)
    return scale * (scat + therm + stray + obs)


def background_rate_per_pixel(filt: inst.Filter, pixel_arcsec: float, scale: float = 1.0,
                              zodi: Any = None) -> float:
    """Background electrons/s in one pixel."""
    w = band_grid(filt)
    omega_sr = (pixel_arcsec * ARCSEC_RAD) ** 2
    fnu_jy = background_mjy_sr(w, scale, zodi) * 1e6 * omega_sr
    return electron_rate(fnu_jy, w, filt)


# --------------------------------------------------------------------------- PSF


def bessel_j1(x: np.ndarray) -> np.ndarray:
    """J1(x) for x >= 0: Bessel's integral (trapezoid, exact for periodic integrands) below
    x = 25, the two-term Hankel expansion above it (error < 1e-6)."""
    x = np.asarray(x, dtype=float)
    out = np.empty_like(x)
    small = x < 25.0
    if np.any(small):
        tau = np.linspace(0.0, np.pi, 97)
        vals = np.cos(tau[None, :] - x[small][:, None] * np.sin(tau)[None, :])
        out[small] = np.trapezoid(vals, tau, axis=1) / np.pi
    big = ~small
    if np.any(big):
        xb = x[big]
        chi = xb - 0.75 * np.pi
        p = 1.0 + 15.0 / (128.0 * xb**2)
        q = 3.0 / (8.0 * xb)
        out[big] = np.sqrt(2.0 / (np.pi * xb)) * (p * np.cos(chi) - q * np.sin(chi))
    return out


def _jinc(x: np.ndarray) -> np.ndarray:
    """2 J1(x) / x with the limit 1 at x = 0."""
    x = np.asarray(x, dtype=float)
    safe = np.where(x == 0, 1.0, x)
    return np.where(x == 0, 1.0, 2.0 * bessel_j1(safe) / safe)


def psf_radial(r_arcsec: np.ndarray, wave_um: float) -> np.ndarray:
    """Monochromatic PSF [fraction of power per arcsec^2] at radii ``r_arcsec``.

    Obscured Airy pattern of the 6.5 m circle weighted by S = fill factor x Marechal Strehl
    (fill factor = true collecting area / area of the obscured circle), plus a Gaussian halo of
    FWHM lambda/segment carrying the remaining 1 - S.  Integrates to 1 over the plane."""
    tel = inst.telescope()
    lam_m = wave_um * 1e-6
    eps = tel.obscuration
    theta = np.asarray(r_arcsec) * ARCSEC_RAD
    x = np.pi * tel.diameter_m * theta / lam_m
    amp = (_jinc(x) - eps**2 * _jinc(eps * x)) / (1.0 - eps**2)
    area_m2 = np.pi * (tel.diameter_m / 2) ** 2 * (1 - eps**2)
    peak_per_sr = area_m2 / lam_m**2
    airy = peak_per_sr * amp**2 * ARCSEC_RAD**2  # per arcsec^2
    fill = tel.area_cm2 * 1e-4 / area_m2  # pupil fill factor of the segmented mirror
    strehl = fill * np.exp(-((2 * np.pi * tel.wfe_nm * 1e-3 / wave_um) ** 2))
    fwhm_halo = lam_m / tel.segment_m / ARCSEC_RAD
    sig = fwhm_halo / 2.3548
    halo = np.exp(-0.5 * (np.asarray(r_arcsec) / sig) ** 2) / (2 * np.pi * sig**2)
    return strehl * airy + (1 - strehl) * halo


def _i0e(z: np.ndarray) -> np.ndarray:
    """Exponentially scaled modified Bessel function exp(-z) I0(z), z >= 0."""
    z = np.asarray(z, dtype=float)
    small = z < 50.0
    out = np.empty_like(z)
    out[small] = np.i0(z[small]) * np.exp(-z[small])
    zb = z[~small]
    out[~small] = (1 + 1 / (8 * zb) + 9 / (128 * zb**2)) / np.sqrt(2 * np.pi * zb)
    return out


def gaussian_blur_radial(r: np.ndarray, prof: np.ndarray, sigma: float) -> np.ndarray:
    """A circular profile on the uniform grid ``r`` (r[0] = 0) convolved with a 2-D Gaussian of
    standard deviation ``sigma``: P'(r) = int P(r') exp(-(r-r')^2/2s^2) I0e(r r'/s^2) r' dr' / s^2,
    each row's weights normalised so that a constant stays constant.  Below the grid step the
    blur is unresolved and the profile is returned unchanged."""
    step = float(r[1] - r[0])
    if sigma < step:
        return prof
    k = int(np.ceil(6.0 * sigma / step))
    idx = np.arange(len(r))[:, None] + np.arange(-k, k + 1)[None, :]
    ok = (idx >= 0) & (idx < len(r))
    idx = np.clip(idx, 0, len(r) - 1)
    rr, rp = r[:, None], r[idx]
    w = np.where(ok, rp * np.exp(-0.5 * ((rr - rp) / sigma) ** 2) * _i0e(rr * rp / sigma**2), 0.0)
    return (w * prof[idx]).sum(axis=1) / w.sum(axis=1)


def cruciform_fraction(m: inst.Mode, wave_um: np.ndarray) -> np.ndarray:
    """Fraction of the light the detector's cruciform moves out of the PSF core at each
    wavelength (linear interpolation of the tabulated values, 0 where none is tabulated)."""
    if not m.cruciform:
        return np.zeros_like(np.asarray(wave_um, dtype=float))
    cw = np.array([p[0] for p in m.cruciform])
    cf = np.array([p[1] for p in m.cruciform])
    return np.interp(wave_um, cw, cf, left=cf[0], right=0.0)


def ipc_sigma_arcsec(m: inst.Mode) -> float:
    """Inter-pixel capacitance as a Gaussian blur: a kernel that moves a fraction f of each
    pixel's charge to its four neighbours (one pixel p away) has a variance of f/2 p^2 per axis,
    which a Gaussian of sigma = p sqrt(f/2) keeps."""
    return float(m.pixel_scale_arcsec * np.sqrt(m.scatter_fraction / 2.0))


def profile_fwhm(r: np.ndarray, prof: np.ndarray) -> float:
    """Full width at half maximum [arcsec] of a radial profile (linear interpolation)."""
    half = 0.5 * prof[0]
    k = int(np.argmax(prof < half))
    if k == 0:
        return float(2 * r[-1])
    return float(2 * np.interp(half, [prof[k], prof[k - 1]], [r[k], r[k - 1]]))


def _broadening_sigma(r: np.ndarray, prof: np.ndarray, measured_fwhm: float | None) -> float:
    """Gaussian sigma that widens the model core to the measured in-flight FWHM (0 when none
    is tabulated or the model is already within 5 % of it): FWHMs of a core and a Gaussian blur
    add in quadrature to first order."""
    if not measured_fwhm:
        return 0.0
    model = profile_fwhm(r, prof)
    if measured_fwhm <= 1.05 * model:
        return 0.0
    return float(np.sqrt(measured_fwhm**2 - model**2) / 2.3548)


@lru_cache(maxsize=64)
def band_psf_profile(instrument: str, mode: str, filter_name: str, r_max_arcsec: float):
    """Broadband radial PSF (mean of 7 monochromatic PSFs across the band, weighted by the
    band's photon response to a flat f_nu source), blurred by pointing jitter and detector charge
    diffusion, with the detector's wavelength-dependent cruciform and its IPC halo, sampled on a
    fine radius grid."""
    m = inst.mode(instrument, mode)
    filt = m.filters[filter_name]
    waves = filt.pivot_um + filt.bandwidth_um * np.linspace(-0.45, 0.45, 7)
    weights = throughput(filt, waves) / waves
    weights = weights / weights.sum()
    lam_d_arcsec = filt.pivot_um * 1e-6 / inst.telescope().diameter_m / ARCSEC_RAD
    step = lam_d_arcsec / 40.0
    r = np.arange(0.0, r_max_arcsec + 2 * step, step)
    cruc = cruciform_fraction(m, waves)
    prof = np.zeros_like(r)
    for w, wt, fc in zip(waves, weights, cruc, strict=True):
        prof += wt * (1 - fc) * psf_radial(r, float(w))
    blur = np.hypot(inst.telescope().jitter_arcsec, m.charge_diffusion_arcsec)
    if blur > 0:
        prof = gaussian_blur_radial(r, prof, blur)
    f_cruc = float(np.dot(weights, cruc))
    if f_cruc > 0:  # exponential disc of the cruciform's e-folding scale
        b = m.cruciform_scale_arcsec
        prof = prof + f_cruc * np.exp(-r / b) / (2 * np.pi * b**2)
    extra = _broadening_sigma(r, prof, dict(m.measured_fwhm_arcsec).get(filter_name))
    if extra > 0:  # the measured core is wider than the optics make it (MIRI F560W)
        prof = gaussian_blur_radial(r, prof, extra)
    if m.scatter_fraction > 0:  # inter-pixel capacitance: a blur, not a halo of its own
        prof = gaussian_blur_radial(r, prof, ipc_sigma_arcsec(m))
    r.setflags(write=False)
    prof.setflags(write=False)
    return r, prof


def lambda_over_d_arcsec(wave_um: float) -> float:
    return wave_um * 1e-6 / inst.telescope().diameter_m / ARCSEC_RAD
