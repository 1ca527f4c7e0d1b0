"""Export a whole workbook as one JSON object, and import one into a new workbook.

The file holds the workbook's name and description, its sources, scenes and calculations
(with their inputs; results are not carried: an import computes them again, so a result is
never trusted from a file) and the engine and data version it was exported from. An import is
checked in full before anything is written: every item through the engine's normalizers, every
reference between items, the quotas and the cost limits; the first fault is refused naming its
JSON path (`content.calculations.2.data.groups`) and nothing is stored. The new workbook's
calculations are then computed as follow-ups, like a source edit's (contents.py).
"""

from __future__ import annotations

import json
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from ... import engine
from ...engine import uploads
from ...storage import spectra as stored_spectra
from ...storage import workbooks as wb
from ..compute import check_cost
from ..dispatch import Context, HandlerError, handler
from .contents import NORMALIZE
from .fields import ID_RE, name, owned_workbook, quota, room_for_points, text, workbook_of
from .views import engine_view
from .workbooks import announce_created, room_for_one_more

FORMAT = "etckit-workbook"
FORMAT_VERSION = 1
TOP_KEYS = {"format", "format_version", "engine_version", "data_version", "workbook",
            "spectra", "sources", "scenes", "calculations"}
SPECTRUM_KEYS = {"id", "name", "format", "flux_unit", "data"}
ITEM_KEYS = {"source": {"id", "name", "data"}, "scene": {"id", "name", "data"},
             "calculation": {"id", "name", "scene", "data"}}


def _invalid(path: str, message: str) -> HandlerError:
    return HandlerError("invalid", f"{path}: {message}", field=path)


@handler("workbook.export")
async def export_workbook(ctx: Context, message: dict[str, Any]) -> None:
    workbook = workbook_of(ctx, message)
    async with ctx.db.read() as tx:
        row = await owned_workbook(tx, ctx, workbook)
        items = {kind: await wb.items(tx, kind, workbook) for kind in wb.KINDS}
        tables = await stored_spectra.with_data(tx, workbook)
    content: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION,
                               **engine_view(),
                               "workbook": {"name": row["name"],
                                            "description": row["description"]},
                               "spectra": [{"id": r["id"], "name": r["name"],
                                            "format": r["format"], "flux_unit": r["flux_unit"],
                                            "data": json.loads(r["data"])} for r in tables]}
    for kind, rows in items.items():
        content[kind + "s"] = [
            {"id": r["id"], "name": r["name"],
             **({"scene": r["scene_id"]} if kind == "calculation" else {}),
             "data": json.loads(r["data"])} for r in rows]
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in row["name"])[:60]
    ctx.reply({"type": "workbook.export", "workbook": workbook,
               "filename": f"{safe or 'workbook'}.etckit.json", "content": content})


@dataclass
class Plan:
    """What an import will write: items with new ids, in order (sources, scenes, calcs)."""

    name: str
    description: str
    items: list[tuple[str, str, str, dict, str | None]] = field(default_factory=list)
    ids: dict[str, dict[str, str]] = field(default_factory=lambda: {k: {} for k in wb.KINDS})
    spectra: list[tuple[str, str, str, str, dict]] = field(default_factory=list)
    tables: dict[str, dict] = field(default_factory=dict)  # new spectrum id -> its data


def _header(ctx: Context, message: dict[str, Any]) -> tuple[dict[str, Any], Plan]:
    content = message.get("content")
    if not isinstance(content, dict):
        raise _invalid("content", "must be an object (an exported workbook)")
    extra = sorted(set(content) - TOP_KEYS)
    if extra:
        raise _invalid(f"content.{extra[0]}", "unknown key")
    if content.get("format") != FORMAT:
        raise _invalid("content.format", f"must be {FORMAT!r}")
    if content.get("format_version") != FORMAT_VERSION:
        raise _invalid("content.format_version", f"must be {FORMAT_VERSION}")
    about = content.get("workbook", {})
    if not isinstance(about, dict):
        raise _invalid("content.workbook", "must be an object")
    title = (name(ctx, message["name"]) if "name" in message
             else name(ctx, about.get("name"), "content.workbook.name"))
    description = text(about.get("description"), "content.workbook.description",
                       limit=ctx.cfg.quotas.description_max, required=False)
    return content, Plan(title, description)


