"""What main_server does while it serves: the sweeper and the SSO discovery at start."""

from __future__ import annotations

import asyncio
import time

import pytest

from etckit.auth.oidc import OidcClient, SsoError

from .conftest import csrf

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


async def until(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.05)


async def test_the_sweeper_runs_while_serving_and_stops_after(make_app, db):
    app = make_app()
    client = app.test_client()
    await client.post("/login/anonymous", form={"csrf": await csrf(client)})
    await db.execute("UPDATE users SET expires_at = :t", {"t": time.time() - 1})

    async def gone() -> bool:
        return await db.fetchval("SELECT COUNT(*) AS n FROM users") == 0

    assert not await gone()  # the test client alone runs no startup work
    async with app.test_app():
        await until(gone)  # the first sweep runs as serving starts


async def test_sso_discovery_is_tried_at_start_and_a_failure_does_not_stop_it(
        make_app, monkeypatch):
    calls = []

    async def metadata(self):
        calls.append(self.issuer)
        raise SsoError("The sign-in service cannot be reached right now.")

    monkeypatch.setattr(OidcClient, "metadata", metadata)
    app = make_app(sso__enabled="true", sso__issuer="https://op.invalid",
                   sso__client_id="etckit")

    async def tried() -> bool:
        return bool(calls)

    async with app.test_app() as serving:
        await until(tried)
        response = await serving.test_client().get("/healthz")
        assert response.status_code == 200
    assert calls == ["https://op.invalid"]
