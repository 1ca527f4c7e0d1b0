"""Backgrounds for a target and date (engine.background): coordinates and the Sun against
astropy, JWST's elongation constraint, and a background for a known target and date against
a hand calculation (the cloud integrated independently with scipy)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import GeocentricMeanEcliptic, SkyCoord, get_sun
from astropy.time import Time
from scipy.integrate import quad

from etckit import engine
from etckit.engine import background as bg
from etckit.engine import instruments as inst
from etckit.engine import physics as phys
from etckit.engine.validation import defaults


@pytest.mark.parametrize("date", ["2019-06-19", "2027-03-01", "2031-09-23", "2046-12-30"])
def test_the_suns_longitude_matches_astropy(date):
    ours, dist = bg.sun(bg.parse_date(date))
    theirs = get_sun(Time(date)).transform_to(GeocentricMeanEcliptic(equinox="J2000"))
    assert abs((float(ours) - theirs.lon.deg + 180) % 360 - 180) < 0.02
    assert float(dist) == pytest.approx(theirs.distance.to(u.AU).value, abs=2e-4)


@pytest.mark.parametrize("ra, dec", [(0, 0), (150, 20), (261.68333, -73.33222), (45, 89)])
def test_ecliptic_coordinates_match_astropy(ra, dec):
    lon, lat = bg.ecliptic(ra, dec)
    c = SkyCoord(ra * u.deg, dec * u.deg).transform_to(GeocentricMeanEcliptic(equinox="J2000"))
    assert lat == pytest.approx(c.lat.deg, abs=0.01)
    assert abs((lon - c.lon.deg + 180) % 360 - 180) * math.cos(math.radians(lat)) < 0.01


def _hand_sun_longitude(date: str) -> float:
    """The Astronomical Almanac's formula written out (J2000 equinox)."""
    y, m, d = (int(x) for x in date.split("-"))
    n = (367 * y - 7 * (y + (m + 9) // 12) // 4 + 275 * m // 9 + d - 730531.5)
    g = math.radians(357.528 + 0.9856003 * n)
    lon = 280.460 + 0.9856474 * n + 1.915 * math.sin(g) + 0.020 * math.sin(2 * g)
    return (lon - 1.397 * n / 36525) % 360


def _hand_cloud(lon: float, lat: float, sun_lon: float, sun_dist: float) -> tuple[float, float]:
    """The smooth cloud's scattered and 12 um thermal line-of-sight integrals, by quad."""
    lam, bet, sl = math.radians(lon), math.radians(lat), math.radians(sun_lon)
    ux, uy, uz = math.cos(bet) * math.cos(lam), math.cos(bet) * math.sin(lam), math.sin(bet)
    ox, oy = -1.01 * sun_dist * math.cos(sl), -1.01 * sun_dist * math.sin(sl)
    i, node = math.radians(2.03), math.radians(77.7)

    def at(s: float) -> tuple[float, float, float]:
        x, y, z = ox + s * ux, oy + s * uy, s * uz
        r = math.sqrt(x * x + y * y + z * z)
        xc, yc, zc = x - 0.0119, y - 0.00548, z + 0.00215  # about the cloud's centre
        rc = math.sqrt(xc * xc + yc * yc + zc * zc)
        height = xc * math.sin(i) * math.sin(node) - yc * math.sin(i) * math.cos(node) \
            + zc * math.cos(i)
        zeta = abs(height) / rc
        g = zeta ** 2 / (2 * 0.189) if zeta < 0.189 else zeta - 0.189 / 2
        dens = rc ** -1.34 * math.exp(-4.14 * g ** 0.942) if r <= 5.2 else 0.0
        theta = math.acos(max(-1.0, min(1.0, -(x * ux + y * uy + z * uz) / r)))
        return dens, r, theta

    def scattered(s: float) -> float:
        dens, r, theta = at(s)
        return dens * (-0.942 + 0.121 * theta + math.exp(-0.165 * theta)) / r ** 2

    def thermal(s: float) -> float:
        dens, r, _ = at(s)
        temp = 286.0 * r ** -0.467
        return dens / (12.0 ** 3 * math.expm1(14387.7688 / (12.0 * temp)))

    return (quad(scattered, 0, 6.3, limit=200)[0], quad(thermal, 0, 6.3, limit=200)[0])


def test_the_smooth_clouds_coefficients_are_kelsall_1998s():
    """Each figure of the smooth cloud against Kelsall et al. 1998 Table 1 / Table 2 (1.25 um
    phase function), as the DIRBE model files give them (docs/engine.md lists the sources)."""
    assert (bg.ALPHA, bg.BETA, bg.GAMMA, bg.MU) == (1.34, 4.14, 0.942, 0.189)
    assert (bg.INCLINATION_DEG, bg.NODE_DEG) == (2.03, 77.7)
    assert bg.CLOUD_OFFSET_AU == (0.0119, 0.00548, -0.00215)
    assert (bg.T0_K, bg.DELTA, bg.R_MAX_AU) == (286.0, 0.467, 5.2)
    assert bg.PHASE_C == (-0.942, 0.121, -0.165)


def test_the_cloud_density_about_its_offset_centre_matches_a_hand_calculation():
    """Density (units of n0) at two heliocentric points, by hand (Kelsall 1998 eqs. 2-6):

    sin i = sin 2.03 deg = 0.0354228, cos i = 0.9993724; sin Om = sin 77.7 deg = 0.9770456,
    cos Om = 0.2130304.

    (1, 0, 0) AU, in the plane near the Earth: X' = (1 - 0.0119, 0 - 0.00548, 0 + 0.00215)
    = (0.9881, -0.00548, 0.00215); R_c = sqrt(0.9881^2 + 0.00548^2 + 0.00215^2) = 0.9881175.
    Z_c = X' sin Om sin i - Y' cos Om sin i + Z' cos i = 0.0341978 + 0.0000414 + 0.0021487
    = 0.0363878; zeta = Z_c / R_c = 0.0368254 < mu, so g = zeta^2 / (2 mu) = 0.00358759;
    g^0.942 = 0.00497307; exp(-4.14 x 0.00497307) = 0.979622; R_c^-1.34 = 1.016147;
    n = 1.016147 x 0.979622 = 0.995440. (Without the offset: R = 1, zeta = sin Om sin i =
    0.0346107, n = 0.981850: the check tells the two apart.)

    (0, 0, 1) AU, above the Sun: X' = (-0.0119, -0.00548, 1.00215), R_c = 1.0022356,
    Z_c = -0.0004119 + 0.0000414 + 1.0015211 = 1.0011506; zeta = 0.9989174 >= mu, so
    g = zeta - mu / 2 = 0.9044174; g^0.942 = 0.9097027; exp(-4.14 x 0.9097027) = 0.0231405;
    R_c^-1.34 = 0.9970121; n = 0.0230714.

    Phase function at 90 deg: -0.942 + 0.121 x 1.5707963 + exp(-0.165 x 1.5707963) =
    -0.942 + 0.1900663 + 0.7716831 = 0.0197494."""
    n = bg.cloud_density(np.array([1.0, 0.0]), np.array([0.0, 0.0]), np.array([0.0, 1.0]))
    assert n[0] == pytest.approx(0.995440, rel=2e-6)
    assert n[1] == pytest.approx(0.0230714, rel=5e-6)
    assert float(bg.phase_function(np.array(math.pi / 2))) == pytest.approx(0.0197494, rel=1e-5)
    assert float(bg.cloud_density(np.array(5.3), np.array(0.0), np.array(0.0))) == 0.0


def test_a_background_for_a_known_target_and_date_matches_a_hand_calculation():
    """RA 0 Dec 0 (the vernal equinox: ecliptic 0, 0) on 2027-06-20: the elongation is the
    Sun's longitude; the background at F200W's pivot is the benchmark's stray light and
    thermal plus its two zodiacal parts, each scaled by the cloud's intensity ratio."""
    date, ra, dec = "2027-06-20", 0.0, 0.0
    sun_lon = _hand_sun_longitude(date)
    assert bg.sight(ra, dec, date).elongation_deg == pytest.approx(sun_lon, abs=1e-3)
    g = math.radians(357.528 + 0.9856003 * (bg._days_since_j2000(bg.parse_date(date))))
    dist = 1.00014 - 0.01671 * math.cos(g) - 0.00014 * math.cos(2 * g)
    s_t, t_t = _hand_cloud(0.0, 0.0, sun_lon, dist)
    b_ra, b_dec, b_date = bg.BENCHMARK
    b_lon, b_lat = bg.ecliptic(b_ra, b_dec)
    g0 = math.radians(357.528 + 0.9856003 * bg._days_since_j2000(bg.parse_date(b_date)))
    s_b, t_b = _hand_cloud(b_lon, b_lat, _hand_sun_longitude(b_date),
                           1.00014 - 0.01671 * math.cos(g0) - 0.00014 * math.cos(2 * g0))
    calc = {**defaults()["calculation"], "background": {"ra_deg": ra, "dec_deg": dec,
                                                        "date": date}}
    d = defaults()
    result = engine.calculate(calc, {"sources": [{"source_id": "s"}]}, {"s": d["source"]})
    pivot = np.array([inst.mode("nircam", "sw_imaging").filters["F200W"].pivot_um])
    bench = phys.background_mjy_sr(pivot)
    scat, therm = bg.benchmark_parts(pivot)
    # the thermal part at 2 um is a few per cent of the zodiacal light: its ratio (checked
    # by hand at 12 um below) is taken from the engine's table
    t_ratio = bg.zodi_at_pivot(bg.Background(ra, dec, date=date), float(pivot[0])).thermal(pivot)
    assert therm[0] < 0.1 * scat[0]
    hand = bench - scat - therm + scat * (s_t / s_b) + therm * t_ratio
    assert result.background["zodi_scattered_factor"] == pytest.approx(s_t / s_b, rel=0.02)
    assert result.background["zodi_thermal_factor_12um"] == pytest.approx(t_t / t_b, rel=0.02)
    assert result.background_mjy_sr == pytest.approx(float(hand[0]), rel=0.02)
    assert result.background["date"] == date and result.background_mjy_sr > 1.3 * bench[0]


def test_the_benchmark_date_gives_the_benchmark_background():
    d = defaults()
    ra, dec, date = bg.BENCHMARK
    calc = {**d["calculation"], "background": {"ra_deg": ra, "dec_deg": dec, "date": date}}
    args = ({"sources": [{"source_id": "s"}]}, {"s": d["source"]})
    assert engine.calculate(calc, *args).background_mjy_sr == pytest.approx(
        engine.calculate(d["calculation"], *args).background_mjy_sr, rel=1e-9)


def test_an_unobservable_date_is_refused_naming_the_field_and_the_windows():
    calc = {**defaults()["calculation"], "background": {"ra_deg": 0, "dec_deg": 0,
                                                        "date": "2027-03-21"}}
    with pytest.raises(engine.ValidationError) as exc:
        engine.normalize_calculation(calc)
    assert exc.value.field == "data.background.date"
    assert "outside JWST's 85-135 deg" in exc.value.message
    assert "2027-06-17 to 2027-08-08" in exc.value.message


@pytest.mark.parametrize("background, field", [
    ({"ra_deg": 0, "dec_deg": 0}, "data.background.date"),
    ({"ra_deg": 0, "dec_deg": 0, "date": "2027-07-01", "percentile": "low"},
     "data.background.date"),
    ({"ra_deg": 0, "dec_deg": 0, "date": "2027-W26-4"}, "data.background.date"),
    ({"ra_deg": 0, "dec_deg": 0, "date": "2077-07-01"}, "data.background.date"),
    ({"ra_deg": 400, "dec_deg": 0, "percentile": "low"}, "data.background.ra_deg"),
    ({"ra_deg": 0, "dec_deg": "x", "percentile": "low"}, "data.background.dec_deg"),
    ({"ra_deg": 0, "dec_deg": 0, "percentile": "lowest"}, "data.background.percentile"),
    ({"ra_deg": 0, "dec_deg": 0, "percentile": "low", "zodi": 1}, "data.background.zodi"),
    ([1], "data.background"),
])
def test_bad_backgrounds_are_refused_naming_the_field(background, field):
    with pytest.raises(engine.ValidationError) as exc:
        engine.normalize_calculation({**defaults()["calculation"], "background": background})
    assert exc.value.field == field


def test_percentiles_rank_the_observable_days():
    d = defaults()
    args = ({"sources": [{"source_id": "s"}]}, {"s": d["source"]})
    levels = {}
    for level in ("low", "medium", "high"):
        calc = {**d["calculation"], "background": {"ra_deg": 150.0, "dec_deg": 20.0,
                                                   "percentile": level}}
        r = engine.calculate(calc, *args)
        assert 85 <= r.background["elongation_deg"] <= 135
        levels[level] = r.background_mjy_sr
        stored = engine.normalize_calculation(calc)
        assert stored["background"] == {"ra_deg": 150.0, "dec_deg": 20.0, "percentile": level}
    assert levels["low"] < levels["medium"] < levels["high"]


def test_the_ecliptic_is_brighter_than_the_pole():
    pole = bg.zodi_at_pivot(bg.Background(270.0, 66.56071, percentile="medium"), 12.0)
    plane = bg.zodi_at_pivot(bg.Background(0.0, 0.0, percentile="medium"), 12.0)
    assert pole.sight.elongation_deg == pytest.approx(90.0, abs=0.05)
    assert plane.thermal(np.array(12.0)) > 1.5 * pole.thermal(np.array(12.0))
