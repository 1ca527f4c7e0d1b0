"""MULTIACCUM readout: times, up-the-ramp noise and saturation.

Notation (Rauscher et al. 2007, PASP 119, 768): n groups per integration, m frames averaged per
group, d frames skipped between groups, t_f frame time, t_g = (m + d) t_f group time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import instruments as inst


@dataclass(frozen=True)
class Exposure:
    """One exposure specification, resolved to times and per-frame read noise."""

    pattern: inst.Pattern
    groups: int
    integrations: int
    exposures: int
    frame_time_s: float
    read_noise_e: float
    family: str
    drop_first: int = 0  # groups the pipeline discards at the start of each ramp
    drop_last: int = 0  # ... and at its end

    def fit_groups(self, unsaturated: np.ndarray | int) -> np.ndarray:
        """Groups the slope fit uses, given how many stay below full well: the unsaturated
        groups minus those the calibration pipeline discards (MIRI: the first and the last)."""
        last_kept = np.minimum(np.asarray(unsaturated), self.groups - self.drop_last)
        return np.maximum(last_kept - self.drop_first, 0)

    @property
    def nframe(self) -> int:
        return self.pattern.nframe

    @property
    def nskip(self) -> int:
        return self.pattern.nskip

    @property
    def group_time_s(self) -> float:
        return (self.nframe + self.nskip) * self.frame_time_s

    @property
    def n_int_total(self) -> int:
        return self.integrations * self.exposures

    def time_to_group_end(self, k: np.ndarray | int) -> np.ndarray:
        """Time from reset to the last frame of group k (1-based): (k (m+d) - d) t_f."""
        return (np.asarray(k) * (self.nframe + self.nskip) - self.nskip) * self.frame_time_s

    @property
    def integration_time_s(self) -> float:
        """Reset to last read of one integration, (n (m+d) - d) t_f."""
        return float(self.time_to_group_end(self.groups))

    @property
    def total_exposure_time_s(self) -> float:
        """Time the detector spends on the exposures (JDox conventions): NIRCam and NIRSpec add
        one reset frame per integration; MIRI FAST/SLOW none; the R1 patterns one reset group
        between integrations."""
        per_int = self.integration_time_s
        if self.family in ("nircam", "nirspec"):
            return self.n_int_total * (per_int + self.frame_time_s)
        t = self.n_int_total * per_int
        if self.pattern.extra_reset:
            t += self.exposures * (self.integrations - 1) * self.group_time_s
        return t

    @property
    def measurement_time_s(self) -> float:
        """Slope baseline, first to last group, summed over integrations: N (n-1) t_g."""
        return self.n_int_total * (self.groups - 1) * self.group_time_s


def make_exposure(
    mode: inst.Mode, pattern_name: str, groups: int, integrations: int, exposures: int
) -> Exposure:
    pattern = inst.patterns(mode.readout_family)[pattern_name]
    groups = int(groups)
    drops = mode.dropped_groups
    return Exposure(
        pattern=pattern,
        groups=groups,
        integrations=int(integrations),
        exposures=int(exposures),
        frame_time_s=mode.frame_time_s * pattern.frame_time_factor,
        read_noise_e=mode.read_noise_e * pattern.read_noise_factor,
        family=mode.readout_family,
        drop_first=int(groups > drops.first_if_more_than) * drops.first,
        drop_last=int(groups > drops.last_if_more_than) * drops.last,
    )


def ramp_rate_variance(
    rate_e_s: np.ndarray | float,
    n: np.ndarray | float,
    m: int,
    t_f: float,
    t_g: float,
    read_noise_e: float,
) -> np.ndarray:
    """Variance [(e-/s)^2] of the slope fitted to one integration of n groups.

    Rauscher et al. 2007 eq. 1 (with the frame-averaging term as corrected by Robberto 2009,
    JWST-STScI-001721, the form Pandeia uses), divided by the squared ramp length
    ((n-1) t_g)^2 to express it as a rate variance:

        var = 12 R^2 / (m n (n^2-1) t_g^2)
            + 6/5 (n^2+1) / (n (n^2-1)) f / t_g
            - 2 (m^2-1) t_f f / (m n (n^2-1) t_g^2)

    R is the read noise of one frame, f the total rate (source + background + dark).
    Pixels with n < 2 have no slope: their variance is returned as +inf."""
    n = np.asarray(n, dtype=float)
    f = np.asarray(rate_e_s, dtype=float)
    ok = n >= 2
    ns = np.where(ok, n, 2.0)
    d = ns * (ns**2 - 1.0)
    var = (
        12.0 * read_noise_e**2 / (m * d * t_g**2)
        + 1.2 * (ns**2 + 1.0) / d * f / t_g
        - 2.0 * (m**2 - 1.0) * t_f * f / (m * d * t_g**2)
    )
    return np.where(ok, var, np.inf)


def groups_before_saturation(rate_e_s: np.ndarray, exp: Exposure, full_well_e: float) -> np.ndarray:
    """Number of groups (capped at exp.groups) whose last frame stays below full well."""
    rate = np.maximum(np.asarray(rate_e_s, dtype=float), 1e-30)
    # charge after group k = rate * (k (m+d) - d) t_f <= FW  ->  k <= (FW/(rate t_f) + d)/(m+d)
    per_group = exp.nframe + exp.nskip
    kmax = np.floor((full_well_e / (rate * exp.frame_time_s) + exp.nskip) / per_group)
    return np.clip(kmax, 0, exp.groups).astype(int)
