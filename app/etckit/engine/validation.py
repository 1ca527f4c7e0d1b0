"""Check the plain dicts a browser sends and turn them into typed objects.

Each check failure raises ``ValidationError(field, message)`` where ``field`` is the dotted path
of the offending value (``source.spectrum.temperature``, ``calculation.groups``,
``scene.sources.0.offset_x_arcsec``).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from . import background as bg
from . import instruments as inst
from .background import Background
from .physics import FLUX_UNITS_JY, SpectrumSpec, lambda_over_d_arcsec
from .sources import LAWS, Extinction, Line, fixed_r_v


class FieldError(Exception):
    """An error about one input: ``field`` names it (dotted path), ``message`` says what."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class ValidationError(FieldError, ValueError):
    """A user input is wrong: ``field`` names it (dotted path), ``message`` says why."""


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
    wavelength_um: float | None  # at this wavelength, or
    bandpass: str | None = None  # the photon-weighted mean f_nu in this catalog filter


@dataclass(frozen=True)
class Source:
    shape: Shape
    spectrum: SpectrumSpec
    normalization: Normalization
    redshift: float = 0.0
    name: str = ""
    lines: tuple[Line, ...] = ()
    extinction: tuple[Extinction, ...] = ()


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
    # spectroscopic modes only (None / True for imaging)
    disperser: str | None = None
    reference_wavelength_um: float | None = None
    background_subtraction: bool = True

    @property
    def spectroscopic(self) -> bool:
        return self.disperser is not None

    @property
    def configuration(self) -> str:
        """The disperser/filter pair's name ("G140M/F100LP", "P750L"), or the filter."""
        if self.disperser is None:
            return self.filter
        return f"{self.disperser}/{self.filter}" if self.filter else self.disperser
    background: Background | None = None  # a target and date (engine.background), else the
    # benchmark


# --------------------------------------------------------------------------- limits

SHAPES = ("point", "gaussian", "disk")
SPECTRA = ("flat", "power_law", "blackbody", "uploaded")
LINE_KINDS = ("emission", "absorption")
EXTINCTION_APPLIED = ("before_redshift", "after_redshift")
MAX_LINES = 20
MAX_EXTINCTIONS = 2  # e.g. the host's dust (before the redshift) and the Milky Way's (after)
UNITS = ("abmag",) + tuple(FLUX_UNITS_JY)
STRATEGIES = ("snr", "time_for_snr")
MAX_EXTENT_ARCSEC = 5.0  # sizes and offsets: the image stamp must hold them
MAX_ANNULUS_ARCSEC = 8.0
MAX_INTEGRATIONS = 10000
MAX_EXPOSURES = 1000
MAX_SCENE_SOURCES = 20
MAX_NAME_CHARS = 200  # a source's name inside its data
MAX_ID_CHARS = 64  # a source id placed in a scene

# The fields each object may hold; any other key is refused ("<path>.<key>: unknown field").
SOURCE_KEYS = ("name", "shape", "spectrum", "normalization", "redshift", "lines", "extinction")
SHAPE_KEYS = ("kind", "fwhm_arcsec", "radius_arcsec")
SPECTRUM_KEYS = ("kind", "index", "temperature", "spectrum_id", "table")
MAX_TABLE_POINTS = 1_000_000  # the upload limit (calculation.upload_max_points) is lower
NORMALIZATION_KEYS = ("value", "unit", "wavelength_um", "bandpass")
LINE_KEYS = ("kind", "center_um", "fwhm_um", "flux_erg_s_cm2", "equivalent_width_um")
EXTINCTION_KEYS = ("law", "a_v", "ebv", "r_v", "applied")
SCENE_KEYS = ("sources",)
PLACEMENT_KEYS = ("source_id", "offset_x_arcsec", "offset_y_arcsec")
CALCULATION_KEYS = ("instrument", "mode", "filter", "readout_pattern", "groups", "integrations",
                    "exposures", "aperture_radius_arcsec", "annulus_inner_arcsec",
                    "annulus_outer_arcsec", "background_scale", "strategy", "disperser",
                    "reference_wavelength_um", "background_subtraction", "background")