def _entries(ctx: Context, content: dict[str, Any], kind: str) -> list[tuple[str, dict]]:
    """(path, entry) of each item of a kind, shape-checked, ids unique; within the quota."""
    path = "content.spectra" if kind == "spectrum" else f"content.{kind}s"
    entries = content.get(path.removeprefix("content."), [])
    keys = SPECTRUM_KEYS if kind == "spectrum" else ITEM_KEYS[kind]
    if not isinstance(entries, list):
        raise _invalid(path, "must be a list")
    limit = ctx.cfg.quotas.items_per_workbook
    if len(entries) > limit:
        raise quota("items_per_workbook", limit, f"{path} holds more {kind}s than allowed")
    seen: set[str] = set()
    out = []
    for i, entry in enumerate(entries):
        where = f"{path}.{i}"
        if not isinstance(entry, dict):
            raise _invalid(where, "must be an object")
        extra = sorted(set(entry) - keys)
        if extra:
            raise _invalid(f"{where}.{extra[0]}", "unknown key")
        ident = entry.get("id")
        if not isinstance(ident, str) or not ID_RE.match(ident) or ident in seen:
            raise _invalid(f"{where}.id", "must be an id (1 to 64 letters, digits, - or _)"
                           " not used by another " + kind)
        seen.add(ident)
        out.append((where, entry))
    return out


def _column(values: Any, path: str, limit: int) -> list[float]:
    if not isinstance(values, list) or not 2 <= len(values) <= limit:
        raise _invalid(path, f"must be a list of 2 to {limit} numbers")
    for i, x in enumerate(values):
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not _finite(x):
            raise _invalid(f"{path}.{i}", "must be a finite number")
    return [float(x) for x in values]


def _finite(x: float) -> bool:
    try:
        return math.isfinite(x)
    except OverflowError:  # an integer beyond a double (wssvc refuses them: 309+ digits)
        return False


def _table(data: Any, path: str, limit: int) -> dict[str, list[float]]:
    """A spectrum's ``{wave_um, fnu_jy}``: as long as each other, increasing positive
    wavelengths, fluxes >= 0; the first fault named by its row."""
    if not isinstance(data, dict):
        raise _invalid(path, "must be an object {wave_um, fnu_jy}")
    extra = sorted(set(data) - {"wave_um", "fnu_jy"})
    if extra:
        raise _invalid(f"{path}.{str(extra[0])[:40]}", "unknown key")
    wave = _column(data.get("wave_um"), f"{path}.wave_um", limit)
    fnu = _column(data.get("fnu_jy"), f"{path}.fnu_jy", limit)
    if len(fnu) != len(wave):
        raise _invalid(f"{path}.fnu_jy", f"must have as many rows as wave_um ({len(wave)})")
    for i, w in enumerate(wave):
        if w <= 0 or (i and w <= wave[i - 1]):
            raise _invalid(f"{path}.wave_um.{i}", "wavelengths must be positive and increase")
        if fnu[i] < 0:
            raise _invalid(f"{path}.fnu_jy.{i}", "the flux must be >= 0")
    return {"wave_um": wave, "fnu_jy": fnu}


def _plan_spectra(ctx: Context, content: dict[str, Any], plan: Plan) -> None:
    """The file's uploaded spectra, each checked, under new ids (``plan.ids["spectrum"]``)."""
    plan.ids["spectrum"] = {}
    for where, entry in _entries(ctx, content, "spectrum"):
        item_name = name(ctx, entry.get("name"), f"{where}.name")
        if entry.get("format") not in uploads.FORMATS:
            raise _invalid(f"{where}.format", f"must be one of {', '.join(uploads.FORMATS)}")
        if entry.get("flux_unit") not in uploads.FLUX_UNITS:
            raise _invalid(f"{where}.flux_unit",
                           f"must be one of {', '.join(uploads.FLUX_UNITS)}")
        data = _table(entry.get("data"), f"{where}.data",
                      ctx.cfg.calculation.upload_max_points)
        new_id = uuid.uuid4().hex
        plan.ids["spectrum"][entry["id"]] = new_id
        plan.tables[new_id] = data
        plan.spectra.append((new_id, item_name, entry["format"], entry["flux_unit"], data))


def _uploaded(plan: Plan, where: str, spectrum: Any) -> None:
    """Point a source's uploaded spectrum at the new id of the file's spectrum it names."""
    if not (isinstance(spectrum, dict) and spectrum.get("kind") == "uploaded"):
        return
    new = plan.ids["spectrum"].get(spectrum.get("spectrum_id"))
    if new is None:
        raise _invalid(f"{where}.data.spectrum.spectrum_id",
                       f"no spectrum {str(spectrum.get('spectrum_id'))[:64]} in the file")
    spectrum["spectrum_id"] = new


