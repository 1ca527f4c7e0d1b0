"""The one owner of the SQL of the workbook tables: workbooks, sources, scenes, calculations.

Every function takes an open transaction (``db.read()`` for reads, ``db.transaction()`` for
writes) and runs a few single-statement steps; none computes anything. A calculation's
``revision`` counts changes of its *inputs* (its own data, its scene, a source in its scene):
a result is stored only for the revision it was computed from (``store_result``), so a
result computed while the inputs changed is dropped.
"""

from __future__ import annotations

import json
import time
from typing import Any

from . import spectra
from .base import Row, Transaction

KINDS = {"source": "sources", "scene": "scenes", "calculation": "calculations"}
WORKBOOK_COLUMNS = "id, owner_id, name, description, created_at, updated_at"


# -- workbooks ------------------------------------------------------------------------------

async def owned(tx: Transaction, user: str, workbook: str) -> Row | None:
    """The workbook if it exists and belongs to user, else None."""
    row = await tx.fetchone(f"SELECT {WORKBOOK_COLUMNS} FROM workbooks WHERE id = :id",
                            {"id": workbook})
    return row if row is not None and row["owner_id"] == user else None


async def list_for(tx: Transaction, user: str) -> list[Row]:
    return await tx.fetchall(
        f"SELECT {WORKBOOK_COLUMNS} FROM workbooks WHERE owner_id = :user"
        " ORDER BY updated_at DESC, id", {"user": user})


async def count_for(tx: Transaction, user: str) -> int:
    return int(await tx.fetchval("SELECT COUNT(*) AS n FROM workbooks WHERE owner_id = :u",
                                 {"u": user}))


async def insert_workbook(tx: Transaction, row: dict[str, Any], owner: str) -> None:
    await tx.execute(
        "INSERT INTO workbooks (id, owner_id, name, description, created_at, updated_at)"
        " VALUES (:id, :owner, :name, :description, :created_at, :updated_at)",
        {**row, "owner": owner})


async def rename(tx: Transaction, workbook: str, name: str, now: float) -> None:
    await tx.execute("UPDATE workbooks SET name = :name, updated_at = :t,"
                     " revision = revision + 1 WHERE id = :id",
                     {"name": name, "t": now, "id": workbook})


async def delete_workbook(tx: Transaction, workbook: str) -> None:
    await tx.execute("DELETE FROM workbooks WHERE id = :id", {"id": workbook})


async def touch(tx: Transaction, workbook: str) -> None:
    await tx.execute("UPDATE workbooks SET updated_at = :t, revision = revision + 1"
                     " WHERE id = :id", {"t": time.time(), "id": workbook})


# -- items (sources, scenes, calculations) --------------------------------------------------

async def items(tx: Transaction, kind: str, workbook: str) -> list[Row]:
    return await tx.fetchall(f"SELECT * FROM {KINDS[kind]} WHERE workbook_id = :w"
                             " ORDER BY created_at, id", {"w": workbook})


async def item(tx: Transaction, kind: str, item_id: str) -> Row | None:
    return await tx.fetchone(f"SELECT * FROM {KINDS[kind]} WHERE id = :id", {"id": item_id})


async def count_items(tx: Transaction, kind: str, workbook: str) -> int:
    return int(await tx.fetchval(f"SELECT COUNT(*) AS n FROM {KINDS[kind]}"
                                 " WHERE workbook_id = :w", {"w": workbook}))


async def insert_item(tx: Transaction, kind: str, item_id: str, workbook: str, name: str,
                      data: dict, *, scene: str | None = None, result: str | None = None,
                      status: str = "", error: str = "") -> None:
    now = time.time()
    params = {"id": item_id, "w": workbook, "n": name, "d": json.dumps(data), "t": now}
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


