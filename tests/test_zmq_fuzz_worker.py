"""Random multi-frame ZeroMQ messages (hypothesis) sent to a running worker by a fake broker
(registered in the registry with its own CURVE key, so the worker joins it): the worker never
exits and answers a real request afterwards."""

from __future__ import annotations

import asyncio
import json
import time

import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etckit.messaging.protocol import DISCONNECT, HEARTBEAT, READY, REPLY, REQUEST, WORKER
from etckit.registry import Registration
from etckit.storage import open_database
from tests.support.chain import Chain
from tests.test_zmq_fuzz import frame

WHO = b'{"client": "c", "user": "u", "workbook": null}'
MESSAGES = [b'{"id": 1, "type": "echo", "data": 1}', b'{"id": 2, "type": "workbook.list"}',
            b'{"id": 3, "type": "nope"}', b'{"id": 4}', b"[]", b"{}", b"not json"]
TEMPLATES = [
    [WORKER, REQUEST, b"c", b"1", WHO, MESSAGES[0]],
    [WORKER, HEARTBEAT],
    [WORKER, DISCONNECT],
]


@st.composite
def to_worker(draw) -> list[bytes]:
    template = draw(st.sampled_from(TEMPLATES))
    frames = [draw(st.sampled_from(MESSAGES) | frame) if i >= 2 and draw(st.booleans())
              else f for i, f in enumerate(template)]
    if draw(st.booleans()):
        frames[0] = draw(st.sampled_from([WORKER, b"ETC1C", b""]) | st.binary(max_size=6))
    return frames + draw(st.lists(frame, max_size=2)) if draw(st.booleans()) else frames


class FakeBroker:
    """A ROUTER the worker joins; it remembers the worker's latest routing id."""

    def __init__(self) -> None:
        self.ctx = zmq.Context()
        self.public, secret = zmq.curve_keypair()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.curve_server = True
        self.sock.curve_secretkey = secret
        port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self.worker: bytes | None = None
        self.replies: list[list[bytes]] = []

    def drain(self, wait: float = 0.0) -> None:
        while self.sock.poll(wait * 1000):
            frames = self.sock.recv_multipart()
            wait = 0.0
            if frames[1:3] == [WORKER, READY]:
                self.worker = frames[0]
            elif frames[1:3] == [WORKER, REPLY]:
                self.replies.append(frames)

    def send(self, frames: list[bytes]) -> None:
        if self.worker is not None:
            self.sock.send_multipart([self.worker, *frames])

    def ask_echo(self, timeout: float = 20.0) -> list[bytes] | None:
        """A real request; its reply (or None), heartbeating the worker meanwhile."""
        deadline = time.monotonic() + timeout
        asked_of = None
        while time.monotonic() < deadline:
            if self.worker is not None and asked_of != self.worker:
                asked_of = self.worker  # (again after the worker rejoined)
                self.send([WORKER, REQUEST, b"c", b"final", WHO,
                           b'{"id": "final", "type": "echo", "data": "still serving"}'])
            self.send([WORKER, HEARTBEAT])
            self.drain(0.1)
            for frames in self.replies:
                if frames[4] == b"final":
                    return frames
        return None

    async def register(self, db, pool: str) -> Registration:
        """Its entry in the registry, as a broker of POOL: a worker of POOL joins it."""
        reg = Registration(db, "broker", pool=pool, endpoint=self.endpoint,
                           extra={"backend": self.endpoint}, interval=0.2, liveness=2,
                           publish={"curve": self.public.decode()})
        await reg.start()
        return reg

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()


async def test_random_frames_to_a_worker_leave_it_serving(tmp_path):
    chain = Chain(tmp_path)
    fake = FakeBroker()
    async with open_database(chain.db_url) as db:
        reg = await fake.register(db, "fuzz")
        worker = chain.start("worker", worker__pool="fuzz")
        try:
            await asyncio.to_thread(fake.drain, 30.0)
            assert fake.worker is not None, worker.output()
            sent = await asyncio.to_thread(fuzz, fake)
            assert sent >= 300
            reply = await asyncio.to_thread(fake.ask_echo)
            assert reply is not None, worker.output()[-3000:]
            assert json.loads(reply[6])["data"] == "still serving"
            assert worker.popen.poll() is None
        finally:
            worker.stop()
            await reg.stop()
            fake.close()


def fuzz(fake: FakeBroker) -> int:
    count = 0

    @settings(max_examples=300, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(to_worker(), min_size=1, max_size=3))
    def send(messages: list[list[bytes]]) -> None:
        nonlocal count
        for frames in messages:
            fake.send(frames)
            count += 1
        fake.drain()

    send()
    return count