def _plan_items(ctx: Context, content: dict[str, Any], plan: Plan) -> None:
    """Normalize every item and map the file's ids (and references) to new ones."""
    for kind in wb.KINDS:
        for where, entry in _entries(ctx, content, kind):
            item_name = name(ctx, entry.get("name"), f"{where}.name")
            try:
                data = NORMALIZE[kind](entry.get("data"), field=f"{where}.data")
            except engine.ValidationError as exc:
                raise _invalid(exc.field, exc.message) from None
            scene = None
            if kind == "source":
                _uploaded(plan, where, data.get("spectrum"))
            if kind == "scene":
                for j, placed in enumerate(data["sources"]):
                    new = plan.ids["source"].get(placed["source_id"])
                    if new is None:
                        raise _invalid(f"{where}.data.sources.{j}.source_id",
                                       f"no source {placed['source_id']} in the file")
                    placed["source_id"] = new
            if kind == "calculation":
                named = entry.get("scene")
                scene = plan.ids["scene"].get(named) if isinstance(named, str) else None
                if scene is None:
                    raise _invalid(f"{where}.scene", f"no scene {str(entry.get('scene'))[:64]}"
                                   " in the file")
            new_id = uuid.uuid4().hex
            plan.ids[kind][entry["id"]] = new_id
            plan.items.append((kind, new_id, item_name, data, scene))


def _inlined(source: dict[str, Any], tables: dict[str, dict]) -> dict[str, Any]:
    """A source with its uploaded spectrum's table, as the worker gives it to the engine."""
    spectrum = source.get("spectrum")
    if isinstance(spectrum, dict) and spectrum.get("spectrum_id") in tables:
        return {**source, "spectrum": {**spectrum, "table": tables[spectrum["spectrum_id"]]}}
    return source


def _check_costs(ctx: Context, plan: Plan) -> None:
    """Every calculation within the cost limits, as it will be stored (nothing computed)."""
    sources = {i: _inlined({**d, "name": n}, plan.tables)
               for k, i, n, d, _ in plan.items if k == "source"}
    scenes = {i: d for k, i, _, d, _ in plan.items if k == "scene"}
    back = {new: old for old, new in plan.ids["calculation"].items()}
    calcs = [(i, d, s) for k, i, _, d, s in plan.items if k == "calculation"]
    for n, (calc_id, data, scene) in enumerate(calcs):
        try:
            check_cost(ctx.services, (data, scenes[scene], sources))
        except (engine.TooExpensive, engine.ValidationError) as exc:
            code = "too_expensive" if isinstance(exc, engine.TooExpensive) else "invalid"
            path = f"content.calculations.{n}.{exc.field}"
            raise HandlerError(code, f"{path}: {exc.message} (calculation"
                               f" {back[calc_id]})", field=path) from None


@handler("workbook.import")
async def import_workbook(ctx: Context, message: dict[str, Any]) -> None:
    """A new workbook from an exported one; its calculations are computed as follow-ups."""
    content, plan = _header(ctx, message)
    _plan_spectra(ctx, content, plan)
    _plan_items(ctx, content, plan)
    _check_costs(ctx, plan)
    now = time.time()
    row = {"id": uuid.uuid4().hex, "name": plan.name, "description": plan.description,
           "created_at": now, "updated_at": now, "item_revision": 1, "edited_by": ctx.user}
    async with ctx.db.transaction() as tx:
        await room_for_one_more(tx, ctx)
        await room_for_points(tx, ctx, ctx.user,
                              sum(len(data["wave_um"]) for *_, data in plan.spectra))
        await wb.insert_workbook(tx, row, ctx.user)
        for spectrum, *rest in plan.spectra:
            await stored_spectra.insert(tx, spectrum, row["id"], *rest)
        for kind, item_id, item_name, data, scene in plan.items:
            await wb.insert_item(tx, kind, item_id, row["id"], item_name, data, scene=scene,
                                 user=ctx.user)
    announce_created(ctx, row)
    for kind, item_id, *_ in plan.items:
        if kind == "calculation":
            ctx.follow_up({"type": "calculation.recalculate", "calculation": item_id,
                           "revision": 1})
