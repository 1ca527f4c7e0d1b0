"""A request that no reply will ever come for (a broker or worker lost it without a word) is
answered `timeout` by wssvc after wssvc.request_timeout, and its in-flight slot is freed: a
page is never left waiting, and a socket never runs short of slots (max_in_flight) because of
losses. Before, such a request stayed pending for the life of the socket."""

from __future__ import annotations

import asyncio
import json
import time

from etckit import config
from etckit.wssvc.app import Service
from etckit.wssvc.hub import Client
from tests.support.chain import Chain


def _service(**settings: str) -> Service:
    env = {"ETCKIT_AUTH__SESSION_SECRET": "s",
           **{f"ETCKIT_WSSVC__{k.upper()}": v for k, v in settings.items()}}
    return Service(config.load(environ=env), db=None, pool="p")


def _client(service: Service, cid: str) -> Client:
    client = Client(id=cid, user=f"user-{cid}", workbook=None, queue=asyncio.Queue(10),
                    limit=service.limits.connection())
    service.hub.add(client)
    return client


def _ask(service: Service, client: Client, mid: int) -> None:
    text = json.dumps({"id": mid, "type": "echo"})
    service.handle(client, json.loads(text), text)


def _replies(client: Client) -> list[dict]:
    out = []
    while not client.queue.empty():
        out.append(json.loads(client.queue.get_nowait()))
    return out


async def test_lost_requests_are_answered_timeout_and_free_their_slots():
    service = _service(request_timeout="30", max_in_flight="2")
    try:
        lost: list[bytes] = []
        service.upstream.send = lambda rid, body: lost.append(rid) or "b1"  # never answered
        alice, bob = _client(service, "a"), _client(service, "b")
        _ask(service, alice, 1)
        _ask(service, alice, 2)
        _ask(service, alice, 3)  # both slots held by lost requests
        assert [r["code"] for r in _replies(alice)] == ["rate_limited"]
        _ask(service, bob, 1)
        service.hub.remove(bob)  # bob left: his entry goes, nothing is sent to him
        started = time.monotonic()
        assert service.expire(started + 29) == 0  # not yet
        _ask(service, alice, 4)
        assert _replies(alice)[0]["code"] == "rate_limited"
        young = time.monotonic()
        assert service.expire(young + 30.5) == 3  # alice's two and bob's
        replies = _replies(alice)
        assert [(r["type"], r["code"], r["ref"]) for r in replies] == [
            ("error", "timeout", 1), ("error", "timeout", 2)]
        assert "30 s" in replies[0]["message"]
        assert alice.limit.in_flight.count == 0 and _replies(bob) == []
        assert service.requests.counts["echo"]["timeout"] >= 3
        _ask(service, alice, 5)  # her slots are hers again
        assert _replies(alice) == [] and len(service.pending) == 1
        # a late reply for an expired request frees no slot twice
        worker_meta = alice.reply_to
        service.on_reply(lost[0], [worker_meta, b'{"type":"echo","ref":1}'])
        assert alice.limit.in_flight.count == 1
    finally:
        service.upstream.ctx.term()


async def test_a_plot_request_of_wssvcs_own_times_out_after_request_timeout():
    service = _service(request_timeout="1")
    try:
        service.upstream.send = lambda rid, body: "b1"  # never answered
        alice = _client(service, "a")
        started = time.monotonic()
        reply = await service.ask_worker(alice, {"id": "plot", "type": "plot.render"})
        assert reply["code"] == "timeout" and 0.9 < time.monotonic() - started < 10
        assert service.pending == {}
    finally:
        service.upstream.ctx.term()


async def test_wssvc_answers_timeout_while_the_worker_is_still_busy(tmp_path):
    """The real chain: a request held past request_timeout is answered timeout by wssvc's
    own sweep; its late reply still reaches the page; the freed slot serves the next one."""
    chain = Chain(tmp_path, wssvc__request_timeout="1", wssvc__max_in_flight="1",
                  worker__diagnostics="true")
    chain.start_all(workers=2)
    try:
        alice = await chain.connect()
        started = time.monotonic()
        reply = await alice.request("test.sleep", seconds=6, timeout=20)
        took = time.monotonic() - started
        assert (reply["type"], reply["code"]) == ("error", "timeout"), reply
        assert took < 5, f"answered after {took:.1f}s"
        echo = await alice.request("echo", data=3, timeout=20)  # the other worker
        assert echo["data"] == 3
        late = await alice.recv(timeout=20)
        assert late["type"] == "test.slept" and late["ref"] == reply["ref"]
        await alice.close()
    finally:
        chain.stop()
