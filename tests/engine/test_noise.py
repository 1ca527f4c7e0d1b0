"""Hand-computed cases for the MULTIACCUM formula and aperture photometry."""

import math

import numpy as np
import pytest

from etckit.engine import detector as det
from etckit.engine import instruments as inst
from etckit.engine.calculator import Images, measure


def test_cds_limit_of_rauscher_formula():
    # n=2, m=1: the slope is a difference of two reads -> var = f/t + 2 R^2 / t^2
    f, t, r = 3.0, 10.0, 7.0
    v = det.ramp_rate_variance(f, 2, 1, t, t, r)
    assert v == pytest.approx(f / t + 2 * r**2 / t**2)


def test_rauscher_general_case_by_hand():
    n, m, tf, tg, r, f = 10, 8, 10.73677, 10 * 10.73677, 11.15, 0.5
    read = 12 * (n - 1) / (m * n * (n + 1)) * r**2
    shot = 6 * (n**2 + 1) / (5 * n * (n + 1)) * (n - 1) * tg * f
    frame = 2 * (m**2 - 1) * (n - 1) / (m * n * (n + 1)) * tf * f
    expected = (read + shot - frame) / ((n - 1) * tg) ** 2
    assert float(det.ramp_rate_variance(f, n, m, tf, tg, r)) == pytest.approx(expected, rel=1e-12)


def test_times_nircam_medium8():
    mode = inst.mode("nircam", "sw_imaging")
    e = det.make_exposure(mode, "MEDIUM8", 10, 2, 3)
    tf = 10.73677
    assert e.group_time_s == pytest.approx(10 * tf)
    assert e.integration_time_s == pytest.approx((10 * 10 - 2) * tf)
    assert e.total_exposure_time_s == pytest.approx(6 * (98 * tf + tf))
    assert e.measurement_time_s == pytest.approx(6 * 9 * 10 * tf)


def test_groups_before_saturation():
    mode = inst.mode("miri", "imaging")
    e = det.make_exposure(mode, "FAST", 50, 1, 1)
    rate = mode.full_well_e / (12.5 * 2.775)  # fills the well after 12.5 frames
    assert int(det.groups_before_saturation(np.array([rate]), e, mode.full_well_e)[0]) == 12


def test_aperture_snr_by_hand():
    # one aperture pixel holding 2 e-/s of source, 1 e-/s sky; annulus of 4 pixels
    src = np.zeros((3, 3))
    src[1, 1] = 2.0
    ap = np.zeros((3, 3))
    ap[1, 1] = 1.0
    ann = np.zeros((3, 3))
    ann[0, 1] = ann[1, 0] = ann[2, 1] = ann[1, 2] = 1.0
    img = Images(0.1, src, 1.0, 0.0, ap, ann, 2.0)
    mode = inst.mode("nircam", "lw_imaging")
    e = det.make_exposure(mode, "RAPID", 5, 4, 1)
    m = measure(img, e, mode.full_well_e)
    tg, rn = 10.73677, mode.read_noise_e

    def var(f):
        n = 5
        return (12 * rn**2 / (n * (n**2 - 1) * tg**2) + 1.2 * (n**2 + 1) / (n * (n**2 - 1))
                * f / tg) / 4

    expected = 2.0 / math.sqrt(var(3.0) + 1.0**2 * 4 * var(1.0) / 4**2)
    assert m.signal == pytest.approx(2.0)
    assert m.snr == pytest.approx(expected, rel=1e-12)


def test_miri_slope_leaves_out_the_first_and_last_group():
    # jwst firstframe (NGROUPS > 3) and lastframe (NGROUPS > 2): a MIRI ramp of 10 unsaturated
    # groups is fitted over 8; NIRCam keeps every group
    miri = inst.mode("miri", "imaging")
    assert det.make_exposure(miri, "FAST", 10, 1, 1).fit_groups(10) == 8
    assert det.make_exposure(miri, "FAST", 10, 1, 1).fit_groups(6) == 5  # saturates in group 7
    assert det.make_exposure(miri, "FAST", 3, 1, 1).fit_groups(3) == 2  # only the last dropped
    assert det.make_exposure(miri, "FAST", 2, 1, 1).fit_groups(2) == 2
    nircam = inst.mode("nircam", "sw_imaging")
    assert det.make_exposure(nircam, "RAPID", 10, 1, 1).fit_groups(10) == 10


def test_miri_aperture_snr_uses_the_fitted_groups():
    src = np.zeros((3, 3))
    src[1, 1] = 2.0
    ap = np.zeros((3, 3))
    ap[1, 1] = 1.0
    ann = np.ones((3, 3)) - ap
    img = Images(0.11, src, 1.0, 0.0, ap, ann, 2.0)
    mode = inst.mode("miri", "imaging")
    e = det.make_exposure(mode, "FAST", 12, 1, 1)
    m = measure(img, e, mode.full_well_e)
    tg, rn, n = 2.775, mode.read_noise_e, 10  # 12 groups, 10 fitted

    def var(f):
        return 12 * rn**2 / (n * (n**2 - 1) * tg**2) + 1.2 * (n**2 + 1) / (n * (n**2 - 1)) * f / tg

    assert m.snr == pytest.approx(2.0 / math.sqrt(var(3.0) + var(1.0) / 8), rel=1e-12)
