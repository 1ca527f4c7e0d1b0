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

# a compare plot's kind -> the Curve it draws (imaging: SNR_TIME; spectroscopic: SPECTRUM)
COMPARE_CURVES = {"snr_vs_time": "SNR_TIME", "snr_vs_wavelength": "SPECTRUM"}
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


def spectrum_table(result: Result) -> Curve:
    """The 1-D spectrum per spectral pixel at full precision (the JSON result keeps four
    figures): wavelength, S/N (NaN where the aperture saturates), extracted flux and noise,
    the source's f_nu, the sky in the aperture, resolving power, dispersion, saturation."""
    trace, ex = result.images["trace"], result.images["extraction"]
    spec = result.spectrum
    return Curve("SPECTRUM", Column("wavelength", trace.wave_um, "um"), Column("snr", ex.snr),
                 (Column("flux", ex.signal, "electron / s"),
                  Column("noise", ex.noise, "electron / s"),
                  Column("source_fnu", trace.source_fnu_jy * 1e3, "mJy"),
                  Column("background", (trace.ap_weight[:, None] * trace.sky).sum(axis=0),
                         "electron / s"),
                  Column("resolving_power", np.asarray(spec["resolving_power"], float)),
                  Column("dispersion", np.diff(trace.edges_um), "um / pix"),
                  Column("saturated_pixels", np.asarray(ex.full_sat, dtype=np.int32))),
                 title=f"{result.instrument.upper()} {result.filter} {spec['slit']}")


def trace_images(result: Result) -> list[Image]:
    """The 2-D spectral trace: rows along the slit (arcsec), one column per spectral pixel
    (their wavelengths: the SPECTRUM table's ``wavelength``, also WAVEMIN/WAVEMAX)."""
    trace, exp, ex = (result.images[k] for k in ("trace", "exposure", "extraction"))
    mode = inst.spec_mode(result.instrument, result.mode)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(np.isfinite(ex.var_pix), trace.source / np.sqrt(ex.var_pix), 0.0)
    total = trace.total
    axis = {"CTYPE1": ("PIXEL", "spectral pixel: see SPECTRUM wavelength"),
            "CUNIT1": "pixel", "CRPIX1": 1.0, "CRVAL1": 0.0, "CDELT1": 1.0,
            "WAVEMIN": (float(trace.edges_um[0]), "[um] blue edge of column 0"),
            "WAVEMAX": (float(trace.edges_um[-1]), "[um] red edge of the last column")}
    p = mode.pixel_scale_arcsec
    return [
        Image("SOURCE", trace.source, "electron / s", p, "source rate per pixel", axis),
        Image("TOTAL", total, "electron / s", p, "source + sky + dark per pixel", axis),
        Image("SNR", snr, "", p, "S/N per pixel of the whole exposure", axis),
        Image("FILL", total * exp.integration_time_s / mode.full_well_e, "", p,
              "fraction of full well at the end of an integration",
              {**axis, "FULLWELL": (mode.full_well_e, "[electron] full well")}),
        Image("APWEIGHT", np.broadcast_to(trace.ap_weight[:, None], total.shape), "", p,
              "fraction of each row in the extraction aperture", axis),
    ]


def products(result: Result, calculation: Any) -> tuple[list[Image], list[Curve]]:
    """(images, curves) of a result with its images (``result.images`` set): imaging, the
    detector stamps and S/N against time; spectroscopy, the 2-D trace and the spectrum."""
    if result.images is None:
        return [], []
    if result.spectrum is not None:
        return trace_images(result), [spectrum_table(result)]
    return detector_images(result), [snr_vs_time(result, calculation)]


def curves(result: Result, calculation: Any) -> list[Curve]:
    """The curves a compare plot overplots (S/N against time for imaging, against
    wavelength for spectroscopy)."""
    return products(result, calculation)[1]


def compare_point(kind: str, result: Result) -> tuple[float, float] | None:
    """The calculated setup's point on its compare curve (its exposure time, or its
    reference wavelength, and its S/N), None without an S/N."""
    if result.snr is None:
        return None
    if kind == "snr_vs_wavelength":
        return result.spectrum["reference_wavelength_um"], result.snr
    return result.total_exposure_time_s, result.snr


def compare_in_child(limits: CostLimits, kind: str, entries: list) -> bytes:
    """``plots.render_compare`` for the sandbox (``Sandbox.run``): defined here so that the
    worker names it without importing matplotlib. ``entries`` are (label, inputs, result or
    None): the results the worker did not have are computed here, in the same run, so that
    one comparison holds a worker no longer than one calculation may (the sandbox's time
    cap), however many of its calculations must be computed."""
    from .calculator import calculate
    from .plots import render_compare

    drawn = [(label, inputs[0], result if result is not None else
              calculate(*inputs, limits=limits)) for label, inputs, result in entries]
    return render_compare(limits, kind, drawn)
