"""Inside a workbook: sources, scenes, calculations, results, plots and downloads.

Every change is validated by the engine (an invalid field is named and nothing changes),
committed, and only then answered and broadcast to every client that has the workbook open.
Editing a source or a scene recalculates every calculation that uses it. The engine and
matplotlib run in a thread so the worker keeps its heartbeat while they work.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections import OrderedDict
from typing import Any

from .. import engine
from ..engine import plots
from .core import Context, HandlerError, handler
from .handlers import NAME_MAX, owned_workbook, workbook_view

KINDS = {"source": "sources", "scene": "scenes", "calculation": "calculations"}
DOWNLOAD_FORMATS = ("json", "csv")


def _invalid(exc: engine.ValidationError) -> HandlerError:
    return HandlerError("invalid", f"{exc.field}: {exc.message}", field=exc.field)


def _id(message: dict[str, Any], field: str) -> str:
    value = message.get(field)
    if not isinstance(value, str) or not value or len(value) > 64:
        raise HandlerError("invalid", f"{field} must be an id (string)")
    return value


def _name(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise HandlerError("invalid", f"{field} must be a non-empty string")
    if len(value) > NAME_MAX:
        raise HandlerError("invalid", f"{field} is longer than {NAME_MAX} characters")
    return value.strip()


def _data(message: dict[str, Any], field: str) -> dict[str, Any]:
    value = message.get(field)
    if not isinstance(value, dict):
        raise HandlerError("invalid", f"{field} must be an object")
    return value


def _workbook_of(ctx: Context, message: dict[str, Any]) -> str:
    workbook = message.get("workbook", ctx.workbook)
    if not isinstance(workbook, str) or not workbook:
        raise HandlerError("invalid", "workbook must be a workbook id (open one first)")
    return workbook


def _view(kind: str, row: dict[str, Any]) -> dict[str, Any]:
    view = {"id": row["id"], "workbook": row["workbook_id"], "name": row["name"],
            "data": json.loads(row["data"]), "updated_at": row["updated_at"]}
    if kind == "calculation":
        view.update(scene=row["scene_id"], status=row["status"], revision=row["revision"],
                    result=json.loads(row["result"]) if row["result"] else None,
                    error=row["error"] or None)
    return view


async def _rows(tx, kind: str, workbook: str) -> list[dict[str, Any]]:
    return await tx.fetchall(f"SELECT * FROM {KINDS[kind]} WHERE workbook_id = :w"
                             " ORDER BY created_at, id", {"w": workbook})


async def _row(tx, ctx: Context, kind: str, item: str) -> dict[str, Any]:
    row = await tx.fetchone(f"SELECT * FROM {KINDS[kind]} WHERE id = :id", {"id": item})
    if row is None:
        raise HandlerError("not_found", f"no {kind} {item}")
    await owned_workbook(tx, ctx, row["workbook_id"])  # another user's: not found either
    return row


def _validate(kind: str, data: dict[str, Any], source_ids: set[str]) -> None:
    try:
        if kind == "source":
            engine.validate_source(data, field="data")
        elif kind == "scene":
            scene = engine.validate_scene(data, field="data")
            for i, placement in enumerate(scene.sources):
                if placement.source_id not in source_ids:
                    raise engine.ValidationError(f"data.sources.{i}.source_id",
                                                 f"no source {placement.source_id} here")
        else:
            engine.validate_calculation(data, field="data")
    except engine.ValidationError as exc:
        raise _invalid(exc) from None


async def _touch(tx, workbook: str) -> None:
    await tx.execute("UPDATE workbooks SET updated_at = :t, revision = revision + 1"
                     " WHERE id = :id", {"t": time.time(), "id": workbook})


# -- calculating ----------------------------------------------------------------------------

async def _inputs(tx, calc_row: dict[str, Any]) -> tuple[dict, dict, dict[str, dict]]:
    scene = await tx.fetchone("SELECT data FROM scenes WHERE id = :id",
                              {"id": calc_row["scene_id"]})
    if scene is None:
        raise HandlerError("not_found", f"no scene {calc_row['scene_id']}")
    sources = await tx.fetchall("SELECT id, name, data FROM sources WHERE workbook_id = :w",
                                {"w": calc_row["workbook_id"]})
    return (json.loads(calc_row["data"]), json.loads(scene["data"]),
            {s["id"]: {**json.loads(s["data"]), "name": s["name"]} for s in sources})


class ResultCache:
    """The last few results (with their images) by (calculation, revision), so the four plots
    a page asks for right after a calculation do not compute it again."""

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self.items: OrderedDict[tuple[str, int], engine.Result] = OrderedDict()

    def get(self, key: tuple[str, int]) -> engine.Result | None:
        result = self.items.get(key)
        if result is not None:
            self.items.move_to_end(key)
        return result

    def put(self, key: tuple[str, int], result: engine.Result) -> None:
        self.items[key] = result
        self.items.move_to_end(key)
        while len(self.items) > self.size:
            self.items.popitem(last=False)


RESULTS = ResultCache()


def _compute(calculation: dict, scene: dict, sources: dict
             ) -> tuple[str, str | None, str, engine.Result | None]:
    """(status, result JSON or None, error text, result) — runs in a thread."""
    try:
        result = engine.calculate(calculation, scene, sources)
    except engine.ValidationError as exc:
        return "error", None, f"{exc.field}: {exc.message}", None
    return ("error" if result.errors else "ok"), result.to_json(), "", result


async def _recalculate(ctx: Context, tx, calc_rows: list[dict[str, Any]]) -> list[dict]:
    """Recompute and store each calculation (inside the caller's transaction)."""
    views = []
    for row in calc_rows:
        calculation, scene, sources = await _inputs(tx, row)
        status, result, error, computed = await asyncio.to_thread(
            _compute, calculation, scene, sources)
        await tx.execute(
            "UPDATE calculations SET status = :s, result = :r, error = :e, updated_at = :t,"
            " revision = revision + 1 WHERE id = :id",
            {"s": status, "r": result, "e": error, "t": time.time(), "id": row["id"]})
        view = _view("calculation", await tx.fetchone(
            "SELECT * FROM calculations WHERE id = :id", {"id": row["id"]}))
        if computed is not None:
            RESULTS.put((view["id"], view["revision"]), computed)
        views.append(view)
    return views


async def _users_of(tx, kind: str, row: dict[str, Any]) -> list[dict[str, Any]]:
    """The calculations that depend on a source or scene."""
    if kind == "scene":
        return await tx.fetchall("SELECT * FROM calculations WHERE scene_id = :id",
                                 {"id": row["id"]})
    if kind == "source":
        scenes = await tx.fetchall("SELECT id, data FROM scenes WHERE workbook_id = :w",
                                   {"w": row["workbook_id"]})
        ids = [s["id"] for s in scenes
               if any(p.get("source_id") == row["id"]
                      for p in json.loads(s["data"]).get("sources", []))]
        out = []
        for scene_id in ids:
            out += await tx.fetchall("SELECT * FROM calculations WHERE scene_id = :id",
                                     {"id": scene_id})
        return out
    return [row]


def _announce(ctx: Context, type_: str, workbook: str, item: Any) -> None:
    """Answer the sender and tell every other client that has the workbook open."""
    event = {"type": type_, "workbook": workbook, "item": item}
    ctx.reply(event)
    ctx.to_workbook(workbook, event, except_sender=True)


# -- handlers -------------------------------------------------------------------------------

@handler("workbook.open")
async def open_workbook(ctx: Context, message: dict[str, Any]) -> None:
    workbook = _workbook_of(ctx, message)
    async with ctx.db.transaction() as tx:
        wb = await owned_workbook(tx, ctx, workbook)
        content = {k + "s": [_view(k, r) for r in await _rows(tx, k, workbook)] for k in KINDS}
    ctx.reply({"type": "workbook.content", "workbook": workbook_view(wb), **content,
               "defaults": engine.defaults(), "catalog": engine.catalog()})


@handler("workbook.copy")
async def copy_workbook(ctx: Context, message: dict[str, Any]) -> None:
    workbook = _id(message, "workbook")
    now = time.time()
    async with ctx.db.transaction() as tx:
        wb = await owned_workbook(tx, ctx, workbook)
        new = {"id": uuid.uuid4().hex, "name": f"Copy of {wb['name']}"[:NAME_MAX],
               "description": wb["description"], "created_at": now, "updated_at": now}
        await tx.execute(
            "INSERT INTO workbooks (id, owner_id, name, description, created_at, updated_at)"
            " VALUES (:id, :owner, :name, :description, :created_at, :updated_at)",
            {**new, "owner": ctx.user})
        ids: dict[str, str] = {}
        for kind in KINDS:
            for row in await _rows(tx, kind, workbook):
                ids[row["id"]] = uuid.uuid4().hex
                data = json.loads(row["data"])
                if kind == "scene":
                    for p in data.get("sources", []):
                        p["source_id"] = ids.get(p.get("source_id"), p.get("source_id"))
                await _insert(tx, kind, ids[row["id"]], new["id"], row["name"], data,
                              scene=ids.get(row.get("scene_id") or "", None),
                              result=row.get("result"), status=row.get("status", ""),
                              error=row.get("error", ""))
    ctx.reply({"type": "workbook.created", "workbook": new})
    ctx.to_user({"type": "workbook.created", "workbook": new}, except_sender=True)


async def _insert(tx, kind: str, item: str, workbook: str, name: str, data: dict, *,
                  scene: str | None = None, result: str | None = None, status: str = "",
                  error: str = "") -> None:
    now = time.time()
    params = {"id": item, "w": workbook, "n": name, "d": json.dumps(data), "t": now}
    if kind == "calculation":
        await tx.execute(
            "INSERT INTO calculations (id, workbook_id, scene_id, name, data, result, status,"
            " error, created_at, updated_at) VALUES (:id, :w, :scene, :n, :d, :r, :s, :e,"
            " :t, :t)", {**params, "scene": scene, "r": result, "s": status or "pending",
                         "e": error})
    else:
        await tx.execute(
            f"INSERT INTO {KINDS[kind]} (id, workbook_id, name, data, created_at, updated_at)"
            " VALUES (:id, :w, :n, :d, :t, :t)", params)


def _register(kind: str) -> None:
    async def add(ctx: Context, message: dict[str, Any]) -> None:
        workbook = _workbook_of(ctx, message)
        name = _name(message.get("name", f"New {kind}"), "name")
        data = _data(message, "data")
        item = uuid.uuid4().hex
        async with ctx.db.transaction() as tx:
            await owned_workbook(tx, ctx, workbook)
            scene = await _scene_of(tx, kind, message, workbook)
            _validate(kind, data, await _source_ids(tx, workbook))
            await _insert(tx, kind, item, workbook, name, data, scene=scene)
            await _touch(tx, workbook)
            row = await tx.fetchone(f"SELECT * FROM {KINDS[kind]} WHERE id = :id", {"id": item})
            views = await _recalculate(ctx, tx, [row]) if kind == "calculation" else []
        view = views[0] if views else _view(kind, row)
        _announce(ctx, f"{kind}.saved", workbook, view)

    async def edit(ctx: Context, message: dict[str, Any]) -> None:
        item = _id(message, kind)
        async with ctx.db.transaction() as tx:
            row = await _row(tx, ctx, kind, item)
            workbook = row["workbook_id"]
            name = _name(message["name"], "name") if "name" in message else row["name"]
            data = _data(message, "data") if "data" in message else json.loads(row["data"])
            scene = await _scene_of(tx, kind, message, workbook, row.get("scene_id"))
            _validate(kind, data, await _source_ids(tx, workbook))
            sets = "name = :n, data = :d, updated_at = :t"
            if kind == "calculation":
                sets += ", scene_id = :scene"
            await tx.execute(f"UPDATE {KINDS[kind]} SET {sets} WHERE id = :id",
                             {"n": name, "d": json.dumps(data), "t": time.time(), "id": item,
                              "scene": scene})
            await _touch(tx, workbook)
            row = await tx.fetchone(f"SELECT * FROM {KINDS[kind]} WHERE id = :id", {"id": item})
            recalculated = await _recalculate(ctx, tx, await _users_of(tx, kind, row))
        view = recalculated[0] if kind == "calculation" else _view(kind, row)
        _announce(ctx, f"{kind}.saved", workbook, view)
        if kind != "calculation":  # the calculations that use it were recalculated
            for calc in recalculated:
                ctx.to_workbook(workbook, {"type": "calculation.saved", "workbook": workbook,
                                           "item": calc})

    async def copy(ctx: Context, message: dict[str, Any]) -> None:
        item = _id(message, kind)
        new = uuid.uuid4().hex
        async with ctx.db.transaction() as tx:
            row = await _row(tx, ctx, kind, item)
            workbook = row["workbook_id"]
            await _insert(tx, kind, new, workbook, f"Copy of {row['name']}"[:NAME_MAX],
                          json.loads(row["data"]), scene=row.get("scene_id"),
                          result=row.get("result"), status=row.get("status", ""),
                          error=row.get("error", ""))
            await _touch(tx, workbook)
            view = _view(kind, await tx.fetchone(
                f"SELECT * FROM {KINDS[kind]} WHERE id = :id", {"id": new}))
        _announce(ctx, f"{kind}.saved", workbook, view)

    async def delete(ctx: Context, message: dict[str, Any]) -> None:
        item = _id(message, kind)
        async with ctx.db.transaction() as tx:
            row = await _row(tx, ctx, kind, item)
            workbook = row["workbook_id"]
            await _refuse_if_used(tx, kind, row)
            await tx.execute(f"DELETE FROM {KINDS[kind]} WHERE id = :id", {"id": item})
            await _touch(tx, workbook)
        _announce(ctx, f"{kind}.deleted", workbook, item)

    for verb, fn in (("add", add), ("edit", edit), ("copy", copy), ("delete", delete)):
        handler(f"{kind}.{verb}")(fn)


async def _source_ids(tx, workbook: str) -> set[str]:
    rows = await tx.fetchall("SELECT id FROM sources WHERE workbook_id = :w", {"w": workbook})
    return {r["id"] for r in rows}


async def _scene_of(tx, kind: str, message: dict[str, Any], workbook: str,
                    current: str | None = None) -> str | None:
    if kind != "calculation":
        return None
    scene = message.get("scene", current)
    if not isinstance(scene, str) or not scene:
        raise HandlerError("invalid", "scene must be the id of a scene of this workbook")
    row = await tx.fetchone("SELECT workbook_id FROM scenes WHERE id = :id", {"id": scene})
    if row is None or row["workbook_id"] != workbook:
        raise HandlerError("invalid", f"scene: no scene {scene} in this workbook")
    return scene


async def _refuse_if_used(tx, kind: str, row: dict[str, Any]) -> None:
    if kind == "calculation":
        return
    users = await _users_of(tx, kind, row) if kind == "scene" else []
    if kind == "source":
        scenes = await tx.fetchall("SELECT name, data FROM scenes WHERE workbook_id = :w",
                                   {"w": row["workbook_id"]})
        names = [s["name"] for s in scenes if any(
            p.get("source_id") == row["id"] for p in json.loads(s["data"]).get("sources", []))]
        if names:
            raise HandlerError("in_use", f"source is used by scene {', '.join(names)}")
    if users:
        raise HandlerError("in_use", "scene is used by calculation "
                           + ", ".join(u["name"] for u in users))


for _kind in KINDS:
    _register(_kind)


@handler("calculation.download")
async def download(ctx: Context, message: dict[str, Any]) -> None:
    item = _id(message, "calculation")
    fmt = message.get("format", "json")
    if fmt not in DOWNLOAD_FORMATS:
        raise HandlerError("invalid", f"format must be one of {', '.join(DOWNLOAD_FORMATS)}")
    async with ctx.db.transaction() as tx:
        row = await _row(tx, ctx, "calculation", item)
        calculation, scene, sources = await _inputs(tx, row)
    try:
        result = await asyncio.to_thread(engine.calculate, calculation, scene, sources)
    except engine.ValidationError as exc:
        raise _invalid(exc) from None
    content = result.to_json() if fmt == "json" else result.to_csv()
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in row["name"])[:60] or "calc"
    ctx.reply({"type": "calculation.download", "format": fmt, "filename": f"{safe}.{fmt}",
               "content": content})


@handler("plot.render")
async def render_plot(ctx: Context, message: dict[str, Any]) -> None:
    """A plot as base64 PNG; wssvc asks for it when a page fetches /plots/... over HTTPS."""
    item = _id(message, "calculation")
    kind = message.get("kind")
    if kind not in plots.KINDS:
        raise HandlerError("invalid", f"kind must be one of {', '.join(plots.KINDS)}")
    async with ctx.db.transaction() as tx:
        row = await _row(tx, ctx, "calculation", item)
        calculation, scene, sources = await _inputs(tx, row)
    key = (item, row["revision"])

    def draw() -> bytes:
        result = RESULTS.get(key)
        if result is None:
            result = engine.calculate(calculation, scene, sources)
            RESULTS.put(key, result)
        return plots.render(kind, calculation, scene, sources, result=result)

    try:
        png = await asyncio.to_thread(draw)
    except engine.ValidationError as exc:
        raise _invalid(exc) from None
    ctx.reply({"type": "plot", "calculation": item, "kind": kind,
               "revision": row["revision"], "png": base64.b64encode(png).decode()})
