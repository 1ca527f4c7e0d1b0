"""Downloads and plots of a calculation's current revision, from the result kept for that
revision (computed once, in the sandbox, when nothing holds it)."""

from __future__ import annotations

import base64
from typing import Any

from ... import engine
from ...engine.version import versions
from ...messaging.types import PLOT_KINDS
from ...storage import workbooks as wb
from ..dispatch import Context, HandlerError, handler
from .fields import ident, owned_item

DOWNLOAD_FORMATS = ("json", "csv")


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
    fresh = (row["engine_version"], row["data_version"]) == versions()
    if fmt == "json" and row["status"] == "ok" and row["result"] and fresh:
        content = row["result"]  # the stored result of this very revision and engine
    else:
        result = await _result(ctx, row, inputs)
        content = result.to_json() if fmt == "json" else result.to_csv()
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in row["name"])[:60] or "calc"
    ctx.reply({"type": "calculation.download", "format": fmt, "filename": f"{safe}.{fmt}",
               "content": content})


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
    ctx.reply({"type": "plot", "calculation": item, "kind": kind,
               "revision": row["revision"], "png": base64.b64encode(png).decode()})
