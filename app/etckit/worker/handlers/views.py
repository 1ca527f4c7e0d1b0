"""What the pages see of a stored item."""

from __future__ import annotations

import json
from typing import Any

from ...engine.version import versions


def item_view(kind: str, row: dict[str, Any]) -> dict[str, Any]:
    """An item with its `item_revision` (what an edit names as its `base_revision`) and who
    edited it last; a calculation adds its inputs' `revision`, its result, and the engine and
    data versions the result came from (`outdated` when they are not this engine's)."""
    view = {"id": row["id"], "workbook": row["workbook_id"], "name": row["name"],
            "data": json.loads(row["data"]), "updated_at": row["updated_at"],
            "item_revision": row["item_revision"], "edited_by": row["edited_by"]}
    if kind == "calculation":
        computed = (row["engine_version"], row["data_version"])
        view.update(scene=row["scene_id"], status=row["status"], revision=row["revision"],
                    result=message_result(row["result"]),
                    error=row["error"] or None, engine_version=computed[0] or None,
                    data_version=computed[1] or None,
                    outdated=row["status"] != "pending" and computed != versions())
    return view


def message_result(stored: str | None) -> dict[str, Any] | None:
    """A stored result as messages carry it: a spectroscopic result's per-pixel lists (about
    100 kB per calculation) stay out, so a workbook of many spectra still opens within
    quotas.reply_max_bytes; they are in the calculation's downloads (JSON, CSV, FITS)."""
    if not stored:
        return None
    result = json.loads(stored)
    spectrum = result.get("spectrum") if isinstance(result, dict) else None
    if isinstance(spectrum, dict):
        lists = [k for k, v in spectrum.items() if isinstance(v, list)]
        kept = {k: v for k, v in spectrum.items() if k not in lists}
        wave = spectrum.get("wavelength_um")
        kept["pixels"] = len(wave) if isinstance(wave, list) else 0
        result = {**result, "spectrum": kept}
    return result


def engine_view() -> dict[str, str]:
    """This worker's engine and data version, as pages see them."""
    engine_version, data_version = versions()
    return {"engine_version": engine_version, "data_version": data_version}


def _leaves(value: Any, prefix: str, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, dict):
        for key, inner in value.items():
            _leaves(inner, f"{prefix}.{key}" if prefix else str(key), out)
    else:
        out[prefix] = value
    return out


def changed_fields(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The dotted paths whose values differ (lists compared whole), sorted."""
    a, b = _leaves(before, "", {}), _leaves(after, "", {})
    return sorted(k for k in a.keys() | b.keys() if a.get(k, ...) != b.get(k, ...))


def history_view(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An item's kept revisions, newest first, each with what it changed from the one before
    (`created` for revision 1; the oldest kept one otherwise changes nothing known)."""
    states = [{"name": r["name"], "scene": r["scene_id"], "data": json.loads(r["data"])}
              for r in rows]
    out = []
    for i, (row, state) in enumerate(zip(rows, states, strict=True)):
        older = states[i + 1] if i + 1 < len(states) else None
        changed = (["created"] if row["item_revision"] == 1 else
                   changed_fields(older, state) if older is not None else [])
        out.append({"item_revision": row["item_revision"], "edited_by": row["edited_by"],
                    "edited_at": row["edited_at"], "changed": changed, "name": state["name"],
                    "data": state["data"],
                    **({"scene": state["scene"]} if row["kind"] == "calculation" else {})})
    return out
