"""Inside a workbook: sources, scenes and calculations (add, edit, copy, delete).

Every change is validated and normalized by the engine (only known fields are stored; an
invalid field is named and nothing changes), checked against the quotas and the cost limits,
committed in one short transaction, and only then answered and broadcast to every client that
has the workbook open. A calculation that is added or edited is computed right after its
commit, outside any transaction, and its result stored with a revision check. Editing a
source or a scene marks the calculations that use it pending (a new revision each) and asks
for each to be recalculated as a follow-up request of this user's (`calculation.recalculate`),
which the broker queues in the user's turn; each is broadcast when done.

An edit names the `base_revision` it was made from (the item's `item_revision`); an edit of a
stale revision is refused with `conflict` and the item as it is now, and changes nothing (the
check is a compare and set in the UPDATE, so of two concurrent edits exactly one succeeds).
Each stored result records the engine and data version it came from; `workbook.recalculate`
recomputes the results of a workbook that came from another engine.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from ... import engine
from ...engine.version import versions
from ...storage import spectra
from ...storage import workbooks as wb
from ..compute import check_cost
from ..dispatch import Context, HandlerError, handler
from .fields import (
    base_revision,
    conflict,
    copy_name,
    data,
    hold_items,
    ident,
    name,
    owned_item,
    owned_workbook,
    quota,
    workbook_of,
)
from .views import history_view, item_view

NORMALIZE = {"source": engine.normalize_source, "scene": engine.normalize_scene,
             "calculation": engine.normalize_calculation}


def _invalid(exc: engine.ValidationError) -> HandlerError:
    return HandlerError("invalid", f"{exc.field}: {exc.message}", field=exc.field)


def _too_expensive(exc: engine.TooExpensive, where: str = "") -> HandlerError:
    return HandlerError("too_expensive", f"{exc.field}: {exc.message}{where}", field=exc.field)


def _announce(ctx: Context, type_: str, workbook: str, item: Any) -> None:
    """Answer the sender and tell every other client that has the workbook open."""
    event = {"type": type_, "workbook": workbook, "item": item}
    ctx.reply(event)
    ctx.to_workbook(workbook, event, except_sender=True)


async def _room(tx, ctx: Context, kind: str, workbook: str) -> None:
    limit = ctx.cfg.quotas.items_per_workbook
    await hold_items(tx, workbook)  # also: what it uses cannot be deleted meanwhile
    if await wb.count_items(tx, kind, workbook) >= limit:
        raise quota("items_per_workbook", limit, f"this workbook has as many {kind}s as allowed")


async def _scene_of(tx, kind: str, message: dict[str, Any], workbook: str,
                    current: str | None = None) -> str | None:
    if kind != "calculation":
        return None
    if "scene" not in message and current is not None:
        return current
    scene = ident(message, "scene")
    if await wb.scene_workbook(tx, scene) != workbook:
        raise HandlerError("invalid", f"scene: no scene {scene}", field="scene")
    return scene


async def _normalized(tx, ctx: Context, kind: str, raw: dict, workbook: str,
                      scene: str | None) -> dict[str, Any]:
    """What is stored: the engine's normalized data; scenes place sources of this workbook;
    a calculation's inputs are within the cost limits."""
    try:
        stored = NORMALIZE[kind](raw, field="data")
        if kind == "scene":
            known = await wb.source_ids(tx, workbook)
            for i, placed in enumerate(stored["sources"]):
                if placed["source_id"] not in known:
                    raise engine.ValidationError(f"data.sources.{i}.source_id",
                                                 f"no source {placed['source_id']}")
        if kind == "source" and stored["spectrum"]["kind"] == "uploaded":  # k16
            await _spectrum_of(tx, stored["spectrum"]["spectrum_id"], workbook)
        if kind == "calculation":
            scene_row = await wb.item(tx, "scene", scene or "")
            inputs = await wb.inputs(tx, {"scene_id": scene, "workbook_id": workbook,
                                          "data": json.dumps(stored)})
            if scene_row is not None and inputs is not None:
                check_cost(ctx.services, inputs)
    except engine.ValidationError as exc:
        raise _invalid(exc) from None
    except engine.TooExpensive as exc:
        raise _too_expensive(exc) from None
    return stored


async def _spectrum_of(tx, spectrum: str, workbook: str) -> None:
    """An uploaded spectrum a source uses must be one of its workbook's (and stays so: a
    concurrent spectrum.delete waits for this transaction, see spectra.lock)."""
    await spectra.lock(tx, workbook)
    row = await spectra.summary(tx, spectrum)
    if row is None or row["workbook_id"] != workbook:
        raise engine.ValidationError("data.spectrum.spectrum_id", f"no spectrum {spectrum}")


