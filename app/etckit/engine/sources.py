"""Source spectra as astronomers describe them: a continuum (flat, power law, blackbody or an
uploaded table), Gaussian emission and absorption lines, dust extinction before or after the
redshift, normalized at a wavelength or in a filter's band.

Order of operations (observed wavelength lambda, rest wavelength lambda_r = lambda / (1 + z)):

    g(lambda) = C(lambda_r) x L_ew(lambda_r) x E_rest(lambda_r) x E_obs(lambda)
    f_nu(lambda) = N g(lambda) + L_flux(lambda)

C is the continuum shape, L_ew the lines given by an equivalent width (rest frame; emission
1 + W G, absorption 1 - W G with G a unit-area Gaussian), E_rest / E_obs the extinction applied
before / after the redshift (10^(-0.4 A_V k(lambda)), k = A_lambda / A_V from dust_extinction).
N scales g to the normalization (at a wavelength, or the photon-weighted mean f_nu in a band),
so extinction changes the colour, not the flux the user gave. L_flux are the lines given by
an integrated flux: observed fluxes [erg s^-1 cm^-2], added after normalization and never
reddened (the flux an astronomer measured or expects to measure).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from . import instruments as inst
from . import physics as phys

C_UM_S = 2.99792458e14  # speed of light [um/s]
FWHM_SIGMA = 2.3548200450309493
LINE_SAMPLES = 41  # extra grid points across +-5 sigma of each line in a band

# Extinction curves offered (dust_extinction class names) and their R_V when fixed.
MW_LAWS = ("G23",)  # Gordon et al. 2023, 0.0912-32 um, R_V 2.3-5.6
MAGELLANIC_LAWS = ("G03_SMCBar", "G03_LMCAvg", "G03_LMC2", "G24_SMCAvg")
LAWS = MW_LAWS + MAGELLANIC_LAWS
CURVE_GRID_UM = (0.0912, 32.0, 1200)  # where each curve is tabulated once


@dataclass(frozen=True)
class Line:
    kind: str  # emission | absorption
    center_um: float  # rest frame
    fwhm_um: float  # rest frame
    flux_erg_s_cm2: float | None = None  # observed integrated flux
    equivalent_width_um: float | None = None  # rest frame


@dataclass(frozen=True)
class Extinction:
    law: str
    a_v: float
    r_v: float
    applied: str  # before_redshift | after_redshift


# --------------------------------------------------------------------------- extinction


def _law_model(law: str, r_v: float):
    from dust_extinction import averages, parameter_averages

    if law in MW_LAWS:
        return getattr(parameter_averages, law)(Rv=r_v)
    return getattr(averages, law)()


# R_V of the average curves (dust_extinction's class attribute Rv; Gordon et al. 2003, ApJ 594,
# 279 for G03; Gordon et al. 2024, ApJ 970, 51 for G24), kept here so that validating a source
# does not import astropy; tests/engine/test_sources.py checks them against the package.
FIXED_R_V = {"G03_SMCBar": 2.74, "G03_LMCAvg": 3.41, "G03_LMC2": 2.76, "G24_SMCAvg": 3.02}


def fixed_r_v(law: str) -> float | None:
    """R_V of an average curve (None for a curve that takes R_V as a parameter)."""
    return FIXED_R_V.get(law)


@lru_cache(maxsize=32)
def extinction_curve(law: str, r_v: float) -> tuple[np.ndarray, np.ndarray]:
    """(wavelength um, A_lambda / A_V) tabulated once per curve on CURVE_GRID_UM. Outside a
    curve's own range: toward the red, the Milky Way G23 curve (R_V 3.1) scaled to meet it at
    its red end (the near/mid-IR curve is close to universal); toward the blue, its edge value."""
    import astropy.units as u

    lo, hi, n = CURVE_GRID_UM
    w = np.geomspace(lo, hi, n)
    model = _law_model(law, r_v)
    x_lo, x_hi = model.x_range  # in 1/um
    inside = (1 / w >= x_lo) & (1 / w <= x_hi)
    k = np.empty_like(w)
    k[inside] = model(w[inside] * u.micron)
    red_edge = 1.0 / x_lo
    if np.any(w > red_edge):
        mw = _law_model("G23", 3.1)
        scale = float(model(red_edge * u.micron) / mw(red_edge * u.micron))
        k[w > red_edge] = scale * mw(w[w > red_edge] * u.micron)
    k[w < 1.0 / x_hi] = float(model((1.0 / x_hi) * u.micron))
    w.setflags(write=False)
    k.setflags(write=False)
    return w, k


def a_lambda_over_a_v(law: str, r_v: float, wave_um: np.ndarray) -> np.ndarray:
    w, k = extinction_curve(law, r_v)
    return np.interp(np.log(wave_um), np.log(w), k)


def extinction_factor(ext: Extinction | None, wave_um: np.ndarray) -> np.ndarray:
    if ext is None or ext.a_v == 0:
        return np.ones_like(np.asarray(wave_um, dtype=float))
    return 10.0 ** (-0.4 * ext.a_v * a_lambda_over_a_v(ext.law, ext.r_v, wave_um))


# --------------------------------------------------------------------------- lines


def _gauss(x: np.ndarray, center: float, fwhm: float) -> np.ndarray:
    """Unit-area Gaussian [1/um]."""
    s = fwhm / FWHM_SIGMA
    return np.exp(-0.5 * ((x - center) / s) ** 2) / (s * np.sqrt(2 * np.pi))


def ew_factor(lines: tuple[Line, ...], rest_um: np.ndarray) -> np.ndarray:
    out = np.ones_like(rest_um)
    for ln in lines:
        if ln.equivalent_width_um is not None:
            sign = 1.0 if ln.kind == "emission" else -1.0
            out = out * (1.0 + sign * ln.equivalent_width_um * _gauss(rest_um, ln.center_um,
                                                                      ln.fwhm_um))
    return np.maximum(out, 0.0)


def flux_lines_jy(lines: tuple[Line, ...], redshift: float, wave_um: np.ndarray) -> np.ndarray:
    """f_nu [Jy] of the lines given by an observed integrated flux (absorption negative)."""
    out = np.zeros_like(wave_um)
    for ln in lines:
        if ln.flux_erg_s_cm2 is not None:
            sign = 1.0 if ln.kind == "emission" else -1.0
            f_lam = ln.flux_erg_s_cm2 * _gauss(wave_um, ln.center_um * (1 + redshift),
                                               ln.fwhm_um * (1 + redshift))  # per um
            out += sign * f_lam * wave_um**2 / C_UM_S / phys.JY_CGS
    return out


def wave_grid(lines: tuple[Line, ...], redshift: float, base: np.ndarray) -> np.ndarray:
    """``base`` plus LINE_SAMPLES points across each line that falls inside it, so that a line
    narrower than the base grid's step is integrated, not missed."""
    extra = []
    for ln in lines:
        c, s = ln.center_um * (1 + redshift), ln.fwhm_um * (1 + redshift) / FWHM_SIGMA
        pts = np.linspace(c - 5 * s, c + 5 * s, LINE_SAMPLES)
        extra.append(pts[(pts > base[0]) & (pts < base[-1])])
    if not extra:
        return base
    return np.unique(np.concatenate([base, *extra]))


