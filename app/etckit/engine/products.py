"""What a result offers to download and to compare: named 2-D images and 1-D curves with units.

A ``Curve`` is a table of named columns, each with its unit (the S/N against exposure time of
an imaging calculation; a spectroscopic result adds S/N against wavelength the same way), and
an ``Image`` a 2-D array with its unit and pixel scale. ``engine.fits`` writes any of them into
FITS, and ``plots.render_compare`` overplots the curves of several calculations, so a new kind
of result plugs in by adding its products here (``products``), nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import detector as det
from . import instruments as inst
from .calculator import Result, measure
from .cost import CostLimits

COMPARE_CURVES = {"snr_vs_time": "SNR_TIME"}  # a compare plot's kind -> the Curve it draws
MAX_COMPARED = 8


@dataclass(frozen=True)
class Column:
    name: str
    values: np.ndarray
    unit: str = ""  # FITS/astropy unit string; "" = dimensionless


@dataclass(frozen=True)
class Curve:
    name: str  # also the FITS extension name
    x: Column
    y: Column
    extra: tuple[Column, ...] = ()
    title: str = ""

    @property
    def columns(self) -> tuple[Column, ...]:
        return (self.x, self.y, *self.extra)


@dataclass(frozen=True)
class Image:
    name: str
    data: np.ndarray
    unit: str
    pixel_arcsec: float
    comment: str = ""
    header: dict[str, Any] = field(default_factory=dict)


def snr_vs_time(result: Result, calculation: Any) -> Curve:
    """S/N against total exposure time, varying the number of integrations of the calculated
    setup (its groups, pattern and exposures), as the snr_vs_time plot draws it."""
    images = result.images["images"]
    exp0 = result.images["exposure"]
    mode = inst.mode(calculation.instrument, calculation.mode)
    nints = np.unique(np.round(np.geomspace(1, max(8, 8 * exp0.integrations), 24)).astype(int))
    rows = []
    for n in nints:
        e = det.make_exposure(mode, exp0.pattern.name, exp0.groups, int(n), exp0.exposures)
        m = measure(images, e, mode.full_well_e)
        if m.snr is not None:
            rows.append((e.total_exposure_time_s, m.snr, int(n)))
    t, s, k = (np.array(c, dtype=float) for c in zip(*rows, strict=True)) if rows else \
        (np.zeros(0), np.zeros(0), np.zeros(0))
    return Curve("SNR_TIME", Column("time", t, "s"), Column("snr", s),
                 (Column("integrations", k.astype(np.int32)),),
                 title=f"{calculation.instrument.upper()} {calculation.filter} "
                       f"{exp0.groups} groups")


def detector_images(result: Result) -> list[Image]:
    """The detector stamps the engine built: source, total rate, S/N and well fill per pixel."""
    images = result.images["images"]
    exp = result.images["exposure"]
    m = result.images["measurement"]
    mode = inst.mode(result.instrument, result.mode)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(np.isfinite(m.var_pix), images.source / np.sqrt(m.var_pix), 0.0)
    fill = images.total * exp.integration_time_s / mode.full_well_e
    p = images.pixel_arcsec
    return [
        Image("SOURCE", images.source, "electron / s", p, "source rate per pixel"),
        Image("TOTAL", images.total, "electron / s", p, "source + sky + dark per pixel"),
        Image("SNR", snr, "", p, "S/N per pixel of the whole exposure"),
        Image("FILL", fill, "", p, "fraction of full well at the end of an integration",
              {"FULLWELL": (mode.full_well_e, "[electron] full well")}),
        Image("APWEIGHT", images.ap_weight, "", p, "fraction of each pixel in the aperture"),
    ]


def products(result: Result, calculation: Any) -> tuple[list[Image], list[Curve]]:
    """(images, curves) of a result with its images (``result.images`` set)."""
    if result.images is None:
        return [], []
    return detector_images(result), [snr_vs_time(result, calculation)]


def curves(result: Result, calculation: Any) -> list[Curve]:
    """The curves a compare plot overplots (S/N against time for imaging)."""
    return products(result, calculation)[1]


def compare_in_child(limits: CostLimits, kind: str, entries: list) -> bytes:
    """``plots.render_compare`` for the sandbox (``Sandbox.run``): defined here so that the
    worker names it without importing matplotlib."""
    from .plots import render_compare

    return render_compare(limits, kind, entries)
