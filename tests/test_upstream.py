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
