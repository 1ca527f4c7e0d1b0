"""Uploaded spectra: two-column ASCII or a FITS table, read into (rest wavelength um, f_nu Jy).

Every refusal is a ``ValidationError`` whose field is ``<field>.content`` (or ``.flux_unit``,
``.format``) and whose message names the line (ASCII, 1-based) or the column and row (FITS) at
fault. Units go through ``astropy.units`` (f_lambda per Angstrom to f_nu by spectral density).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .validation import ValidationError

FORMATS = ("ascii", "fits")
FLUX_UNITS = ("Jy", "mJy", "uJy", "nJy", "erg/s/cm2/A")
WAVE_NAMES = ("wavelength", "wave", "lambda", "wavelength_um")
FLUX_NAMES = ("flux", "fnu", "flam", "flux_density")


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int = 2_000_000
    max_points: int = 20_000


def _to_jy(wave_um: np.ndarray, flux: np.ndarray, unit: str) -> np.ndarray:
    import astropy.units as u

    if unit == "erg/s/cm2/A":
        f = (flux * u.erg / u.s / u.cm**2 / u.AA).to(u.Jy, u.spectral_density(wave_um * u.um))
        return np.asarray(f.value, dtype=float)
    return np.asarray((flux * u.Unit(unit)).to(u.Jy).value, dtype=float)


def _check_table(w: np.ndarray, f: np.ndarray, where, field: str, limits: UploadLimits) -> None:
    """Positive increasing wavelengths, finite non-negative fluxes, 2..max_points rows;
    ``where(i)`` says where row i sits ("line 12", "row 12 of WAVELENGTH")."""
    if len(w) < 2:
        raise ValidationError(f"{field}.content", f"needs at least 2 points, got {len(w)}")
    if len(w) > limits.max_points:
        raise ValidationError(f"{field}.content",
                              f"at most {limits.max_points} points, got {len(w)}")
    for i in range(len(w)):
        if not (math.isfinite(w[i]) and w[i] > 0):
            raise ValidationError(f"{field}.content",
                                  f"{where(i, 1)}: the wavelength must be a positive number")
        if not (math.isfinite(f[i]) and f[i] >= 0):
            raise ValidationError(f"{field}.content",
                                  f"{where(i, 2)}: the flux must be a finite number >= 0")
        if i and w[i] <= w[i - 1]:
            raise ValidationError(f"{field}.content",
                                  f"{where(i, 1)}: wavelengths must increase "
                                  f"({w[i]:g} after {w[i - 1]:g})")


def parse_ascii(text: str, flux_unit: str, field: str = "spectrum",
                limits: UploadLimits = UploadLimits()) -> tuple[np.ndarray, np.ndarray]:
    """Two whitespace- or comma-separated columns, wavelength [um] and flux in ``flux_unit``;
    blank lines and lines starting with # are skipped."""
    if flux_unit not in FLUX_UNITS:
        raise ValidationError(f"{field}.flux_unit", f"must be one of {', '.join(FLUX_UNITS)}")
    rows, where_line = [], []
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.replace(",", " ").split()
        if len(parts) != 2:
            raise ValidationError(f"{field}.content", f"line {n}: expected two columns "
                                                      f"(wavelength, flux), got {len(parts)}")
        try:
            rows.append((float(parts[0]), float(parts[1])))
        except ValueError:
            col = 1 if not _is_number(parts[0]) else 2
            raise ValidationError(f"{field}.content",
                                  f"line {n}: column {col} is not a number") from None
        where_line.append(n)
        if len(rows) > limits.max_points:
            break
    w = np.array([r[0] for r in rows], dtype=float)
    f = np.array([r[1] for r in rows], dtype=float)
    _check_table(w, f, lambda i, col: f"line {where_line[i]}, column {col}", field, limits)
    return _finish(w, f, flux_unit, field)


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _column(names: list[str], wanted: tuple[str, ...], field: str, what: str) -> str:
    for n in names:
        if n.lower() in wanted:
            return n
    raise ValidationError(f"{field}.content",
                          f"no {what} column (named one of {', '.join(wanted)}); "
                          f"the table has {', '.join(names)[:120] or 'no columns'}")


