"""A calculation's download as a ``.tar.gz`` of FITS files, its inputs and its report.

``tarball(basename, inputs, report, images, curves)`` writes, under ``<basename>/``:

- ``images.fits``: an empty primary HDU, then one image HDU per ``products.Image`` (EXTNAME,
  BUNIT, the pixel scale as CDELT1/2 in arcsec centred on the aperture, a comment);
- ``curves.fits``: one binary table per ``products.Curve`` (EXTNAME, TTYPEn/TUNITn per
  column), so an S/N-against-time table and a spectroscopic S/N-against-wavelength table are
  written by the same code;
- ``input.json`` (calculation, scene, sources as stored), ``report.json`` (the result as the
  JSON download gives it) and ``report.txt`` (``quantity = value`` lines).

The archive is refused over ``max_bytes`` (``TooLarge``), so a download has a known bound.
astropy is imported when a tarball is made, never at engine import.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Iterable
from typing import Any

import numpy as np

from .products import Curve, Image

MAX_BYTES = 4_000_000  # the packed archive (~1 MB for the largest imaging stamp)


class TooLarge(ValueError):
    """The archive would exceed its bound."""


def _image_hdu(image: Image) -> Any:
    from astropy.io import fits

    hdu = fits.ImageHDU(np.asarray(image.data, dtype=np.float32), name=image.name)
    h = hdu.header
    h["BUNIT"] = (image.unit or "", "unit of the pixel values (empty: dimensionless)")
    ny, nx = hdu.data.shape
    for axis, n in ((1, nx), (2, ny)):
        h[f"CTYPE{axis}"] = ("OFFSET", "offset from the aperture centre")
        h[f"CUNIT{axis}"] = "arcsec"
        h[f"CRPIX{axis}"] = ((n + 1) / 2, "the aperture centre")
        h[f"CRVAL{axis}"] = 0.0
        h[f"CDELT{axis}"] = (image.pixel_arcsec, "[arcsec] detector pixel")
    if image.comment:
        h["COMMENT"] = image.comment
    for key, value in image.header.items():
        h[key] = value
    return hdu


def _table_hdu(curve: Curve) -> Any:
    from astropy.io import fits

    cols = []
    for c in curve.columns:
        values = np.asarray(c.values)
        fmt = "J" if np.issubdtype(values.dtype, np.integer) else "D"
        cols.append(fits.Column(name=c.name, format=fmt, unit=c.unit or None, array=values))
    hdu = fits.BinTableHDU.from_columns(cols, name=curve.name)
    if curve.title:
        hdu.header["TITLE"] = curve.title[:68]
    return hdu


def _fits_bytes(hdus: Iterable[Any], header: dict[str, Any]) -> bytes:
    from astropy.io import fits

    primary = fits.PrimaryHDU()
    for key, value in header.items():
        primary.header[key] = value
    buf = io.BytesIO()
    fits.HDUList([primary, *hdus]).writeto(buf, output_verify="exception")
    return buf.getvalue()


def _report_text(report: dict[str, Any], prefix: str = "") -> list[str]:
    lines = []
    for key, value in report.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            lines += _report_text(value, name + ".")
        else:
            lines.append(f"{name} = {json.dumps(value)}")
    return lines


def tarball(basename: str, inputs: dict[str, Any], report: dict[str, Any],
            images: list[Image], curves: list[Curve], header: dict[str, Any] | None = None,
            max_bytes: int = MAX_BYTES) -> bytes:
    """The ``.tar.gz`` bytes; ``header`` cards go into both primary headers (e.g. the
    engine version). Raises ``TooLarge`` over ``max_bytes``."""
    header = header or {}
    files = {
        "images.fits": _fits_bytes((_image_hdu(i) for i in images), header),
        "curves.fits": _fits_bytes((_table_hdu(c) for c in curves), header),
        "input.json": json.dumps(inputs, indent=1, allow_nan=False).encode(),
        "report.json": json.dumps(report, indent=1, allow_nan=False).encode(),
        "report.txt": ("\n".join(_report_text(report)) + "\n").encode(),
    }
    if sum(len(b) for b in files.values()) > 20 * max_bytes:
        raise TooLarge(f"the download would be larger than {max_bytes} bytes")
    buf = io.BytesIO()
    now = time.time()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{basename}/{name}")
            info.size, info.mtime, info.mode = len(data), int(now), 0o644
            tar.addfile(info, io.BytesIO(data))
    out = buf.getvalue()
    if len(out) > max_bytes:
        raise TooLarge(f"the download would be larger than {max_bytes} bytes")
    return out
