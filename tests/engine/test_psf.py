"""PSF pieces: the radial Gaussian blur, the cruciform table, the thermal background curve."""

import numpy as np
import pytest

from etckit.engine import instruments as inst
from etckit.engine import physics as phys


def test_radial_blur_of_gaussian_adds_widths_in_quadrature():
    r = np.arange(0.0, 0.3, 0.0005)
    s1, s2 = 0.01, 0.0062
    g = np.exp(-0.5 * (r / s1) ** 2) / (2 * np.pi * s1**2)
    out = phys.gaussian_blur_radial(r, g, s2)
    s = np.hypot(s1, s2)
    want = np.exp(-0.5 * (r / s) ** 2) / (2 * np.pi * s**2)
    assert np.max(np.abs(out - want)) < 0.01 * want[0]
    assert abs(np.trapezoid(2 * np.pi * r * out, r) - 1) < 1e-3


def test_cruciform_fades_with_wavelength():
    f = phys.cruciform_fraction(inst.mode("miri", "imaging"), np.array([5.6, 7.7, 10.0, 18.0]))
    assert f[0] > f[1] > f[2] > f[3] == 0.0
    assert np.all(phys.cruciform_fraction(inst.mode("nircam", "sw_imaging"), np.array([1.0])) == 0)


def test_observatory_thermal_dominates_long_wavelengths():
    bg = phys.background_mjy_sr(np.array([12.4, 21.0, 25.5]))
    assert 10 < bg[0] < 25  # zodi ~ observatory near 12.5 um (Rigby et al. 2023)
    assert bg[2] / bg[1] > 3  # steep rise of the self-emission


def test_ipc_is_a_blur_that_keeps_the_light():
    # a kernel moving 16.6 % of the charge to the 4 neighbours: variance 0.083 pixel^2 per axis
    m = inst.mode("miri", "imaging")
    assert phys.ipc_sigma_arcsec(m) == pytest.approx(0.11 * np.sqrt(0.166 / 2))
    r, prof = phys.band_psf_profile("miri", "imaging", "F2550W", 8.0)
    assert np.trapezoid(2 * np.pi * r * prof, r) == pytest.approx(1.0, abs=0.02)


def test_miri_band_psf_reproduces_the_measured_fwhm():
    # the in-flight FWHMs (JDox 'MIRI Point Spread Functions', Dicken et al. 2024) are not an
    # input of the model; the old IPC "halo" put 16.6 % of the light in a 0.22" core instead
    # and made the long-wavelength FWHM 0.26-0.29" against 0.59-0.80" measured
    m = inst.mode("miri", "imaging")
    for name, measured in m.measured_fwhm_arcsec:
        r, prof = phys.band_psf_profile("miri", "imaging", name, 8.0)
        assert phys.profile_fwhm(r, prof) == pytest.approx(measured, rel=0.05), name


def test_profile_fwhm_of_a_gaussian():
    r = np.arange(0.0, 1.0, 0.001)
    assert phys.profile_fwhm(r, np.exp(-0.5 * (r / 0.1) ** 2)) == pytest.approx(0.23548, rel=1e-3)


def test_mid_ir_background_is_the_etc_benchmark_total():
    # total of minzodi_benchmark.fits (pandeia-verification, 2025-08-22), with which the
    # published MIRI limits are computed: our zodi is its infield + straylight columns, our
    # observatory emission the independent thermal curve v4.0, so the sum checks the latter
    bench = {5.6: 1.187, 7.7: 6.483, 10.0: 14.33, 12.8: 27.12, 15.0: 45.29, 18.0: 106.2,
             21.0: 269.0, 25.5: 993.9}
    model = phys.background_mjy_sr(np.array(list(bench)))
    assert model == pytest.approx(list(bench.values()), rel=0.05)
    # below 5 um (NIRCam) the blackbody zodi and the NIRCam stray light are unchanged
    assert phys.background_mjy_sr(np.array([2.0]))[0] == pytest.approx(0.183, rel=0.01)
