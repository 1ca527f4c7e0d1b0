"""main_server in-process, on a fresh database of each backend (the `db` fixture)."""

from __future__ import annotations

import pytest

from etckit.config import load
from etckit.main_server.app import create_app

SECRET = "main-server-test-secret"


def make_config(**settings: str):
    env = {"ETCKIT_AUTH__SESSION_SECRET": SECRET, "ETCKIT_AUTH__FAKE_LOGIN": "true"}
    env.update({f"ETCKIT_{k.upper()}": str(v) for k, v in settings.items()})
    return load(None, environ=env)


@pytest.fixture
def make_app(db):
    def make(**settings: str):
        return create_app(make_config(**settings), db)
    return make


@pytest.fixture
def app(make_app):
    return make_app()


async def csrf(client) -> str:
    response = await client.get("/api/login-options")
    return (await response.get_json())["csrf"]


async def fake_login(client, name: str = "alice"):
    token = await csrf(client)
    return await client.post("/login/fake", form={"name": name, "csrf": token})
