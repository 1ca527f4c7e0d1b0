"""The zodiacal light for a target (RA/Dec J2000) and a date, or a percentile of its year.

The engine's benchmark background (physics.background_mjy_sr) is the JWST ETC's benchmark
zodiacal light at one position and date. For another target and date its two zodiacal parts
are scaled by how much brighter or fainter the zodiacal cloud is along that line of sight than
along the benchmark's: scattered sunlight by the ratio of the scattered intensity, thermal
emission by the ratio of the thermal intensity at each wavelength. The thermal and stray
light of the observatory are unchanged.

The cloud is the smooth cloud of the DIRBE zodiacal model (Kelsall et al. 1998, ApJ 508, 44,
Table 1: a fan-shaped density n = R_c^-alpha exp(-beta g^gamma) about a plane inclined 2.03 deg
with its ascending node at 77.7 deg and a centre offset from the Sun by (0.0119, 0.00548,
-0.00215) AU, temperature 286 K R^-0.467, cut at 5.2 AU; the bands and the circumsolar ring,
a few per cent, are left out), integrated along the line of sight from
L2 (1.01 x the Sun-Earth distance); its scattered light uses the model's phase function. Only
the model's *shape* is used: its absolute level is the benchmark's.

No astropy here (its import costs seconds in a sandbox child): the Sun's ecliptic longitude
comes from the Astronomical Almanac's low-precision formula (0.01 deg, 1950-2050), corrected
to the J2000 equinox, and the ecliptic coordinates from the J2000 obliquity; the tests check
both against ``astropy.coordinates``. A date is observable when the solar elongation lies in
JWST's field of regard, 85-135 deg. A percentile ranks the observable days of one year
(``PERCENTILE_YEAR``) by the zodiacal light at the band's pivot: low 10 %, medium 50 %,
high 90 %, as the JWST backgrounds tool's levels.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

OBLIQUITY_J2000_DEG = 23.4392911
ELONGATION_MIN_DEG, ELONGATION_MAX_DEG = 85.0, 135.0
PERCENTILES = {"low": 10.0, "medium": 50.0, "high": 90.0}
PERCENTILE_YEAR = 2027
L2_FACTOR = 1.01  # Sun-L2 / Sun-Earth distance
# The benchmark's line of sight (the JWST ETC "benchmark" background: pandeia's minzodi
# position, RA 17h26m44s Dec -73d19m56s, on 2019-06-19)
BENCHMARK = (261.68333, -73.33222, "2019-06-19")

# Kelsall et al. 1998, Table 1 (smooth cloud) and Table 2 (phase function at 1.25 um); the
# source of each figure is listed in docs/engine.md ("Backgrounds for a target and date")
ALPHA, BETA, GAMMA, MU = 1.34, 4.14, 0.942, 0.189
INCLINATION_DEG, NODE_DEG = 2.03, 77.7
CLOUD_OFFSET_AU = (0.0119, 0.00548, -0.00215)  # the cloud's centre, heliocentric ecliptic
T0_K, DELTA = 286.0, 0.467
R_MAX_AU = 5.2
PHASE_C = (-0.942, 0.121, -0.165)
# wavelengths [um] at which the thermal ratio is computed (log-interpolated between)
THERMAL_WAVES = np.geomspace(0.6, 30.0, 14)
_S = R_MAX_AU + 1.1  # the longest line of sight inside the cloud from L2
_STEPS = (np.linspace(0.0, 1.0, 241)[1:] ** 2) * _S  # dense near the observer


@dataclass(frozen=True)
class Background:
    """A target and either a date (``YYYY-MM-DD``) or a percentile (low, medium, high)."""

    ra_deg: float
    dec_deg: float
    date: str | None = None
    percentile: str | None = None


@dataclass(frozen=True)
class Sight:
    """Where the target is seen from on one day."""

    date: str
    ecliptic_lon_deg: float
    ecliptic_lat_deg: float
    elongation_deg: float
    sun_lon_deg: float

    @property
    def observable(self) -> bool:
        return ELONGATION_MIN_DEG <= self.elongation_deg <= ELONGATION_MAX_DEG


def ecliptic(ra_deg: float, dec_deg: float) -> tuple[float, float]:
    """(longitude, latitude) [deg] on the J2000 mean ecliptic of an ICRS/J2000 position."""
    a, d, e = np.radians(ra_deg), np.radians(dec_deg), np.radians(OBLIQUITY_J2000_DEG)
    lat = np.arcsin(np.sin(d) * np.cos(e) - np.cos(d) * np.sin(e) * np.sin(a))
    lon = np.arctan2(np.sin(a) * np.cos(e) + np.tan(d) * np.sin(e), np.cos(a))
    return float(np.degrees(lon) % 360.0), float(np.degrees(lat))


def _days_since_j2000(day: dt.date | np.ndarray) -> np.ndarray:
    """Days from J2000.0 (2000-01-01 12h) to 0h UT of ``day`` (a date or day numbers)."""
    if isinstance(day, dt.date):
        return np.asarray((day - dt.date(2000, 1, 1)).days - 0.5)
    return np.asarray(day, dtype=float)


def sun(day: dt.date | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Sun's geocentric ecliptic longitude [deg, J2000 equinox] and distance [AU]."""
    n = _days_since_j2000(day)
    mean_lon = 280.460 + 0.9856474 * n
    g = np.radians(357.528 + 0.9856003 * n)
    lon = mean_lon + 1.915 * np.sin(g) + 0.020 * np.sin(2 * g)
    lon = lon - 1.3970 * n / 36525.0  # general precession: equinox of date -> J2000
    dist = 1.00014 - 0.01671 * np.cos(g) - 0.00014 * np.cos(2 * g)
    return lon % 360.0, dist