async def update_item(tx: Transaction, kind: str, item_id: str, name: str, data: dict,
                      scene: str | None = None) -> None:
    """A new name and data; a calculation's inputs changed: a new revision, result pending."""
    params = {"n": name, "d": json.dumps(data), "t": time.time(), "id": item_id}
    if kind == "calculation":
        await tx.execute("UPDATE calculations SET name = :n, data = :d, updated_at = :t,"
                         " scene_id = :scene, status = 'pending', revision = revision + 1"
                         " WHERE id = :id", {**params, "scene": scene})
    else:
        await tx.execute(f"UPDATE {KINDS[kind]} SET name = :n, data = :d, updated_at = :t"
                         " WHERE id = :id", params)


async def delete_item(tx: Transaction, kind: str, item_id: str) -> None:
    await tx.execute(f"DELETE FROM {KINDS[kind]} WHERE id = :id", {"id": item_id})


async def source_ids(tx: Transaction, workbook: str) -> set[str]:
    rows = await tx.fetchall("SELECT id FROM sources WHERE workbook_id = :w", {"w": workbook})
    return {r["id"] for r in rows}


async def scene_workbook(tx: Transaction, scene: str) -> str | None:
    return await tx.fetchval("SELECT workbook_id FROM scenes WHERE id = :id", {"id": scene})


async def scenes_using(tx: Transaction, workbook: str, source: str) -> list[Row]:
    """The scenes of a workbook that place a source (the one scan of scene data)."""
    scenes = await tx.fetchall("SELECT id, name, data FROM scenes WHERE workbook_id = :w",
                               {"w": workbook})
    return [s for s in scenes
            if any(isinstance(p, dict) and p.get("source_id") == source
                   for p in json.loads(s["data"]).get("sources", []))]


async def calculations_of(tx: Transaction, scene_ids: list[str]) -> list[Row]:
    out: list[Row] = []
    for scene in scene_ids:
        out += await tx.fetchall("SELECT * FROM calculations WHERE scene_id = :id"
                                 " ORDER BY created_at, id", {"id": scene})
    return out


async def dependents(tx: Transaction, kind: str, row: Row) -> list[Row]:
    """The calculations whose inputs include this source or scene."""
    if kind == "scene":
        return await calculations_of(tx, [row["id"]])
    if kind == "source":
        scenes = await scenes_using(tx, row["workbook_id"], row["id"])
        return await calculations_of(tx, [s["id"] for s in scenes])
    return []


async def mark_pending(tx: Transaction, calculations: list[str]) -> None:
    """Their inputs changed: a new revision each, results pending (single-row writes)."""
    for calc in calculations:
        await tx.execute("UPDATE calculations SET status = 'pending', revision = revision + 1,"
                         " updated_at = :t WHERE id = :id", {"t": time.time(), "id": calc})


async def inputs(tx: Transaction, calc: Row) -> tuple[dict, dict, dict[str, dict]] | None:
    """(calculation, scene, sources by id) as stored, or None if its scene is gone."""
    scene = await tx.fetchone("SELECT data FROM scenes WHERE id = :id", {"id": calc["scene_id"]})
    if scene is None:
        return None
    sources = await tx.fetchall("SELECT id, name, data FROM sources WHERE workbook_id = :w",
                                {"w": calc["workbook_id"]})
    by_id = {s["id"]: {**json.loads(s["data"]), "name": s["name"]} for s in sources}
    await spectra.inline(tx, calc["workbook_id"], by_id)  # uploaded spectra (k16)
    return json.loads(calc["data"]), json.loads(scene["data"]), by_id


async def store_result(tx: Transaction, calc: str, revision: int, status: str,
                       result: str | None, error: str) -> bool:
    """Store a result computed from `revision`; False (nothing written) if the inputs changed
    since (optimistic concurrency)."""
    changed = await tx.execute(
        "UPDATE calculations SET status = :s, result = :r, error = :e, updated_at = :t"
        " WHERE id = :id AND revision = :rev",
        {"s": status, "r": result, "e": error, "t": time.time(), "id": calc, "rev": revision})
    return changed == 1
