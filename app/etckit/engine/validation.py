"""Check the plain dicts a browser sends and turn them into typed objects.

Each check failure raises ``ValidationError(field, message)`` where ``field`` is the dotted path
of the offending value (``source.spectrum.temperature``, ``calculation.groups``,
``scene.sources.0.offset_x_arcsec``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from . import instruments as inst
from .physics import FLUX_UNITS_JY, SpectrumSpec, lambda_over_d_arcsec


class ValidationError(ValueError):
    """A user input is wrong: ``field`` names it (dotted path), ``message`` says why."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


# --------------------------------------------------------------------------- typed objects


@dataclass(frozen=True)
class Shape:
    kind: str  # point | gaussian | disk
    fwhm_arcsec: float = 0.0
    radius_arcsec: float = 0.0


@dataclass(frozen=True)
class Normalization:
    value: float
    unit: str  # abmag | Jy | mJy | uJy | nJy
    wavelength_um: float


@dataclass(frozen=True)
class Source:
    shape: Shape
    spectrum: SpectrumSpec
    normalization: Normalization
    redshift: float = 0.0
    name: str = ""


@dataclass(frozen=True)
class Placement:
    source_id: str
    offset_x_arcsec: float
    offset_y_arcsec: float


@dataclass(frozen=True)
class Scene:
    sources: tuple[Placement, ...]


@dataclass(frozen=True)
class Strategy:
    kind: str  # snr | time_for_snr
    target_snr: float | None = None


@dataclass(frozen=True)
class Calculation:
    instrument: str
    mode: str
    filter: str
    readout_pattern: str
    groups: int
    integrations: int
    exposures: int
    aperture_radius_arcsec: float
    annulus_inner_arcsec: float
    annulus_outer_arcsec: float
    strategy: Strategy
    background_scale: float = 1.0


# --------------------------------------------------------------------------- limits

SHAPES = ("point", "gaussian", "disk")
SPECTRA = ("flat", "power_law", "blackbody")
UNITS = ("abmag",) + tuple(FLUX_UNITS_JY)
STRATEGIES = ("snr", "time_for_snr")
MAX_EXTENT_ARCSEC = 5.0  # sizes and offsets: the image stamp must hold them
MAX_ANNULUS_ARCSEC = 8.0
MAX_INTEGRATIONS = 10000
MAX_EXPOSURES = 1000
MAX_SCENE_SOURCES = 20


# --------------------------------------------------------------------------- helpers


def _obj(d: Any, field: str) -> dict:
    if not isinstance(d, dict):
        raise ValidationError(field, f"must be an object, got {type(d).__name__}")
    return d


def _num(
    d: dict, key: str, field: str, *, lo: float | None = None, hi: float | None = None,
    lo_open: bool = False, default: Any = ..., unit: str = "",
) -> float:
    path = f"{field}.{key}" if field else key
    if key not in d or d[key] is None:
        if default is ...:
            raise ValidationError(path, "is required")
        return default
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValidationError(path, f"must be a number{' in ' + unit if unit else ''}")
    v = float(v)
    if not math.isfinite(v):
        raise ValidationError(path, "must be a finite number")
    u = f" {unit}" if unit else ""
    if lo is not None and (v <= lo if lo_open else v < lo):
        raise ValidationError(path, f"must be {'>' if lo_open else '>='} {lo:g}{u}, got {v:g}")
    if hi is not None and v > hi:
        raise ValidationError(path, f"must be <= {hi:g}{u}, got {v:g}")
    return v


def _int(d: dict, key: str, field: str, *, lo: int, hi: int, default: Any = ...) -> int:
    path = f"{field}.{key}"
    if key not in d or d[key] is None:
        if default is ...:
            raise ValidationError(path, "is required")
        return default
    v = d[key]
    if isinstance(v, bool) or not (isinstance(v, int) or (isinstance(v, float) and v.is_integer())):
        raise ValidationError(path, "must be a whole number")
    v = int(v)
    if v < lo or v > hi:
        raise ValidationError(path, f"must be between {lo} and {hi}, got {v}")
    return v


def _choice(d: dict, key: str, field: str, choices, default: Any = ...) -> str:
    path = f"{field}.{key}"
    if key not in d or d[key] is None:
        if default is ...:
            raise ValidationError(path, "is required")
        return default
    v = d[key]
    if not isinstance(v, str) or v not in choices:
        raise ValidationError(path, f"must be one of {', '.join(choices)}; got {v!r}")
    return v


# --------------------------------------------------------------------------- validators