def elongation(lon_deg: float, lat_deg: float, sun_lon_deg: np.ndarray) -> np.ndarray:
    """Angle [deg] between the Sun (on the ecliptic) and a direction."""
    c = np.cos(np.radians(lat_deg)) * np.cos(np.radians(lon_deg - np.asarray(sun_lon_deg)))
    return np.degrees(np.arccos(np.clip(c, -1.0, 1.0)))


_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def parse_date(text: str) -> dt.date:
    """``YYYY-MM-DD`` between 1950 and 2050 (the Sun formula's range); ValueError else."""
    if not isinstance(text, str) or not _DATE.fullmatch(text):
        raise ValueError("not a date YYYY-MM-DD")
    day = dt.date.fromisoformat(text)
    if not 1950 <= day.year <= 2050:
        raise ValueError("a date between 1950-01-01 and 2050-12-31")
    return day


def sight(ra_deg: float, dec_deg: float, date: str) -> Sight:
    lon, lat = ecliptic(ra_deg, dec_deg)
    sun_lon, _ = sun(parse_date(date))
    e = float(elongation(lon, lat, sun_lon))
    return Sight(date, lon, lat, e, float(sun_lon))


def windows(ra_deg: float, dec_deg: float, year: int = PERCENTILE_YEAR) -> list[tuple[str, str]]:
    """The observable stretches of ``year`` as (first day, last day)."""
    days, ok = _year(ra_deg, dec_deg, year)[:2]
    out, start = [], None
    for day, good in zip(days, ok, strict=True):
        if good and start is None:
            start = day
        if not good and start is not None:
            out.append((start.isoformat(), (day - dt.timedelta(days=1)).isoformat()))
            start = None
    if start is not None:
        out.append((start.isoformat(), days[-1].isoformat()))
    return out


def _year(ra_deg: float, dec_deg: float, year: int):
    first = dt.date(year, 1, 1)
    days = [first + dt.timedelta(days=i) for i in range((dt.date(year + 1, 1, 1) - first).days)]
    lon, lat = ecliptic(ra_deg, dec_deg)
    sun_lon, sun_dist = sun(_days_since_j2000(first) + np.arange(len(days)))
    e = elongation(lon, lat, sun_lon)
    ok = (e >= ELONGATION_MIN_DEG) & (e <= ELONGATION_MAX_DEG)
    return days, ok, (lon, lat), sun_lon, sun_dist, e


# --------------------------------------------------------------------------- the cloud


def _planck_nu(wave_um: np.ndarray, temp_k: np.ndarray) -> np.ndarray:
    x = 14387.7688 / (wave_um * temp_k)  # h c / (k lambda T), lambda in um
    return np.where(x < 700, 1.0 / (wave_um ** 3 * np.expm1(np.minimum(x, 700))), 0.0)


