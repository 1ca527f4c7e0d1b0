"""The one owner of the SQL of the ``spectra`` table: spectra uploaded into a workbook.

A spectrum is stored once, parsed and converted (``data`` holds ``{"wave_um": [...],
"fnu_jy": [...]}``, rest wavelength and f_nu in Jy), and any source of the workbook may use it
(``spectrum: {"kind": "uploaded", "spectrum_id": id}``). A calculation reads the tables of
its workbook with its inputs (``inline``), so the engine never reaches the database.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from .base import Row, Transaction

SUMMARY = "id, workbook_id, name, format, flux_unit, points, wave_min_um, wave_max_um, created_at"


async def insert(tx: Transaction, spectrum: str, workbook: str, name: str, fmt: str,
                 flux_unit: str, data: dict[str, list[float]]) -> None:
    wave = data["wave_um"]
    await tx.execute(
        "INSERT INTO spectra (id, workbook_id, name, format, flux_unit, points, wave_min_um,"
        " wave_max_um, data, created_at) VALUES (:id, :w, :n, :f, :u, :p, :lo, :hi, :d, :t)",
        {"id": spectrum, "w": workbook, "n": name, "f": fmt, "u": flux_unit, "p": len(wave),
         "lo": wave[0], "hi": wave[-1], "d": json.dumps(data), "t": time.time()})


async def summaries(tx: Transaction, workbook: str) -> list[Row]:
    """The workbook's spectra without their data, oldest first."""
    return await tx.fetchall(f"SELECT {SUMMARY} FROM spectra WHERE workbook_id = :w"
                             " ORDER BY created_at, id", {"w": workbook})


async def summary(tx: Transaction, spectrum: str) -> Row | None:
    return await tx.fetchone(f"SELECT {SUMMARY} FROM spectra WHERE id = :id", {"id": spectrum})


async def count(tx: Transaction, workbook: str) -> int:
    return int(await tx.fetchval("SELECT COUNT(*) AS n FROM spectra WHERE workbook_id = :w",
                                 {"w": workbook}))


async def copy_all(tx: Transaction, workbook: str, into: str,
                   new_id: Callable[[], str]) -> dict[str, str]:
    """Copy every spectrum of ``workbook`` into workbook ``into`` under new ids; returns
    old id -> new id (for the copied sources' ``spectrum_id``)."""
    ids = {}
    for r in await with_data(tx, workbook):
        ids[r["id"]] = new_id()
        await insert(tx, ids[r["id"]], into, r["name"], r["format"], r["flux_unit"],
                     json.loads(r["data"]))
    return ids


async def delete(tx: Transaction, spectrum: str) -> None:
    await tx.execute("DELETE FROM spectra WHERE id = :id", {"id": spectrum})


def used_by(sources: list[Row], spectrum: str) -> list[str]:
    """Names of the source rows whose spectrum is this uploaded one."""
    names = []
    for row in sources:
        spec = json.loads(row["data"]).get("spectrum", {})
        if spec.get("kind") == "uploaded" and spec.get("spectrum_id") == spectrum:
            names.append(row["name"])
    return names


async def inline(tx: Transaction, workbook: str, sources: dict[str, dict[str, Any]]) -> None:
    """Put the table of each uploaded spectrum the sources use into their ``spectrum`` as
    ``table`` (the engine reads it there); a missing one is left out (the engine names it)."""
    wanted = {s["spectrum"]["spectrum_id"] for s in sources.values()
              if isinstance(s.get("spectrum"), dict) and s["spectrum"].get("kind") == "uploaded"}
    if not wanted:
        return
    rows = await tx.fetchall("SELECT id, data FROM spectra WHERE workbook_id = :w",
                             {"w": workbook})
    tables = {r["id"]: json.loads(r["data"]) for r in rows if r["id"] in wanted}
    for s in sources.values():
        spec = s.get("spectrum")
        if isinstance(spec, dict) and spec.get("spectrum_id") in tables:
            s["spectrum"] = {**spec, "table": tables[spec["spectrum_id"]]}


async def with_data(tx: Transaction, workbook: str) -> list[Row]:
    """The workbook's spectra with their data (an export), oldest first."""
    return await tx.fetchall("SELECT id, name, format, flux_unit, data FROM spectra"
                             " WHERE workbook_id = :w ORDER BY created_at, id", {"w": workbook})
