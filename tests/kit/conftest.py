"""Fixtures of the deployment kit's tests: a test certificate and inventories to change."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.kit.support import Inventory, make_test_cert, render
from tests.support.system import require_program


@pytest.fixture(scope="session")
def test_certs(tmp_path_factory) -> Path:
    require_program("openssl", "openssl")
    return make_test_cert(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def inventory(tmp_path, test_certs) -> Inventory:
    """A fresh copy of the example inventory with test secrets."""
    return Inventory(tmp_path / "inventory", test_certs)


@pytest.fixture(scope="session")
def example_render(tmp_path_factory, test_certs) -> Path:
    """Every file the kit renders for the example inventory, under <dir>/<host>/."""
    base = tmp_path_factory.mktemp("example")
    return render(Inventory(base / "inventory", test_certs), test_certs, base / "out")
