"""main_server in-process, on a fresh database of each backend (the `db` fixture)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import pytest

from etckit.auth import keys
from etckit.config import load
from etckit.main_server.app import create_app

SECRET = "main-server-test-secret-0123456789abcdef"
KEY_DIR = Path(tempfile.mkdtemp(prefix="etckit-ticket-keys-"))
atexit.register(shutil.rmtree, KEY_DIR, True)
PRIVATE_KEY, PUBLIC_KEY = KEY_DIR / "ticket.key", KEY_DIR / "ticket.pub"
keys.make_keypair(PRIVATE_KEY, PUBLIC_KEY)


def public_keys():
    """What a wssvc would verify this main_server's tickets with."""
    return keys.load_public_keys(str(PUBLIC_KEY))


def make_config(**settings: str):
    env = {"ETCKIT_AUTH__SESSION_SECRET": SECRET, "ETCKIT_AUTH__FAKE_LOGIN": "true",
           "ETCKIT_AUTH__TICKET_PRIVATE_KEY": str(PRIVATE_KEY)}
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
