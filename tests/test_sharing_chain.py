"""Shared workbooks through real processes: live edits reach every user, a read share is
refused `forbidden`, concurrent edits end in one success and one `conflict`, a revoked (or
left) share's socket is closed with 4004, and with two wssvc in one pool main_server sends
every socket of a workbook to the same wssvc (rendezvous hashing), again after that wssvc is
lost."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
import websockets

from etckit.main_server.assign import assign
from etckit.storage import open_database
from tests.support.chain import ORIGIN, Chain, Client
from tests.support.procs import wait_http
from tests.support.system import free_port

INTERVAL = 1.0
QUERY_SLACK = 6.0  # a loaded test machine: the close comes within INTERVAL + one query
CLOSE_ACCESS_REVOKED = 4004
FAST_USERS = {"wssvc__user_rate": "1000", "wssvc__user_burst": "1000",
              "wssvc__connection_rate": "1000", "wssvc__connection_burst": "1000"}


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    c = Chain(tmp_path_factory.mktemp("sharing"), auth__session_check_interval=str(INTERVAL),
              **FAST_USERS)
    c.start_all(workers=2)
    yield c
    c.stop()


async def _next(client, type_: str) -> dict:
    while True:
        message = await client.recv(timeout=30)
        if message["type"] == type_:
            return message


async def _shared(chain, **rights: str) -> tuple[str, dict]:
    """A workbook of alice's with a source, shared with each user at its right."""
    alice = await chain.connect("alice")
    book = (await alice.request("workbook.create", name="Shared"))["workbook"]["id"]
    for user, access in rights.items():
        await chain.ensure_user(user)
        reply = await alice.request("workbook.share", workbook=book, user=user, access=access)
        assert reply["type"] == "workbook.shared", reply
    opened = await alice.request("workbook.open", workbook=book)
    source = (await alice.request("source.add", workbook=book, name="Galaxy",
                                  data=opened["defaults"]["source"]))["item"]
    await alice.close()
    return book, source


async def test_a_shared_edit_appears_live_and_a_read_share_is_forbidden(chain):
    book, source = await _shared(chain, bob="write", carol="read")
    alice = await chain.connect("alice", workbook=book)
    bob = await chain.connect("bob", workbook=book)
    carol = await chain.connect("carol", workbook=book)
    seen = await carol.request("workbook.open")
    assert seen["workbook"]["access"] == "read"
    edited = await bob.request("source.edit", source=source["id"], name="Quasar",
                               base_revision=source["item_revision"])
    assert edited["type"] == "source.saved", edited
    for other in (alice, carol):
        assert (await _next(other, "source.saved"))["item"]["name"] == "Quasar"
    refused = await carol.request("source.edit", source=source["id"], name="Mine",
                                  base_revision=edited["item"]["item_revision"])
    assert refused["code"] == "forbidden", refused
    listed = await (await chain.connect("carol")).request("workbook.list")
    assert [(w["id"], w["shared"], w["owner"]) for w in listed["workbooks"]] == [
        (book, True, "alice")]
    for c in (alice, bob, carol):
        await c.close()


async def test_two_users_editing_one_source_at_once_one_conflict(chain):
    book, source = await _shared(chain, dave="write")
    alice = await chain.connect("alice", workbook=book)
    dave = await chain.connect("dave", workbook=book)
    base = source["item_revision"]
    replies = await asyncio.gather(
        alice.request("source.edit", source=source["id"], name="A", base_revision=base),
        dave.request("source.edit", source=source["id"], name="D", base_revision=base))
    types = sorted(r["type"] for r in replies)
    assert types == ["error", "source.saved"], replies
    lost = next(r for r in replies if r["type"] == "error")
    won = next(r for r in replies if r["type"] != "error")
    assert lost["code"] == "conflict" and lost["item"]["name"] == won["item"]["name"]
    await alice.close()
    await dave.close()


async def closed_with(client, deadline: float) -> int:
    with pytest.raises(websockets.ConnectionClosed) as info:
        while True:
            await client.recv(timeout=max(0.01, deadline - time.monotonic()))
    return info.value.rcvd.code


async def test_revoking_closes_the_revoked_users_socket_with_4004(chain):
    await _revoke_closes(chain)


async def test_revoking_closes_with_4004_on_postgresql(tmp_path, pg_server):
    chain = Chain(tmp_path, db_url=pg_server.create_database(f"share_{uuid.uuid4().hex[:8]}"),
                  auth__session_check_interval=str(INTERVAL), **FAST_USERS)
    try:
        chain.start_all(workers=1)
        await _revoke_closes(chain)
    finally:
        chain.stop()


