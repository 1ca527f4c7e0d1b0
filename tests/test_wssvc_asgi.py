"""wssvc's raw ASGI websocket endpoint (asgi.py), driven in-process with fake receive/send."""

from __future__ import annotations

import asyncio
import json

import pytest

from etckit import config
from etckit.auth.tickets import Ticket
from etckit.wssvc.app import Service
from etckit.wssvc.asgi import Connection, Front
from etckit.wssvc.hub import CLOSE_TOO_SLOW, Outbox


def _service(**settings: str) -> Service:
    env = {"ETCKIT_AUTH__SESSION_SECRET": "s",
           **{f"ETCKIT_WSSVC__{k.upper()}": v for k, v in settings.items()}}
    return Service(config.load(environ=env), db=None, pool="p")


@pytest.fixture
def service():
    svc = _service(client_queue="4", max_bad_messages="2")
    yield svc
    svc.upstream.ctx.term()


class Peer:
    """A browser that sends what it is given and never answers a close frame."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue = asyncio.Queue()
        self.sent: list[dict] = []
        self.wrote = asyncio.Event()

    async def receive(self) -> dict:
        return await self.incoming.get()

    async def send(self, event: dict) -> None:
        self.sent.append(event)
        self.wrote.set()

    def texts(self) -> list[dict]:
        return [json.loads(e["text"]) for e in self.sent if e["type"] == "websocket.send"]


def _ticket() -> Ticket:
    return Ticket(id="t", user="u", session="s", pool="p", purpose="workbook", workbook="w",
                  expires=0.0)


async def _open(service: Service, peer: Peer) -> tuple[Connection, asyncio.Task]:
    holder: list[Connection] = []

    async def run() -> None:
        conn = Connection(service, _ticket(), peer.receive, peer.send)
        holder.append(conn)
        await conn.run()

    task = asyncio.create_task(run())
    while not peer.texts():
        await asyncio.wait_for(peer.wrote.wait(), 5)
        peer.wrote.clear()
    return holder[0], task


async def test_outbox_is_bounded_and_holds_no_list_when_empty():
    woken = []
    box = Outbox(2, lambda: woken.append(1))
    assert box.items is None and box.empty() and box.qsize() == 0
    box.put_nowait("a")
    box.put_nowait("b")
    with pytest.raises(asyncio.QueueFull):
        box.put_nowait("c")
    assert box.take() == ["a", "b"] and box.items is None and len(woken) == 2
    box.put_nowait("d")
    assert box.get_nowait() == "d" and box.items is None
    with pytest.raises(asyncio.QueueEmpty):
        box.get_nowait()


async def test_hello_then_no_writer_task_while_idle(service):
    peer = Peer()
    conn, task = await _open(service, peer)
    assert peer.texts()[0]["type"] == "hello"
    await asyncio.sleep(0)
    assert conn.writer is None  # nothing queued: no task besides the receive loop
    assert len(service.hub) == 1
    peer.incoming.put_nowait({"type": "websocket.receive", "text": '{"id":1,"type":"ping"}'})
    while len(peer.texts()) < 2:
        await asyncio.wait_for(peer.wrote.wait(), 5)
        peer.wrote.clear()
    assert peer.texts()[1] == {"type": "pong", "ref": 1}
    peer.incoming.put_nowait({"type": "websocket.disconnect", "code": 1000})
    await asyncio.wait_for(task, 5)
    assert len(service.hub) == 0
    assert peer.sent[-1]["type"] == "websocket.send"  # the peer left: no close frame


@pytest.mark.parametrize("code", [4002, 4003, 1012, CLOSE_TOO_SLOW])
async def test_a_close_from_wssvc_ends_the_socket_without_the_peers_answer(service, code):
    peer = Peer()
    conn, task = await _open(service, peer)
    conn.client.close(code, "why")
    await asyncio.wait_for(task, 5)  # the peer never answered: the handler returned anyway
    assert peer.sent[-1] == {"type": "websocket.close", "code": code, "reason": "why"}
    assert len(service.hub) == 0 and conn.writer is None


async def test_a_full_outbox_closes_the_slow_client(service):
    peer = Peer()
    conn, task = await _open(service, peer)
    for n in range(5):  # client_queue=4: the fifth finds it full
        conn.client.send({"n": n})
    await asyncio.wait_for(task, 5)
    assert peer.sent[-1]["code"] == CLOSE_TOO_SLOW


async def test_too_many_bad_messages_close_1008(service):
    peer = Peer()
    _, task = await _open(service, peer)
    for _ in range(2):
        peer.incoming.put_nowait({"type": "websocket.receive", "bytes": b"\x00"})
    await asyncio.wait_for(task, 5)
    assert [t["code"] for t in peer.texts()[1:]] == ["binary_frame", "binary_frame"]
    assert peer.sent[-1]["code"] == 1008


async def test_front_sends_ws_to_the_endpoint_and_the_rest_to_the_app(service):
    seen = []

    async def app(scope, receive, send):
        seen.append((scope["type"], scope["path"]))

    front = Front(service, app)
    await front({"type": "http", "path": "/ws"}, None, None)
    await front({"type": "websocket", "path": "/other"}, None, None)
    sent = []

    async def receive():
        return {"type": "websocket.connect"}

    async def send(event):
        sent.append(event)

    await front({"type": "websocket", "path": "/ws", "headers": [(b"origin", b"https://x")],
                 "query_string": b""}, receive, send)
    assert seen == [("http", "/ws"), ("websocket", "/other")]
    assert sent[0]["type"] == "websocket.http.response.start" and sent[0]["status"] == 403
    assert sent[1]["body"] == b"origin not allowed"
