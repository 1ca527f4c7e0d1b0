"""Logout ends the websocket: real processes (main_server, wssvc, broker, worker).

docs/protocol.md promises that the sockets of an ended session are closed with 4003 within
`auth.session_check_interval` seconds plus one database query. The tests run with a 1 s
interval and allow QUERY_SLACK on top for a loaded test machine.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import websockets

from tests.support.chain import ORIGIN, Chain
from tests.support.procs import wait_http
from tests.support.system import free_port

INTERVAL = 1.0
QUERY_SLACK = 4.0
CLOSE_SESSION_ENDED = 4003


async def closed_with(client, deadline: float) -> int:
    """The close code the server sends before the deadline (time.monotonic())."""
    with pytest.raises(websockets.ConnectionClosed) as info:
        while True:
            await client.recv(timeout=max(0.01, deadline - time.monotonic()))
    return info.value.rcvd.code


@pytest.fixture
def chain(tmp_path):
    c = Chain(tmp_path, auth__session_check_interval=str(INTERVAL))
    c.start_all(workers=1)
    yield c
    c.stop()


async def test_revoked_session_closes_its_sockets_and_no_other(chain):
    a1, a2 = await chain.connect("alice"), await chain.connect("alice")
    bob = await chain.connect("bob")
    assert (await a1.request("echo", data=1))["data"] == 1
    await chain.logout("alice")  # auth/sessions.py's logout, as POST /logout calls it
    deadline = time.monotonic() + INTERVAL + QUERY_SLACK
    assert await closed_with(a1, deadline) == CLOSE_SESSION_ENDED
    assert await closed_with(a2, deadline) == CLOSE_SESSION_ENDED
    assert (await bob.request("echo", data=2))["data"] == 2  # bob's session is untouched
    # a ticket of the ended session is refused before the upgrade
    with pytest.raises(websockets.InvalidStatus) as info:
        await websockets.connect(chain.url(chain.ticket("alice")), origin=ORIGIN)
    assert info.value.response.status_code == 403
    await bob.close()


@pytest.fixture
def site(tmp_path):
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    c = Chain(tmp_path, auth__session_check_interval=str(INTERVAL), auth__fake_login="true",
              main_server__public_url=public, main_server__port=str(port))
    try:
        c.start_all(workers=1)
        main = c.start("main-server")
        wait_http(f"{public}/healthz", proc=main)
        yield c, public
    finally:
        c.stop()


def login(http: httpx.Client, how: str) -> None:
    csrf = http.get("/api/login-options").json()["csrf"]
    data = {"name": "erin", "csrf": csrf} if how == "fake" else {"csrf": csrf}
    assert http.post(f"/login/{how}", data=data).status_code == 303


@pytest.mark.parametrize("how", ["fake", "anonymous"])  # anonymous: the user row goes too
def test_post_logout_closes_the_open_websocket(site, how):
    chain, public = site
    with httpx.Client(base_url=public, headers={"Origin": public}, timeout=10) as http:
        login(http, how)
        url = http.post("/api/assign", json={"purpose": "list"}).json()["url"]

        async def scenario() -> int:
            async with websockets.connect(url, origin=public) as ws:
                assert '"hello"' in await asyncio.wait_for(ws.recv(), 10)
                csrf = await asyncio.to_thread(lambda: http.get("/api/me").json()["csrf"])
                out = await asyncio.to_thread(http.post, "/logout", data={"csrf": csrf})
                assert out.status_code == 303
                deadline = time.monotonic() + INTERVAL + QUERY_SLACK
                with pytest.raises(websockets.ConnectionClosed) as info:
                    while True:
                        await asyncio.wait_for(ws.recv(), deadline - time.monotonic())
                return info.value.rcvd.code

        assert asyncio.run(scenario()) == CLOSE_SESSION_ENDED
        assert http.post("/api/assign", json={"purpose": "list"}).status_code == 401


async def test_watcher_closes_nothing_when_the_database_fails(db):
    """In-process: an unanswered query leaves every socket open; the next round decides."""
    from etckit.auth import sessions
    from etckit.storage import StorageError
    from etckit.wssvc.hub import Client, Hub
    from etckit.wssvc.sessions import SessionWatcher

    user = await sessions.upsert_user(db, issuer="test", subject="u", kind="fake")
    live, _ = await sessions.create_session(db, user, 3600)
    ended, _ = await sessions.create_session(db, user, 3600)
    hub = Hub()
    clients = {}
    for name, token in (("live", live), ("ended", ended)):
        clients[name] = Client(id=name, user=user.id, workbook=None, queue=asyncio.Queue(4),
                               session=sessions.token_hash(token))
        hub.add(clients[name])
    await sessions.logout(db, ended)

    class Down:
        async def fetchall(self, *args, **kwargs):
            raise StorageError("database is down")

    with pytest.raises(StorageError):
        await SessionWatcher(Down(), hub, INTERVAL).check()
    assert not any(c.closed.done() for c in clients.values())
    assert await SessionWatcher(db, hub, INTERVAL).check() == 1
    assert clients["ended"].close_code == CLOSE_SESSION_ENDED
    assert not clients["live"].closed.done()
