"""Engine vs JWST's published point-source continuum sensitivities (S/N = 10 in ~10 ks).

Published values:
- NIRCam (nJy): JDox "NIRCam Sensitivity" / "NIRCam Imaging" table of 10-sigma, 10 ks
  point-source limits for the wide filters (https://jwst-docs.stsci.edu/jwst-near-infrared-camera/
  nircam-performance/nircam-sensitivity), benchmark background, SW aperture 0.08" (annulus
  0.6-0.99"), LW 0.16" (annulus 1.2-1.98").
- MIRI (uJy): JDox "MIRI Sensitivity" Table 1, ETC 4.0, FULL array, low background
  (https://jwst-docs.stsci.edu/jwst-mid-infrared-instrument/miri-performance/miri-sensitivity).

Filters checked: six NIRCam ones within 30% and the three that were within 10% stay there
(F200W F277W F444W); MIRI F770W-F2550W within 10% (issue 16), F560W within 15% (still 13%
optimistic, see docs/engine.md); F070W/F090W are printed for information.
"""

from etckit.engine import instruments as inst
from etckit.engine import limiting_flux
from etckit.engine import physics as phys

NIRCAM_NJY = {"F070W": 22.5, "F090W": 15.3, "F115W": 13.2, "F150W": 10.6, "F200W": 9.1,
              "F277W": 14.3, "F356W": 12.1, "F444W": 23.6}
MIRI_UJY = {"F560W": 0.13, "F770W": 0.24, "F1000W": 0.46, "F1130W": 1.02, "F1280W": 0.83,
            "F1500W": 1.18, "F1800W": 2.42, "F2100W": 4.70, "F2550W": 15.3}
CHECKED = {"F115W", "F150W", "F200W", "F277W", "F356W", "F444W"} | set(MIRI_UJY)
NIRCAM_WITHIN_10 = {"F200W", "F277W", "F444W"}
TOLERANCE = {"nJy": 0.30, "uJy": 0.10}
# F560W: the engine matches Pandeia 4.0 with the table's setup; the cruciform is modelled from
# the cited figures and does not close it (docs/engine.md); no per-filter factor.
MIRI_KNOWN_GAP = {"F560W": 0.15}


def nircam_setup(filt: str) -> dict:
    # MEDIUM8 x 10 groups x 9 exposures = 9.57 ks (JDox: MEDIUM8, >= 4 exposures)
    _, mode = inst.find_filter(filt)
    return {"instrument": "nircam", "mode": mode, "filter": filt, "readout_pattern": "MEDIUM8",
            "groups": 10, "integrations": 1, "exposures": 9}


def miri_setup(filt: str) -> dict:
    # FASTR1 with as many groups (<= 100) as keep the sky below 80% of full well, ~10 ks
    m = inst.mode("miri", "imaging")
    bg = phys.background_rate_per_pixel(m.filters[filt], m.pixel_scale_arcsec)
    groups = int(min(100, 0.8 * m.full_well_e / (bg * m.frame_time_s)))
    nint = max(1, round(10000 / (groups * m.frame_time_s)))
    return {"instrument": "miri", "mode": "imaging", "filter": filt, "readout_pattern": "FASTR1",
            "groups": groups, "integrations": nint, "exposures": 1}


def table() -> list[tuple[str, float, float, str]]:
    rows = []
    for f, pub in NIRCAM_NJY.items():
        rows.append((f, limiting_flux(nircam_setup(f)) * 1e9, pub, "nJy"))
    for f, pub in MIRI_UJY.items():
        rows.append((f, limiting_flux(miri_setup(f)) * 1e6, pub, "uJy"))
    return rows


def test_sensitivity_matches_published():
    rows = table()
    print("\nfilter   engine   published  unit  engine/published  checked")
    for f, eng, pub, unit in rows:
        print(f"{f:7s} {eng:8.3f} {pub:9.3f}  {unit}  {eng / pub:8.2f}          "
              f"{'yes' if f in CHECKED else 'info'}")
    bad = [(f, round(eng / pub, 3)) for f, eng, pub, unit in rows
           if f in CHECKED and abs(eng / pub - 1) > MIRI_KNOWN_GAP.get(f, TOLERANCE[unit])]
    assert not bad, f"outside the tolerance: {bad}"
    bad10 = [(f, round(eng / pub, 2)) for f, eng, pub, _ in rows
             if f in NIRCAM_WITHIN_10 and abs(eng / pub - 1) > 0.10]
    assert not bad10, f"NIRCam outside 10%: {bad10}"
    # every filter, checked or not, within a factor 3
    assert all(1 / 3 <= eng / pub <= 3 for _, eng, pub, _ in rows)