SPECTROSCOPY_KEYS = ("disperser", "reference_wavelength_um", "background_subtraction")
STRATEGY_KEYS = ("kind", "target_snr")
BACKGROUND_KEYS = ("ra_deg", "dec_deg", "date", "percentile")

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_SHOW_CHARS = 40


# --------------------------------------------------------------------------- helpers


def _show(v: Any) -> str:
    """A short printable rendering of a user's value for an error message: strings cut and
    escaped (repr escapes control characters and lone surrogates), anything else by type."""
    if isinstance(v, str):
        return repr(v[:_SHOW_CHARS]) + ("..." if len(v) > _SHOW_CHARS else "")
    return "null" if v is None else type(v).__name__


def _key(k: Any) -> str:
    """A key as it appears in a dotted path: itself when short and printable, else escaped."""
    if isinstance(k, str) and len(k) <= _SHOW_CHARS and k.isprintable():
        return k
    return _show(k) if isinstance(k, str) else f"<{type(k).__name__}>"


def _obj(d: Any, field: str, keys: tuple[str, ...] | None = None) -> dict:
    if not isinstance(d, dict):
        raise ValidationError(field, f"must be an object, got {_show(d)}")
    if keys is not None:
        for k in d:
            if k not in keys:
                raise ValidationError(f"{field}.{_key(k)}", "unknown field")
    return d


def _text(v: Any, path: str, max_chars: int, *, empty_ok: bool = True) -> str:
    if not isinstance(v, str):
        raise ValidationError(path, f"must be a string, got {_show(v)}")
    if len(v) > max_chars:
        raise ValidationError(path, f"at most {max_chars} characters, got {len(v)}")
    if not v and not empty_ok:
        raise ValidationError(path, "must not be empty")
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(path, "is not valid Unicode (lone surrogate)") from None
    if _CONTROL.search(v):
        raise ValidationError(path, "must not contain control characters")
    return v


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
        raise ValidationError(path, f"must be a number{' in ' + unit if unit else ''}, "
                                    f"got {_show(v)}")
    try:
        v = float(v)
    except OverflowError:
        raise ValidationError(path, "is out of range (too large a number)") from None
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
        raise ValidationError(path, f"must be a whole number, got {_show(v)}")
    v = int(v)
    if v < lo or v > hi:
        shown = str(v) if abs(v) < 10**15 else "a larger number"
        raise ValidationError(path, f"must be between {lo} and {hi}, got {shown}")
    return v


def _choice(d: dict, key: str, field: str, choices, default: Any = ...) -> str:
    path = f"{field}.{key}"
    if key not in d or d[key] is None:
        if default is ...:
            raise ValidationError(path, "is required")
        return default
    v = d[key]
    if not isinstance(v, str) or v not in choices:
        raise ValidationError(path, f"must be one of {', '.join(choices)}; got {_show(v)}")
    return v


def _unused_numbers(d: dict, field: str, keys: tuple[str, ...]) -> None:
    """Fields a form keeps for another kind (a FWHM on a point source): null or a finite
    number, and dropped from the normalized data."""
    for key in keys:
        _num(d, key, field, default=None)


# --------------------------------------------------------------------------- validators


def _shape(d: Any, field: str) -> Shape:
    d = _obj(d, field, SHAPE_KEYS)
    kind = _choice(d, "kind", field, SHAPES)
    size_key = {"gaussian": "fwhm_arcsec", "disk": "radius_arcsec"}.get(kind)
    _unused_numbers(d, field, tuple(k for k in SHAPE_KEYS[1:] if k != size_key))
    if size_key is None:
        return Shape(kind)
    size = _num(d, size_key, field, lo=0, lo_open=True, hi=MAX_EXTENT_ARCSEC, unit="arcsec")
    return Shape(kind, fwhm_arcsec=size) if kind == "gaussian" else Shape(kind, radius_arcsec=size)


