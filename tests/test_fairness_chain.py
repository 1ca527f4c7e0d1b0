"""The broker's per-user queues through real processes: a user's flood delays another user's
request by about one request, and a user over its share is refused with retry_after."""

from __future__ import annotations

import asyncio

from tests.support.chain import Chain
from tests.support.procs import wait_for


async def test_another_users_request_overtakes_a_flood(tmp_path):
    # the broker's fairness alone: wssvc's own per-connection limits out of the way
    chain = Chain(tmp_path, wssvc__max_in_flight="100", wssvc__connection_burst="100",
                  wssvc__user_burst="100")
    chain.start_all(workers=1)
    try:
        wait_for(lambda: '"worker ready"' in chain.broker.output(), what="the worker joined")
        mallory, alice = await chain.connect("mallory"), await chain.connect("alice")
        seen: list[str] = []  # every reply either client gets, in the order they arrive

        async def listen(client, expected: int) -> None:
            for _ in range(expected):
                seen.append((await client.recv(timeout=30))["ref"])

        for i in range(20):
            await mallory.send({"id": f"m{i}", "type": "test.sleep", "seconds": 0.3})
        await listen(mallory, 1)  # m0 served: the other 19 wait at the broker
        await alice.send({"id": "alice", "type": "echo", "data": 1})
        await asyncio.gather(listen(mallory, 19), listen(alice, 1))
        # alice waited for mallory's request in progress and at most one more, not for all
        # nineteen that were queued before hers (one FIFO would make it nineteen)
        assert seen.index("alice") <= 3, seen
        assert sorted(seen) == sorted(["alice", *(f"m{i}" for i in range(20))])
    finally:
        chain.stop()


async def test_a_user_over_its_queue_share_is_rate_limited_with_retry_after(tmp_path):
    chain = Chain(tmp_path, broker__queue_per_user="2")
    chain.start_all(workers=1)
    try:
        wait_for(lambda: '"worker ready"' in chain.broker.output(), what="the worker joined")
        mallory, alice = await chain.connect("mallory"), await chain.connect("alice")
        await mallory.send({"id": "busy", "type": "test.sleep", "seconds": 2})
        await asyncio.sleep(0.5)  # the worker holds it; the next ones queue
        for i in range(3):
            await mallory.send({"id": f"q{i}", "type": "echo", "data": i})
        refused = await mallory.recv(timeout=20)
        assert refused["type"] == "error" and refused["code"] == "rate_limited", refused
        assert refused["ref"] == "q2"
        assert isinstance(refused["retry_after"], int | float) and refused["retry_after"] > 0
        assert "queue_per_user" in refused["message"]
        # another user is not limited by mallory's share
        assert (await alice.request("echo", data="mine", timeout=20))["data"] == "mine"
    finally:
        chain.stop()
