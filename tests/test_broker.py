"""The broker's state machine in-process: on_client/on_worker are plain methods; what the
broker would send is recorded instead of sent."""

from __future__ import annotations

import json
import time

import pytest
import zmq

from etckit.broker import Broker, FairQueue, Job
from etckit.messaging.curve import Gatekeeper, public_keys
from etckit.messaging.protocol import (
    CLIENT,
    DISCONNECT,
    HEARTBEAT,
    READY,
    REPLY,
    REQUEST,
    RETURN,
    WORKER,
)

WSSVC = b"\x00wssvc"


@pytest.fixture
def ctx():
    context = zmq.Context()
    yield context
    context.term()


@pytest.fixture
def broker(ctx):
    b = make_broker(ctx)
    yield b
    b.close()


def make_broker(ctx, **kw) -> Broker:
    b = Broker(ctx, interval=1.0, liveness=3, queue_limit=kw.pop("queue_limit", 10000),
               queue_per_user=kw.pop("queue_per_user", 5000), **kw)
    b.sent = []  # (socket name, frames)

    def record(sock, frames):
        b.sent.append(("front" if sock is b.frontend else "back", frames))
        return True

    b._send = record
    return b


def meta(user: str, client: str = "c1") -> bytes:
    return json.dumps({"client": client, "user": user, "workbook": None}).encode()


def request(broker: Broker, user: str, rid: str) -> None:
    broker.on_client([WSSVC, CLIENT, REQUEST, rid.encode(), meta(user), b'{"id":1}'])


def ready(broker: Broker, identity: bytes) -> None:
    broker.on_worker([identity, WORKER, READY, b'{"id": "w"}'])


def given(broker: Broker, identity: bytes) -> list[bytes]:
    """The rids handed to this worker so far, in order."""
    return [f[4] for where, f in broker.sent
            if where == "back" and f[0] == identity and f[2] == REQUEST]


def reply(broker: Broker, identity: bytes, rid: bytes) -> None:
    broker.on_worker([identity, WORKER, REPLY, WSSVC, rid, b'{"to": []}'])


def to_wssvc(broker: Broker, command: bytes) -> list[list[bytes]]:
    return [f for where, f in broker.sent if where == "front" and f[2] == command]


def test_users_are_served_in_turn_not_first_come_first_served(broker):
    for i in range(1000):
        request(broker, "mallory", f"m{i}")
    request(broker, "alice", "a1")
    ready(broker, b"w1")
    served = []
    for _ in range(4):
        rid = given(broker, b"w1")[-1]
        served.append(rid)
        reply(broker, b"w1", rid)
    # alice waits behind one of mallory's thousand requests, not behind all of them
    assert served[:2] == [b"m0", b"a1"]
    assert served[2:] == [b"m1", b"m2"]
    assert len(broker.waiting) == 1001 - 5  # four served, the fifth held by the worker


def test_round_robin_over_three_users_with_two_workers(broker):
    for user in ("a", "b", "c"):
        for i in range(3):
            request(broker, user, f"{user}{i}")
    ready(broker, b"w1")
    ready(broker, b"w2")
    order = [given(broker, b"w1")[-1], given(broker, b"w2")[-1]]
    for _ in range(7):
        for w in (b"w1", b"w2"):
            rids = given(broker, w)
            if rids and broker.workers[w].job is not None:
                reply(broker, w, rids[-1])
                if broker.workers[w].job is not None:
                    order.append(given(broker, w)[-1])
    assert [r.decode()[0] for r in order] == list("abcabcabc")


def test_a_user_over_its_share_is_rate_limited_with_retry_after(ctx):
    broker = make_broker(ctx, queue_per_user=3)
    try:
        for i in range(4):
            request(broker, "mallory", f"m{i}")
        request(broker, "alice", "a1")  # another user still gets in
        refused = to_wssvc(broker, REPLY)
        assert [f[3] for f in refused] == [b"m3"]
        error = json.loads(refused[0][4])["error"]
        assert error["code"] == "rate_limited"
        assert isinstance(error["retry_after"], float) and error["retry_after"] > 0
        assert "queue_per_user" in error["message"]
        assert broker.waiting.waiting("alice") == 1
    finally:
        broker.close()


