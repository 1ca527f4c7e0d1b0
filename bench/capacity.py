"""Benchmark of capacity: does a machine's worth of workers add throughput? One run, two setups.

    python bench/capacity.py [--users 8] [--seconds 30]

Starts a chain on loopback (one wssvc, one broker, SQLite) with (a) two workers and drives a
calculation-heavy mix from --users users for --seconds: each user, one request at a time,
edits its calculation (a recalculation in the sandbox), renders a plot of it, downloads it
and lists its workbooks (3:2:1:1). Then (b) two more workers start the way a new machine's
would (`etckit worker` with nothing configured: they join the pool with the fewest workers)
and the same mix runs again. Prints throughput (answers/s) and p50/p99 for both and the
ratios; the target (issue 14) is (b) >= 1.7x (a) in throughput with p99 not worse. The
ratio can only approach 2 when the machine has cores free for the added workers.

Each "machine" of workers is modelled as a CPU cgroup of --host-cpus cores (default 0.5): the
first two workers (and their sandboxes) run in host A's, the two added ones in host B's. On a
small test machine the added workers would otherwise share the cores the first two already use,
and no setup could add capacity; with a fixed budget per host the bench measures what the
issue asks, whether the cluster puts a machine's worth of workers it did not know before to
work. wssvc, the broker and the load generator run outside both budgets. --host-cpus 0 (or no
writable cgroup, i.e. not root) runs every program unconfined and says so.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import itertools
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.fairness import build, pct  # noqa: E402

from tests.support.chain import Chain  # noqa: E402
from tests.support.procs import wait_for  # noqa: E402

MIX = ["calculation.edit"] * 3 + ["plot.render"] * 2 + ["calculation.download",
                                                       "workbook.list"]
PLOTS = ("snr_vs_time", "spectrum")


async def user_loop(setup: tuple, stop_at: float, times: dict, outcomes: Counter) -> None:
    lister, client, _wb, _src, calc = setup
    data = copy.deepcopy(calc["data"])
    base = calc["item_revision"]  # an edit names the revision it was made from
    for n in itertools.count():
        if time.monotonic() >= stop_at:
            return
        kind = MIX[n % len(MIX)]
        t0 = time.perf_counter()
        if kind == "calculation.edit":
            data["groups"] = 2 + n % 9  # a new revision: computed again
            reply = await client.request(kind, calculation=calc["id"], data=data,
                                         base_revision=base, timeout=120)
            # the next edit's (and the next run's) base; a conflict's item has it too
            base = calc["item_revision"] = reply.get("item", {}).get("item_revision", base)
        elif kind == "plot.render":
            reply = await client.request(kind, calculation=calc["id"],
                                         kind=PLOTS[n % len(PLOTS)], timeout=120)
        elif kind == "calculation.download":
            reply = await client.request(kind, calculation=calc["id"], format="json",
                                         timeout=120)
        else:
            reply = await lister.request(kind, timeout=120)
        times.setdefault(kind, []).append(time.perf_counter() - t0)
        outcomes[f"{kind} {reply['code']}" if reply.get("type") == "error" else "ok"] += 1


async def run_mix(setups: list[tuple], seconds: float) -> dict:
    times: dict[str, list[float]] = {}
    outcomes: Counter = Counter()
    started = time.monotonic()
    await asyncio.gather(*(user_loop(s, started + seconds, times, outcomes) for s in setups))
    took = time.monotonic() - started
    every = [t for ts in times.values() for t in ts]
    return {"answers": len(every), "seconds": took, "rps": len(every) / took,
            "p50": pct(every, 0.5), "p99": pct(every, 0.99), "outcomes": outcomes}


def _registered_workers(chain: Chain) -> int:
    import sqlite3
    path = chain.db_url[len("sqlite:///"):]
    with sqlite3.connect(path, timeout=10) as conn:
        (n,), = conn.execute("SELECT count(*) FROM services WHERE kind = 'worker'"
                             " AND pool = ?", (chain.pool,)).fetchall()
    return n


class Host:
    """A modelled machine: a CPU cgroup (v1 `cpu` or v2) holding `cpus` cores' worth of time."""

    V2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()

    def __init__(self, name: str, cpus: float) -> None:
        root = Path("/sys/fs/cgroup" if self.V2 else "/sys/fs/cgroup/cpu")
        self.path = root / f"etckit-bench-{os.getpid()}-{name}"
        if self.V2:
            (root / "cgroup.subtree_control").write_text("+cpu")
        self.path.mkdir()
        quota = int(cpus * 100_000)
        if self.V2:
            (self.path / "cpu.max").write_text(f"{quota} 100000")
        else:
            (self.path / "cpu.cfs_period_us").write_text("100000")
            (self.path / "cpu.cfs_quota_us").write_text(str(quota))

    @property
    def wrap(self) -> list[str]:
        """A command that moves itself into the cgroup and then execs the program."""
        return ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(self.path)]

    def throttled_seconds(self) -> float:
        stat = dict(line.split() for line in (self.path / "cpu.stat").read_text().splitlines())
        if self.V2:
            return int(stat.get("throttled_usec", 0)) / 1e6
        return int(stat.get("throttled_time", 0)) / 1e9

    def remove(self) -> None:
        for _ in range(50):  # the programs' processes leave as they exit
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)


