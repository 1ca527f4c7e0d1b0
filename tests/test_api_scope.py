"""API tokens at wssvc, on real processes: a read token's socket may send READ_TYPES only
(every other type is `forbidden` and reaches no worker); revoking a token closes its sockets
with 4003; an expired or revoked token's ticket is refused before the upgrade."""

from __future__ import annotations

import asyncio
import time

import pytest
import websockets

from etckit.auth import sessions, tickets, tokens
from etckit.messaging.types import LOCAL_TYPES, READ_TYPES, REQUEST_TYPES
from etckit.storage import open_database
from tests.support.chain import ORIGIN, Chain, Client

INTERVAL = 1.0
QUERY_SLACK = 4.0
WRITE_TYPES = sorted(REQUEST_TYPES - READ_TYPES)


def test_read_types_are_known_types_and_leave_out_every_change():
    assert READ_TYPES <= REQUEST_TYPES | LOCAL_TYPES
    for verb in ("create", "rename", "delete", "copy", "import", "recalculate"):
        assert f"workbook.{verb}" not in READ_TYPES
    for kind in ("source", "scene", "calculation"):
        assert not {f"{kind}.{v}" for v in ("add", "edit", "copy", "delete")} & READ_TYPES


@pytest.fixture
def chain(tmp_path):
    c = Chain(tmp_path, auth__session_check_interval=str(INTERVAL),
              wssvc__connection_burst="200", wssvc__user_burst="400")
    c.start_all(workers=1)
    yield c
    c.stop()


async def make_token(chain: Chain, user: str, scope: str, lifetime: float = 3600):
    await chain.ensure_user(user)
    async with open_database(chain.db_url) as db:
        found = sessions.User(user, "fake", user, "", None)
        return await tokens.create(db, found, name="t", scope=scope, lifetime=lifetime,
                                   limit=10)


def token_ticket(chain: Chain, user: str, secret: str, scope: str,
                 workbook: str | None = None) -> str:
    """The ticket main_server's POST /api/v1/ticket gives for this token."""
    return tickets.issue(chain.ticket_key, user=user, pool=chain.pool, scope=scope,
                         session=tokens.TICKET_PREFIX + sessions.token_hash(secret),
                         purpose="workbook" if workbook else "list", workbook=workbook)


async def open_socket(chain: Chain, ticket: str) -> Client:
    client = Client(await websockets.connect(chain.url(ticket), origin=ORIGIN))
    assert (await client.recv())["type"] == "hello"
    return client


async def test_a_read_token_cannot_write_with_any_message_type(chain):
    writer = await open_socket(chain, chain.ticket("alice"))  # the browser: full rights
    made = await writer.request("workbook.create", name="mine")
    book = made["workbook"]["id"]
    secret, _ = await make_token(chain, "alice", "read")
    reader = await open_socket(chain, token_ticket(chain, "alice", secret, "read", book))
    for mtype in WRITE_TYPES:
        reply = await reader.request(mtype, workbook=book, name="x")
        assert (reply["type"], reply["code"]) == ("error", "forbidden"), (mtype, reply)
        assert mtype in reply["message"]
    opened = await reader.request("workbook.open")
    assert opened["type"] == "workbook.content" and opened["workbook"]["name"] == "mine"
    assert (await reader.request("workbook.list"))["workbooks"][0]["id"] == book
    assert (await reader.request("echo", data=[1]))["data"] == [1]
    # nothing was changed: the writer still sees one workbook of its name
    listed = await writer.request("workbook.list")
    assert [w["name"] for w in listed["workbooks"]] == ["mine"]
    await reader.close()
    await writer.close()


async def test_a_write_token_may_change_things(chain):
    secret, _ = await make_token(chain, "bob", "write")
    client = await open_socket(chain, token_ticket(chain, "bob", secret, "write"))
    made = await client.request("workbook.create", name="scripted")
    assert made["type"] == "workbook.created", made
    await client.close()


async def test_revoking_a_token_closes_its_sockets_with_4003(chain):
    secret, token = await make_token(chain, "carol", "read")
    other, _ = await make_token(chain, "carol", "read")
    client = await open_socket(chain, token_ticket(chain, "carol", secret, "read"))
    kept = await open_socket(chain, token_ticket(chain, "carol", other, "read"))
    async with open_database(chain.db_url) as db:
        assert await tokens.revoke(db, "carol", token.id)
    deadline = time.monotonic() + INTERVAL + QUERY_SLACK
    with pytest.raises(websockets.ConnectionClosed) as info:
        while True:
            await client.recv(timeout=max(0.01, deadline - time.monotonic()))
    assert info.value.rcvd.code == 4003
    assert (await kept.request("echo", data=1))["data"] == 1  # another token is untouched
    # a ticket of the revoked token is refused before the upgrade
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(chain.url(token_ticket(chain, "carol", secret, "read")),
                                 origin=ORIGIN)
    assert refused.value.response.status_code == 403
    await kept.close()


async def test_an_expired_tokens_ticket_is_refused(chain):
    secret, _ = await make_token(chain, "dave", "write", lifetime=0.5)
    await asyncio.sleep(0.6)
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(chain.url(token_ticket(chain, "dave", secret, "write")),
                                 origin=ORIGIN)
    assert refused.value.response.status_code == 403
    assert b"revoked or has expired" in refused.value.response.body
