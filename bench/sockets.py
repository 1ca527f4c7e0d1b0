"""Memory of one wssvc holding many open websockets, per ``wssvc.compression`` setting.

    python bench/sockets.py [--sockets 10000] [--modes message,stream,off]

For each setting: a chain (wssvc, broker, one worker) on loopback, --sockets websockets opened
to its wssvc by clients that offer permessage-deflate as browsers do; the wssvc's resident
memory (RSS) before, with all open, and after every socket has sent one echo and had its
answer; the figure per socket; and the ratio to issue 15's target (10,000 sockets under
500 MB). The bench raises its own (and its children's) RLIMIT_NOFILE to the hard limit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import websockets  # noqa: E402
from bench.chain import rss_mb  # noqa: E402

from tests.support.chain import ORIGIN, Chain  # noqa: E402
from tests.support.procs import wait_for  # noqa: E402

TARGET_MB, TARGET_SOCKETS = 500.0, 10_000
BATCH = 200  # connections opened (and echoes sent) at once
LOG_LEVEL = "warning"  # the programs' (--log-level)


def raise_file_limit(needed: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < needed:
        print(f"warning: RLIMIT_NOFILE hard limit {hard} < {needed} needed", file=sys.stderr)
    return hard


def file_max() -> str:
    with open("/proc/sys/fs/file-max") as fh:
        return fh.read().strip()


async def open_one(chain: Chain, ticket: str):
    ws = await websockets.connect(chain.url(ticket), origin=ORIGIN, ping_interval=None,
                                  compression="deflate", open_timeout=120)
    hello = json.loads(await ws.recv())
    assert hello["type"] == "hello", hello
    return ws


async def echo(ws, i: int) -> bool:
    await ws.send(json.dumps({"id": i, "type": "echo", "data": {"n": i}}))
    while True:
        reply = json.loads(await asyncio.wait_for(ws.recv(), 120))
        if reply.get("ref") == i:
            return reply.get("type") == "echo"


async def in_batches(items: list, fn) -> list:
    out = []
    for k in range(0, len(items), BATCH):
        try:
            out += await asyncio.gather(*(fn(x) for x in items[k:k + BATCH]))
        except Exception as exc:
            print(f"failed after {len(out)} done: {exc!r}", file=sys.stderr)
            raise
    return out


async def measure(chain: Chain, n: int) -> dict:
    await chain.ensure_user("many")
    rss_idle = rss_mb(chain.wssvc.pid)
    t0 = time.perf_counter()
    socks = await in_batches([chain.ticket("many", lifetime=600) for _ in range(n)],
                             lambda t: open_one(chain, t))
    opened_s = time.perf_counter() - t0
    await asyncio.sleep(2)
    rss_open = rss_mb(chain.wssvc.pid)
    answered = sum(await in_batches(list(enumerate(socks)), lambda p: echo(p[1], p[0])))
    await asyncio.sleep(1)
    rss_echo = rss_mb(chain.wssvc.pid)
    extensions = socks[0].response.headers.get("Sec-WebSocket-Extensions", "")
    still_open = chain.health().get("clients")
    await in_batches(socks, lambda ws: ws.close())
    return {"open": still_open, "idle": rss_idle, "open_mb": rss_open,
            "echo_mb": rss_echo, "answered": answered, "opened_s": opened_s,
            "extensions": extensions or "(none)"}


async def run(mode: str, n: int, tmp: Path) -> dict:
    os.mkdir(tmp)
    chain = Chain(tmp, heartbeat__interval="1", heartbeat__registry_interval="2",
                  heartbeat__registry_liveness="30", log__level=LOG_LEVEL,
                  wssvc__ping_interval="600", wssvc__compression=mode,
                  # memory, not fairness: one user holds every socket
                  wssvc__max_in_flight="100000", wssvc__connection_rate="1000000",
                  wssvc__connection_burst="1000000", wssvc__user_rate="1000000",
                  wssvc__user_burst="1000000", broker__queue_limit="1000000",
                  broker__queue_per_user="1000000")
    chain.start_all(workers=1)
    try:
        wait_for(lambda: chain.health().get("brokers") == 1, what="broker")
        return await measure(chain, n)
    finally:
        chain.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=TARGET_SOCKETS)
    parser.add_argument("--modes", default="message,stream,off")
    parser.add_argument("--keep", metavar="DIR", help="run in DIR and keep the programs' logs")
    parser.add_argument("--log-level", default=LOG_LEVEL)
    args = parser.parse_args()
    globals()["LOG_LEVEL"] = args.log_level
    hard = raise_file_limit(args.sockets + 1000)  # each side holds one per socket
    print(f"RLIMIT_NOFILE (hard) {hard}; fs.file-max "
          f"{file_max()}")
    budget_kb = TARGET_MB * 1024 / TARGET_SOCKETS
    with tempfile.TemporaryDirectory(prefix="etckit-sockets-") as tmp:
        tmp = args.keep or tmp
        for mode in args.modes.split(","):
            r = await run(mode, args.sockets, Path(tmp) / mode)
            per_kb = (r["echo_mb"] - r["idle"]) * 1024 / args.sockets
            print(f"compression={mode:7s} {r['open']} open (in {r['opened_s']:.0f} s), "
                  f"{r['answered']} answered the echo; wssvc RSS idle {r['idle']:.0f} MB, "
                  f"open {r['open_mb']:.0f} MB, after echo {r['echo_mb']:.0f} MB "
                  f"= {r['echo_mb'] / TARGET_MB:.2f} x the 500 MB target; "
                  f"{per_kb:.1f} KB/socket (budget {budget_kb:.1f}); "
                  f"negotiated: {r['extensions']}")


if __name__ == "__main__":
    asyncio.run(main())
