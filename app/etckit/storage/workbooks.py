"""The one owner of the SQL of the workbook tables: workbooks, sources, scenes, calculations.

Every function takes an open transaction (``db.read()`` for reads, ``db.transaction()`` for
writes) and runs a few single-statement steps; none computes anything. Two counters, not to be
confused:

- ``item_revision`` (every workbook and item) counts the *edits* of that row by a user (its
  name, description, data, scene). An edit names the item revision it was made from and is
  applied only if that is still the current one (``update_item``, ``rename``: a compare and
  set in one UPDATE, so two concurrent edits cannot both succeed); ``edited_by`` is the user
  who made the last edit.
- A calculation's ``revision`` counts changes of its *inputs* (its own data, its scene, a
  source in its scene): a result is stored only for the revision it was computed from
  (``store_result``), so a result computed while the inputs changed is dropped. It also names
  plot URLs. Editing a source bumps the revision of the calculations using it, not their item
  revision (their forms are not stale).

Each item revision is also kept in ``item_history`` (name, data, scene, who, when), the last
``HISTORY_KEEP`` of each item, so that an item's recent versions can be shown and restored.
"""

from __future__ import annotations

import json
import time
from typing import Any

from . import spectra
from .base import Row, Transaction

KINDS = {"source": "sources", "scene": "scenes", "calculation": "calculations"}
HISTORY_KEEP = 20  # item revisions kept per item
WORKBOOK_COLUMNS = ("id, owner_id, name, description, created_at, updated_at, item_revision,"
                    " edited_by")


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
    """A new workbook (item revision 1), made by its owner."""
    await tx.execute(
        "INSERT INTO workbooks (id, owner_id, name, description, created_at, updated_at,"
        " edited_by) VALUES (:id, :owner, :name, :description, :created_at, :updated_at,"
        " :owner)", {k: row[k] for k in ("id", "name", "description", "created_at",
                                          "updated_at")} | {"owner": owner})


async def rename(tx: Transaction, workbook: str, name: str, description: str, now: float, *,
                 base_revision: int, user: str) -> bool:
    """A new name and description, if the workbook is still at base_revision (else False,
    nothing written)."""
    changed = await tx.execute(
        "UPDATE workbooks SET name = :name, description = :d, updated_at = :t,"
        " revision = revision + 1, item_revision = item_revision + 1, edited_by = :u"
        " WHERE id = :id AND item_revision = :base",
        {"name": name, "d": description, "t": now, "id": workbook, "base": base_revision,
         "u": user})
    return changed == 1


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
                      status: str = "", error: str = "", user: str = "",
                      versions: tuple[str, str] = ("", "")) -> None:
    """A new item at item revision 1; a calculation's result (if copied) with the engine and
    data versions it came from."""
    now = time.time()
    params = {"id": item_id, "w": workbook, "n": name, "d": json.dumps(data), "t": now,
              "u": user}
    if kind == "calculation":
        await tx.execute(
            "INSERT INTO calculations (id, workbook_id, scene_id, name, data, result, status,"
            " error, created_at, updated_at, edited_by, engine_version, data_version)"
            " VALUES (:id, :w, :scene, :n, :d, :r, :s, :e, :t, :t, :u, :ev, :dv)",
            {**params, "scene": scene, "r": result, "s": status or "pending", "e": error,
             "ev": versions[0], "dv": versions[1]})
    else:
        await tx.execute(
            f"INSERT INTO {KINDS[kind]} (id, workbook_id, name, data, created_at, updated_at,"
            " edited_by) VALUES (:id, :w, :n, :d, :t, :t, :u)", params)
    await _record(tx, kind, item_id)


async def update_item(tx: Transaction, kind: str, item_id: str, name: str, data: dict,
                      scene: str | None = None, *, base_revision: int, user: str) -> bool:
    """A new name and data if the item is still at base_revision (else False, nothing
    written); a calculation's inputs changed: a new revision, result pending."""
    params = {"n": name, "d": json.dumps(data), "t": time.time(), "id": item_id,
              "base": base_revision, "u": user}
    edit = ("item_revision = item_revision + 1, edited_by = :u"
            " WHERE id = :id AND item_revision = :base")
    if kind == "calculation":
        changed = await tx.execute(
            "UPDATE calculations SET name = :n, data = :d, updated_at = :t, scene_id = :scene,"
            " status = 'pending', revision = revision + 1, engine_version = '',"
            f" data_version = '', {edit}", {**params, "scene": scene})
    else:
        changed = await tx.execute(
            f"UPDATE {KINDS[kind]} SET name = :n, data = :d, updated_at = :t, {edit}", params)
    if changed == 1:
        await _record(tx, kind, item_id)
    return changed == 1