# --------------------------------------------------------------------------- the spectrum


def continuum(src, rest_um: np.ndarray) -> np.ndarray:
    spec = src.spectrum
    if spec.kind == "uploaded":
        tw, tf = spec.table
        return np.interp(rest_um, tw, tf, left=0.0, right=0.0)
    return phys.spectrum_shape(spec, rest_um, 0.0)


def shape(src, wave_um: np.ndarray) -> np.ndarray:
    """g(lambda): the observed spectrum before normalization, without the flux lines."""
    rest = np.asarray(wave_um, dtype=float) / (1.0 + src.redshift)
    g = continuum(src, rest) * ew_factor(src.lines, rest)
    for ext in src.extinction:
        g = g * extinction_factor(ext, rest if ext.applied == "before_redshift" else wave_um)
    return g


def band_mean_fnu(fnu: np.ndarray, wave_um: np.ndarray, filt: inst.Filter) -> float:
    """Photon-weighted mean f_nu in a band: int f_nu T dln(lambda) / int T dln(lambda)."""
    t = phys.throughput(filt, wave_um)
    lnw = np.log(wave_um)
    return float(np.trapezoid(fnu * t, lnw) / np.trapezoid(t, lnw))


def band_filter(name: str) -> inst.Filter:
    where = inst.find_filter(name)
    if where is None:
        raise KeyError(name)
    return inst.mode(*where).filters[name]


def _reference(src) -> float:
    norm = src.normalization
    if norm.bandpass:
        filt = band_filter(norm.bandpass)
        w = wave_grid(src.lines, src.redshift, phys.band_grid(filt))
        return band_mean_fnu(shape(src, w), w, filt)
    return float(shape(src, np.array([norm.wavelength_um]))[0])


def observed_fnu_jy(src, wave_um: np.ndarray, field: str = "source") -> np.ndarray:
    """The source's observed f_nu [Jy] on ``wave_um`` (see the module docstring); a spectrum
    that is zero where it is normalized raises ValidationError naming ``field.normalization``."""
    ref = _reference(src)
    if not np.isfinite(ref) or ref <= 0:
        from .validation import ValidationError

        where = (f"in {src.normalization.bandpass}" if src.normalization.bandpass
                 else f"at {src.normalization.wavelength_um:g} um")
        raise ValidationError(f"{field}.normalization",
                              f"the spectrum is zero {where}: nothing to normalize")
    target = phys.normalization_jy(src.normalization.value, src.normalization.unit)
    w = np.asarray(wave_um, dtype=float)
    return np.maximum(target * shape(src, w) / ref + flux_lines_jy(src.lines, src.redshift, w),
                      0.0)
