"""wssvc's per-message counters (metrics.RequestCounts): plain counts on the hot path, the
same families as prometheus_client's Counter and Histogram when scraped."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from etckit import metrics


def _samples(collector) -> dict[tuple, float]:
    registry = CollectorRegistry()
    registry.register(collector)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in registry.collect() for s in family.samples}


def test_counts_and_latency_read_as_prometheus_client_would():
    counts = metrics.RequestCounts()
    reference = CollectorRegistry()
    requests = Counter("etckit_requests", "r", ["type", "outcome"], registry=reference)
    seconds = Histogram("etckit_request_duration_seconds", "s", ["type"],
                        buckets=metrics.LATENCY_BUCKETS, registry=reference)
    for mtype, outcome, took in (("echo", "ok", 0.003), ("echo", "ok", 0.004),
                                 ("echo", "busy", 0.07), ("plot", "ok", 99.0),
                                 ("unknown", "bad_json", None), ("echo", "weird", None)):
        started = None if took is None else time.monotonic() - took
        counts.answered(mtype, outcome, started)
        requests.labels(mtype, outcome if outcome in metrics.OUTCOMES else "other").inc()
        if took is not None:
            seconds.labels(mtype).observe(took)
    ours = _samples(counts)
    theirs = {key: value for family in reference.collect() for s in family.samples
              if not s.name.endswith(("_created", "_sum"))
              for key, value in [((s.name, tuple(sorted(s.labels.items()))), s.value)]}
    assert {k: v for k, v in ours.items() if not k[0].endswith("_sum")} == theirs
    # the observed durations sum up (the clock ran a little between start and answer)
    assert 0.077 <= ours[("etckit_request_duration_seconds_sum", (("type", "echo"),))] < 0.5
    assert b'etckit_requests_total{outcome="other",type="echo"} 1.0' in generate_latest(
        _registry(counts))


def _registry(collector) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(collector)
    return registry


def test_wssvc_totals_sum_every_type():
    before = metrics.wssvc_totals()
    metrics.REQUEST_COUNTS.answered("echo", "ok", time.monotonic())
    metrics.REQUEST_COUNTS.answered("ping", "ok", time.monotonic())
    metrics.REQUEST_COUNTS.answered("unknown", "bad_json")
    after = metrics.wssvc_totals()
    assert after["requests"] == before["requests"] + 3
    assert after["latency"][-1] == before["latency"][-1] + 2  # +Inf: every observation
    assert after["latency"][0] == before["latency"][0] + 2  # both well under 5 ms
