"""The message chain through real processes: wssvc ⇄ broker ⇄ workers on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

import pytest
import websockets

from tests.support.chain import Chain
from tests.support.procs import wait_for


@pytest.fixture
def chain(tmp_path):
    c = Chain(tmp_path)
    c.start_all(workers=1)
    yield c
    c.stop()


async def test_request_and_reply(chain):
    alice = await chain.connect()
    reply = await alice.request("echo", data={"x": [1, 2, 3]})
    assert reply == {"type": "echo", "data": {"x": [1, 2, 3]}, "ref": "echo-1"}
    assert (await alice.request("ping"))["type"] == "pong"
    await alice.close()


async def test_fan_out_to_a_users_clients_and_not_to_others(chain):
    a1, a2 = await chain.connect("alice"), await chain.connect("alice")
    bob = await chain.connect("bob")
    created = await a1.request("workbook.create", name="Deep field")
    assert created["type"] == "workbook.created"
    seen = await a2.recv()
    assert seen["type"] == "workbook.created" and seen["workbook"] == created["workbook"]
    assert "ref" not in seen
    # bob sees nothing of it, and his list is empty
    assert (await bob.request("workbook.list"))["workbooks"] == []
    listed = await a2.request("workbook.list")
    assert [w["name"] for w in listed["workbooks"]] == ["Deep field"]
    for c in (a1, a2, bob):
        await c.close()


async def test_fan_out_to_every_client_of_a_workbook(chain):
    a1 = await chain.connect("alice")
    wb = (await a1.request("workbook.create", name="W"))["workbook"]["id"]
    w1 = await chain.connect("alice", workbook=wb)
    w2 = await chain.connect("alice", workbook=wb)
    other = await chain.connect("bob")
    reply = await w1.request("workbook.rename", workbook=wb, name="Renamed", base_revision=1)
    assert reply["workbook"]["name"] == "Renamed"
    for c in (w2, a1):  # the other clients of the workbook (and of the user) hear of it
        event = await c.recv()
        assert event["type"] == "workbook.updated" and event["workbook"]["name"] == "Renamed"
    with pytest.raises(asyncio.TimeoutError):
        await other.recv(timeout=0.5)
    nope = await other.request("workbook.delete", workbook=wb)  # not bob's: does not exist
    assert nope["type"] == "error" and nope["code"] == "not_found"


@contextlib.asynccontextmanager
async def holding(worker):
    """Ends once ``worker`` holds one more test.sleep than when it began (its log says so),
    not after a guessed pause that a loaded machine outlasts."""
    def held() -> int:
        return worker.output().count("test.sleep holding the worker")

    before = held()
    yield
    await asyncio.to_thread(wait_for, lambda: held() > before, what="the worker holds it")


async def test_second_worker_takes_load_without_restart(chain):
    alice, again = await chain.connect(), await chain.connect()
    first = chain.workers[0]
    async with holding(first):
        # long enough for a second worker to start on a loaded machine
        slow = asyncio.create_task(alice.request("test.sleep", seconds=12, timeout=40))
    chain.workers.append(chain.start("worker"))  # nothing else restarts
    reply = await again.request("echo", data=1, timeout=20)  # served while worker 1 sleeps
    assert reply["data"] == 1
    assert not slow.done()
    assert (await slow)["type"] == "test.slept"
    assert first.popen.poll() is None
    await alice.close()


@pytest.mark.parametrize("message, code", [
    ("not json", "bad_json"),
    ("[1, 2]", "not_object"),
    ('{"type": "echo"}', "missing_id"),
    ('{"id": 1}', "missing_type"),
    ('{"id": true, "type": "echo"}', "bad_id"),
    ('{"id": 1, "type": "launch.rocket"}', "unknown_type"),
    (b"\x00\x01", "binary_frame"),
    ('{"id": 1, "type": "echo", "data": "' + "x" * 5000 + '"}', "too_large"),
])
async def test_bad_input_gets_an_error_and_the_connection_stays(tmp_path, message, code):
    chain = Chain(tmp_path, wssvc__max_message_bytes="4096")
    chain.start_all()
    try:
        alice = await chain.connect()
        await alice.send(message)
        error = await alice.recv()
        assert error["type"] == "error" and error["code"] == code, error
        assert error["message"]
        assert (await alice.request("echo", data="still here"))["data"] == "still here"
    finally:
        chain.stop()


async def test_unknown_handler_input_is_validated_by_the_worker(chain):
    alice = await chain.connect()
    error = await alice.request("workbook.create", name="")
    assert error["code"] == "invalid" and "name" in error["message"]
    error = await alice.request("test.sleep", seconds="forever")
    assert error["code"] == "invalid" and "seconds" in error["message"]


async def test_garbage_senders_are_closed_with_1008(tmp_path):
    chain = Chain(tmp_path, wssvc__max_bad_messages="3")
    chain.start_all()
    try:
        alice = await chain.connect()
        for _ in range(3):
            await alice.send("garbage")
        with pytest.raises(websockets.ConnectionClosed) as info:
            for _ in range(5):
                await alice.recv()
        assert info.value.rcvd.code == 1008
    finally:
        chain.stop()


async def test_tickets_and_origins_are_checked(chain):
    url = chain.url(chain.ticket())
    with pytest.raises(websockets.InvalidStatus) as info:
        await websockets.connect(url, origin="https://evil.example")
    assert info.value.response.status_code == 403
    ws = await websockets.connect(url, origin="http://127.0.0.1:8080")
    await ws.close()
    with pytest.raises(websockets.InvalidStatus):  # single use
        await websockets.connect(url, origin="http://127.0.0.1:8080")
    for bad in (chain.ticket(pool="elsewhere"), chain.ticket(lifetime=-1), "t1.abc.def", ""):
        with pytest.raises(websockets.InvalidStatus) as info:
            await websockets.connect(chain.url(bad), origin="http://127.0.0.1:8080")
        assert info.value.response.status_code == 403


async def test_killed_worker_fails_its_request_and_the_next_one_succeeds(chain):
    alice = await chain.connect()
    wait_for(lambda: '"worker ready"' in chain.broker.output(), what="the worker joined")
    async with holding(chain.workers[0]):
        slow = asyncio.create_task(alice.request("test.sleep", seconds=10, timeout=15))
    os.kill(chain.workers[0].pid, signal.SIGKILL)
    error = await slow
    assert error["type"] == "error" and error["code"] == "worker_lost"
    chain.workers.append(chain.start("worker"))  # what systemd would do
    assert (await alice.request("echo", data=2, timeout=15))["data"] == 2


async def test_a_stopped_worker_finishes_its_request_before_it_leaves(chain):
    """SIGTERM (systemd's stop, a rolling upgrade) costs no request: the worker finishes the
    one it holds, the broker passes on the reply, then acknowledges and the worker exits."""
    alice = await chain.connect()
    wait_for(lambda: '"worker ready"' in chain.broker.output(), what="the worker joined")
    async with holding(chain.workers[0]):
        slow = asyncio.create_task(alice.request("test.sleep", seconds=1.5, timeout=15))
    chain.workers[0].signal(signal.SIGTERM)
    assert (await slow) == {"type": "test.slept", "seconds": 1.5, "ref": "test.sleep-1"}
    assert chain.workers[0].wait(timeout=10) == 0
    assert '"worker leaving after its request"' in chain.broker.output()
    assert '"worker left after its request"' in chain.broker.output()
    assert '"request unfinished"' not in chain.workers[0].output()
    chain.workers.append(chain.start("worker"))
    assert (await alice.request("echo", data=1, timeout=15))["data"] == 1


async def test_killed_broker_closes_clients_with_1012_then_they_carry_on(chain):
    alice = await chain.connect()
    wb = (await alice.request("workbook.create", name="Kept"))["workbook"]["id"]
    os.kill(chain.broker.pid, signal.SIGKILL)
    with pytest.raises(websockets.ConnectionClosed) as info:
        while True:
            await alice.recv(timeout=10)
    assert info.value.rcvd.code == 1012
    chain.broker = chain.start("broker")  # restarted; the worker and wssvc find it
    wait_for(lambda: chain.health().get("brokers") == 1, what="wssvc re-attached")
    again = await chain.connect()
    reply = await again.request("workbook.list", timeout=15)
    assert [w["id"] for w in reply["workbooks"]] == [wb]
    assert (await again.request("echo", data=3, timeout=15))["data"] == 3


async def test_killed_wssvc_drops_clients_and_a_new_one_serves(chain):
    alice = await chain.connect()
    wb = (await alice.request("workbook.create", name="Kept"))["workbook"]["id"]
    os.kill(chain.wssvc.pid, signal.SIGKILL)
    with pytest.raises(websockets.ConnectionClosed):
        while True:
            await alice.recv(timeout=10)
    chain.wssvc = chain.start("wssvc")
    chain.wait_ready()
    again = await chain.connect()
    assert [w["id"] for w in (await again.request("workbook.list"))["workbooks"]] == [wb]


async def test_dead_clients_are_noticed_by_the_application_ping(tmp_path):
    chain = Chain(tmp_path, wssvc__ping_interval="0.2")
    chain.start_all()
    try:
        ws = await websockets.connect(chain.url(chain.ticket()), origin="http://127.0.0.1:8080",
                                      ping_interval=None)
        # a client that never answers (nor sends anything) is closed with 4002
        with pytest.raises(websockets.ConnectionClosed) as info:
            for _ in range(100):
                await asyncio.wait_for(ws.recv(), 5)
        assert info.value.rcvd.code == 4002
    finally:
        chain.stop()


async def test_a_client_that_does_not_read_is_disconnected(tmp_path):
    # 16 MB in one reply: over the default quotas.reply_max_bytes, raised for this test
    chain = Chain(tmp_path, wssvc__client_queue="4", quotas__reply_max_bytes="33554432")
    chain.start_all()
    try:
        sleeper = await chain.connect("alice", rcvbuf=4096)
        other = await chain.connect("alice")
        sleeper.ws.transport.pause_reading()  # stops reading: the socket, then its queue fill
        # the other client's request fans out 16 MB to the sleeper, more than any buffer
        done = await other.request("test.broadcast", count=40, size=400_000, timeout=30)
        assert done["count"] == 40
        wait_for(lambda: chain.health()["clients"] == 1, what="slow client dropped")
        assert (await other.request("echo", data="fine"))["data"] == "fine"
        sleeper.ws.transport.resume_reading()
        with pytest.raises(websockets.ConnectionClosed) as info:
            while True:
                await sleeper.recv(timeout=10)
        # 4001, unless the server gave up writing the close frame into a full socket first
        assert info.value.rcvd is None or info.value.rcvd.code == 4001
    finally:
        chain.stop()


def test_wssvc_accepts_exactly_the_types_workers_handle():
    from etckit.messaging.types import LOCAL_TYPES, REQUEST_TYPES
    from etckit.worker import HANDLERS, INTERNAL_TYPES

    assert set(HANDLERS) == set(REQUEST_TYPES) | INTERNAL_TYPES
    assert not INTERNAL_TYPES & REQUEST_TYPES  # follow-ups only: never from a browser
    assert not LOCAL_TYPES & REQUEST_TYPES


@pytest.mark.parametrize("program", ["wssvc", "broker", "worker"])
def test_a_program_that_loses_its_database_exits_non_zero(tmp_path, pg_server, program):
    import psycopg

    name = f"lose_{program}"
    chain = Chain(tmp_path, db_url=pg_server.create_database(name),
                  broker__pool="p1", database__busy_timeout="1")
    try:
        proc = chain.start(program)
        wait_for(lambda: "registered" in proc.output(), what=f"{program} registered")
        with psycopg.connect(pg_server.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        assert proc.wait(30) == 1, proc.output()
        assert "\"level\": \"error\"" in proc.output()  # it said why before it went
    finally:
        chain.stop()


async def test_a_broker_without_workers_is_not_sent_requests(chain):
    """Two brokers in the pool, the only worker on the first: every request is served."""
    second = chain.start("broker", broker__pool=chain.pool)
    wait_for(lambda: "serving" in second.output(), what="second broker serving")
    await asyncio.sleep(1.5)  # wssvc links to it and hears its heartbeat (0 workers)
    alice = await chain.connect()
    for i in range(10):
        assert (await alice.request("echo", data=i, timeout=5))["data"] == i


async def test_requests_reaching_a_broker_whose_worker_died_are_served_by_another(tmp_path):
    """A broker counts a dead worker until it expires, and wssvc hears that count a heartbeat
    late: requests that reach the broker meanwhile are returned and served elsewhere (found by
    the Molecule topology, where the restarted worker joined the other broker)."""
    chain = Chain(tmp_path, heartbeat__interval="1")  # a wide window: expiry after 3 s
    try:
        chain.start_all(workers=1)
        second = chain.start("broker", broker__pool=chain.pool)
        wait_for(lambda: '"serving"' in second.output(), what="second broker serving")
        doomed = chain.start("worker")  # joins the broker with fewer workers: the second
        wait_for(lambda: '"worker ready"' in second.output(), what="worker on the second broker")
        await asyncio.sleep(2.5)  # wssvc hears the second broker count it
        alice = await chain.connect()
        os.kill(doomed.pid, signal.SIGKILL)
        await asyncio.sleep(0.3)  # the broker's socket sees the peer gone; the count stays 1
        for i in range(6):  # round-robin: half of them reach the second broker
            await alice.send({"id": f"r{i}", "type": "echo", "data": i})
        replies = {}
        while len(replies) < 6:
            message = await alice.recv(timeout=15)
            replies[message["ref"]] = message
        assert {ref: m.get("data") for ref, m in replies.items()} == {
            f"r{i}": i for i in range(6)}, replies
        assert "requests returned to wssvc" in second.output()
        assert "sent to another" in chain.wssvc.output()
    finally:
        chain.stop()


async def test_with_no_worker_at_all_a_request_waits_then_gets_no_worker(chain):
    alice = await chain.connect()
    wait_for(lambda: '"worker ready"' in chain.broker.output(), what="the worker joined")
    chain.workers[0].stop()  # graceful: the broker drops it at once
    wait_for(lambda: '"worker dropped"' in chain.broker.output(), what="worker dropped")
    started = asyncio.get_running_loop().time()
    error = await alice.request("echo", data=1, timeout=20)
    waited = asyncio.get_running_loop().time() - started
    assert error["type"] == "error" and error["code"] == "no_worker", error
    assert waited >= 10 * 0.6 * 0.9, waited  # ten liveness windows of 0.2 s x 3
    chain.workers.append(chain.start("worker"))  # a worker comes back: served again
    assert (await alice.request("echo", data=2, timeout=20))["data"] == 2
