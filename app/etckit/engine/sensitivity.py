"""Limiting sensitivity: the point-source flux density that reaches a given S/N."""

from __future__ import annotations

import dataclasses
import math

from . import detector as det
from . import instruments as inst
from .calculator import build_images, measure
from .validation import ValidationError, validate_calculation, validate_scene, validate_source


def limiting_flux(calculation: dict, snr: float = 10.0, spectrum: dict | None = None) -> float:
    """Flux density [Jy] at the filter's pivot wavelength of a point source at the aperture
    centre that reaches ``snr`` with the calculation's setup (flat f_nu unless ``spectrum``).

    Variance is linear in the source rate (while nothing saturates), so two evaluations, at
    zero and at a reference flux, give S/N(f) = s f / sqrt(V0 + V1 f) exactly; solved as a
    quadratic."""
    calc = validate_calculation(calculation)
    if calc.spectroscopic:
        raise ValidationError("calculation.mode", "limiting_flux is for imaging; a "
                              "spectroscopic mode's is spectroscopy.limiting_flux_spectrum")
    mode = inst.mode(calc.instrument, calc.mode)
    filt = mode.filters[calc.filter]
    ref_jy = 1e-6
    src = validate_source({
        "shape": {"kind": "point"}, "spectrum": spectrum or {"kind": "flat"},
        "normalization": {"value": ref_jy, "unit": "Jy", "wavelength_um": filt.pivot_um},
    })
    scene = validate_scene([{"source_id": "s"}])
    images = build_images(calc, scene, {"s": src})
    exp = det.make_exposure(mode, calc.readout_pattern, calc.groups, calc.integrations,
                            calc.exposures)
    m1 = measure(images, exp, mode.full_well_e)
    m0 = measure(dataclasses.replace(images, source=images.source * 0.0), exp, mode.full_well_e)
    s = m1.signal / ref_jy
    v0 = m0.noise**2
    v1 = (m1.noise**2 - v0) / ref_jy
    # s^2 f^2 - snr^2 v1 f - snr^2 v0 = 0
    a, b, c = s * s, -(snr**2) * v1, -(snr**2) * v0
    return (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)
