"""The cost of wssvc's per-message metrics, with them on (as wssvc counts) and off.

    python bench/metrics_cost.py [--calls 200000]

Times, in this process, what wssvc does per answered request: count it and observe its
latency. Three ways: off (a no-op call, the floor), prometheus_client's labelled children
(Counter.inc and Histogram.observe, each behind a lock: what wssvc did before), and
metrics.RequestCounts (plain integers, read when scraped: what it does now). Prints the cost
per message and the ratios, measured in the same run (the machine may be loaded).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "app"))

from prometheus_client import Counter, Histogram  # noqa: E402

from etckit import metrics  # noqa: E402


def per_call(fn, calls: int) -> float:
    """Microseconds per call, the best of three rounds."""
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn("echo", "ok", t0)
        best = min(best, (time.perf_counter() - t0) / calls * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args()
    counter = Counter("bench_requests", "r", ["type", "outcome"], registry=None)
    histogram = Histogram("bench_seconds", "s", ["type"], buckets=metrics.LATENCY_BUCKETS,
                          registry=None)
    children: dict = {}

    def off(mtype: str, outcome: str, started: float) -> None:
        return None

    def prometheus_children(mtype: str, outcome: str, started: float) -> None:
        pair = children.get((mtype, outcome))
        if pair is None:
            pair = children[(mtype, outcome)] = (counter.labels(mtype, outcome),
                                                 histogram.labels(mtype))
        pair[0].inc()
        pair[1].observe(time.monotonic() - started)

    counts = metrics.RequestCounts()
    figures = {"off (no-op call)": per_call(off, args.calls),
               "prometheus_client children (before)": per_call(prometheus_children,
                                                               args.calls),
               "RequestCounts (now)": per_call(counts.answered, args.calls)}
    for name, us in figures.items():
        print(f"{name:<40}{us:8.3f} us/message")
    old, new = figures["prometheus_client children (before)"], figures["RequestCounts (now)"]
    print(f"ratio now/before {new / old:.2f}x; metrics cost over the floor: "
          f"{new - figures['off (no-op call)']:.3f} us/message "
          f"(before {old - figures['off (no-op call)']:.3f})")


if __name__ == "__main__":
    main()