def _spectrum(d: Any, field: str, spectra: dict | None = None) -> SpectrumSpec:
    d = _obj(d, field, SPECTRUM_KEYS)
    kind = _choice(d, "kind", field, SPECTRA)
    if kind != "uploaded" and d.get("spectrum_id") is not None:
        _text(d["spectrum_id"], f"{field}.spectrum_id", MAX_ID_CHARS)  # a form's leftover
    if kind != "uploaded" and d.get("table") is not None:
        raise ValidationError(f"{field}.table", "only an uploaded spectrum has a table")
    if kind == "uploaded":
        return _uploaded(d, field, spectra)
    if kind == "power_law":
        _unused_numbers(d, field, ("temperature",))
        return SpectrumSpec("power_law", index=_num(d, "index", field, lo=-10, hi=10))
    _unused_numbers(d, field, ("index",) if kind == "blackbody" else ("index", "temperature"))
    if kind == "blackbody":
        return SpectrumSpec("blackbody", temperature=_num(d, "temperature", field, lo=2.7,
                                                          hi=1e6, unit="K"))
    return SpectrumSpec("flat")


def _uploaded(d: dict, field: str, spectra: dict | None) -> SpectrumSpec:
    """An uploaded spectrum, by id; resolved to its table when ``spectra`` (id -> (rest
    wavelength um, f_nu Jy)) is given, as a calculation needs."""
    _unused_numbers(d, field, ("index", "temperature"))
    sid = _text(d.get("spectrum_id"), f"{field}.spectrum_id", MAX_ID_CHARS, empty_ok=False)
    if d.get("table") is not None:  # the worker puts the stored table here
        return SpectrumSpec("uploaded", spectrum_id=sid, table=_table(d["table"],
                                                                      f"{field}.table"))
    if spectra is None:
        return SpectrumSpec("uploaded", spectrum_id=sid)
    if sid not in spectra:
        raise ValidationError(f"{field}.spectrum_id", f"no spectrum {_show(sid)}")
    return SpectrumSpec("uploaded", spectrum_id=sid, table=spectra[sid])


def _table(d: Any, field: str) -> tuple:
    """{"wave_um": [...], "fnu_jy": [...]}: 2+ rows, increasing positive wavelengths, finite
    fluxes >= 0; read-only arrays."""
    d = _obj(d, field, ("wave_um", "fnu_jy"))
    cols = []
    for key in ("wave_um", "fnu_jy"):
        v = d.get(key)
        if not isinstance(v, list) or not 2 <= len(v) <= MAX_TABLE_POINTS:
            raise ValidationError(f"{field}.{key}", f"must be a list of 2 to "
                                                    f"{MAX_TABLE_POINTS} numbers")
        if any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in v):
            raise ValidationError(f"{field}.{key}", "must hold numbers only")
        try:
            cols.append(np.array(v, dtype=float))
        except OverflowError:  # an integer beyond a double
            raise ValidationError(f"{field}.{key}", "must hold finite numbers") from None
    w, f = cols
    if len(w) != len(f) or not (np.all(np.isfinite(w)) and np.all(np.isfinite(f))):
        raise ValidationError(f"{field}.fnu_jy", "must be finite and as long as wave_um")
    if w[0] <= 0 or np.any(np.diff(w) <= 0) or np.any(f < 0):
        raise ValidationError(f"{field}.wave_um", "wavelengths must be positive and increase; "
                                                  "fluxes >= 0")
    w.setflags(write=False)
    f.setflags(write=False)
    return w, f


def _normalization(d: Any, field: str) -> Normalization:
    d = _obj(d, field, NORMALIZATION_KEYS)
    unit = _choice(d, "unit", field, UNITS)
    if unit == "abmag":
        value = _num(d, "value", field, lo=-10, hi=50, unit="AB mag")
    else:
        value = _num(d, "value", field, lo=0, lo_open=True, hi=1e12, unit=unit)
    band = d.get("bandpass")
    if band is None:
        wave = _num(d, "wavelength_um", field, lo=0.1, hi=1000, unit="um")
        return Normalization(value, unit, wave)
    if not isinstance(band, str) or inst.find_filter(band) is None:
        raise ValidationError(f"{field}.bandpass", "must be a filter of the catalog "
                                                   f"(e.g. F200W, F770W); got {_show(band)}")
    _unused_numbers(d, field, ("wavelength_um",))
    return Normalization(value, unit, None, band)


