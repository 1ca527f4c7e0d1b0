"""Fixtures shared by the whole suite."""

from __future__ import annotations

import itertools
import uuid

import pytest

from tests.support.pgserver import PgServer
from tests.support.system import free_port, postgres_bindir_or_skip

_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_server():
    bindir = postgres_bindir_or_skip()
    server = PgServer(bindir, free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    """A fresh, empty database of each backend: the same test runs against both."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'etckit.db'}"
    server = request.getfixturevalue("pg_server")
    return server.create_database(f"t{next(_counter)}_{uuid.uuid4().hex[:8]}")


@pytest.fixture
async def db(db_url):
    from etckit.storage import open_database, upgrade

    database = open_database(db_url, pool_max=20, busy_timeout=20)
    await database.connect()
    await upgrade(database)
    yield database
    await database.close()
