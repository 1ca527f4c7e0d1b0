"""Files shipped inside the wheel (static/ is packed as etckit/static)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def static_dir() -> Path:
    path = Path(str(files("etckit") / "static"))
    if not path.is_dir():
        raise RuntimeError(
            f"static files missing at {path}: install etckit from its wheel (pip install .)"
        )
    return path