def _line(d: Any, field: str) -> Line:
    d = _obj(d, field, LINE_KEYS)
    kind = _choice(d, "kind", field, LINE_KINDS)
    center = _num(d, "center_um", field, lo=0.05, hi=1000, unit="um")
    fwhm = _num(d, "fwhm_um", field, lo=1e-6, hi=0.5 * center, unit="um")
    flux = _num(d, "flux_erg_s_cm2", field, lo=0, lo_open=True, hi=1e-5, default=None,
                unit="erg/s/cm2")
    ew = _num(d, "equivalent_width_um", field, lo=0, lo_open=True, hi=100, default=None,
              unit="um")
    if (flux is None) == (ew is None):
        raise ValidationError(f"{field}.flux_erg_s_cm2",
                              "give either flux_erg_s_cm2 or equivalent_width_um (one of them)")
    if kind == "absorption" and ew is not None and ew > fwhm * 1.0644:
        raise ValidationError(f"{field}.equivalent_width_um",
                              f"an absorption line of FWHM {fwhm:g} um absorbs at most "
                              f"{fwhm * 1.0644:.4g} um (a depth of 100%)")
    return Line(kind, center, fwhm, flux, ew)


def _lines(d: Any, field: str) -> tuple[Line, ...]:
    if d is None:
        return ()
    if not isinstance(d, list):
        raise ValidationError(field, f"must be a list of lines, got {_show(d)}")
    if len(d) > MAX_LINES:
        raise ValidationError(field, f"at most {MAX_LINES} lines, got {len(d)}")
    return tuple(_line(x, f"{field}.{i}") for i, x in enumerate(d))


def _one_extinction(d: Any, field: str) -> Extinction:
    d = _obj(d, field, EXTINCTION_KEYS)
    law = _choice(d, "law", field, LAWS)
    applied = _choice(d, "applied", field, EXTINCTION_APPLIED)
    fixed = fixed_r_v(law)
    if fixed is None:
        r_v = _num(d, "r_v", field, lo=2.3, hi=5.6, default=3.1)
    else:
        r_v = fixed
        if d.get("r_v") is not None and _num(d, "r_v", field) != fixed:
            raise ValidationError(f"{field}.r_v", f"{law} has a fixed R_V of {fixed:g}; "
                                                  "leave r_v empty")
    a_v = _num(d, "a_v", field, lo=0, hi=20, default=None, unit="mag")
    ebv = _num(d, "ebv", field, lo=0, hi=7, default=None, unit="mag")
    if (a_v is None) == (ebv is None):
        raise ValidationError(f"{field}.a_v", "give either a_v or ebv (one of them)")
    return Extinction(law, a_v if a_v is not None else r_v * ebv, r_v, applied)


def _extinction(d: Any, field: str) -> tuple[Extinction, ...]:
    if d is None:
        return ()
    if isinstance(d, dict):
        d = [d]
    if not isinstance(d, list):
        raise ValidationError(field, f"must be a list of extinction curves, got {_show(d)}")
    if len(d) > MAX_EXTINCTIONS:
        raise ValidationError(field, f"at most {MAX_EXTINCTIONS} (one before and one after "
                                     "the redshift)")
    out = tuple(_one_extinction(x, f"{field}.{i}") for i, x in enumerate(d))
    if len({e.applied for e in out}) < len(out):
        raise ValidationError(f"{field}.1.applied", "one curve before and one after the "
                                                    "redshift at most")
    return out


