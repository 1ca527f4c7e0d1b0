"""wssvc's edge through real processes (wssvc, broker, workers): hostile messages are answered
with a named error and the connection kept, floods are answered `rate_limited` while another
user is served, and plot URLs are checked (issue 11)."""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx
import pytest
import websockets

from tests.support.chain import Chain

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    c = Chain(tmp_path_factory.mktemp("edge"), wssvc__max_message_bytes="300000")
    c.start_all(workers=1)
    yield c
    c.stop()


def _alive(chain: Chain) -> None:
    for proc in chain.procs:
        assert proc.popen.poll() is None, f"{proc.name} exited:\n{proc.output()}"


async def test_a_lone_surrogate_is_refused_and_never_reaches_a_worker(chain):
    alice = await chain.connect()
    await alice.send('{"id":"\\ud83d","type":"workbook.list"}')  # issue 11: killed a worker
    error = await alice.recv()
    assert (error["type"], error["code"], error["ref"]) == ("error", "bad_unicode", None)
    await alice.send('{"id":"n","type":"workbook.create","name":"a\\udc00b"}')
    error = await alice.recv()
    assert (error["code"], error["ref"]) == ("bad_unicode", "n") and "name" in error["message"]
    assert (await alice.request("workbook.list"))["workbooks"] == []  # nothing was created
    _alive(chain)
    await alice.close()


@pytest.mark.parametrize("depth", [1_000, 100_000])
async def test_deep_nesting_is_refused_and_the_connection_kept(chain, depth):
    alice = await chain.connect()
    await alice.send('{"id":"d","type":"echo","data":' + "[" * depth + "]" * depth + "}")
    error = await alice.recv()
    assert (error["code"], error["ref"]) == ("too_deep", None), error
    assert "32" in error["message"]
    assert (await alice.request("echo", data=[[["ok"]]]))["data"] == [[["ok"]]]
    _alive(chain)
    assert "Traceback" not in chain.wssvc.output()
    await alice.close()


async def test_an_empty_binary_frame_is_answered(chain):
    alice = await chain.connect()  # Quart hands wssvc None for it: it closed the socket (1011)
    await alice.send(b"")
    error = await alice.recv()
    assert (error["code"], error["ref"]) == ("binary_frame", None)
    assert (await alice.request("echo", data=1))["data"] == 1
    await alice.close()


async def test_non_finite_numbers_are_not_json(chain):
    alice = await chain.connect()
    for number in ("NaN", "Infinity", "1e999"):
        await alice.send('{"id":"n","type":"echo","data":' + number + "}")
        error = await alice.recv()
        assert error["code"] == "bad_json" and number in error["message"], error
    await alice.close()


async def test_a_frame_over_hypercorns_limit_closes_with_1009(chain):
    """Over four times wssvc.max_message_bytes the server cuts the frame: a documented close
    code, not a silent drop (the limit for an answered `too_large` is in test_chain)."""
    alice = await chain.connect()
    await alice.send('{"id":1,"type":"echo","data":"' + "x" * 1_300_000 + '"}')
    with pytest.raises(websockets.ConnectionClosed) as info:
        for _ in range(5):
            await alice.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009
    _alive(chain)


async def test_text_that_is_not_utf8_breaks_the_websocket_protocol(chain):
    """A text frame must hold UTF-8 (RFC 6455; browsers cannot send anything else): the
    server fails the connection. Hypercorn (0.18, with wsproto) ends it without a close
    frame, which a browser reports as 1006 (docs/protocol.md); everything else carries on."""
    bob = await chain.connect("bob")
    alice = await chain.connect()
    alice.ws.protocol.send_text(b'{"id":1,"type":"echo","data":"\xff\xfe"}')
    alice.ws.send_data()
    with pytest.raises(websockets.ConnectionClosed) as info:
        for _ in range(5):
            await alice.recv()
    assert info.value.rcvd is None or info.value.rcvd.code == 1007, info.value
    assert (await bob.request("echo", data="fine"))["data"] == "fine"
    _alive(chain)


async def test_a_flood_on_one_socket_is_rate_limited_then_closed_and_another_user_is_served(
        chain):
    alice, bob = await chain.connect("flooder"), await chain.connect("patient")
    replies = {}

    async def alice_reads() -> websockets.ConnectionClosed:  # as a page does
        with pytest.raises(websockets.ConnectionClosed) as info:
            while True:
                message = await alice.recv(timeout=30)
                assert message["ref"] not in replies, message  # exactly one reply each
                replies[message["ref"]] = message
        return info.value

    reader = asyncio.create_task(alice_reads())
    with contextlib.suppress(websockets.ConnectionClosed):
        for n in range(1000):  # she never waits the retry_after she is told
            await alice.send({"id": n, "type": "workbook.list"})
    served = 0

    async def bob_works() -> None:
        nonlocal served
        for _ in range(10):
            reply = await bob.request("workbook.list", timeout=30)
            assert reply["type"] == "workbook.list", reply
            served += 1

    bob_task = asyncio.create_task(bob_works())
    started = time.monotonic()
    closed = await reader
    assert closed.rcvd is not None and closed.rcvd.code == 1008, closed
    # wssvc reads and drops what she sent before she saw the close, so her connection ends
    # at once instead of lingering behind Hypercorn's full queue (it took 20 s)
    assert time.monotonic() - started < 10, "the closed socket lingered"
    assert "retry_after" in closed.rcvd.reason
    limited = [m for m in replies.values() if m.get("code") == "rate_limited"]
    # wssvc.max_refusals (100) refusals, refilled at connection_rate while she floods
    assert 100 <= len(limited) <= 150, len(limited)
    assert all(m["retry_after"] > 0 for m in limited)
    # the requests within her burst were answered workbook.list, unless the close came first
    assert {m["type"] for m in replies.values()} <= {"workbook.list", "error"}
    await bob_task
    assert served == 10
    # she is blocked (wssvc.block_seconds, 60 s): a new socket of hers is
    # refused at the handshake with 429 and Retry-After; bob opens one as before
    with pytest.raises(websockets.InvalidStatus) as refused:
        await chain.connect("flooder")
    assert refused.value.response.status_code == 429
    assert 1 <= int(refused.value.response.headers["Retry-After"]) <= 60
    assert b"retry after" in refused.value.response.body
    await (await chain.connect("patient")).close()
    _alive(chain)
    await bob.close()