async def _dependents_within_limits(tx, ctx: Context, kind: str, item: str, name_: str,
                                    stored: dict, deps: list[dict]) -> None:
    """An edited source or scene must leave every calculation that uses it within the cost
    limits (checked with the new data, nothing computed). The workbook's sources and spectra
    are read once, however many calculations there are."""
    edited = {}
    if kind == "source" and deps:
        edited = {item: {**stored, "name": name_}}
        await spectra.inline(tx, deps[0]["workbook_id"], edited)  # an uploaded table
    for dep, inputs in zip(deps, await wb.inputs_of_all(tx, deps), strict=True):
        if inputs is None:
            continue
        calc, scene, sources = inputs
        if kind == "source":
            sources = {**sources, **edited}
        else:
            scene = stored
        try:
            check_cost(ctx.services, (calc, scene, sources))
        except engine.TooExpensive as exc:
            raise _too_expensive(exc, f" (calculation {dep['name']})") from None
        except engine.ValidationError:
            pass  # that calculation will show its error once recalculated


# -- calculating ----------------------------------------------------------------------------

async def recalculate(ctx: Context, calc_id: str) -> dict[str, Any] | None:
    """Compute a calculation's current revision outside any transaction and store it; the
    stored row, or None when its inputs changed meanwhile (the newer change recalculates)."""
    async with ctx.db.read() as tx:
        row = await wb.item(tx, "calculation", calc_id)
        inputs = await wb.inputs(tx, row) if row is not None else None
    if row is None or inputs is None:
        return None
    status, result, error = await ctx.services.outcome((calc_id, row["revision"]), inputs)
    async with ctx.db.transaction() as tx:
        if not await wb.store_result(tx, calc_id, row["revision"], status, result, error,
                                     versions()):
            return None
        return await wb.item(tx, "calculation", calc_id)


@handler("calculation.recalculate")
async def recalculate_followup(ctx: Context, message: dict[str, Any]) -> None:
    """A follow-up (never a browser's message: wssvc does not accept the type): recalculate
    one calculation a source or scene edit made pending, and broadcast it. The edit checked
    the editor's right (worker/rights.FOLLOW_UPS): no check again here."""
    calc_id = ident(message, "calculation")
    async with ctx.db.read() as tx:
        row = await wb.item(tx, "calculation", calc_id)
    if row is None or row["revision"] != message.get("revision"):
        return  # deleted since, or a newer edit asked for it again
    stored = await recalculate(ctx, calc_id)
    if stored is not None:
        ctx.to_workbook(stored["workbook_id"], {
            "type": "calculation.saved", "workbook": stored["workbook_id"],
            "item": item_view("calculation", stored)})


def _recalculate_later(ctx: Context, workbook: str, pending: list[dict[str, Any]]) -> None:
    for calc in pending:
        ctx.to_workbook(workbook, {"type": "calculation.saved", "workbook": workbook,
                                   "item": item_view("calculation", calc)})
        ctx.follow_up({"type": "calculation.recalculate", "calculation": calc["id"],
                       "revision": calc["revision"]})


# -- handlers -------------------------------------------------------------------------------

def _register(kind: str) -> None:
    for verb, make in (("add", _add), ("edit", _edit), ("copy", _copy), ("delete", _delete),
                       ("history", _history)):
        handler(f"{kind}.{verb}")(make(kind))


def _add(kind: str):
    async def add(ctx: Context, message: dict[str, Any]) -> None:
        workbook = workbook_of(ctx, message)
        item_name = name(ctx, message.get("name", f"New {kind}"))
        raw = data(message)
        item = uuid.uuid4().hex
        async with ctx.db.transaction() as tx:
            await owned_workbook(tx, ctx, workbook)
            await _room(tx, ctx, kind, workbook)
            scene = await _scene_of(tx, kind, message, workbook)
            stored = await _normalized(tx, ctx, kind, raw, workbook, scene)
            await wb.insert_item(tx, kind, item, workbook, item_name, stored, scene=scene,
                                 user=ctx.user)
            await wb.touch(tx, workbook)
            row = await wb.item(tx, kind, item)
        if kind == "calculation":
            row = await recalculate(ctx, item) or row
        _announce(ctx, f"{kind}.saved", workbook, item_view(kind, row))
    return add