def validate_source(d: Any, field: str = "source") -> Source:
    d = _obj(d, field)
    shape_d = _obj(d.get("shape", {"kind": "point"}), f"{field}.shape")
    kind = _choice(shape_d, "kind", f"{field}.shape", SHAPES)
    fwhm = radius = 0.0
    if kind == "gaussian":
        fwhm = _num(shape_d, "fwhm_arcsec", f"{field}.shape", lo=0, lo_open=True,
                    hi=MAX_EXTENT_ARCSEC, unit="arcsec")
    elif kind == "disk":
        radius = _num(shape_d, "radius_arcsec", f"{field}.shape", lo=0, lo_open=True,
                      hi=MAX_EXTENT_ARCSEC, unit="arcsec")
    shape = Shape(kind, fwhm, radius)

    spec_d = _obj(d.get("spectrum"), f"{field}.spectrum")
    skind = _choice(spec_d, "kind", f"{field}.spectrum", SPECTRA)
    if skind == "power_law":
        spec = SpectrumSpec("power_law", index=_num(spec_d, "index", f"{field}.spectrum",
                                                    lo=-10, hi=10))
    elif skind == "blackbody":
        spec = SpectrumSpec("blackbody", temperature=_num(
            spec_d, "temperature", f"{field}.spectrum", lo=2.7, hi=1e6, unit="K"))
    else:
        spec = SpectrumSpec("flat")

    norm_d = _obj(d.get("normalization"), f"{field}.normalization")
    unit = _choice(norm_d, "unit", f"{field}.normalization", UNITS)
    if unit == "abmag":
        value = _num(norm_d, "value", f"{field}.normalization", lo=-10, hi=50, unit="AB mag")
    else:
        value = _num(norm_d, "value", f"{field}.normalization", lo=0, lo_open=True, hi=1e12,
                     unit=unit)
    wave = _num(norm_d, "wavelength_um", f"{field}.normalization", lo=0.1, hi=1000, unit="um")
    redshift = _num(d, "redshift", field, lo=0, hi=30, default=0.0)
    if skind == "blackbody":
        # the shape must not underflow at the normalisation wavelength
        x = 14387.7688 / (wave / (1 + redshift) * spec.temperature)
        if x > 600:
            raise ValidationError(f"{field}.spectrum.temperature",
                                  "too cold: the blackbody has no flux at the normalization "
                                  "wavelength")
    name = d.get("name", "")
    if not isinstance(name, str):
        raise ValidationError(f"{field}.name", "must be a string")
    return Source(shape, spec, Normalization(value, unit, wave), redshift, name)


def validate_scene(d: Any, field: str = "scene") -> Scene:
    items = d
    if isinstance(d, dict):
        items = d.get("sources")
        field_items = f"{field}.sources"
    else:
        field_items = field
    if not isinstance(items, list):
        raise ValidationError(field_items, "must be a list of placed sources")
    if not items:
        raise ValidationError(field_items, "must hold at least one source")
    if len(items) > MAX_SCENE_SOURCES:
        raise ValidationError(field_items, f"at most {MAX_SCENE_SOURCES} sources")
    out = []
    for i, it in enumerate(items):
        f = f"{field_items}.{i}"
        it = _obj(it, f)
        sid = it.get("source_id")
        if not isinstance(sid, str) or not sid:
            raise ValidationError(f"{f}.source_id", "must be a non-empty string")
        ox = _num(it, "offset_x_arcsec", f, lo=-MAX_EXTENT_ARCSEC, hi=MAX_EXTENT_ARCSEC,
                  default=0.0, unit="arcsec")
        oy = _num(it, "offset_y_arcsec", f, lo=-MAX_EXTENT_ARCSEC, hi=MAX_EXTENT_ARCSEC,
                  default=0.0, unit="arcsec")
        out.append(Placement(sid, ox, oy))
    return Scene(tuple(out))


