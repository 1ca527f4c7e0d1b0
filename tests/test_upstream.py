"""wssvc's broker links (etckit.wssvc.upstream) in-process."""

from __future__ import annotations

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
