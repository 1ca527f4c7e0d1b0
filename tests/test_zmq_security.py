"""CURVE, the broker's gatekeeper and frame limits, through real processes.

A rogue peer here is a ZeroMQ socket in the test with a key of its own (or none): it reaches
the broker's ports, as a stray host on the cluster network would, and must get nothing.
"""

from __future__ import annotations

import json

import pytest
import zmq
import zmq.asyncio

from etckit.messaging.protocol import CLIENT, HEARTBEAT, READY, REQUEST, WORKER
from etckit.registry import live
from etckit.storage import open_database
from tests.support.chain import Chain
from tests.support.procs import wait_for


async def registry(chain: Chain, kind: str) -> list[dict]:
    async with open_database(chain.db_url) as db:
        return await live(db, kind, 60)


async def broker_row(chain: Chain) -> dict:
    rows = await registry(chain, "broker")
    assert len(rows) == 1
    return rows[0]


def dealer(ctx: zmq.asyncio.Context, endpoint: str, server_key: str | None,
           keys: tuple[bytes, bytes] | None) -> zmq.asyncio.Socket:
    """A DEALER to a broker: CURVE with these (public, secret) keys, or plain when None."""
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    if keys is not None:
        sock.curve_serverkey = server_key.encode()
        sock.curve_publickey, sock.curve_secretkey = keys
    sock.connect(endpoint)
    return sock


def file_keys(chain: Chain, name: str) -> tuple[bytes, bytes]:
    secret = (chain.tmp / "keys" / f"{name}.secret").read_text().strip().encode()
    return zmq.curve_public(secret), secret


async def silent(sock: zmq.asyncio.Socket, seconds: float) -> bool:
    """True when nothing arrives on sock within seconds."""
    return await sock.poll(seconds * 1000) == 0


@pytest.fixture
def chain(tmp_path):
    c = Chain(tmp_path)
    c.start_all(workers=1)
    wait_for(lambda: '"worker ready"' in c.broker.output(), what="the worker joined")
    yield c
    c.stop()


async def test_every_program_publishes_its_public_key_and_the_chain_serves(chain):
    alice = await chain.connect()
    assert (await alice.request("echo", data="over CURVE"))["data"] == "over CURVE"
    for kind, name in (("broker", "broker-2"), ("wssvc", "wssvc-1"), ("worker", "worker-3")):
        (row,) = await registry(chain, kind)
        assert row["extra"]["curve"] == file_keys(chain, name)[0].decode()
    assert '"curve": true' in chain.broker.output()


async def test_a_client_with_an_unknown_key_gets_nothing_and_reaches_no_worker(chain):
    broker = await broker_row(chain)
    alice = await chain.connect()
    ctx = zmq.asyncio.Context()
    rogue = dealer(ctx, broker["endpoint"], broker["extra"]["curve"], zmq.curve_keypair())
    plain = dealer(ctx, broker["endpoint"], None, None)  # no CURVE at all
    try:
        who = json.dumps({"client": alice.id, "user": "alice", "workbook": None}).encode()
        for sock in (rogue, plain):
            create = json.dumps({"id": 1, "type": "workbook.create", "name": "rogue"}).encode()
            await sock.send_multipart([CLIENT, REQUEST, b"1", who, create])
            await sock.send_multipart([CLIENT, HEARTBEAT])
        assert await silent(rogue, 1.5) and await silent(plain, 0.1)
        listed = await alice.request("workbook.list")  # the real path still serves
        assert listed["workbooks"] == []  # and nothing of the rogue's request reached a worker
        wait_for(lambda: "refused a ZeroMQ peer" in chain.broker.output(), what="the log line")
        refusals = [line for line in chain.broker.output().splitlines()
                    if "refused a ZeroMQ peer" in line]
        assert len(refusals) == 1 and '"address": "127.0.0.1"' in refusals[0]
    finally:
        rogue.close(0)
        plain.close(0)
        ctx.term()


async def test_a_fake_worker_with_an_unknown_key_is_never_given_a_request(chain):
    broker = await broker_row(chain)
    alice = await chain.connect()
    ctx = zmq.asyncio.Context()
    fake = dealer(ctx, broker["extra"]["backend"], broker["extra"]["curve"],
                  zmq.curve_keypair())
    try:
        await fake.send_multipart([WORKER, READY, b'{"id": "worker-fake"}'])
        for i in range(10):  # would be shared with the fake if the broker had admitted it
            await fake.send_multipart([WORKER, HEARTBEAT])
            assert (await alice.request("echo", data=i))["data"] == i
        assert await silent(fake, 1.0)
        assert chain.broker.output().count('"worker ready"') == 1
    finally:
        fake.close(0)
        ctx.term()


async def test_a_new_worker_is_admitted_without_a_restart_elsewhere(chain):
    """The worker registers (with its key) before it connects; the broker admits it on its
    first attempt, from a registry read the knock triggers."""
    alice = await chain.connect()
    second = chain.start("worker")
    wait_for(lambda: chain.broker.output().count('"worker ready"') == 2, timeout=30,
             what="the second worker joined")
    assert "refused a ZeroMQ peer" not in chain.broker.output()
    chain.workers[0].stop()
    assert (await alice.request("echo", data="second", timeout=20))["data"] == "second"
    assert second.popen.poll() is None


async def test_an_oversized_frame_leaves_the_broker_serving(tmp_path):
    chain = Chain(tmp_path, zmq__max_message_bytes="65536")
    chain.start_all(workers=1)
    try:
        broker = await broker_row(chain)
        alice = await chain.connect()
        ctx = zmq.asyncio.Context()
        # the wssvc's own key (same host): past the gatekeeper, so the size limit is what acts
        sock = dealer(ctx, broker["endpoint"], broker["extra"]["curve"],
                      file_keys(chain, "wssvc-1"))
        try:
            who = json.dumps({"client": "x", "user": "alice", "workbook": None}).encode()
            await sock.send_multipart([CLIENT, REQUEST, b"1", who, b"x" * 4_000_000])
            assert await silent(sock, 1.0)
            assert (await alice.request("echo", data="alive"))["data"] == "alive"
            assert chain.broker.popen.poll() is None
        finally:
            sock.close(0)
            ctx.term()
    finally:
        chain.stop()


@pytest.mark.postgres
async def test_the_chain_serves_over_curve_on_postgresql(tmp_path, pg_server):
    url = pg_server.create_database("curve_chain")
    chain = Chain(tmp_path, db_url=url)
    chain.start_all(workers=1)
    try:
        alice = await chain.connect()
        created = await alice.request("workbook.create", name="over CURVE", timeout=20)
        assert created["type"] == "workbook.created"
        assert (await broker_row(chain))["extra"]["curve"]
    finally:
        chain.stop()


async def test_with_curve_off_nothing_is_published_and_the_chain_serves(tmp_path):
    chain = Chain(tmp_path, zmq__curve="false")
    chain.start_all(workers=1)
    try:
        alice = await chain.connect()
        assert (await alice.request("echo", data=1, timeout=20))["data"] == 1
        assert "curve" not in (await broker_row(chain))["extra"]
        assert not (tmp_path / "keys").exists()
    finally:
        chain.stop()

