"""The background for a target and date (engine.background) in slit spectroscopy: the sky per
pixel at one wavelength against a hand calculation, and a brighter sky costing S/N."""

from __future__ import annotations

import math

import numpy as np
import pytest

from etckit.engine import ValidationError, calculate, normalize_calculation
from etckit.engine import background as bg
from etckit.engine import instruments as inst
from etckit.engine import physics as phys
from etckit.engine.plots import render
from tests.engine.test_background import _hand_cloud, _hand_sun_longitude

G140M = {"instrument": "nirspec", "mode": "fixed_slit", "disperser": "G140M", "filter": "F100LP",
         "readout_pattern": "NRSIRS2", "groups": 14, "integrations": 1, "exposures": 10,
         "reference_wavelength_um": 1.4}
LRS = {"instrument": "miri", "mode": "lrs_slit", "disperser": "P750L", "filter": None,
       "readout_pattern": "FASTR1", "groups": 180, "integrations": 1, "exposures": 20,
       "reference_wavelength_um": 10.0, "background_subtraction": False}
SCENE = {"sources": [{"source_id": "s"}]}
SRC = {"s": {"shape": {"kind": "point"}, "spectrum": {"kind": "flat"},
             "normalization": {"value": 1.0, "unit": "uJy", "wavelength_um": 1.4}}}
IN_PLANE = {"ra_deg": 0.0, "dec_deg": 0.0, "date": "2027-06-20"}  # ecliptic 0, 0; elong ~89
POLE = {"ra_deg": 270.0, "dec_deg": 66.56071, "date": "2027-06-20"}  # north ecliptic pole


def _distance_au(date: str) -> float:
    g = math.radians(357.528 + 0.9856003 * float(bg._days_since_j2000(bg.parse_date(date))))
    return 1.00014 - 0.01671 * math.cos(g) - 0.00014 * math.cos(2 * g)


def test_sky_per_pixel_at_one_wavelength_matches_a_hand_calculation():
    """At the reference pixel: the benchmark's stray light and thermal parts plus its two
    zodiacal parts, each scaled by the cloud's ratio (integrated by hand with quad), through
    the slit's pixel (0.2" x 0.1"), the PCE and the pixel's d lambda / lambda."""
    date = IN_PLANE["date"]
    r = calculate({**G140M, "background": IN_PLANE}, SCENE, SRC)
    trace = r.images["trace"]
    j = r.spectrum["reference_pixel"]
    lam = float(trace.wave_um[j])
    dlam = float(trace.edges_um[j + 1] - trace.edges_um[j])
    s_t, _ = _hand_cloud(0.0, 0.0, _hand_sun_longitude(date), _distance_au(date))
    b_ra, b_dec, b_date = bg.BENCHMARK
    b_lon, b_lat = bg.ecliptic(b_ra, b_dec)
    s_b, _ = _hand_cloud(b_lon, b_lat, _hand_sun_longitude(b_date), _distance_au(b_date))
    w = np.array([lam])
    scat, therm = bg.benchmark_parts(w)
    assert therm[0] < 0.05 * scat[0]  # at 1.4 um the thermal part is a few per cent
    t_ratio = bg.zodi_at_pivot(bg.Background(0.0, 0.0, date=date), 1.4).thermal(w)
    mjy_sr = phys.background_mjy_sr(w)[0] - scat[0] - therm[0] + scat[0] * s_t / s_b \
        + therm[0] * float(t_ratio[0])
    omega = (0.2 / 206264.806) * (0.1 / 206264.806)
    pce = np.interp(lam, *zip(*inst.spec_mode("nirspec", "fixed_slit")
                              .configurations["G140M/F100LP"].pce, strict=True))
    hand = 25.4e4 * 1e-23 / 6.62607015e-27 * mjy_sr * 1e6 * omega * pce * dlam / lam
    mid = trace.sky.shape[0] // 2
    assert float(trace.sky[mid, j]) == pytest.approx(float(hand), rel=0.02)
    assert r.background["date"] == date
    assert r.background["zodi_scattered_factor"] == pytest.approx(s_t / s_b, rel=0.02)
    bench = calculate(G140M, SCENE, SRC)
    assert bench.background == {"kind": "benchmark"}
    assert trace.sky[mid, j] > 1.3 * bench.images["trace"].sky[mid, j]
    assert r.background_mjy_sr == pytest.approx(float(mjy_sr), rel=0.02)


@pytest.mark.parametrize("calc", [G140M, LRS], ids=["nirspec", "miri_lrs"])
def test_a_brighter_sky_gives_a_lower_snr(calc):
    """The ecliptic plane at 89 deg elongation is brighter than the ecliptic pole on the same
    day: more sky per pixel, less S/N at every wavelength with signal."""
    plane = calculate({**calc, "background": IN_PLANE}, SCENE, SRC)
    pole = calculate({**calc, "background": POLE}, SCENE, SRC)
    assert plane.background_per_pixel_e_s > 1.5 * pole.background_per_pixel_e_s
    assert plane.snr < pole.snr
    a = np.array([np.nan if x is None else x for x in plane.spectrum["snr"]], dtype=float)
    b = np.array([np.nan if x is None else x for x in pole.spectrum["snr"]], dtype=float)
    ok = np.isfinite(a) & np.isfinite(b) & (b > 0.1)
    assert ok.sum() > 50 and np.all(a[ok] < b[ok])


def test_the_background_is_kept_and_checked_for_spectroscopy():
    out = normalize_calculation({**G140M, "background": {**POLE}})
    assert out["background"] == POLE
    pct = normalize_calculation({**G140M, "background": {"ra_deg": 10, "dec_deg": -5,
                                                         "percentile": "high"}})
    assert pct["background"]["percentile"] == "high"
    with pytest.raises(ValidationError) as exc:
        normalize_calculation({**G140M, "background": {**IN_PLANE, "date": "2027-03-21"}})
    assert exc.value.field == "data.background.date"
    with pytest.raises(ValidationError) as exc:
        normalize_calculation({**G140M, "background": ["x"]})
    assert exc.value.field == "data.background"


def test_the_background_plot_of_a_spectroscopic_calculation():
    """Drawn at the reference wavelength (it looked up an imaging filter: KeyError before)."""
    png = render("background", {**G140M, "background": IN_PLANE}, SCENE, SRC)
    assert png.startswith(b"\x89PNG") and len(png) > 5000
