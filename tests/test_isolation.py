"""One user cannot hurt another: a hostile user's heavy calculations, download flood and wide
source edits leave another user's /api/me and workbook.list answering, on both backends.

Real processes: main_server, wssvc, broker and two workers (tests/support/chain.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time

import httpx
import pytest
import websockets

from tests.support.chain import Chain
from tests.support.procs import wait_http
from tests.support.system import free_port

CALCULATIONS = 20  # calculations that use mallory's shared source
FLOOD = 1000  # calculation.download sent at once on one socket
WATCH = 20.0  # seconds bob keeps checking while mallory works


@pytest.fixture
def system(tmp_path, db_url):
    chain = Chain(tmp_path, db_url=db_url)
    chain.start_all(workers=2)
    port = free_port()
    main = chain.start("main-server", main_server__port=str(port), auth__fake_login="true",
                       main_server__public_url=f"http://127.0.0.1:{port}")
    wait_http(f"http://127.0.0.1:{port}/healthz", proc=main, timeout=30)
    chain.main_url = f"http://127.0.0.1:{port}"
    yield chain
    chain.stop()


def heavy(defaults: dict) -> tuple[dict, dict]:
    """The largest extended source and aperture a public service should still accept."""
    source = copy.deepcopy(defaults["source"])
    source["shape"] = {"kind": "gaussian", "fwhm_arcsec": 1.0}
    calc = copy.deepcopy(defaults["calculation"])
    calc.update(aperture_radius_arcsec=1.0, annulus_inner_arcsec=1.2,
                annulus_outer_arcsec=1.8, strategy={"kind": "time_for_snr", "target_snr": 10})
    return source, calc


async def mallory_builds(chain: Chain) -> tuple:
    lister = await chain.connect("mallory")
    wb = (await lister.request("workbook.create", name="hostile"))["workbook"]["id"]
    client = await chain.connect("mallory", workbook=wb)
    d = (await client.request("workbook.open"))["defaults"]
    source_data, calc_data = heavy(d)
    src = (await client.request("source.add", name="big", data=source_data))["item"]
    placed = [{"source_id": src["id"], "offset_x_arcsec": 0.0, "offset_y_arcsec": 0.0}]
    scene = (await client.request("scene.add", name="f", data={"sources": placed}))["item"]
    calcs = []
    for i in range(CALCULATIONS):
        reply = await client.request("calculation.add", name=f"c{i}", scene=scene["id"],
                                     data=calc_data, timeout=120)
        assert reply["type"] == "calculation.saved", reply
        calcs.append(reply["item"])
    return client, src, calcs


async def mallory_attacks(chain: Chain, client, src: dict, calcs: list[dict]) -> None:
    """Flood downloads (wssvc closes the socket with 1008 once she has ignored enough
    retry_after, and then refuses her new sockets with 429), then, on a socket she opened
    before, edit the source every calculation uses, without waiting (each edit made from the
    revision the previous one should leave)."""
    editor = await chain.connect("mallory", workbook=calcs[0]["workbook"])
    with contextlib.suppress(websockets.ConnectionClosed):
        for i in range(FLOOD):
            await client.send({"id": f"d{i}", "type": "calculation.download",
                               "calculation": calcs[i % len(calcs)]["id"], "format": "csv"})
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:  # her replies, then wssvc's close
            await client.recv(timeout=30)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008, closed.value
    with pytest.raises(websockets.InvalidStatus) as refused:
        await chain.connect("mallory", workbook=calcs[0]["workbook"])
    assert refused.value.response.status_code == 429
    client = editor
    edited = copy.deepcopy(src["data"])
    for n in range(3):
        edited["normalization"]["value"] = 50.0 + n
        await client.send({"id": f"e{n}", "type": "source.edit", "source": src["id"],
                           "data": edited, "base_revision": src["item_revision"] + n})


async def bob_watches(chain: Chain, failures: list[str]) -> int:
    """/api/me and workbook.list, again and again; returns how many rounds were made."""
    bob_ws = await chain.connect("bob")
    rounds = 0
    async with httpx.AsyncClient(base_url=chain.main_url, timeout=10) as http:
        csrf = (await http.get("/api/login-options")).json()["csrf"]
        login = await http.post("/login/fake", data={"name": "bob", "csrf": csrf})
        assert login.status_code in (200, 302, 303), login.text
        deadline = time.monotonic() + WATCH
        while time.monotonic() < deadline:
            try:
                me = await http.get("/api/me")
                if me.status_code != 200:
                    failures.append(f"/api/me {me.status_code}: {me.text[:200]}")
                listed = await bob_ws.request("workbook.list", timeout=10)
                if listed.get("type") != "workbook.list":
                    failures.append(f"workbook.list: {json.dumps(listed)[:200]}")
            except (httpx.HTTPError, TimeoutError) as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
            rounds += 1
            await asyncio.sleep(0.1)
    await bob_ws.close()
    return rounds


async def test_a_hostile_user_does_not_hurt_another(system):
    client, src, calcs = await mallory_builds(system)
    failures: list[str] = []
    watcher = asyncio.create_task(bob_watches(system, failures))
    await asyncio.sleep(0.5)
    await mallory_attacks(system, client, src, calcs)
    rounds = await watcher
    assert failures == [], failures[:10]
    assert rounds >= 20, f"bob made only {rounds} rounds in {WATCH}s"
    exited = [p.name for p in system.procs if p.popen.poll() is not None]
    assert exited == [], system.output()[-4000:]
    assert "database is locked" not in system.output()
