"""What the pages see of a stored item."""

from __future__ import annotations

import json
from typing import Any


def item_view(kind: str, row: dict[str, Any]) -> dict[str, Any]:
    view = {"id": row["id"], "workbook": row["workbook_id"], "name": row["name"],
            "data": json.loads(row["data"]), "updated_at": row["updated_at"]}
    if kind == "calculation":
        view.update(scene=row["scene_id"], status=row["status"], revision=row["revision"],
                    result=json.loads(row["result"]) if row["result"] else None,
                    error=row["error"] or None)
    return view
