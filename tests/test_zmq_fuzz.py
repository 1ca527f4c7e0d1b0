"""Random multi-frame ZeroMQ messages (hypothesis) sent to a running broker's frontend and
backend, as an admitted wssvc and worker would (their own keys, so CURVE lets them in): the
broker never exits and serves a real request afterwards."""

from __future__ import annotations

import asyncio

import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
from tests.support.chain import Chain
from tests.support.procs import wait_for
from tests.test_zmq_security import broker_row, file_keys

COMMANDS = [READY, REQUEST, REPLY, HEARTBEAT, DISCONNECT, RETURN, b"\x00", b"\x07", b""]
JSON_BITS = [b"{}", b"[]", b"null", b'{"client": "c", "user": "u", "workbook": null}',
             b'{"client": 1, "user": "u"}', b'{"id": 1, "type": "echo"}', b'{"to": []}',
             b"\xff\xfe", b"[" * 5000, b"\xed\xa0\x80"]

frame = st.one_of(
    st.binary(max_size=40),
    st.sampled_from(JSON_BITS),
    st.binary(min_size=1000, max_size=20000),
    st.text(max_size=30).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from([CLIENT, WORKER]),
)
noise = st.tuples(
    st.sampled_from([CLIENT, WORKER, b"", b"ETC1X"]) | st.binary(max_size=8),
    st.sampled_from(COMMANDS) | st.binary(max_size=3),
    st.lists(frame, max_size=6),
).map(lambda parts: [parts[0], parts[1], *parts[2]])

WHO = b'{"client": "c", "user": "u", "workbook": null}'
TEMPLATES = [  # well-formed messages of every command; the fuzz spoils some of their frames
    [CLIENT, REQUEST, b"1", WHO, b'{"id": 1, "type": "echo"}'],
    [CLIENT, HEARTBEAT],
    [CLIENT, DISCONNECT],
    [WORKER, READY, b'{"id": "w"}'],
    [WORKER, REPLY, b"c", b"1", b'{"to": []}'],
    [WORKER, HEARTBEAT],
    [WORKER, DISCONNECT],
]


@st.composite
def near_valid(draw) -> list[bytes]:
    template = draw(st.sampled_from(TEMPLATES))
    frames = [draw(st.just(f) | frame) if i >= 2 and draw(st.booleans()) else f
              for i, f in enumerate(template)]
    return frames + draw(st.lists(frame, max_size=2)) if draw(st.booleans()) else frames


message = noise | near_valid()


async def test_random_frames_to_the_broker_leave_it_serving(tmp_path):
    chain = Chain(tmp_path)
    chain.start_all(workers=1)
    ctx = zmq.Context()
    socks = {}
    try:
        wait_for(lambda: '"worker ready"' in chain.broker.output(), what="the worker joined")
        broker = await broker_row(chain)
        for side, endpoint, name in (("front", broker["endpoint"], "wssvc-1"),
                                     ("back", broker["extra"]["backend"], "worker-3")):
            sock = socks[side] = ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.curve_serverkey = broker["extra"]["curve"].encode()
            sock.curve_publickey, sock.curve_secretkey = file_keys(chain, name)
            sock.connect(endpoint)
        sent = fuzz(socks)
        assert sent >= 400
        for sock in socks.values():
            sock.close(0)
        socks.clear()
        await asyncio.sleep(1.0)  # a fake worker made by a READY above expires (0.6 s liveness)
        assert chain.broker.popen.poll() is None, chain.broker.output()[-2000:]
        alice = await chain.connect()
        reply = await alice.request("echo", data="still serving", timeout=20)
        assert reply["data"] == "still serving"
        assert chain.broker.popen.poll() is None and chain.wssvc.popen.poll() is None
    finally:
        for sock in socks.values():
            sock.close(0)
        ctx.term()
        chain.stop()


def fuzz(socks: dict[str, zmq.Socket]) -> int:
    count = 0

    @settings(max_examples=400, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(message, min_size=1, max_size=4), st.booleans())
    def send(messages: list[list[bytes]], backend: bool) -> None:
        nonlocal count
        sock = socks["back" if backend else "front"]
        for frames in messages:
            sock.send_multipart(frames)
            count += 1
        for s in socks.values():  # read what comes back, so nothing piles up
            while s.poll(0):
                s.recv_multipart()

    send()
    return count