async def _revoke_closes(chain: Chain) -> None:
    book, _ = await _shared(chain, erin="read", frank="read")
    erin = await chain.connect("erin", workbook=book)
    erin_list = await chain.connect("erin")
    frank = await chain.connect("frank", workbook=book)
    alice = await chain.connect("alice")
    assert (await erin.request("workbook.open"))["type"] == "workbook.content"
    reply = await alice.request("workbook.unshare", workbook=book, user="erin")
    assert reply["type"] == "workbook.unshared", reply
    deadline = time.monotonic() + INTERVAL + QUERY_SLACK
    assert await closed_with(erin, deadline) == CLOSE_ACCESS_REVOKED
    # her list socket and frank's workbook socket stay open
    assert (await erin_list.request("echo", data=1))["data"] == 1
    assert (await frank.request("workbook.open"))["type"] == "workbook.content"
    for c in (erin_list, frank, alice):
        await c.close()


async def test_leaving_a_share_ends_what_an_old_socket_may_do(chain):
    """workbook.leave from the list: the leaver's socket still open on the workbook can do
    nothing more with it (each message is checked again: `not_found`) and is closed 4004 by
    wssvc's poll; the list socket stays open."""
    book, source = await _shared(chain, gina="write")
    gina = await chain.connect("gina", workbook=book)
    gina_list = await chain.connect("gina")
    assert (await gina.request("workbook.open"))["workbook"]["access"] == "write"
    left = await gina_list.request("workbook.leave", workbook=book)
    assert left["type"] == "workbook.left", left
    deadline = time.monotonic() + INTERVAL + QUERY_SLACK
    try:
        edit = await gina.request("source.edit", source=source["id"], name="Left",
                                  base_revision=source["item_revision"])
        assert (edit["code"], edit["message"]) == ("not_found", f"no source {source['id']}")
    except websockets.ConnectionClosed:
        pass  # the poll was quicker than the edit
    assert await closed_with(gina, deadline) == CLOSE_ACCESS_REVOKED
    assert (await gina_list.request("echo", data=1))["data"] == 1
    alice = await chain.connect("alice")
    opened = await alice.request("workbook.open", workbook=book)
    assert [s["name"] for s in opened["sources"]] == ["Galaxy"]
    assert (await alice.request("workbook.shares", workbook=book))["shares"] == []
    for c in (gina_list, alice):
        await c.close()


# -- two wssvc in one pool --------------------------------------------------------------------

async def _connect(chain: Chain, endpoint: str, user: str, book: str) -> Client:
    await chain.ensure_user(user)
    url = f"{endpoint}/ws?ticket={chain.ticket(user, book)}"
    client = Client(await websockets.connect(url, origin=ORIGIN, max_size=None))
    hello = await client.recv()
    assert hello["type"] == "hello", hello
    client.id = hello["client"]
    return client


async def _placed(chain: Chain, user: str, book: str) -> tuple[str, str]:
    """(service id, endpoint) main_server gives this user for the workbook."""
    async with open_database(chain.db_url) as db:
        chosen = await assign(db, user_id=user, purpose="workbook", workbook=book,
                              liveness=float(chain.settings["heartbeat__registry_liveness"]))
    return chosen.service_id, chosen.endpoint


async def _both_live(chain: Chain) -> int:
    from etckit import registry

    async with open_database(chain.db_url) as db:
        rows = await registry.live(db, "wssvc", 2.0)
    return sum(1 for r in rows if int((r.get("extra") or {}).get("brokers", 0)) > 0)


async def _until_live(chain: Chain, count: int) -> None:
    deadline = time.monotonic() + 30
    while await _both_live(chain) != count:
        assert time.monotonic() < deadline, chain.output()
        await asyncio.sleep(0.2)


async def test_two_wssvc_in_one_pool_a_workbooks_users_meet_on_one(tmp_path):
    chain = Chain(tmp_path, **FAST_USERS)
    try:
        chain.start_all(workers=1)
        second_port = free_port()
        second = chain.start("wssvc", wssvc__port=str(second_port))
        wait_http(f"http://127.0.0.1:{second_port}/healthz", proc=second, timeout=30)
        await _until_live(chain, 2)
        book, source = await _shared(chain, bob="write")
        where = {user: await _placed(chain, user, book) for user in ("alice", "bob")}
        assert where["alice"] == where["bob"], where  # the workbook's users meet
        service, endpoint = where["alice"]
        alice = await _connect(chain, endpoint, "alice", book)
        bob = await _connect(chain, endpoint, "bob", book)
        edited = await alice.request("source.edit", source=source["id"], name="Live",
                                     base_revision=source["item_revision"])
        assert (await _next(bob, "source.saved"))["item"]["name"] == "Live"
        # that wssvc is lost: both are sent to the other one, and meet there again
        lost = chain.wssvc if endpoint.endswith(f":{chain.port}") else second
        lost.stop()
        await _until_live(chain, 1)
        again = {user: await _placed(chain, user, book) for user in ("alice", "bob")}
        assert again["alice"] == again["bob"] and again["alice"][0] != service, again
        alice = await _connect(chain, again["alice"][1], "alice", book)
        bob = await _connect(chain, again["bob"][1], "bob", book)
        await bob.request("source.edit", source=source["id"], name="Again",
                          base_revision=edited["item"]["item_revision"])
        assert (await _next(alice, "source.saved"))["item"]["name"] == "Again"
    finally:
        chain.stop()
