"""Expand a calculation over a list of values, and compare calculations in one plot (issue 16).

``calculation.expand`` makes one new calculation per value of ``groups``, ``integrations``,
``exposures`` or ``filter`` (a filter of another mode of the same instrument switches the
mode), each validated and within the cost limits, all within the quota, in one transaction
and before anything is computed; they are stored pending and computed as follow-ups in the
user's turn (the broker's fair queue), each broadcast as ``calculation.saved`` when done, so
the page shows them arriving. ``plot.compare`` draws the curves of several calculations of
one workbook in one PNG, in the sandbox: S/N against time (imaging) or against wavelength
(spectroscopy, kind ``snr_vs_wavelength``); a calculation of the other kind is ``invalid``
naming ``calculations.<i>``.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

from ... import engine
from ...engine import instruments as inst
from ...engine.products import COMPARE_CURVES, MAX_COMPARED, compare_in_child
from ...storage import workbooks as wb
from ..compute import check_cost
from ..dispatch import Context, HandlerError, handler
from .contents import _recalculate_later
from .fields import hold_items, ident, owned_item, owned_workbook, quota, workbook_of

EXPAND_PARAMETERS = ("groups", "integrations", "exposures", "filter")
EXPAND_MAX = 20


def _values(message: dict[str, Any], parameter: str) -> list[Any]:
    values = message.get("values")
    if not isinstance(values, list) or not 1 <= len(values) <= EXPAND_MAX:
        raise HandlerError("invalid", f"values: must be a list of 1 to {EXPAND_MAX} values",
                           field="values")
    seen: dict[Any, int] = {}
    for i, v in enumerate(values):
        kind = str if parameter == "filter" else int
        if isinstance(v, bool) or not isinstance(v, kind):
            what = "a filter name" if parameter == "filter" else "a whole number"
            raise HandlerError("invalid", f"values.{i}: must be {what}", field=f"values.{i}")
        if v in seen:
            raise HandlerError("invalid", f"values.{i}: repeats values.{seen[v]}",
                               field=f"values.{i}")
        seen[v] = i
    return values


def _with(data: dict[str, Any], parameter: str, value: Any) -> dict[str, Any]:
    """The calculation's data with one value changed; a filter of another imaging mode of the
    same instrument brings its mode along (a spectroscopic calculation keeps its mode: its
    filter is checked against its disperser)."""
    out = {**data, parameter: value}
    instrument = data.get("instrument")
    if parameter == "filter" and instrument in inst.instruments():
        imaging = [m for m in inst.modes(instrument) if not inst.is_spectroscopic(instrument, m)]
        current = data.get("mode")
        if current not in imaging or value in inst.mode(instrument, current).filters:
            return out
        for mode in imaging:
            if value in inst.mode(instrument, mode).filters:
                return {**out, "mode": mode}
    return out


def _planned(ctx: Context, row: dict[str, Any], inputs: tuple, parameter: str,
             values: list[Any]) -> list[tuple[str, dict]]:
    """(name, normalized data) per value, each validated and within the cost limits."""
    base = json.loads(row["data"])
    out = []
    for i, value in enumerate(values):
        where = f"values.{i}"
        try:
            stored = engine.normalize_calculation(_with(base, parameter, value))
            check_cost(ctx.services, (stored, inputs[1], inputs[2]))
        except engine.ValidationError as exc:
            raise HandlerError("invalid", f"{where}: {exc.field}: {exc.message}",
                               field=where) from None
        except engine.TooExpensive as exc:
            raise HandlerError("too_expensive", f"{where}: {exc.field}: {exc.message}",
                               field=where) from None
        label = f"{row['name']} {parameter}={value}"[:ctx.cfg.quotas.name_max]
        out.append((label, stored))
    return out


async def _room_for(ctx: Context, tx: Any, workbook: str, n: int) -> None:
    limit = ctx.cfg.quotas.items_per_workbook
    have = await wb.count_items(tx, "calculation", workbook)
    if have + n > limit:
        raise quota("items_per_workbook", limit, f"values: {n} more calculations would pass"
                    f" the workbook's {limit} (it has {have})")


async def _still_there(tx: Any, row: dict[str, Any]) -> None:
    """The calculation expanded, on the scene it was read with (it may have been deleted,
    with its scene, while the values were checked outside any transaction)."""
    now = await wb.item(tx, "calculation", row["id"])
    if now is None:
        raise HandlerError("not_found", f"no calculation {row['id']}")
    if now["scene_id"] != row["scene_id"]:
        raise HandlerError("invalid", f"calculation: {row['id']} was moved to another scene"
                           " meanwhile; expand it again", field="calculation")


@handler("calculation.expand")
async def expand(ctx: Context, message: dict[str, Any]) -> None:
    calc_id = ident(message, "calculation")
    parameter = message.get("parameter")
    if parameter not in EXPAND_PARAMETERS:
        raise HandlerError("invalid", f"parameter: must be one of {', '.join(EXPAND_PARAMETERS)}",
                           field="parameter")
    values = _values(message, parameter)
    async with ctx.db.read() as tx:
        row = await owned_item(tx, ctx, "calculation", calc_id)
        inputs = await wb.inputs(tx, row)
        await _room_for(ctx, tx, row["workbook_id"], len(values))  # up front
    if inputs is None:
        raise HandlerError("not_found", f"no calculation {calc_id}")
    planned = _planned(ctx, row, inputs, parameter, values)  # before anything is written
    workbook = row["workbook_id"]
    made = []
    async with ctx.db.transaction() as tx:
        await owned_workbook(tx, ctx, workbook)
        await hold_items(tx, workbook)  # nothing it uses is deleted now until this commits
        await _still_there(tx, row)
        await _room_for(ctx, tx, workbook, len(planned))  # again: others may have added
        for label, stored in planned:
            new = uuid.uuid4().hex
            await wb.insert_item(tx, "calculation", new, workbook, label, stored,
                                 scene=row["scene_id"], user=ctx.user)
            made.append(await wb.item(tx, "calculation", new))
        await wb.touch(tx, workbook)
    ctx.reply({"type": "calculation.expanded", "workbook": workbook, "calculation": calc_id,
               "parameter": parameter, "calculations": [m["id"] for m in made]})
    _recalculate_later(ctx, workbook, made)


async def _compared(ctx: Context, workbook: str, ids: list[str]) -> list[tuple[str, tuple, Any]]:
    """(name, inputs, result or None) of each calculation: the results this worker has; the
    others are computed with the plot, in one sandbox run (compare_in_child)."""
    entries = []
    for i, calc_id in enumerate(ids):
        async with ctx.db.read() as tx:
            row = await owned_item(tx, ctx, "calculation", calc_id)
            inputs = await wb.inputs(tx, row) if row["workbook_id"] == workbook else None
        if inputs is None:  # another workbook's, or its scene is gone
            raise HandlerError("not_found", f"no calculation {calc_id}",
                               field=f"calculations.{i}")
        check_cost(ctx.services, inputs)
        entries.append((row["name"], inputs,
                        ctx.services.results.get((row["id"], row["revision"]))))
    return entries


@handler("plot.compare")
async def compare(ctx: Context, message: dict[str, Any]) -> None:
    """The curves of 1-8 calculations of one workbook in one PNG (base64)."""
    workbook = workbook_of(ctx, message)
    kind = message.get("kind", "snr_vs_time")
    if not isinstance(kind, str) or kind not in COMPARE_CURVES:  # a list is unhashable
        raise HandlerError("invalid", f"kind: must be one of {', '.join(COMPARE_CURVES)}",
                           field="kind")
    ids = message.get("calculations")
    if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_COMPARED:
        raise HandlerError("invalid", f"calculations: must be a list of 1 to {MAX_COMPARED}"
                           " calculation ids", field="calculations")
    ids = [ident({"calculations": x}, "calculations") for x in ids]
    if len(set(ids)) != len(ids):
        raise HandlerError("invalid", "calculations: lists a calculation twice",
                           field="calculations")
    async with ctx.db.read() as tx:
        await owned_workbook(tx, ctx, workbook)
    try:
        entries = await _compared(ctx, workbook, ids)
        png = await ctx.services.sandbox.run(compare_in_child, kind, entries)
    except engine.ValidationError as exc:
        raise HandlerError("invalid", f"{exc.field}: {exc.message}", field=exc.field) from None
    except engine.TooExpensive as exc:
        raise HandlerError("too_expensive", f"{exc.field}: {exc.message}",
                           field=exc.field) from None
    ctx.reply({"type": "plot.compare", "workbook": workbook, "kind": kind,
               "calculations": ids, "png": base64.b64encode(png).decode()})
