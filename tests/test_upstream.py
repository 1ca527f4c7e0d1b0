"""wssvc's broker links (etckit.wssvc.upstream) in-process."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

from etckit.wssvc.upstream import Upstream


def test_a_link_that_never_answered_is_tried_again_and_a_lost_one_is_not():
    """A broker that never answered (its gatekeeper had not read our key yet, or a stale row)
    is connected to again at the next registry read; one that served and was lost is not."""
    lost: list[str] = []
    up = Upstream(None, "p1", interval=1.0, liveness=3, registry_interval=1.0,
                  registry_liveness=10.0, on_reply=lambda rid, body: None,
                  on_broker_lost=lost.append)
    try:
        never = SimpleNamespace(id="broker-a", established=False)
        up.links["broker-a"] = never
        up._lost(never)
        assert "broker-a" not in up.gone and "broker-a" not in up.links and lost == []
        served = SimpleNamespace(id="broker-b", established=True)
        up.links["broker-b"] = served
        up._lost(served)
        assert "broker-b" in up.gone and lost == ["broker-b"]
    finally:
        up.ctx.term()


async def test_a_link_survives_any_frames_from_its_broker(caplog):
    """Malformed frames, and a reply whose handling fails, are logged (rate-limited) and the
    link carries on."""
    import zmq

    from etckit.messaging.protocol import CLIENT, DISCONNECT, HEARTBEAT, REPLY
    from etckit.wssvc.upstream import BrokerLink

    replies = []

    def on_reply(rid, body):
        if rid == b"boom":
            raise TypeError("a handler bug")
        replies.append(rid)

    ctx = zmq.Context()
    link = BrokerLink(ctx, {"id": "b1", "endpoint": "tcp://127.0.0.1:1"}, interval=1.0,
                      liveness=3, on_reply=on_reply, on_lost=lambda link: None,
                      on_return=lambda link, rid, body: None)
    try:
        for frames in ([], [b"x"], [CLIENT], [CLIENT, b"\x09"], [CLIENT, HEARTBEAT, b"many"],
                       [CLIENT, REPLY, b"1"], [CLIENT, DISCONNECT, b"x"],
                       [CLIENT, REPLY, b"boom", b"{}"]):
            link._on_frames(frames)
        assert link.complain.total == 8 and not link.said_goodbye.is_set()
        link._on_frames([CLIENT, REPLY, b"ok", b"{}"])
        link._on_frames([CLIENT, HEARTBEAT, b"2"])
        assert replies == [b"ok"] and link.workers == 2
    finally:
        link.sock.close()
        ctx.term()


def _serve(broker):
    import threading

    stop = threading.Event()
    thread = threading.Thread(target=broker.loop, args=(stop,), daemon=True)
    thread.start()
    return stop, thread


def _bind_again(broker, front: int, back: int) -> None:
    """The restarted broker's bind: the old sockets' ports are freed by libzmq's I/O thread.
    Each socket is retried on its own (Broker.bind again would find its frontend bound by the
    attempt whose backend failed)."""
    import zmq

    for sock, port in ((broker.frontend, front), (broker.backend, back)):
        deadline = time.monotonic() + 5
        while True:
            try:
                sock.bind(f"tcp://127.0.0.1:{port}")
                break
            except zmq.ZMQError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


async def test_a_broker_restarted_on_its_port_ends_the_link():
    """A broker that died without a goodbye (killed, or its DISCONNECT lost) and was started
    again on the same port at once, as systemd does: the link must end (on_lost, hence 1012 to
    every client) instead of carrying on with the new process, which never heard of the
    requests the old one held. Before the fix libzmq reconnected the link to the new broker,
    whose heartbeats kept it alive, and those requests went unanswered (the topology's rolling
    upgrade: a rename with no reply and no close)."""
    import zmq

    from etckit.broker import Broker
    from etckit.wssvc.upstream import BrokerLink

    ctx = zmq.Context()
    lost, answered = asyncio.Event(), asyncio.Event()
    old = Broker(ctx, interval=0.5, liveness=4, queue_limit=100)
    front, back = old.bind("127.0.0.1", 0, 0)
    stop, thread = _serve(old)
    link = BrokerLink(ctx, {"id": "b1", "endpoint": f"tcp://127.0.0.1:{front}"}, interval=0.5,
                      liveness=4, on_reply=lambda rid, body: None,
                      on_lost=lambda link: lost.set(), on_return=lambda link, rid, body: None,
                      on_change=answered.set)
    new = Broker(ctx, interval=0.5, liveness=4, queue_limit=100)
    new_stop = None
    try:
        link.start()
        await asyncio.wait_for(answered.wait(), 10)  # established
        old._send = lambda sock, frames: True  # dies: no heartbeat, no DISCONNECT any more
        stop.set()
        await asyncio.to_thread(thread.join)
        old.close()
        _bind_again(new, front, back)
        new_stop, new_thread = _serve(new)
        # the liveness window is 2 s; the old code was still alive with the new broker at 8 s
        await asyncio.wait_for(lost.wait(), 8)
        assert link.sock.closed
    finally:
        await link.stop()
        if new_stop is not None:
            new_stop.set()
            await asyncio.to_thread(new_thread.join)
        new.close()
        ctx.term()


async def test_a_link_whose_send_fails_ends_and_the_request_goes_to_another():
    """A link whose connection dropped (it never connects again) refuses a send with
    zmq.Again: the request goes to another broker instead of being refused, and the link ends
    at once, so wssvc's clients hear 1012 for what the lost broker held."""
    import zmq

    from etckit.wssvc.upstream import BrokerLink

    lost: list[str] = []
    replies: list[tuple[bytes, list[bytes]]] = []
    up = Upstream(None, "p1", interval=1.0, liveness=3, registry_interval=1.0,
                  registry_liveness=10.0, on_reply=lambda rid, body: replies.append((rid, body)),
                  on_broker_lost=lost.append)
    sent: list[tuple[str, bytes]] = []

    def taken(name):
        return lambda rid, body: sent.append((name, rid))

    def dropped(rid, body):
        raise zmq.Again()

    for name in ("a", "b", "c"):
        link = BrokerLink(up.ctx, {"id": name, "endpoint": "tcp://127.0.0.1:1"}, interval=1.0,
                          liveness=3, on_reply=up._reply, on_lost=up._lost,
                          on_return=up._returned, on_change=up._changed)
        link.established, link.workers, link.send = True, 1, taken(name)
        up.links[name] = link
    a, b, c = up.links["a"], up.links["b"], up.links["c"]
    try:
        a.send = dropped
        assert {up.send(str(n).encode(), []) for n in range(6)} == {"b", "c"}
        assert len(sent) == 6 and a.said_goodbye.is_set()
        assert a.broken.startswith("send failed") and a not in up.ready
        up._returned(c, b"r1", [b"who", b"{}"])  # returned by c: b has workers
        assert sent[-1] == ("b", b"r1")
        b.send = dropped  # ... and now b's connection is gone too: answered, not lost
        up._returned(c, b"r2", [b"who", b"{}"])
        assert replies[-1][0] == b"r2" and b"no_worker" in b"".join(replies[-1][1])
        assert b not in up.ready and sent[-1] == ("b", b"r1")
        c.send = dropped  # nothing takes it: refused, not lost
        assert up.send(b"x", []) is None
        a.sock.send = lambda frames: None  # its heartbeat; the link ends on its first wait
        a.start()
        await asyncio.wait_for(a.task, 5)
        assert lost == ["a"] and "a" not in up.links
    finally:
        for link in (a, b, c):
            if not link.sock.closed:
                link.sock.close()
        up.ctx.term()