def _edit(kind: str):
    async def edit(ctx: Context, message: dict[str, Any]) -> None:
        item = ident(message, kind)
        async with ctx.db.transaction() as tx:
            row = await owned_item(tx, ctx, kind, item)
            base = base_revision(message)
            if row["item_revision"] != base:
                raise conflict(kind, item, base, item_view(kind, row))
            workbook = row["workbook_id"]
            await hold_items(tx, workbook)  # what it uses cannot be deleted meanwhile
            new_name = name(ctx, message["name"]) if "name" in message else row["name"]
            raw = data(message) if "data" in message else json.loads(row["data"])
            scene = await _scene_of(tx, kind, message, workbook, row.get("scene_id"))
            stored = await _normalized(tx, ctx, kind, raw, workbook, scene)
            deps = await wb.dependents(tx, kind, row)
            await _dependents_within_limits(tx, ctx, kind, item, new_name, stored, deps)
            if not await wb.update_item(tx, kind, item, new_name, stored, scene,
                                        base_revision=base, user=ctx.user):
                raise await _conflict_now(tx, kind, item, base)
            await wb.mark_pending(tx, [d["id"] for d in deps])
            await wb.touch(tx, workbook)
            row = await wb.item(tx, kind, item)
            pending = [await wb.item(tx, "calculation", d["id"]) for d in deps]
        if kind == "calculation":
            row = await recalculate(ctx, item) or row
        _announce(ctx, f"{kind}.saved", workbook, item_view(kind, row))
        _recalculate_later(ctx, workbook, [p for p in pending if p is not None])
    return edit


def _copy(kind: str):
    async def copy(ctx: Context, message: dict[str, Any]) -> None:
        item = ident(message, kind)
        new = uuid.uuid4().hex
        async with ctx.db.transaction() as tx:
            row = await owned_item(tx, ctx, kind, item)
            workbook = row["workbook_id"]
            await _room(tx, ctx, kind, workbook)
            copied = copy_name(ctx, row["name"])
            await wb.insert_item(tx, kind, new, workbook, copied, json.loads(row["data"]),
                                 scene=row.get("scene_id"), result=row.get("result"),
                                 status=row.get("status", ""), error=row.get("error", ""),
                                 user=ctx.user, versions=(row.get("engine_version", ""),
                                                          row.get("data_version", "")))
            await wb.touch(tx, workbook)
            view = item_view(kind, await wb.item(tx, kind, new))
        _announce(ctx, f"{kind}.saved", workbook, view)
    return copy


def _delete(kind: str):
    async def delete(ctx: Context, message: dict[str, Any]) -> None:
        item = ident(message, kind)
        async with ctx.db.transaction() as tx:
            row = await owned_item(tx, ctx, kind, item)
            base = base_revision(message, required=False)
            if base is not None and row["item_revision"] != base:
                raise conflict(kind, item, base, item_view(kind, row))
            workbook = row["workbook_id"]
            await hold_items(tx, workbook)  # no item can take it up meanwhile
            await _refuse_if_used(tx, kind, row)
            if not await wb.delete_item(tx, kind, item, base):
                raise await _conflict_now(tx, kind, item, base or 0)
            await wb.touch(tx, workbook)
        _announce(ctx, f"{kind}.deleted", workbook, item)
    return delete


async def _conflict_now(tx, kind: str, item: str, base: int) -> HandlerError:
    """The conflict error for an edit that lost a race (the item as now committed)."""
    row = await wb.item(tx, kind, item)
    if row is None:
        return HandlerError("not_found", f"no {kind} {item}")
    return conflict(kind, item, base, item_view(kind, row))


@handler("workbook.recalculate")
async def recalculate_outdated(ctx: Context, message: dict[str, Any]) -> None:
    """Recompute every result of a workbook that came from another engine or data version:
    each gets a new revision (pending) and is recalculated as a follow-up."""
    workbook = workbook_of(ctx, message)
    async with ctx.db.transaction() as tx:
        await owned_workbook(tx, ctx, workbook)
        stale = [r["id"] for r in await wb.outdated(tx, workbook, versions())]
        await wb.mark_pending(tx, stale)
        pending = [await wb.item(tx, "calculation", c) for c in stale]
    ctx.reply({"type": "workbook.recalculating", "workbook": workbook, "calculations": stale})
    _recalculate_later(ctx, workbook, [p for p in pending if p is not None])


def _history(kind: str):
    async def show_history(ctx: Context, message: dict[str, Any]) -> None:
        """The item's recent revisions (who, when, what changed), newest first; a page
        restores one by sending it as an edit (`X.edit` with the current base_revision)."""
        item = ident(message, kind)
        async with ctx.db.read() as tx:
            await owned_item(tx, ctx, kind, item)
            rows = await wb.history(tx, item)
        ctx.reply({"type": f"{kind}.history", kind: item, "revisions": history_view(rows)})
    return show_history


async def _refuse_if_used(tx, kind: str, row: dict[str, Any]) -> None:
    if kind == "source":
        names = [s["name"] for s in await wb.scenes_using(tx, row["workbook_id"], row["id"])]
        if names:
            raise HandlerError("in_use", f"source is used by scene {', '.join(names)}")
    elif kind == "scene":
        users = await wb.dependents(tx, kind, row)
        if users:
            raise HandlerError("in_use", "scene is used by calculation "
                               + ", ".join(u["name"] for u in users))


for _kind in wb.KINDS:
    _register(_kind)