# -- plots ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def plot_chain(tmp_path_factory):
    c = Chain(tmp_path_factory.mktemp("plots"), wssvc__user_rate="1", wssvc__user_burst="40")
    c.start_all(workers=1)
    yield c
    c.stop()


async def _calculation(chain: Chain, user: str):
    lister = await chain.connect(user)
    wb = (await lister.request("workbook.create", name="W"))["workbook"]["id"]
    one = await chain.connect(user, workbook=wb)
    d = (await one.request("workbook.open"))["defaults"]
    source = (await one.request("source.add", name="G", data=d["source"]))["item"]
    scene = (await one.request("scene.add", name="F", data={"sources": [
        {"source_id": source["id"], "offset_x_arcsec": 0.0, "offset_y_arcsec": 0.0}]}))["item"]
    calc = (await one.request("calculation.add", name="C", scene=scene["id"],
                              data=d["calculation"], timeout=30))["item"]
    return one, source, calc


async def test_plot_urls_are_checked_and_only_the_current_revision_is_drawn(plot_chain):
    one, _, calc = await _calculation(plot_chain, "plotter")
    auth = {"client": one.id, "key": one.hello["plot_key"]}
    rev = calc["revision"]
    base = f"http://127.0.0.1:{plot_chain.port}/plots"
    async with httpx.AsyncClient(timeout=60) as http:
        for key in ("é", "\u2603" * 24, one.hello["plot_key"] + "é", "%ff"):  # issue 11: 500
            r = await http.get(f"{base}/{calc['id']}/{rev}/snr_map.png",
                               params={**auth, "key": key})
            assert r.status_code == 401, (key, r.status_code, r.text)
        for path in (f"{calc['id']}/{rev}/bogus.png", f"{calc['id']}/x1/snr_map.png",
                     f"{'a' * 65}/{rev}/snr_map.png", f"a.b/{rev}/snr_map.png"):
            r = await http.get(f"{base}/{path}", params=auth)
            assert r.status_code == 400 and r.json()["error"] == "invalid", (path, r.text)
        current = await http.get(f"{base}/{calc['id']}/{rev}/snr_map.png", params=auth)
        assert current.status_code == 200 and current.content.startswith(PNG)
        for stale in (rev + 1, rev + 1, rev + 1000):  # made up: never the current picture
            r = await http.get(f"{base}/{calc['id']}/{stale}/snr_map.png", params=auth)
            assert r.status_code == 404 and r.json()["error"] == "not_found", r.text
        edited = await one.request("calculation.edit", calculation=calc["id"], name="C2",
                                   base_revision=calc["item_revision"], timeout=30)
        new_rev = edited["item"]["revision"]
        assert new_rev != rev, edited
        old = await http.get(f"{base}/{calc['id']}/{rev}/spectrum.png", params=auth)
        assert old.status_code == 404, old.text  # the old revision is gone, not redrawn
        new = await http.get(f"{base}/{calc['id']}/{new_rev}/spectrum.png", params=auth)
        assert new.status_code == 200 and new.headers["x-plot-cache"] == "miss"
    _alive(plot_chain)


async def test_plot_fetches_count_against_the_users_rate(plot_chain):
    one, _, calc = await _calculation(plot_chain, "greedy")
    auth = {"client": one.id, "key": one.hello["plot_key"]}
    url = f"http://127.0.0.1:{plot_chain.port}/plots/{calc['id']}/{calc['revision']}/spectrum.png"
    async with httpx.AsyncClient(timeout=60) as http:
        statuses = []
        for _ in range(200):
            r = await http.get(url, params=auth)
            statuses.append(r.status_code)
            if r.status_code == 429:
                break
        assert statuses[0] == 200 and statuses[-1] == 429, statuses
        assert r.json()["error"] == "rate_limited" and r.json()["retry_after"] > 0
        assert int(r.headers["retry-after"]) >= 1
    # the websocket of the same user is refused too, while another user is not
    error = await one.request("workbook.open")
    assert error["code"] == "rate_limited" and error["retry_after"] > 0
    other = await plot_chain.connect("someone else")
    assert (await other.request("workbook.list"))["type"] == "workbook.list"