def make_hosts(cpus: float) -> tuple[Host | None, Host | None]:
    if cpus <= 0:
        print("hosts: not modelled (--host-cpus 0): every worker shares this machine's cores")
        return None, None
    try:
        first = Host("a", cpus)
    except OSError as err:
        print(f"hosts: not modelled, no writable CPU cgroup ({err}); run as root to model them")
        return None, None
    print(f"hosts: each machine of workers has {cpus:g} cores (a CPU cgroup)")
    return first, Host("b", cpus)


def report(a: dict, b: dict) -> None:
    print(f"{'setup':28} {'answers':>8} {'answers/s':>10} {'p50':>9} {'p99':>9}  outcomes")
    for name, r in (("(a) wssvc + 2 workers", a), ("(b) + 2 workers (new host)", b)):
        print(f"{name:28} {r['answers']:8d} {r['rps']:10.2f} {r['p50'] * 1e3:7.1f}ms"
              f" {r['p99'] * 1e3:7.1f}ms  " + ", ".join(f"{k} {v}" for k, v in
                                                     r["outcomes"].most_common()))
    gain, p99 = b["rps"] / a["rps"], b["p99"] / a["p99"]
    print(f"throughput (b)/(a): {gain:.2f}x   p99 (b)/(a): {p99:.2f}x   target >= 1.7x with"
          f" p99 not worse: {'MET' if gain >= 1.7 and p99 <= 1.0 else 'NOT MET'}")


async def main(args: argparse.Namespace) -> None:
    host_a, host_b = make_hosts(args.host_cpus)
    with tempfile.TemporaryDirectory() as tmp:
        chain = Chain(Path(tmp))
        try:
            chain.start_all(workers=0)
            chain.workers = [chain.start("worker", wrap=host_a.wrap if host_a else [])
                             for _ in range(2)]
            wait_for(lambda: _registered_workers(chain) == 2, timeout=60, what="2 workers")
            setups = [await build(chain, f"user{i}") for i in range(args.users)]
            await run_mix(setups, 3)  # warm up: imports, caches, the sandboxes
            a = await run_mix(setups, args.seconds)
            chain.workers += [chain.start("worker", wrap=host_b.wrap if host_b else [])
                              for _ in range(2)]  # a new machine's, nothing configured
            wait_for(lambda: _registered_workers(chain) == 4, timeout=60, what="4 workers")
            await asyncio.sleep(2)  # they said READY to the broker
            await run_mix(setups, 3)
            b = await run_mix(setups, args.seconds)
            report(a, b)
            if host_a and host_b:
                print("CPU time refused by the host budgets: host A"
                      f" {host_a.throttled_seconds():.1f}s, host B"
                      f" {host_b.throttled_seconds():.1f}s")
        finally:
            chain.stop()
            for host in (host_a, host_b):
                if host:
                    host.remove()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--host-cpus", type=float, default=0.5,
                        help="cores of each modelled machine of workers; 0: not modelled")
    asyncio.run(main(parser.parse_args()))
