"""playbooks/wheelhouse.yml: the dependencies it builds from source are etckit's own, at the
versions pyproject.toml asks for (a source-only dependency missing from its list fails the
wheelhouse with 'No matching distribution', as dust-extinction once did)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _source_only() -> list[str]:
    plays = yaml.safe_load((ROOT / "playbooks/wheelhouse.yml").read_text())
    build = next(p for p in plays if p["hosts"] == "localhost")
    return build["vars"]["etckit_wheelhouse_source_only"]


def test_source_only_dependencies_match_pyproject():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    wanted = {d.replace(" ", "") for d in deps}
    listed = _source_only()
    assert listed, "no source-only dependency listed"
    for spec in listed:
        assert spec.replace(" ", "") in wanted, f"{spec} is not a dependency in pyproject.toml"
    assert any(s.startswith("dust-extinction") for s in listed)
