"""The one owner of the SQL of the ``spectra`` table: spectra uploaded into a workbook.

A spectrum is stored once, parsed and converted (``data`` holds ``{"wave_um": [...],
"fnu_jy": [...]}``, rest wavelength and f_nu in Jy), and any source of the workbook may use it
(``spectrum: {"kind": "uploaded", "spectrum_id": id}``). A calculation reads the tables of
its workbook with its inputs (``inline``), so the engine never reaches the database.
"""

from __future__ import annotations

import hashlib
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


async def points_of_owner(tx: Transaction, owner: str) -> int:
    """Points stored in the spectra of every workbook ``owner`` owns (quotas)."""
    return int(await tx.fetchval(
        "SELECT COALESCE(SUM(s.points), 0) AS n FROM spectra s JOIN workbooks w"
        " ON w.id = s.workbook_id WHERE w.owner_id = :o", {"o": owner}))


async def points_of(tx: Transaction, workbook: str) -> int:
    return int(await tx.fetchval("SELECT COALESCE(SUM(points), 0) AS n FROM spectra"
                                 " WHERE workbook_id = :w", {"w": workbook}))


async def lock(tx: Transaction, workbook: str) -> None:
    """Serialize what checks a workbook's spectra against its sources (a source naming a
    spectrum, a spectrum's deletion) until the transaction ends; on SQLite the write lock
    already does."""
    key = hashlib.sha256(f"spectra {workbook}".encode()).digest()[:8]
    await tx.lock(int.from_bytes(key, "big", signed=True))


async def copy_all(tx: Transaction, workbook: str, into: str,
                   new_id: Callable[[], str]) -> dict[str, str]:
    """Copy every spectrum of ``workbook`` into workbook ``into`` under new ids, inside the
    database (the tables never pass through Python); returns old id -> new id (for the
    copied sources' ``spectrum_id``)."""
    rows = await tx.fetchall("SELECT id FROM spectra WHERE workbook_id = :w"
                             " ORDER BY created_at, id", {"w": workbook})
    ids = {}
    for r in rows:
        ids[r["id"]] = new_id()
        await tx.execute(
            "INSERT INTO spectra (id, workbook_id, name, format, flux_unit, points,"
            " wave_min_um, wave_max_um, data, created_at) SELECT :new, :into, name, format,"
            " flux_unit, points, wave_min_um, wave_max_um, data, :t FROM spectra"
            " WHERE id = :old", {"new": ids[r["id"]], "into": into, "t": time.time(),
                                 "old": r["id"]})
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
    wanted = sorted(w for w in wanted if isinstance(w, str))
    if not wanted:
        return
    names = {f"s{i}": spectrum for i, spectrum in enumerate(wanted)}
    rows = await tx.fetchall(
        f"SELECT id, data FROM spectra WHERE workbook_id = :w AND id IN"
        f" ({', '.join(':' + n for n in names)})", {"w": workbook, **names})
    tables = {r["id"]: json.loads(r["data"]) for r in rows}
    for s in sources.values():
        spec = s.get("spectrum")
        if isinstance(spec, dict) and spec.get("spectrum_id") in tables:
            s["spectrum"] = {**spec, "table": tables[spec["spectrum_id"]]}


async def with_data(tx: Transaction, workbook: str) -> list[Row]:
    """The workbook's spectra with their data (an export), oldest first."""
    return await tx.fetchall("SELECT id, name, format, flux_unit, data FROM spectra"
                             " WHERE workbook_id = :w ORDER BY created_at, id", {"w": workbook})