def parse_fits(data: bytes, flux_unit: str, field: str = "spectrum",
               limits: UploadLimits = UploadLimits()) -> tuple[np.ndarray, np.ndarray]:
    """The first binary or ASCII table extension: a wavelength column in um (or with a TUNIT
    astropy understands) and a flux column in ``flux_unit`` (or its TUNIT)."""
    from astropy.io import fits

    if flux_unit not in FLUX_UNITS:
        raise ValidationError(f"{field}.flux_unit", f"must be one of {', '.join(FLUX_UNITS)}")
    try:
        with fits.open(io.BytesIO(data), memmap=False) as hdul:
            table = next((h for h in hdul if isinstance(h, (fits.BinTableHDU,
                                                             fits.TableHDU))), None)
            if table is None:
                raise ValidationError(f"{field}.content", "the FITS file has no table extension")
            cols = table.columns
            wname = _column(list(cols.names), WAVE_NAMES, field, "wavelength")
            fname = _column(list(cols.names), FLUX_NAMES, field, "flux")
            if len(table.data) > limits.max_points:
                raise ValidationError(f"{field}.content", f"at most {limits.max_points} "
                                                          f"points, got {len(table.data)}")
            w = _scalar_column(table.data[wname], field, wname)
            f = _scalar_column(table.data[fname], field, fname)
            wunit, funit = cols[wname].unit, cols[fname].unit
    except ValidationError:
        raise
    except Exception as exc:  # astropy raises many kinds on a damaged file
        raise ValidationError(f"{field}.content",
                              f"not a readable FITS table ({type(exc).__name__})") from None
    w = _wave_um(w, wunit, field, wname)
    names = {1: wname, 2: fname}
    _check_table(w, f, lambda i, col: f"row {i + 1} of column {names[col]}", field, limits)
    return _finish(w, f, _flux_unit(funit, flux_unit, field, fname), field)


def _scalar_column(column: Any, field: str, name: str) -> np.ndarray:
    """A table column of one number per row (a vector column, e.g. TFORM 10D, is refused)."""
    values = np.array(column, dtype=float)
    if values.ndim != 1:
        raise ValidationError(f"{field}.content", f"column {name} must hold one number per "
                                                  f"row, not {values.shape[1:]} arrays")
    return values


def _wave_um(w: np.ndarray, unit: str | None, field: str, name: str) -> np.ndarray:
    if not unit:
        return w
    import astropy.units as u

    try:
        return np.asarray((w * u.Unit(unit)).to(u.um).value, dtype=float)
    except (ValueError, u.UnitsError):
        raise ValidationError(f"{field}.content", f"column {name}: unit {unit[:20]!r} is not "
                                                  "a length") from None


def _flux_unit(unit: str | None, chosen: str, field: str, name: str) -> str:
    """The flux column's TUNIT when it names one of FLUX_UNITS, else the chosen unit."""
    if not unit:
        return chosen
    import astropy.units as u

    try:
        given = u.Unit(unit)
    except ValueError:
        raise ValidationError(f"{field}.content", f"column {name}: unknown unit "
                                                  f"{unit[:20]!r}") from None
    for cand in FLUX_UNITS:
        ref = u.erg / u.s / u.cm**2 / u.AA if cand == "erg/s/cm2/A" else u.Unit(cand)
        if given == ref:
            return cand
    raise ValidationError(f"{field}.content", f"column {name}: unit {unit[:20]!r} is not one of "
                                              f"{', '.join(FLUX_UNITS)}")


def _finish(w: np.ndarray, f: np.ndarray, unit: str, field: str,
            ) -> tuple[np.ndarray, np.ndarray]:
    fnu = _to_jy(w, f, unit)
    if not np.all(np.isfinite(fnu)) or not np.any(fnu > 0):
        raise ValidationError(f"{field}.content", "the flux is zero everywhere")
    return w, fnu


def parse(content: bytes, fmt: str, flux_unit: str, field: str = "spectrum",
          limits: UploadLimits = UploadLimits()) -> tuple[np.ndarray, np.ndarray]:
    """Dispatch on ``fmt``; refuses content over ``limits.max_bytes``."""
    if fmt not in FORMATS:
        raise ValidationError(f"{field}.format", f"must be one of {', '.join(FORMATS)}")
    if len(content) > limits.max_bytes:
        raise ValidationError(f"{field}.content",
                              f"at most {limits.max_bytes} bytes, got {len(content)}")
    if fmt == "fits":
        return parse_fits(content, flux_unit, field, limits)
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = content[:exc.start].count(b"\n") + 1
        raise ValidationError(f"{field}.content", f"line {line}: not UTF-8 text") from None
    return parse_ascii(text, flux_unit, field, limits)


def to_stored(w: np.ndarray, fnu: np.ndarray) -> dict[str, list[float]]:
    """The JSON form kept in the workbook."""
    return {"wave_um": [float(x) for x in w], "fnu_jy": [float(x) for x in fnu]}


def from_stored(d: dict) -> tuple[np.ndarray, np.ndarray]:
    w = np.asarray(d["wave_um"], dtype=float)
    f = np.asarray(d["fnu_jy"], dtype=float)
    w.setflags(write=False)
    f.setflags(write=False)
    return w, f