def test_a_full_queue_answers_busy(ctx):
    broker = make_broker(ctx, queue_limit=2)
    try:
        for user in ("a", "b", "c"):
            request(broker, user, user)
        refused = to_wssvc(broker, REPLY)
        assert [f[3] for f in refused] == [b"c"]
        assert json.loads(refused[0][4])["error"]["code"] == "busy"
    finally:
        broker.close()


def test_requests_are_returned_when_no_worker_came(broker):
    request(broker, "a", "a1")
    request(broker, "b", "b1")
    request(broker, "a", "a2")
    for job in [j for q in broker.waiting.queues.values() for j in q]:
        job.since -= 10  # queued longer than the liveness window ago
    broker.unstaffed_since = time.monotonic() - 10
    broker.heartbeat()
    returned = to_wssvc(broker, RETURN)
    assert [f[3] for f in returned] == [b"a1", b"b1", b"a2"]
    assert returned[0][4:] == [meta("a"), b'{"id":1}']
    assert len(broker.waiting) == 0 and not broker.waiting.turns


def test_a_job_taken_back_from_an_unreachable_worker_is_served_next(broker):
    request(broker, "a", "a1")
    request(broker, "b", "b1")
    job = broker.waiting.pop()
    broker.waiting.push(job, first=True)
    assert broker.waiting.pop().rid == b"a1"
    assert broker.waiting.pop().rid == b"b1"
    assert broker.waiting.pop() is None


def test_fair_queue_counts():
    queue = FairQueue(limit=3, per_user=2)
    for rid in (b"1", b"2"):
        queue.push(Job(WSSVC, rid, [], "u", 0.0))
    assert queue.refusal("u") == "rate_limited"
    assert queue.refusal("v") is None
    queue.push(Job(WSSVC, b"3", [], "v", 0.0))
    assert queue.refusal("w") == "busy"
    assert len(queue.pop_older(-1.0)) == 0 and len(queue) == 3
    assert len(queue.pop_older(0.0)) == 3 and len(queue) == 0


BAD_CLIENT_FRAMES = [
    [WSSVC],
    [WSSVC, CLIENT],
    [WSSVC, b"ETC1W", HEARTBEAT],
    [WSSVC, CLIENT, b"\x09"],
    [WSSVC, CLIENT, REQUEST, b"1", meta("a")],  # a frame short
    [WSSVC, CLIENT, REQUEST, b"1", meta("a"), b"{}", b"extra"],
    [WSSVC, CLIENT, REQUEST, b"", meta("a"), b"{}"],  # empty request id
    [WSSVC, CLIENT, REQUEST, b"x" * 65, meta("a"), b"{}"],
    [WSSVC, CLIENT, REQUEST, b"1", b"not json", b"{}"],
    [WSSVC, CLIENT, REQUEST, b"1", b"\xff\xfe", b"{}"],
    [WSSVC, CLIENT, REQUEST, b"1", b"[1, 2]", b"{}"],
    [WSSVC, CLIENT, REQUEST, b"1", b'{"client": "c"}', b"{}"],
    [WSSVC, CLIENT, REQUEST, b"1", b'{"client": "c", "user": 7}', b"{}"],
    [WSSVC, CLIENT, REQUEST, b"1", b'{"client": "c", "user": []}', b"{}"],
    [WSSVC, CLIENT, REQUEST, b"1", b'{"client": "c", "user": "u", "workbook": 3}', b"{}"],
    [WSSVC, CLIENT, REQUEST, b"1", b"[" * 100000, b"{}"],
    [WSSVC, CLIENT, HEARTBEAT, b"extra"],
    [WSSVC, CLIENT, DISCONNECT, b"extra"],
]


@pytest.mark.parametrize("frames", BAD_CLIENT_FRAMES)
def test_malformed_client_frames_are_dropped(broker, frames):
    broker.on_client(frames)
    assert len(broker.waiting) == 0 and broker.sent == [] and broker.clients == {}
    assert broker.complain.total == 1


