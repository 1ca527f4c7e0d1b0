"""The sandbox's overhead: one calculation + four plots through etckit.worker.sandbox against
the same work in-process (in a thread, as a worker would run it), medians of one run, as a
ratio; plus an empty round trip to the child."""

from __future__ import annotations

import asyncio
import statistics
import time

from etckit import engine
from etckit.engine.plots import KINDS, render
from etckit.worker.sandbox import Sandbox

REPEAT = 8


def nothing(limits: engine.CostLimits) -> None:
    return None


async def main() -> None:
    d = engine.defaults()
    inputs = (d["calculation"], d["scene"], {"1": d["source"]})
    box = Sandbox()
    await box.start()

    async def sandboxed() -> None:
        result = await box.calculate(*inputs)
        for kind in KINDS:
            await box.render(kind, *inputs, result)

    async def in_process() -> None:
        result = await asyncio.to_thread(engine.calculate, *inputs)
        for kind in KINDS:
            await asyncio.to_thread(render, kind, *inputs, result=result)

    await sandboxed()  # warm both (PSF profile, fonts)
    await in_process()
    times: dict[str, list[float]] = {"sandbox": [], "in-process": [], "round trip": []}
    for _ in range(REPEAT):  # interleaved, so that load changes hit both alike
        for name, fn in (("sandbox", sandboxed), ("in-process", in_process),
                         ("round trip", lambda: box.run(nothing))):
            t0 = time.perf_counter()
            await fn()
            times[name].append(time.perf_counter() - t0)
    await box.close()
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"calculation + 4 plots: sandbox {med['sandbox']:.3f} s, in-process "
          f"{med['in-process']:.3f} s, ratio {med['sandbox'] / med['in-process']:.2f}")
    print(f"empty round trip to the child: {1000 * med['round trip']:.1f} ms")


if __name__ == "__main__":
    asyncio.run(main())