def validate_source(d: Any, field: str = "source", spectra: dict | None = None) -> Source:
    """A source, typed; an uploaded spectrum is resolved to its table when ``spectra``
    (id -> (rest wavelength um, f_nu Jy)) is given."""
    d = _obj(d, field, SOURCE_KEYS)
    shape = _shape(d["shape"] if d.get("shape") is not None else {"kind": "point"},
                   f"{field}.shape")
    spec = _spectrum(d.get("spectrum"), f"{field}.spectrum", spectra)
    norm = _normalization(d.get("normalization"), f"{field}.normalization")
    redshift = _num(d, "redshift", field, lo=0, hi=30, default=0.0)
    lines = _lines(d.get("lines"), f"{field}.lines")
    extinction = _extinction(d.get("extinction"), f"{field}.extinction")
    if spec.kind == "blackbody" and norm.wavelength_um is not None:
        # the shape must not underflow at the normalisation wavelength
        x = 14387.7688 / (norm.wavelength_um / (1 + redshift) * spec.temperature)
        if x > 600:
            raise ValidationError(f"{field}.spectrum.temperature",
                                  "too cold: the blackbody has no flux at the normalization "
                                  "wavelength")
    name = _text(d.get("name", ""), f"{field}.name", MAX_NAME_CHARS)
    return Source(shape, spec, norm, redshift, name, lines, extinction)


def validate_scene(d: Any, field: str = "scene") -> Scene:
    items = d
    if isinstance(d, dict):
        _obj(d, field, SCENE_KEYS)
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
        it = _obj(it, f, PLACEMENT_KEYS)
        sid = _text(it.get("source_id"), f"{f}.source_id", MAX_ID_CHARS, empty_ok=False)
        ox = _num(it, "offset_x_arcsec", f, lo=-MAX_EXTENT_ARCSEC, hi=MAX_EXTENT_ARCSEC,
                  default=0.0, unit="arcsec")
        oy = _num(it, "offset_y_arcsec", f, lo=-MAX_EXTENT_ARCSEC, hi=MAX_EXTENT_ARCSEC,
                  default=0.0, unit="arcsec")
        out.append(Placement(sid, ox, oy))
    return Scene(tuple(out))


def _filter(d: dict, field: str, mode: inst.Mode) -> str:
    filt = d.get("filter")
    if not isinstance(filt, str) or filt not in mode.filters:
        where = inst.find_filter(filt) if isinstance(filt, str) else None
        hint = f" ({filt} belongs to {where[0]} {where[1]})" if where else ""
        raise ValidationError(f"{field}.filter",
                              f"must be one of {', '.join(mode.filters)}; got {_show(filt)}{hint}")
    return filt


def _aperture(d: dict, field: str, mode: inst.Mode, filt: str) -> tuple[float, float, float]:
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
    return r, ri, ro


def _strategy(d: Any, field: str) -> Strategy:
    st = _obj(d, field, STRATEGY_KEYS)
    kind = _choice(st, "kind", field, STRATEGIES)
    if kind != "time_for_snr":
        _unused_numbers(st, field, ("target_snr",))
        return Strategy(kind)
    return Strategy(kind, _num(st, "target_snr", field, lo=0, lo_open=True, hi=1e5))


def validate_calculation(d: Any, field: str = "calculation") -> Calculation:
    d = _obj(d, field, CALCULATION_KEYS)
    instrument = _choice(d, "instrument", field, tuple(inst.instruments()))
    mode_name = _choice(d, "mode", field, tuple(inst.modes(instrument)))
    if inst.is_spectroscopic(instrument, mode_name):
        return _spectroscopic_calculation(d, field, inst.spec_mode(instrument, mode_name))
    _imaging_leftovers(d, field)
    mode = inst.mode(instrument, mode_name)
    filt = _filter(d, field, mode)
    pats = inst.patterns(mode.readout_family)
    pattern = _choice(d, "readout_pattern", field, tuple(pats))
    groups = _int(d, "groups", field, lo=2, hi=pats[pattern].max_groups)
    integrations = _int(d, "integrations", field, lo=1, hi=MAX_INTEGRATIONS)
    exposures = _int(d, "exposures", field, lo=1, hi=MAX_EXPOSURES)
    r, ri, ro = _aperture(d, field, mode, filt)
    strategy = _strategy(d["strategy"] if d.get("strategy") is not None else {"kind": "snr"},
                         f"{field}.strategy")
    bscale = _num(d, "background_scale", field, lo=0.0, hi=100.0, default=1.0)
    return Calculation(instrument, mode_name, filt, pattern, groups, integrations, exposures,
                       r, ri, ro, strategy, bscale,
                       background=_background(d.get("background"), f"{field}.background"))


