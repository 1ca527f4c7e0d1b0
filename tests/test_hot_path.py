"""The chain's per-message shortcuts give the same answers as the general paths: meta frames
read once per client (broker, worker), a reply to its requester alone passed on without
reading its meta frame (wssvc), the broker choice kept until a link changes (wssvc)."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest

from etckit import config
from etckit.messaging.frames import FrameError, RequestUsers
from etckit.messaging.protocol import ProtocolError, reply_body
from etckit.worker import dispatch
from etckit.wssvc import app
from etckit.wssvc.app import Service
from etckit.wssvc.hub import Client
from etckit.wssvc.upstream import Upstream


def test_request_users_remembers_valid_frames_only():
    users = RequestUsers(size=2)
    good = b'{"client":"c","user":"u","workbook":null}'
    assert users(good) == "u" and users(good) == "u" and list(users.known) == [good]
    for bad in (b"[]", b'{"client":"c","user":""}', b"\xff"):
        with pytest.raises(FrameError):
            users(bad)
        assert bad not in users.known
    users(b'{"client":"d","user":"v"}')
    users(b'{"client":"e","user":"w"}')  # full: forgotten, then kept
    assert len(users.known) == 1


def test_worker_meta_frames_are_read_once_and_checked_first():
    dispatch._WHO.clear()
    meta = b'{"client":"c","user":"u","workbook":"w"}'
    assert dispatch._who(meta) == ("c", "u", "w")
    assert dispatch._WHO[meta] == ("c", "u", "w")
    for bad in (b'{"client":1,"user":"u"}', b'{"client":"c","user":"u","workbook":3}', b"{"):
        with pytest.raises(ProtocolError):
            dispatch._who(bad)
        assert bad not in dispatch._WHO


def _service() -> Service:
    env = {"ETCKIT_AUTH__SESSION_SECRET": "s"}
    return Service(config.load(environ=env), db=None, pool="p")


async def test_a_reply_to_its_requester_takes_the_short_path_with_the_same_outcome(
        monkeypatch):
    service = _service()
    try:
        sent: list = []
        service.upstream.send = lambda rid, body: sent.append((rid, body)) or "b1"
        client = Client(id="c1", user="u", workbook="w", queue=asyncio.Queue(10),
                        limit=service.limits.connection())
        service.hub.add(client)
        service.handle(client, {"id": 7, "type": "echo"}, '{"id":7,"type":"echo"}')
        rid, body = sent[0]
        assert json.loads(body[0]) == {"client": "c1", "user": "u", "workbook": "w"}
        # the meta frame a worker writes for a reply to this client alone is the one expected
        worker_meta = reply_body([{"to": {"client": "c1"}, "message": {}}])[0]
        assert worker_meta == client.reply_to
        before = dict(service.requests.counts.get("echo", {}))
        with monkeypatch.context() as patch:  # the short path never reads the meta frame
            patch.setattr(app, "_reply_meta", None)
            service.on_reply(rid, [worker_meta, b'{"type":"echo","ref":7}'])
        assert json.loads(client.queue.get_nowait()) == {"type": "echo", "ref": 7}
        assert client.limit.in_flight.count == 0 and rid not in service.pending
        assert service.requests.counts["echo"]["ok"] == before.get("ok", 0) + 1
        # not UTF-8: the general path answers internal, as before
        service.handle(client, {"id": 8, "type": "echo"}, '{"id":8,"type":"echo"}')
        service.on_reply(sent[1][0], [worker_meta, b"\xff"])
        reply = json.loads(client.queue.get_nowait())
        assert reply["code"] == "internal" and reply["ref"] == 8
        assert client.limit.in_flight.count == 0
    finally:
        service.upstream.ctx.term()


def test_the_broker_choice_is_kept_until_a_link_changes():
    up = Upstream(None, "p1", interval=1.0, liveness=3, registry_interval=1.0,
                  registry_liveness=10.0, on_reply=lambda rid, body: None,
                  on_broker_lost=lambda broker: None)
    try:
        got: list = []
        link = lambda name, workers: SimpleNamespace(  # noqa: E731
            id=name, established=True, broken=None, workers=workers,
            send=lambda rid, body, name=name: got.append(name))
        up.links["a"] = link("a", 0)
        assert up.send(b"1", []) == "a"  # no broker has workers: it waits in a's queue
        up.links["b"] = link("b", 2)
        assert up.send(b"2", []) == "a"  # the choice is kept ...
        up._changed()  # ... until a link says it changed
        assert {up.send(str(n).encode(), []) for n in range(4)} == {"b"}
        up._lost(up.links.pop("b"))
        assert up.send(b"9", []) == "a"
        up._lost(up.links.pop("a"))
        assert up.send(b"10", []) is None
    finally:
        up.ctx.term()


async def test_worker_reply_to_its_requester_alone_has_the_general_meta_frame():
    dispatch._TO_CLIENT.clear()
    cfg = config.load(environ={"ETCKIT_AUTH__SESSION_SECRET": "s"})

    async def echo(ctx, message):
        ctx.reply({"type": "echo", "data": message.get("data")})

    async def fan_out(ctx, message):
        ctx.reply({"type": "done"})
        ctx.to_workbook("w", {"type": "changed"}, except_sender=True)

    for client in ("c1", "c2", "c1"):
        who = json.dumps({"client": client, "user": "u", "workbook": "w"}).encode()
        for handler in (echo, fan_out):
            text = b'{"id":1,"type":"x","data":"\\ud800"}'
            reply, _ = await dispatch.handle(None, cfg, [who, text], handlers={"x": handler})
            ctx, _ = dispatch.request_context(None, cfg, [who, b'{"id":1,"type":"x"}'])
            await handler(ctx, {"data": "\ud800"})
            assert reply == reply_body(ctx.deliveries)
            assert json.loads(reply[0])["to"][0] == {"client": client}
    assert set(dispatch._TO_CLIENT) == {"c1", "c2"}


def test_dumps_is_compact_utf8_and_escapes_lone_surrogates():
    from etckit.messaging.protocol import dumps

    assert dumps({"a": [1, "é"]}) == '{"a":[1,"é"]}'.encode()
    assert dumps({"a": "\ud800é"}) == b'{"a":"\\ud800\\u00e9"}'


def test_send_frames_sends_what_send_multipart_sends_and_nothing_when_refused():
    import zmq

    from etckit.messaging.loop import send_frames

    ctx = zmq.Context()
    try:
        router, dealer = ctx.socket(zmq.ROUTER), ctx.socket(zmq.DEALER)
        for sock in (router, dealer):
            sock.setsockopt(zmq.LINGER, 0)
        router.bind("inproc://send-frames")
        dealer.connect("inproc://send-frames")
        frames = [b"ETC1C", b"\x02", b"7", b'{"client":"c"}', b"", b"x" * 100_000]
        send_frames(dealer, frames, zmq.NOBLOCK)
        dealer.send_multipart(frames, zmq.NOBLOCK)
        first, second = router.recv_multipart(), router.recv_multipart()
        assert first == second and first[1:] == frames
        send_frames(router, [first[0], b"back"])
        assert dealer.recv_multipart() == [b"back"]
        router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        with pytest.raises(zmq.ZMQError) as info:  # an unknown peer: nothing sent
            send_frames(router, [b"nobody", b"a", b"b"], zmq.NOBLOCK)
        assert info.value.errno == zmq.EHOSTUNREACH
        lonely = ctx.socket(zmq.DEALER)  # no peer: the first frame is refused
        lonely.setsockopt(zmq.LINGER, 0)
        with pytest.raises(zmq.Again):
            send_frames(lonely, [b"a", b"b"], zmq.NOBLOCK)
        send_frames(router, [first[0], b"after"])  # the links still carry whole messages
        assert dealer.recv_multipart() == [b"after"]
        for sock in (router, dealer, lonely):
            sock.close(0)
    finally:
        ctx.term()
