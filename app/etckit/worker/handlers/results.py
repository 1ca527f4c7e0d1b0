"""Downloads and plots of a calculation's current revision, from the result kept for that
revision (computed once, in the sandbox, when nothing holds it)."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

from ... import engine
from ...engine.version import versions
from ...messaging.types import PLOT_KINDS
from ...storage import workbooks as wb
from ..dispatch import Context, HandlerError, handler
from .fields import ident, owned_item

DOWNLOAD_FORMATS = ("json", "csv", "fits")


async def _current(ctx: Context, calc_id: str) -> tuple[dict[str, Any], tuple]:
    """The calculation row and its inputs (a read transaction)."""
    async with ctx.db.read() as tx:
        row = await owned_item(tx, ctx, "calculation", calc_id)
        inputs = await wb.inputs(tx, row)
    if inputs is None:
        raise HandlerError("not_found", f"no calculation {calc_id}")
    return row, inputs


async def _result(ctx: Context, row: dict[str, Any], inputs: tuple) -> engine.Result:
    try:
        return await ctx.services.result((row["id"], row["revision"]), inputs)
    except engine.ValidationError as exc:
        raise HandlerError("invalid", f"{exc.field}: {exc.message}", field=exc.field) from None
    except engine.TooExpensive as exc:
        raise HandlerError("too_expensive", f"{exc.field}: {exc.message}",
                           field=exc.field) from None


@handler("calculation.download")
async def download(ctx: Context, message: dict[str, Any]) -> None:
    item = ident(message, "calculation")
    fmt = message.get("format", "json")
    if fmt not in DOWNLOAD_FORMATS:
        raise HandlerError("invalid", f"format must be one of {', '.join(DOWNLOAD_FORMATS)}",
                           field="format")
    row, inputs = await _current(ctx, item)
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in row["name"])[:60] or "calc"
    if fmt == "fits":
        await _download_fits(ctx, row, inputs, safe)
        return
    fresh = (row["engine_version"], row["data_version"]) == versions()
    if fmt == "json" and row["status"] == "ok" and row["result"] and fresh:
        content = row["result"]  # the stored result of this very revision and engine
    else:
        result = await _result(ctx, row, inputs)
        content = result.to_json() if fmt == "json" else result.to_csv()
    ctx.reply({"type": "calculation.download", "format": fmt, "filename": f"{safe}.{fmt}",
               "content": content})


def _without_table(source: dict[str, Any]) -> dict[str, Any]:
    """A source as stored: an uploaded spectrum's table (inlined for the engine) left out."""
    spectrum = source.get("spectrum")
    if isinstance(spectrum, dict) and "table" in spectrum:
        return {**source, "spectrum": {k: v for k, v in spectrum.items() if k != "table"}}
    return source


def _fits_tarball(basename: str, row: dict[str, Any], inputs: tuple, result: engine.Result,
                  max_bytes: int) -> bytes:
    """The FITS download (engine.fits), off the event loop: astropy and numpy work."""
    from ...engine import fits, products
    from ...engine.validation import validate_calculation

    calc = validate_calculation(inputs[0])
    images, curves = products.products(result, calc)
    stored = {"calculation": {"id": row["id"], "name": row["name"], "data": inputs[0]},
              "scene": inputs[1],
              "sources": {k: _without_table(v) for k, v in inputs[2].items()}}
    engine_version, data_version = versions()
    header = {"ORIGIN": "etckit", "ETCKVER": (engine_version[:60], "engine version"),
              "ETCKDATA": (data_version[:16], "engine data version"),
              "CALCID": (row["id"][:64], "calculation id"),
              "CALCREV": (row["revision"], "calculation revision")}
    return fits.tarball(basename, stored, result.to_dict(), images, curves, header, max_bytes)


async def _download_fits(ctx: Context, row: dict[str, Any], inputs: tuple, safe: str) -> None:
    from ...engine.fits import MAX_BYTES, TooLarge

    result = await _result(ctx, row, inputs)
    limit = min(MAX_BYTES, ctx.cfg.quotas.reply_max_bytes * 3 // 4 - 4096)
    try:
        data = await asyncio.to_thread(_fits_tarball, safe, row, inputs, result, limit)
    except TooLarge as exc:
        raise HandlerError("too_large", f"format: {exc}", field="format") from None
    ctx.reply({"type": "calculation.download", "format": "fits",
               "filename": f"{safe}.tar.gz",
               "content_base64": base64.b64encode(data).decode()})


@handler("plot.render")
async def render_plot(ctx: Context, message: dict[str, Any]) -> None:
    """A plot as base64 PNG; wssvc asks for it when a page fetches /plots/... over HTTPS.
    With `revision`, only that revision: a plot of any other is `not_found`."""
    item = ident(message, "calculation")
    kind = message.get("kind")
    if kind not in PLOT_KINDS:
        raise HandlerError("invalid", f"kind must be one of {', '.join(PLOT_KINDS)}",
                           field="kind")
    row, inputs = await _current(ctx, item)
    wanted = message.get("revision", row["revision"])
    if wanted != row["revision"] or isinstance(wanted, bool):
        raise HandlerError("not_found", f"no plot for calculation {item} revision"
                           f" {str(wanted)[:20]}")
    await _result(ctx, row, inputs)  # its errors, named, before drawing
    try:
        png = await ctx.services.render(kind, (item, row["revision"]), inputs)
    except engine.ValidationError as exc:
        raise HandlerError("invalid", f"{exc.field}: {exc.message}", field=exc.field) from None
    except engine.TooExpensive as exc:
        raise HandlerError("too_expensive", f"{exc.field}: {exc.message}",
                           field=exc.field) from None
    ctx.reply({"type": "plot", "calculation": item, "kind": kind, "revision": row["revision"],
               "workbook": row["workbook_id"], "png": base64.b64encode(png).decode()})
