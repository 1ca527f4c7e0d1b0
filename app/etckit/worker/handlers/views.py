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
                    result=json.loads(row["result"]) if row["result"] else None,
                    error=row["error"] or None, engine_version=computed[0] or None,
                    data_version=computed[1] or None,
                    outdated=row["status"] != "pending" and computed != versions())
    return view


def engine_view() -> dict[str, str]:
    """This worker's engine and data version, as pages see them."""
    engine_version, data_version = versions()
    return {"engine_version": engine_version, "data_version": data_version}