async def _record(tx: Transaction, kind: str, item_id: str) -> None:
    """Keep the item's current revision in its history; forget all but the last few."""
    scene = "scene_id" if kind == "calculation" else "NULL"
    await tx.execute(
        "INSERT INTO item_history (item_id, item_revision, kind, workbook_id, name, data,"
        f" scene_id, edited_by, edited_at) SELECT id, item_revision, :k, workbook_id, name,"
        f" data, {scene}, edited_by, updated_at FROM {KINDS[kind]} WHERE id = :id",
        {"k": kind, "id": item_id})
    await tx.execute(
        "DELETE FROM item_history WHERE item_id = :id AND item_revision <= (SELECT"
        f" MAX(item_revision) FROM item_history WHERE item_id = :id) - {HISTORY_KEEP}",
        {"id": item_id})


async def history(tx: Transaction, item_id: str) -> list[Row]:
    """The kept revisions of an item, newest first."""
    return await tx.fetchall("SELECT * FROM item_history WHERE item_id = :id"
                             " ORDER BY item_revision DESC", {"id": item_id})


async def delete_item(tx: Transaction, kind: str, item_id: str,
                      base_revision: int | None = None) -> bool:
    """Delete the item (only if still at base_revision, when given); False if it was not."""
    if base_revision is None:
        changed = await tx.execute(f"DELETE FROM {KINDS[kind]} WHERE id = :id", {"id": item_id})
    else:
        changed = await tx.execute(f"DELETE FROM {KINDS[kind]} WHERE id = :id"
                                   " AND item_revision = :base",
                                   {"id": item_id, "base": base_revision})
    await tx.execute("DELETE FROM item_history WHERE item_id = :id", {"id": item_id})
    return changed == 1


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
    """Their inputs changed: a new revision each, results pending and of no engine yet (a
    result stored later by a release that does not stamp it stays outdated); single-row
    writes."""
    for calc in calculations:
        await tx.execute("UPDATE calculations SET status = 'pending', revision = revision + 1,"
                         " engine_version = '', data_version = '', updated_at = :t"
                         " WHERE id = :id", {"t": time.time(), "id": calc})


async def inputs(tx: Transaction, calc: Row) -> tuple[dict, dict, dict[str, dict]] | None:
    """(calculation, scene, sources by id) as stored, or None if its scene is gone."""
    return (await inputs_of_all(tx, [calc]))[0]


async def inputs_of_all(tx: Transaction, calcs: list[Row]
                        ) -> list[tuple[dict, dict, dict[str, dict]] | None]:
    """``inputs`` of calculations of one workbook: its sources and their uploaded spectra
    are read once for all (a source edit checks every calculation that uses it), each scene
    once. The scenes and sources are shared between the tuples: read them, do not change
    them."""
    if not calcs:
        return []
    workbook = calcs[0]["workbook_id"]
    if any(c["workbook_id"] != workbook for c in calcs):
        raise ValueError("inputs_of_all: calculations of several workbooks")
    sources = await tx.fetchall("SELECT id, name, data FROM sources WHERE workbook_id = :w",
                                {"w": workbook})
    by_id = {s["id"]: {**json.loads(s["data"]), "name": s["name"]} for s in sources}
    await spectra.inline(tx, workbook, by_id)  # uploaded spectra (k16)
    scenes: dict[str, dict | None] = {}
    found = []
    for calc in calcs:
        if calc["scene_id"] not in scenes:
            row = await tx.fetchone("SELECT data FROM scenes WHERE id = :id",
                                    {"id": calc["scene_id"]})
            scenes[calc["scene_id"]] = None if row is None else json.loads(row["data"])
        scene = scenes[calc["scene_id"]]
        found.append(None if scene is None else (json.loads(calc["data"]), scene, by_id))
    return found


async def store_result(tx: Transaction, calc: str, revision: int, status: str,
                       result: str | None, error: str,
                       versions: tuple[str, str] = ("", "")) -> bool:
    """Store a result computed from `revision` by (engine version, data version); False
    (nothing written) if the inputs changed since (optimistic concurrency)."""
    changed = await tx.execute(
        "UPDATE calculations SET status = :s, result = :r, error = :e, updated_at = :t,"
        " engine_version = :ev, data_version = :dv WHERE id = :id AND revision = :rev",
        {"s": status, "r": result, "e": error, "t": time.time(), "id": calc, "rev": revision,
         "ev": versions[0], "dv": versions[1]})
    return changed == 1


async def outdated(tx: Transaction, workbook: str, versions: tuple[str, str]) -> list[Row]:
    """The calculations of a workbook whose stored result (or error) came from another engine
    or data version than `versions`."""
    return await tx.fetchall(
        "SELECT * FROM calculations WHERE workbook_id = :w AND status <> 'pending'"
        " AND (engine_version <> :ev OR data_version <> :dv) ORDER BY created_at, id",
        {"w": workbook, "ev": versions[0], "dv": versions[1]})