BAD_WORKER_FRAMES = [
    [b"w"],
    [b"w", WORKER],
    [b"w", CLIENT, READY, b"{}"],
    [b"w", WORKER, READY],
    [b"w", WORKER, READY, b"not json"],
    [b"w", WORKER, READY, b"[]"],
    [b"w", WORKER, READY, b"{}", b"extra"],
    [b"w", WORKER, REPLY, WSSVC, b"1"],
    [b"w", WORKER, HEARTBEAT, b"x"],
    [b"w", WORKER, b"\x00"],
]


@pytest.mark.parametrize("frames", BAD_WORKER_FRAMES)
def test_malformed_worker_frames_are_dropped(broker, frames):
    broker.on_worker(frames)
    assert broker.workers == {} and broker.sent == []
    assert broker.complain.total == 1


def test_a_reply_for_a_request_not_held_is_dropped(broker):
    ready(broker, b"w1")
    request(broker, "a", "a1")
    reply(broker, b"w1", b"other")
    assert to_wssvc(broker, REPLY) == [] and broker.complain.total == 1
    reply(broker, b"w1", b"a1")
    assert [f[3] for f in to_wssvc(broker, REPLY)] == [b"a1"]


def test_complaints_are_rate_limited(broker, caplog):
    for _ in range(500):
        broker.on_client([WSSVC, CLIENT, b"\x09"])
    assert broker.complain.total == 500
    assert len([r for r in caplog.records if "malformed" in r.getMessage()]) <= 10


def test_a_handler_bug_does_not_leave_the_loop(broker, monkeypatch):
    def boom(frames):
        raise RuntimeError("bug")

    sock = broker.frontend
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    dealer = sock.context.socket(zmq.DEALER)
    dealer.connect(f"tcp://127.0.0.1:{port}")
    dealer.send_multipart([CLIENT, HEARTBEAT])
    try:
        assert sock.poll(5000)
        broker._drain(sock, boom)  # does not raise
        assert broker.complain.total == 1
    finally:
        dealer.close(0)


# -- the CURVE gatekeeper -----------------------------------------------------------------

def zap(key: bytes, domain: bytes = b"backend", mechanism: bytes = b"CURVE") -> list[bytes]:
    return [b"rid", b"", b"1.0", b"7", domain, b"10.0.0.9", b"", mechanism, key]


def test_gatekeeper_admits_known_keys_and_holds_unknown_ones_for_a_read(ctx):
    known_pub, _ = zmq.curve_keypair()
    new_pub, _ = zmq.curve_keypair()
    rogue_pub, _ = zmq.curve_keypair()
    known = zmq.utils.z85.decode(known_pub)
    knocks = []
    gate = Gatekeeper(ctx, wake=lambda: knocks.append(1))
    try:
        gate.admit({"backend": public_keys([{"extra": {"curve": known_pub.decode()}}])},
                   gate.seq)
        assert gate.on_request(zap(known))[4] == b"200"
        assert gate.on_request(zap(known, b"frontend")) is None  # not a wssvc key: held
        new, rogue = zmq.utils.z85.decode(new_pub), zmq.utils.z85.decode(rogue_pub)
        assert gate.on_request(zap(new)) is None and gate.on_request(zap(rogue)) is None
        assert len(knocks) == 3 and gate.settle() == []  # no read since they came
        rows = [{"extra": {"curve": k.decode()}} for k in (known_pub, new_pub)]
        gate.admit({"backend": public_keys(rows)}, gate.seq)  # the new worker registered
        # in the order they came: the worker key at the frontend, the new worker, the rogue
        assert [a[4] for a in gate.settle()] == [b"400", b"200", b"400"]
        assert gate.parked == []
        assert gate.on_request(zap(b"x" * 32, mechanism=b"NULL"))[4] == b"400"
    finally:
        gate.close()


def test_gatekeeper_logs_a_refused_key_once(ctx, caplog):
    pub, _ = zmq.curve_keypair()
    key = zmq.utils.z85.decode(pub)
    gate = Gatekeeper(ctx)
    try:
        gate.admit({}, 0)
        for _ in range(5):
            gate.on_request(zap(key))
            gate.admit({}, gate.seq)
            assert gate.settle()[0][4] == b"400"
        lines = [r for r in caplog.records if "refused a ZeroMQ peer" in r.getMessage()]
        assert len(lines) == 1 and lines[0].address == "10.0.0.9"
    finally:
        gate.close()