def _background(d: Any, field: str) -> Background | None:
    """A target (RA/Dec J2000, degrees) and a date or a percentile; the date observable by
    JWST (solar elongation 85-135 deg). None (or absent): the benchmark background."""
    if d is None:
        return None
    d = _obj(d, field, BACKGROUND_KEYS)
    ra = _num(d, "ra_deg", field, lo=0.0, hi=360.0, unit="deg")
    dec = _num(d, "dec_deg", field, lo=-90.0, hi=90.0, unit="deg")
    if (d.get("date") is None) == (d.get("percentile") is None):
        raise ValidationError(f"{field}.date", "give either a date (YYYY-MM-DD) or a "
                                               "percentile (low, medium, high), not both")
    if d.get("percentile") is not None:
        return Background(ra, dec, percentile=_choice(d, "percentile", field,
                                                      tuple(bg.PERCENTILES)))
    try:
        bg.parse_date(d["date"])
    except ValueError:
        raise ValidationError(f"{field}.date", "must be a date YYYY-MM-DD between 1950 and "
                                               f"2050, got {_show(d['date'])}") from None
    why = bg.not_observable(ra, dec, d["date"])
    if why:
        raise ValidationError(f"{field}.date", why)
    return Background(ra, dec, date=d["date"])


def _imaging_leftovers(d: dict, field: str) -> None:
    """A form's spectroscopic fields left on an imaging calculation: null or well-typed,
    and dropped."""
    if d.get("disperser") is not None:
        _text(d["disperser"], f"{field}.disperser", MAX_ID_CHARS)
    _num(d, "reference_wavelength_um", field, default=None)
    _flag(d, "background_subtraction", field)


def _flag(d: dict, key: str, field: str, default: bool = True) -> bool:
    v = d.get(key)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise ValidationError(f"{field}.{key}", f"must be true or false, got {_show(v)}")
    return v


def _configuration(d: dict, field: str, mode: inst.SpecMode) -> inst.Configuration:
    """The disperser and filter, checked as a pair the mode offers."""
    dispersers = tuple(dict.fromkeys(c.disperser for c in mode.configurations.values()))
    disp = _choice(d, "disperser", field, dispersers)
    pairs = [c for c in mode.configurations.values() if c.disperser == disp]
    filt = d.get("filter")
    filt = None if filt in (None, "") else filt
    for c in pairs:
        if c.filter == filt:
            return c
    allowed = ", ".join(c.filter or "no filter (null)" for c in pairs)
    raise ValidationError(f"{field}.filter", f"{disp} takes {allowed}; got {_show(filt)}")


def _slit_extraction(d: dict, field: str, mode: inst.SpecMode,
                     subtract: bool) -> tuple[float, float, float]:
    """Extraction half-height and the background regions' inner/outer distance from the
    trace, all along the slit (arcsec), inside half the slit's length."""
    half = mode.slit_length_arcsec / 2
    pix = mode.pixel_scale_arcsec
    dr, di, do = mode.default_aperture
    slit = f"half the {mode.slit_name} slit's length"
    r = _num(d, "aperture_radius_arcsec", field, lo=0.5 * pix, hi=half, default=dr,
             unit=f"arcsec ({slit})")
    ri = _num(d, "annulus_inner_arcsec", field, lo=r, hi=half, default=max(di, r),
              unit=f"arcsec ({slit})")
    ro = _num(d, "annulus_outer_arcsec", field, lo=ri, lo_open=True, hi=half,
              default=max(do, min(ri + pix, half)), unit=f"arcsec ({slit})")
    if subtract and ro - ri < pix:
        raise ValidationError(f"{field}.annulus_outer_arcsec",
                              f"the background regions must be at least one pixel ({pix} "
                              "arcsec) high")
    return r, ri, ro