def cloud_density(px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> np.ndarray:
    """The smooth cloud's density (units of n0) at heliocentric ecliptic positions [AU]:
    Kelsall et al. 1998 eqs. 2-6, about the cloud's offset centre, zero beyond R_MAX_AU."""
    xc, yc, zc = px - CLOUD_OFFSET_AU[0], py - CLOUD_OFFSET_AU[1], pz - CLOUD_OFFSET_AU[2]
    rc = np.sqrt(xc * xc + yc * yc + zc * zc)
    i, node = np.radians(INCLINATION_DEG), np.radians(NODE_DEG)
    z = xc * np.sin(i) * np.sin(node) - yc * np.sin(i) * np.cos(node) + zc * np.cos(i)
    zeta = np.abs(z) / rc
    g = np.where(zeta < MU, zeta ** 2 / (2 * MU), zeta - MU / 2)
    r = np.sqrt(px * px + py * py + pz * pz)
    return np.where(r <= R_MAX_AU, rc ** -ALPHA * np.exp(-BETA * g ** GAMMA), 0.0)


def phase_function(theta_rad: np.ndarray) -> np.ndarray:
    """Kelsall et al. 1998 eq. 10 without its normalization (which cancels in the ratios):
    C0 + C1 theta + exp(C2 theta), theta the scattering angle (0: forward)."""
    return PHASE_C[0] + PHASE_C[1] * theta_rad + np.exp(PHASE_C[2] * theta_rad)


def cloud_intensity(lon_deg: float, lat_deg: float, sun_lon_deg: np.ndarray,
                    sun_dist_au: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(scattered, thermal at THERMAL_WAVES) line-of-sight integrals of the smooth cloud,
    arbitrary units, for each (Sun longitude, distance): shapes (days,), (days, waves)."""
    sl = np.radians(np.atleast_1d(sun_lon_deg))[:, None]
    r_obs = L2_FACTOR * np.atleast_1d(sun_dist_au)[:, None]
    lam, bet = np.radians(lon_deg), np.radians(lat_deg)
    u = np.array([np.cos(bet) * np.cos(lam), np.cos(bet) * np.sin(lam), np.sin(bet)])
    # heliocentric positions along the line of sight; the observer is opposite the Sun
    px = -r_obs * np.cos(sl) + _STEPS * u[0]
    py = -r_obs * np.sin(sl) + _STEPS * u[1]
    pz = np.zeros_like(sl) + _STEPS * u[2]
    r = np.sqrt(px * px + py * py + pz * pz)
    dens = cloud_density(px, py, pz)
    cos_theta = -(px * u[0] + py * u[1] + pz * u[2]) / r  # sunlight out, scattered to us
    phase = phase_function(np.arccos(np.clip(cos_theta, -1.0, 1.0)))
    scattered = np.trapezoid(dens * phase / r ** 2, _STEPS, axis=-1)
    temp = T0_K * r ** -DELTA
    planck = _planck_nu(THERMAL_WAVES[None, :, None], temp[:, None, :])
    thermal = np.trapezoid(dens[:, None, :] * planck, _STEPS, axis=-1)
    return scattered, thermal


@lru_cache(maxsize=1)
def _benchmark() -> tuple[float, np.ndarray]:
    ra, dec, date = BENCHMARK
    lon, lat = ecliptic(ra, dec)
    sun_lon, sun_dist = sun(parse_date(date))
    s, t = cloud_intensity(lon, lat, sun_lon, sun_dist)
    return float(s[0]), t[0]


def ratios(lon_deg: float, lat_deg: float, sun_lon_deg: np.ndarray, sun_dist_au: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """(scattered ratio (days,), thermal ratio (days, THERMAL_WAVES)) to the benchmark."""
    s, t = cloud_intensity(lon_deg, lat_deg, sun_lon_deg, sun_dist_au)
    s0, t0 = _benchmark()
    return s / s0, t / t0


def thermal_factor(ratio_at_waves: np.ndarray, wave_um: np.ndarray) -> np.ndarray:
    """The thermal ratio at any wavelength (log-interpolated, the ends held)."""
    lw = np.log(np.clip(np.asarray(wave_um, dtype=float), THERMAL_WAVES[0], THERMAL_WAVES[-1]))
    return np.interp(lw, np.log(THERMAL_WAVES), ratio_at_waves)


# --------------------------------------------------------------------------- per calculation


@dataclass(frozen=True)
class Zodi:
    """The zodiacal parts' factors against the benchmark, and the day they are for."""

    scattered: float
    thermal_ratios: tuple[float, ...]  # at THERMAL_WAVES
    sight: Sight
    percentile: str | None = None

    def thermal(self, wave_um: np.ndarray) -> np.ndarray:
        return thermal_factor(np.array(self.thermal_ratios), wave_um)

    def to_dict(self) -> dict:
        s = self.sight
        return {"kind": "target", "date": s.date, "percentile": self.percentile,
                "ecliptic_lon_deg": round(s.ecliptic_lon_deg, 4),
                "ecliptic_lat_deg": round(s.ecliptic_lat_deg, 4),
                "elongation_deg": round(s.elongation_deg, 3),
                "sun_lon_deg": round(s.sun_lon_deg, 4),
                "zodi_scattered_factor": self.scattered,
                "zodi_thermal_factor_12um": float(self.thermal(np.array(12.0)))}


def not_observable(ra_deg: float, dec_deg: float, date: str) -> str | None:
    """Why the target cannot be observed on ``date`` (a one-line message), or None."""
    s = sight(ra_deg, dec_deg, date)
    if s.observable:
        return None
    spans = windows(ra_deg, dec_deg, parse_date(date).year)
    when = ", ".join(f"{a} to {b}" for a, b in spans) or "never"
    return (f"not observable on {date}: the solar elongation is {s.elongation_deg:.1f} deg, "
            f"outside JWST's {ELONGATION_MIN_DEG:.0f}-{ELONGATION_MAX_DEG:.0f} deg; "
            f"observable in {parse_date(date).year}: {when}")


def _zodi_at(parts: tuple[np.ndarray, np.ndarray], s: np.ndarray, t: np.ndarray,
             wave_um: float) -> np.ndarray:
    """Zodiacal light [MJy/sr] at one wavelength for each day's ratios."""
    scat, therm = parts
    t_at = np.array([thermal_factor(row, np.array(wave_um)) for row in np.atleast_2d(t)])
    return scat * s + therm * t_at


@lru_cache(maxsize=64)
def _percentile_day(ra_deg: float, dec_deg: float, level: str, pivot_um: float,
                    parts: tuple[float, float]) -> Zodi:
    days, ok, (lon, lat), sun_lon, sun_dist, e = _year(ra_deg, dec_deg, PERCENTILE_YEAR)
    idx = np.flatnonzero(ok)
    s, t = ratios(lon, lat, sun_lon[idx], sun_dist[idx])
    z = _zodi_at((np.array(parts[0]), np.array(parts[1])), s, t, pivot_um)
    order = np.argsort(z, kind="stable")
    k = order[int(round(PERCENTILES[level] / 100.0 * (len(order) - 1)))]
    day = idx[k]
    s_ = Sight(days[day].isoformat(), lon, lat, float(e[day]), float(sun_lon[day]))
    return Zodi(float(s[k]), tuple(float(x) for x in t[k]), s_, level)


def zodi(bg: Background, pivot_um: float, parts: tuple[float, float]) -> Zodi:
    """The factors for a target and date or percentile. ``parts``: the benchmark's scattered
    and thermal zodiacal light [MJy/sr] at the pivot (to rank the days of a percentile)."""
    if bg.percentile is not None:
        return _percentile_day(bg.ra_deg, bg.dec_deg, bg.percentile, pivot_um, parts)
    s_ = sight(bg.ra_deg, bg.dec_deg, bg.date or BENCHMARK[2])
    sun_lon, sun_dist = sun(parse_date(s_.date))
    s, t = ratios(s_.ecliptic_lon_deg, s_.ecliptic_lat_deg, sun_lon, sun_dist)
    return Zodi(float(s[0]), tuple(float(x) for x in t[0]), s_)


def over_year(ra_deg: float, dec_deg: float, wave_um: float, parts: tuple[float, float],
              year: int = PERCENTILE_YEAR) -> tuple[list[dt.date], np.ndarray, np.ndarray]:
    """(days, zodiacal light [MJy/sr] at ``wave_um`` each day, observable) for the plot;
    NaN on days with the Sun closer than 45 deg to the line of sight (never observable)."""
    days, ok, e, s, t = _year_ratios(ra_deg, dec_deg, year)
    z = _zodi_at((np.array(parts[0]), np.array(parts[1])), s, t, wave_um)
    return list(days), np.where(e >= 45.0, z, np.nan), ok.copy()


@lru_cache(maxsize=64)
def _year_ratios(ra_deg: float, dec_deg: float, year: int
                 ) -> tuple[tuple[dt.date, ...], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(days, observable, elongation, scattered and thermal ratios) of every day of ``year``:
    the line-of-sight integrals of 365 days, the costly part of ``over_year``, cached per
    target and year (they do not depend on the wavelength); the arrays are read-only."""
    days, ok, (lon, lat), sun_lon, sun_dist, e = _year(ra_deg, dec_deg, year)
    s, t = ratios(lon, lat, sun_lon, sun_dist)
    for a in (ok, e, s, t):
        a.flags.writeable = False
    return tuple(days), ok, e, s, t


@dataclass(frozen=True)
class Scale:
    """Constant factors for the two zodiacal parts (what physics.background_mjy_sr takes)."""

    scattered: float
    thermal_factor: float

    def thermal(self, wave_um: np.ndarray) -> float:
        return self.thermal_factor


def benchmark_parts(wave_um: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The benchmark's scattered and thermal zodiacal light [MJy/sr] (physics' model)."""
    from .physics import background_mjy_sr

    none = background_mjy_sr(wave_um, 1.0, Scale(0.0, 0.0))
    return (background_mjy_sr(wave_um, 1.0, Scale(1.0, 0.0)) - none,
            background_mjy_sr(wave_um, 1.0, Scale(0.0, 1.0)) - none)


@lru_cache(maxsize=128)
def zodi_at_pivot(bg: Background, pivot_um: float) -> Zodi:
    """``zodi`` for a calculation whose band has this pivot (cached per process)."""
    scat, therm = benchmark_parts(np.array([pivot_um]))
    return zodi(bg, pivot_um, (float(scat[0]), float(therm[0])))
