"""Spectra uploaded into a workbook (issue 16): upload, list, delete.

An upload is parsed off the event loop (``engine.uploads``, astropy for units and FITS),
refused with ``invalid`` naming ``content``'s line or column at fault, and stored once in the
``spectra`` table (``storage.spectra``); sources of the workbook use it by id. A spectrum that
a source uses cannot be deleted (``in_use``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import uuid
from typing import Any

from ... import engine
from ...engine import uploads
from ...storage import spectra
from ...storage import workbooks as wb
from .. import rights
from ..dispatch import Context, HandlerError, handler
from .fields import (
    hold_quota,
    ident,
    name,
    owned_workbook,
    quota,
    room_for_points,
    workbook_of,
)


def view(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "workbook": row["workbook_id"], "name": row["name"],
            "format": row["format"], "flux_unit": row["flux_unit"], "points": row["points"],
            "wave_min_um": row["wave_min_um"], "wave_max_um": row["wave_max_um"]}


def _content(ctx: Context, message: dict[str, Any], fmt: str) -> bytes:
    """The file's bytes: ``content`` (text) for ascii, ``content_base64`` for fits."""
    limit = ctx.cfg.calculation.upload_max_bytes
    if fmt == "fits":
        raw = message.get("content_base64")
        if not isinstance(raw, str):
            raise HandlerError("invalid", "content_base64 must be the FITS file in base64",
                               field="content_base64")
        if len(raw) > limit * 4 // 3 + 4:
            raise HandlerError("too_large", f"content_base64: the file is larger than {limit} "
                               "bytes (calculation.upload_max_bytes)", field="content_base64")
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise HandlerError("invalid", "content_base64 is not base64",
                               field="content_base64") from None
    raw = message.get("content")
    if not isinstance(raw, str):
        raise HandlerError("invalid", "content must be the text of the file", field="content")
    return raw.encode("utf-8", "surrogatepass")


async def _parse(ctx: Context, message: dict[str, Any]) -> tuple[str, str, dict]:
    fmt, unit = message.get("format"), message.get("flux_unit")
    if fmt not in uploads.FORMATS:
        raise HandlerError("invalid", f"format must be one of {', '.join(uploads.FORMATS)}",
                           field="format")
    content = _content(ctx, message, fmt)
    limits = uploads.UploadLimits(ctx.cfg.calculation.upload_max_bytes,
                                  ctx.cfg.calculation.upload_max_points)
    try:
        w, f = await asyncio.to_thread(uploads.parse, content, fmt, unit, "spectrum", limits)
    except engine.ValidationError as exc:
        field = "content_base64" if fmt == "fits" and exc.field.endswith("content") else \
            exc.field.removeprefix("spectrum.")
        code = "too_large" if "bytes, got" in exc.message else "invalid"
        raise HandlerError(code, f"{field}: {exc.message}", field=field) from None
    return fmt, unit, uploads.to_stored(w, f)


@handler("spectrum.upload")
async def upload(ctx: Context, message: dict[str, Any]) -> None:
    workbook = workbook_of(ctx, message)
    item_name = name(ctx, message.get("name", "Uploaded spectrum"))
    async with ctx.db.read() as tx:
        await owned_workbook(tx, ctx, workbook)
    fmt, unit, data = await _parse(ctx, message)  # outside any transaction
    spectrum = uuid.uuid4().hex
    async with ctx.db.transaction() as tx:
        row = await owned_workbook(tx, ctx, workbook)
        limit = ctx.cfg.quotas.items_per_workbook
        await hold_quota(tx, "items", workbook)
        if await spectra.count(tx, workbook) >= limit:
            raise quota("items_per_workbook", limit,
                        "this workbook has as many spectra as allowed")
        await room_for_points(tx, ctx, row["owner_id"], len(data["wave_um"]))
        await spectra.insert(tx, spectrum, workbook, item_name, fmt, unit, data)
        await wb.touch(tx, workbook)
        row = await spectra.summary(tx, spectrum)
    event = {"type": "spectrum.saved", "workbook": workbook, "item": view(row)}
    ctx.reply(event)
    ctx.to_workbook(workbook, event, except_sender=True)


@handler("spectrum.list")
async def listing(ctx: Context, message: dict[str, Any]) -> None:
    workbook = workbook_of(ctx, message)
    async with ctx.db.read() as tx:
        await owned_workbook(tx, ctx, workbook)
        rows = await spectra.summaries(tx, workbook)
    ctx.reply({"type": "spectrum.list", "workbook": workbook,
               "spectra": [view(r) for r in rows]})


@handler("spectrum.delete")
async def delete(ctx: Context, message: dict[str, Any]) -> None:
    spectrum = ident(message, "spectrum")
    async with ctx.db.transaction() as tx:
        row = await spectra.summary(tx, spectrum)
        if row is None:
            raise HandlerError("not_found", f"no spectrum {spectrum}")
        await rights.check(tx, ctx, row["workbook_id"], missing=f"no spectrum {spectrum}")
        workbook = row["workbook_id"]
        await spectra.lock(tx, workbook)  # no source may take it up meanwhile
        users = spectra.used_by(await wb.items(tx, "source", workbook), spectrum)
        if users:
            raise HandlerError("in_use", f"spectrum is used by source {', '.join(users)}")
        await spectra.delete(tx, spectrum)
        await wb.touch(tx, workbook)
    event = {"type": "spectrum.deleted", "workbook": workbook, "item": spectrum}
    ctx.reply(event)
    ctx.to_workbook(workbook, event, except_sender=True)
