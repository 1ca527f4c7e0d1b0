"""The house rule for app/: no function longer than 60 lines (docstring included)."""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app" / "etckit"
LIMIT = 60


def long_functions() -> list[str]:
    found = []
    for path in sorted(APP.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > LIMIT:
                    found.append(f"{path.relative_to(APP)}:{node.lineno} {node.name}"
                                 f" ({length} lines)")
    return found


def test_no_function_in_app_is_longer_than_60_lines():
    assert long_functions() == []
