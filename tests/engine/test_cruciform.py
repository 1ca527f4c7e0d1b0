"""The MIRI cruciform model against the data file's own figures (instruments.json,
``instruments.miri.modes.imaging.cruciform``): the monochromatic fraction, its fall to 0 beyond
the last tabulated wavelength, the band PSF's core losing the band-averaged fraction to a wide
disc, and the total light (what an extended source or the background keeps) unchanged."""

import numpy as np
import pytest

from etckit.engine import instruments as inst
from etckit.engine import physics as phys


def _table() -> tuple[np.ndarray, np.ndarray, float]:
    c = inst.raw()["instruments"]["miri"]["modes"]["imaging"]["cruciform"]
    pts = np.array(c["fraction_vs_wavelength"], dtype=float)
    return pts[:, 0], pts[:, 1], float(c["scale_arcsec"])


def _band_fraction(filt: str) -> float:
    # the band weights of band_psf_profile: 7 wavelengths, photon response to a flat f_nu
    f = inst.mode("miri", "imaging").filters[filt]
    waves = f.pivot_um + f.bandwidth_um * np.linspace(-0.45, 0.45, 7)
    wts = phys.throughput(f, waves) / waves
    cw, cf, _ = _table()
    return float(np.dot(wts / wts.sum(), np.interp(waves, cw, cf, right=0.0)))


def _ee(r: np.ndarray, prof: np.ndarray, radius: float) -> float:
    k = r <= radius
    return float(np.trapezoid(2 * np.pi * r[k] * prof[k], r[k]))


def test_fraction_is_the_tabulated_one_and_zero_beyond_the_table():
    m = inst.mode("miri", "imaging")
    cw, cf, _ = _table()
    assert cw[0] == pytest.approx(5.6) and cf[0] > 0.2  # strongest at F560W (Gaspar et al. 2021)
    np.testing.assert_allclose(phys.cruciform_fraction(m, cw), cf)
    mid = 0.5 * (cw[0] + cw[1])
    assert phys.cruciform_fraction(m, np.array([mid]))[0] == pytest.approx(0.5 * (cf[0] + cf[1]))
    beyond = np.array([cw[-1] + 0.01, 18.0, 25.5])
    assert np.all(phys.cruciform_fraction(m, beyond) == 0.0)
    assert np.all(phys.cruciform_fraction(inst.mode("nircam", "lw_imaging"), cw) == 0.0)


def _profiles(filt: str, no_cruc: bool, monkeypatch) -> tuple[np.ndarray, np.ndarray]:
    phys.band_psf_profile.cache_clear()
    if no_cruc:
        monkeypatch.setattr(phys, "cruciform_fraction",
                            lambda m, w: np.zeros_like(np.asarray(w, float)))
    r, prof = phys.band_psf_profile("miri", "imaging", filt, 40.0)
    monkeypatch.undo()
    phys.band_psf_profile.cache_clear()
    return r, prof


@pytest.mark.parametrize("filt", ["F560W", "F770W"])
def test_core_loses_the_band_fraction_and_the_total_is_kept(filt, monkeypatch):
    r, with_c = _profiles(filt, False, monkeypatch)
    r0, without = _profiles(filt, True, monkeypatch)
    f = _band_fraction(filt)
    b = _table()[2]
    # the total light is unchanged: an extended source (the PSF-convolved scene) or the
    # uniform background keeps its flux; only a point source's core gives some of it away
    assert _ee(r, with_c, 40.0) == pytest.approx(_ee(r0, without, 40.0), abs=0.005)
    for radius in (0.3, 0.5, 1.0):  # photometric apertures of a few FWHM
        disc = 1 - (1 + radius / b) * np.exp(-radius / b)  # exponential disc's enclosed light
        want = (1 - f) * _ee(r0, without, radius) + f * disc
        assert _ee(r, with_c, radius) == pytest.approx(want, abs=0.01)
    assert _ee(r, with_c, 0.5) < _ee(r0, without, 0.5) * (1 - 0.8 * f)


def test_no_cruciform_beyond_the_cutoff(monkeypatch):
    assert _band_fraction("F1800W") == 0.0
    r, with_c = _profiles("F1800W", False, monkeypatch)
    _, without = _profiles("F1800W", True, monkeypatch)
    np.testing.assert_allclose(with_c, without)
