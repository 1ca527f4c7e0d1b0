"""Cost limits: refuse, before any array is made, a calculation that would cost too much.

What drives the cost of a calculation (see docs/engine.md, "Cost limits"): the scene image is
drawn on a sub-pixel grid that covers the background annulus, so its size grows with the
annulus radius squared and the filter's oversampling; every placed source is evaluated on the
whole grid (a point source samples the PSF there, an extended source draws its profile there;
the extended ones then share one FFT convolution).  Sizes and offsets are bounded too, so that
the image stamp holds what the scene places.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from . import instruments as inst
from .physics import lambda_over_d_arcsec
from .validation import Calculation, FieldError, Scene, Source


class TooExpensive(FieldError):
    """A calculation exceeds a cost limit (or its time/memory cap): ``field`` names the input
    that drives the cost (dotted path), ``message`` says which limit and its value. Not a
    ValidationError: the worker answers it ``too_expensive``, not ``invalid``."""


@dataclass(frozen=True)
class CostLimits:
    """Cost limits of one calculation (config section ``[calculation]``)."""

    max_sources: int = 20  # sources placed in a scene
    max_extended_sources: int = 10  # of those, gaussian or disk sources
    max_source_size_arcsec: float = 5.0  # gaussian FWHM or disk radius
    max_offset_arcsec: float = 5.0  # scene extent: |offset_x|, |offset_y| of a placement
    max_aperture_arcsec: float = 8.0  # aperture radius
    max_annulus_arcsec: float = 8.0  # background annulus outer radius
    max_image_subpixels: int = 2_600_000  # sub-pixels of the scene image (annulus, filter)
    max_source_samples: int = 20_000_000  # placed sources x image sub-pixels


def image_grid(calc: Calculation) -> tuple[int, int]:
    """(half size in detector pixels, oversampling) of the scene image of ``calc``."""
    mode = inst.mode(calc.instrument, calc.mode)
    filt = mode.filters[calc.filter]
    half = math.ceil(calc.annulus_outer_arcsec / mode.pixel_scale_arcsec) + 2
    lam_d = lambda_over_d_arcsec(filt.pivot_um)
    oversample = min(max(math.ceil(4.0 * mode.pixel_scale_arcsec / lam_d), 3), 7)
    return half, oversample


def image_subpixels(calc: Calculation) -> int:
    half, oversample = image_grid(calc)
    return ((2 * half + 1) * oversample) ** 2


def _check_sources(scene: Scene, sources: dict[str, Source], limits: CostLimits) -> None:
    if len(scene.sources) > limits.max_sources:
        raise TooExpensive("scene.sources", f"at most {limits.max_sources} sources per scene "
                                            f"(limit max_sources), got {len(scene.sources)}")
    extended = 0
    for i, p in enumerate(scene.sources):
        for axis, off in (("x", p.offset_x_arcsec), ("y", p.offset_y_arcsec)):
            if abs(off) > limits.max_offset_arcsec:
                raise TooExpensive(f"scene.sources.{i}.offset_{axis}_arcsec",
                                   f"at most {limits.max_offset_arcsec:g} arcsec from the "
                                   "aperture (limit max_offset_arcsec)")
        shape = sources[p.source_id].shape
        if shape.kind == "point":
            continue
        extended += 1
        key = "fwhm_arcsec" if shape.kind == "gaussian" else "radius_arcsec"
        size = shape.fwhm_arcsec if shape.kind == "gaussian" else shape.radius_arcsec
        if size > limits.max_source_size_arcsec:
            raise TooExpensive(f"sources.{p.source_id}.shape.{key}",
                               f"at most {limits.max_source_size_arcsec:g} arcsec "
                               "(limit max_source_size_arcsec)")
    if extended > limits.max_extended_sources:
        raise TooExpensive("scene.sources",
                           f"at most {limits.max_extended_sources} extended (gaussian or disk) "
                           f"sources per scene (limit max_extended_sources), got {extended}")


def _check_image(calc: Calculation, scene: Scene, limits: CostLimits) -> None:
    if calc.aperture_radius_arcsec > limits.max_aperture_arcsec:
        raise TooExpensive("calculation.aperture_radius_arcsec",
                           f"at most {limits.max_aperture_arcsec:g} arcsec "
                           "(limit max_aperture_arcsec)")
    if calc.annulus_outer_arcsec > limits.max_annulus_arcsec:
        raise TooExpensive("calculation.annulus_outer_arcsec",
                           f"at most {limits.max_annulus_arcsec:g} arcsec "
                           "(limit max_annulus_arcsec)")
    subpixels = image_subpixels(calc)
    if subpixels > limits.max_image_subpixels:
        raise TooExpensive("calculation.annulus_outer_arcsec",
                           f"the scene image would have {subpixels:,} sub-pixels, at most "
                           f"{limits.max_image_subpixels:,} (limit max_image_subpixels): "
                           "use a smaller background annulus")
    samples = subpixels * len(scene.sources)
    if samples > limits.max_source_samples:
        most = max(limits.max_source_samples // subpixels, 0)
        raise TooExpensive("scene.sources",
                           f"{len(scene.sources)} sources on a {subpixels:,}-sub-pixel image "
                           f"cost too much (limit max_source_samples = "
                           f"{limits.max_source_samples:,}): at most {most} sources with this "
                           "annulus and filter, or a smaller annulus")


def check_limits(calc: Calculation, scene: Scene, sources: dict[str, Source],
                 limits: CostLimits) -> None:
    """Raise TooExpensive naming the field when the validated inputs exceed ``limits``.
    A spectroscopic calculation's arrays have a fixed size (the slit's rows x the pair's
    spectral pixels, at most ~50 x 1400; each source sampled on the slit at 24 wavelengths):
    only the scene's terms apply to it."""
    _check_sources(scene, sources, limits)
    if not calc.spectroscopic:
        _check_image(calc, scene, limits)