def _spectroscopic_calculation(d: dict, field: str, mode: inst.SpecMode) -> Calculation:
    config = _configuration(d, field, mode)
    pats = inst.patterns(mode.readout_family)
    pattern = _choice(d, "readout_pattern", field, tuple(pats))
    groups = _int(d, "groups", field, lo=2, hi=pats[pattern].max_groups)
    integrations = _int(d, "integrations", field, lo=1, hi=MAX_INTEGRATIONS)
    exposures = _int(d, "exposures", field, lo=1, hi=MAX_EXPOSURES)
    subtract = _flag(d, "background_subtraction", field)
    r, ri, ro = _slit_extraction(d, field, mode, subtract)
    lo, hi = config.range_um
    ref = _num(d, "reference_wavelength_um", field, default=round((lo + hi) / 2, 3), unit="um")
    if not lo <= ref <= hi:
        raise ValidationError(f"{field}.reference_wavelength_um",
                              f"must be within {lo:g}-{hi:g} um ({config.name}); got {ref:g}")
    strategy = _strategy(d["strategy"] if d.get("strategy") is not None else {"kind": "snr"},
                         f"{field}.strategy")
    bscale = _num(d, "background_scale", field, lo=0.0, hi=100.0, default=1.0)
    return Calculation(mode.instrument, mode.name, config.filter or "", pattern, groups,
                       integrations, exposures, r, ri, ro, strategy, bscale,
                       disperser=config.disperser, reference_wavelength_um=ref,
                       background_subtraction=subtract,
                       background=_background(d.get("background"), f"{field}.background"))


def validate_sources(scene: Scene, sources_by_id: Any,
                     spectra: dict | None = None) -> dict[str, Source]:
    """Every source a scene places, validated (uploaded spectra resolved from ``spectra``, an
    empty mapping when None); errors name ``sources.<id>.<field>``."""
    if not isinstance(sources_by_id, dict):
        raise ValidationError("sources", "must be an object mapping source ids to sources")
    out = {}
    for i, p in enumerate(scene.sources):
        if p.source_id not in sources_by_id:
            raise ValidationError(f"scene.sources.{i}.source_id",
                                  f"unknown source {_show(p.source_id)}")
        if p.source_id not in out:
            out[p.source_id] = validate_source(sources_by_id[p.source_id],
                                               f"sources.{_key(p.source_id)}",
                                               spectra if spectra is not None else {})
    return out


# --------------------------------------------------------------------------- normalizers
# What a worker stores: validated, only the known fields that apply, JSON-ready (finite
# numbers, valid Unicode), so nothing stored can fail a later read.


def normalize_source(d: Any, field: str = "data") -> dict[str, Any]:
    src = validate_source(d, field)
    shape: dict[str, Any] = {"kind": src.shape.kind}
    if src.shape.kind == "gaussian":
        shape["fwhm_arcsec"] = src.shape.fwhm_arcsec
    elif src.shape.kind == "disk":
        shape["radius_arcsec"] = src.shape.radius_arcsec
    spectrum: dict[str, Any] = {"kind": src.spectrum.kind}
    if src.spectrum.kind == "power_law":
        spectrum["index"] = src.spectrum.index
    elif src.spectrum.kind == "blackbody":
        spectrum["temperature"] = src.spectrum.temperature
    elif src.spectrum.kind == "uploaded":
        spectrum["spectrum_id"] = src.spectrum.spectrum_id
    norm = src.normalization
    out: dict[str, Any] = {} if "name" not in d else {"name": src.name}
    out.update(shape=shape, spectrum=spectrum, redshift=src.redshift, normalization={
        "value": norm.value, "unit": norm.unit,
        **({"bandpass": norm.bandpass} if norm.bandpass else
           {"wavelength_um": norm.wavelength_um})})
    if src.lines:
        out["lines"] = [_line_dict(ln) for ln in src.lines]
    if src.extinction:
        out["extinction"] = [{"law": e.law, "a_v": e.a_v, "r_v": e.r_v, "applied": e.applied}
                             for e in src.extinction]
    return out


