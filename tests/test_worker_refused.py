"""A broker that refuses a worker's CURVE key (as a real one does until its registry refresh
admits a worker that just started): the worker's socket has no connection then, and a send
raises zmq.Again. The worker stays up, joins again, and serves once it is admitted."""

from __future__ import annotations

import asyncio
import json
import threading
import time

from zmq.auth.thread import ThreadAuthenticator

from etckit.storage import open_database
from tests.support.chain import Chain
from tests.test_zmq_fuzz_worker import FakeBroker


class Gate:
    """The ZAP credentials provider: refuses every CURVE key until admit is set."""

    def __init__(self) -> None:
        self.admit = threading.Event()
        self.refused = 0

    def callback(self, domain: str, key: bytes) -> bool:
        if not self.admit.is_set():
            self.refused += 1
        return self.admit.is_set()


def wait_for(what, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if what():
            return True
        time.sleep(0.05)
    return False


async def test_a_refused_worker_stays_up_rejoins_and_serves_once_admitted(tmp_path):
    chain = Chain(tmp_path)
    fake = FakeBroker()
    gate = Gate()
    auth = ThreadAuthenticator(fake.ctx)
    auth.start()
    auth.configure_curve_callback(domain="*", credentials_provider=gate)
    async with open_database(chain.db_url) as db:
        reg = await fake.register(db, "refusing")
        worker = chain.start("worker", worker__pool="refusing")
        try:
            # refused in one session, then again after it joined anew (3 heartbeats of 0.2 s)
            assert await asyncio.to_thread(
                wait_for, lambda: worker.output().count("broker lost") >= 2), worker.output()
            assert gate.refused >= 2
            assert worker.popen.poll() is None, worker.output()[-3000:]
            assert "crashed" not in worker.output()
            gate.admit.set()
            reply = await asyncio.to_thread(fake.ask_echo)
            assert reply is not None, worker.output()[-3000:]
            assert json.loads(reply[6])["data"] == "still serving"
        finally:
            worker.stop()
            await reg.stop()
            auth.stop()
            fake.close()