def validate_calculation(d: Any, field: str = "calculation") -> Calculation:
    d = _obj(d, field)
    instrument = _choice(d, "instrument", field, tuple(inst.instruments()))
    mode_name = _choice(d, "mode", field, tuple(inst.modes(instrument)))
    mode = inst.mode(instrument, mode_name)
    filt = d.get("filter")
    if filt not in mode.filters:
        where = inst.find_filter(filt) if isinstance(filt, str) else None
        hint = f" ({filt} belongs to {where[0]} {where[1]})" if where else ""
        raise ValidationError(f"{field}.filter",
                              f"must be one of {', '.join(mode.filters)}; got {filt!r}{hint}")
    pats = inst.patterns(mode.readout_family)
    pattern = _choice(d, "readout_pattern", field, tuple(pats))
    groups = _int(d, "groups", field, lo=2, hi=pats[pattern].max_groups)
    integrations = _int(d, "integrations", field, lo=1, hi=MAX_INTEGRATIONS)
    exposures = _int(d, "exposures", field, lo=1, hi=MAX_EXPOSURES)

    lam_d = lambda_over_d_arcsec(mode.filters[filt].pivot_um)
    dr, di, do = mode.default_aperture
    dr = dr if dr is not None else round(1.22 * lam_d, 3)
    di = di if di is not None else round(3.0 * lam_d, 3)
    do = do if do is not None else round(5.0 * lam_d, 3)
    pix = mode.pixel_scale_arcsec
    r = _num(d, "aperture_radius_arcsec", field, lo=0.5 * pix, hi=MAX_ANNULUS_ARCSEC,
             default=dr, unit="arcsec")
    ri = _num(d, "annulus_inner_arcsec", field, lo=r, hi=MAX_ANNULUS_ARCSEC, default=di,
              unit="arcsec")
    ro = _num(d, "annulus_outer_arcsec", field, lo=ri, lo_open=True, hi=MAX_ANNULUS_ARCSEC,
              default=do, unit="arcsec")
    if ro - ri < pix:
        raise ValidationError(f"{field}.annulus_outer_arcsec",
                              f"annulus must be at least one pixel ({pix} arcsec) wide")
    if (ro / pix) > 130:
        raise ValidationError(f"{field}.annulus_outer_arcsec",
                              f"at most {130 * pix:.2f} arcsec for {mode.label} "
                              "(130 pixels)")

    st = _obj(d.get("strategy", {"kind": "snr"}), f"{field}.strategy")
    skind = _choice(st, "kind", f"{field}.strategy", STRATEGIES)
    target = None
    if skind == "time_for_snr":
        target = _num(st, "target_snr", f"{field}.strategy", lo=0, lo_open=True, hi=1e5)
    bscale = _num(d, "background_scale", field, lo=0.0, hi=100.0, default=1.0)
    return Calculation(instrument, mode_name, filt, pattern, groups, integrations, exposures,
                       r, ri, ro, Strategy(skind, target), bscale)


def validate_sources(scene: Scene, sources_by_id: Any) -> dict[str, Source]:
    """Every source a scene places, validated; errors name ``sources.<id>.<field>``."""
    if not isinstance(sources_by_id, dict):
        raise ValidationError("sources", "must be an object mapping source ids to sources")
    out = {}
    for i, p in enumerate(scene.sources):
        if p.source_id not in sources_by_id:
            raise ValidationError(f"scene.sources.{i}.source_id",
                                  f"unknown source {p.source_id!r}")
        if p.source_id not in out:
            out[p.source_id] = validate_source(sources_by_id[p.source_id],
                                               f"sources.{p.source_id}")
    return out


# --------------------------------------------------------------------------- forms


def defaults() -> dict[str, dict]:
    """JSON-able starting points for a new source, scene and calculation."""
    return {
        "source": {
            "name": "New source",
            "shape": {"kind": "point"},
            "spectrum": {"kind": "flat"},
            "normalization": {"value": 100.0, "unit": "nJy", "wavelength_um": 2.0},
            "redshift": 0.0,
        },
        "scene": {"sources": [{"source_id": "1", "offset_x_arcsec": 0.0,
                               "offset_y_arcsec": 0.0}]},
        "calculation": {
            "instrument": "nircam", "mode": "sw_imaging", "filter": "F200W",
            "readout_pattern": "MEDIUM8", "groups": 10, "integrations": 1, "exposures": 4,
            "aperture_radius_arcsec": 0.08, "annulus_inner_arcsec": 0.6,
            "annulus_outer_arcsec": 0.99, "background_scale": 1.0,
            "strategy": {"kind": "snr"},
        },
    }


def catalog() -> dict[str, Any]:
    """Instruments, modes, filters and readout patterns, for building the forms."""
    out: dict[str, Any] = {"instruments": [], "shapes": list(SHAPES), "spectra": list(SPECTRA),
                           "units": list(UNITS), "strategies": list(STRATEGIES)}
    for iname in inst.instruments():
        idata = inst.raw()["instruments"][iname]
        modes = []
        for mname in inst.modes(iname):
            m = inst.mode(iname, mname)
            pats = inst.patterns(m.readout_family)
            r, ri, ro = m.default_aperture
            modes.append({
                "name": mname, "label": m.label, "pixel_scale_arcsec": m.pixel_scale_arcsec,
                "filters": [{"name": f.name, "pivot_um": f.pivot_um,
                             "bandwidth_um": f.bandwidth_um} for f in m.filters.values()],
                "readout_patterns": [{"name": p.name, "nframe": p.nframe, "nskip": p.nskip,
                                      "max_groups": p.max_groups} for p in pats.values()],
                "default_aperture": {"aperture_radius_arcsec": r, "annulus_inner_arcsec": ri,
                                     "annulus_outer_arcsec": ro},
            })
        out["instruments"].append({"name": iname, "label": idata["label"], "modes": modes})
    return out