def _line_dict(ln: Line) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": ln.kind, "center_um": ln.center_um, "fwhm_um": ln.fwhm_um}
    if ln.flux_erg_s_cm2 is not None:
        out["flux_erg_s_cm2"] = ln.flux_erg_s_cm2
    else:
        out["equivalent_width_um"] = ln.equivalent_width_um
    return out


def normalize_scene(d: Any, field: str = "data") -> dict[str, Any]:
    scene = validate_scene(d, field)
    return {"sources": [{"source_id": p.source_id, "offset_x_arcsec": p.offset_x_arcsec,
                         "offset_y_arcsec": p.offset_y_arcsec} for p in scene.sources]}


def normalize_calculation(d: Any, field: str = "data") -> dict[str, Any]:
    """Apertures left null stay null (the mode's default, which follows the filter)."""
    calc = validate_calculation(d, field)
    strategy: dict[str, Any] = {"kind": calc.strategy.kind}
    if calc.strategy.target_snr is not None:
        strategy["target_snr"] = calc.strategy.target_snr
    out = {k: getattr(calc, k) for k in CALCULATION_KEYS
           if k not in ("strategy", "background")
           and (calc.spectroscopic or k not in SPECTROSCOPY_KEYS)}
    if calc.background is not None:
        out["background"] = {k: v for k, v in asdict(calc.background).items() if v is not None}
    if calc.spectroscopic and not calc.filter:
        out["filter"] = None
    nullable = ("aperture_radius_arcsec", "annulus_inner_arcsec", "annulus_outer_arcsec")
    for k in nullable + (("reference_wavelength_um",) if calc.spectroscopic else ()):
        if d.get(k) is None:
            out[k] = None
    out["strategy"] = strategy
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


def _spec_mode_entry(m: inst.SpecMode) -> dict[str, Any]:
    r, ri, ro = m.default_aperture
    return {
        "name": m.name, "label": m.label, "kind": "spectroscopy",
        "pixel_scale_arcsec": m.pixel_scale_arcsec, "filters": [],
        "configurations": [{"name": c.name, "disperser": c.disperser, "filter": c.filter,
                            "range_um": list(c.range_um)} for c in m.configurations.values()],
        "slit": {"name": m.slit_name, "width_arcsec": m.slit_width_arcsec,
                 "length_arcsec": m.slit_length_arcsec},
        "default_aperture": {"aperture_radius_arcsec": r, "annulus_inner_arcsec": ri,
                             "annulus_outer_arcsec": ro},
    }


def _mode_entry(iname: str, mname: str) -> dict[str, Any]:
    if inst.is_spectroscopic(iname, mname):
        m = inst.spec_mode(iname, mname)
        entry = _spec_mode_entry(m)
    else:
        m = inst.mode(iname, mname)
        r, ri, ro = m.default_aperture
        entry = {
            "name": mname, "label": m.label, "kind": "imaging",
            "pixel_scale_arcsec": m.pixel_scale_arcsec,
            "filters": [{"name": f.name, "pivot_um": f.pivot_um,
                         "bandwidth_um": f.bandwidth_um} for f in m.filters.values()],
            "default_aperture": {"aperture_radius_arcsec": r, "annulus_inner_arcsec": ri,
                                 "annulus_outer_arcsec": ro},
        }
    entry["readout_patterns"] = [{"name": p.name, "nframe": p.nframe, "nskip": p.nskip,
                                  "max_groups": p.max_groups}
                                 for p in inst.patterns(m.readout_family).values()]
    return entry


def catalog() -> dict[str, Any]:
    """Instruments, modes (imaging: filters; spectroscopy: disperser/filter pairs and the
    slit) and readout patterns, for building the forms."""
    out: dict[str, Any] = {"instruments": [], "shapes": list(SHAPES), "spectra": list(SPECTRA),
                           "units": list(UNITS), "strategies": list(STRATEGIES)}
    for iname in inst.instruments():
        idata = inst.raw()["instruments"][iname]
        modes = [_mode_entry(iname, mname) for mname in inst.modes(iname)]
        out["instruments"].append({"name": iname, "label": idata["label"], "modes": modes})
    return out
