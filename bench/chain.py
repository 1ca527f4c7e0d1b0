"""Benchmark of the message chain, with its baselines measured in the same run.

    python bench/chain.py [--seconds 5] [--clients 50] [--sockets 1000]

Prints, for a no-op request (``echo``) through browser websocket → wssvc → broker → worker →
back: round-trip p50 and p99 (one client, sequential) and round trips per second (N concurrent
clients), with CURVE on the ZeroMQ links (the default) and with it off, and their ratio; the
same figures for (a) a bare websocket echo on the same Hypercorn setup and (b) a bare pyzmq
DEALER→ROUTER echo; the ratios; and the resident memory of one wssvc holding --sockets open
websockets. Everything runs on loopback and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import websockets  # noqa: E402
import zmq  # noqa: E402

from tests.support.chain import ORIGIN, Chain  # noqa: E402
from tests.support.procs import Proc, wait_for, wait_http  # noqa: E402
from tests.support.system import free_port  # noqa: E402


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


async def latency(send_recv, n: int) -> tuple[float, float]:
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        await send_recv(i)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3, pct(times, 0.99) * 1e3


async def throughput(clients: list, make_send_recv, seconds: float) -> float:
    done = 0
    deadline = time.perf_counter() + seconds

    async def run(c) -> None:
        nonlocal done
        send_recv = make_send_recv(c)
        i = 0
        while time.perf_counter() < deadline:
            await send_recv(i)
            i += 1
            done += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(run(c) for c in clients))
    return done / (time.perf_counter() - t0)


# -- the chain -----------------------------------------------------------------------------

def ws_send_recv(ws):
    async def send_recv(i: int) -> None:
        await ws.send(json.dumps({"id": i, "type": "echo", "data": None}))
        while True:
            reply = json.loads(await ws.recv())
            if reply.get("ref") == i:
                return
            if reply.get("type") == "ping":
                await ws.send(json.dumps({"id": f"p{i}", "type": "pong", "ref": reply["id"]}))
    return send_recv


async def bench_chain(chain: Chain, args) -> dict:
    async def open_client():
        c = await chain.connect("bench", compression=args.compression)
        return c.ws

    one = await open_client()
    for i in range(200):  # warm up
        await ws_send_recv(one)(i)
    p50, p99 = await latency(ws_send_recv(one), args.requests)
    clients = [await open_client() for _ in range(args.clients)]
    rps = await throughput(clients, ws_send_recv, args.seconds)
    for ws in [one, *clients]:
        await ws.close()
    return {"p50": p50, "p99": p99, "rps": rps}


# -- baseline (a): bare websocket echo on the same Hypercorn setup -------------------------

ECHO_SERVER = """
import asyncio, signal, sys
from quart import Quart, websocket
from etckit.http import serve_app
from etckit.lifecycle import loop_factory
app = Quart("echo")
@app.websocket("/ws")
async def ws():
    await websocket.accept()
    while True:
        await websocket.send(await websocket.receive())
async def main():
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    @app.get("/healthz")
    async def healthz():
        return "ok"
    await serve_app(app, host="127.0.0.1", port=int(sys.argv[1]), stop=stop)
with asyncio.Runner(loop_factory=loop_factory()) as runner:  # the same loop as etckit's
    runner.run(main())
"""


async def bench_ws_echo(args, tmp: Path) -> dict:
    port = free_port()
    proc = Proc("ws-echo", [sys.executable, "-c", ECHO_SERVER, str(port)], dict(os.environ), tmp)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
        url = f"ws://127.0.0.1:{port}/ws"

        def echo(ws):
            async def send_recv(i: int) -> None:
                await ws.send(json.dumps({"id": i, "type": "echo", "data": None}))
                await ws.recv()
            return send_recv

        one = await websockets.connect(url, compression=args.compression)
        for i in range(200):
            await echo(one)(i)
        p50, p99 = await latency(echo(one), args.requests)
        clients = [await websockets.connect(url, compression=args.compression)
                   for _ in range(args.clients)]
        rps = await throughput(clients, echo, args.seconds)
        for ws in [one, *clients]:
            await ws.close()
    finally:
        proc.stop()
    return {"p50": p50, "p99": p99, "rps": rps}


# -- baseline (b): bare pyzmq DEALER -> ROUTER echo ----------------------------------------

def bench_zmq_echo(args) -> dict:
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    stop = threading.Event()

    def serve() -> None:
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        while not stop.is_set():
            if poller.poll(100):
                router.send_multipart(router.recv_multipart())

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    dealers = []
    for _ in range(args.clients + 1):
        d = ctx.socket(zmq.DEALER)
        d.setsockopt(zmq.LINGER, 0)
        d.connect(f"tcp://127.0.0.1:{port}")
        dealers.append(d)
    body = json.dumps({"id": 1, "type": "echo", "data": None}).encode()
    one = dealers[0]
    for _ in range(200):
        one.send(body)
        one.recv()
    times = []
    for _ in range(args.requests):
        t0 = time.perf_counter()
        one.send(body)
        one.recv()
        times.append(time.perf_counter() - t0)
    # N clients, each with one request in flight, driven from one thread
    poller = zmq.Poller()
    for d in dealers[1:]:
        poller.register(d, zmq.POLLIN)
        d.send(body)
    done = 0
    t0 = time.perf_counter()
    deadline = t0 + args.seconds
    while time.perf_counter() < deadline:
        for sock, _ in poller.poll(100):
            sock.recv()
            done += 1
            sock.send(body)
    rps = done / (time.perf_counter() - t0)
    stop.set()
    server.join()
    for d in dealers:
        d.close(0)
    router.close(0)
    ctx.term()
    return {"p50": statistics.median(times) * 1e3, "p99": pct(times, 0.99) * 1e3, "rps": rps}


# -- many open websockets on one wssvc -----------------------------------------------------

def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def bench_sockets(chain: Chain, n: int) -> dict:
    before = rss_mb(chain.wssvc.pid)
    await chain.ensure_user("many")
    socks = []
    for _ in range(n):
        ws = await websockets.connect(chain.url(chain.ticket("many")), origin=ORIGIN,
                                      ping_interval=None)
        socks.append(ws)
    await asyncio.sleep(1)
    health = chain.health()
    during = rss_mb(chain.wssvc.pid)
    ok = await ws_send_recv(socks[-1])(1) is None
    for ws in socks:
        await ws.close()
    return {"open": health["clients"], "rss_before": before, "rss_during": during,
            "last_one_answers": ok}


async def run_chain(args, tmp: Path, curve: str, sockets: bool) -> tuple[dict, dict | None]:
    """The chain's figures with zmq.curve on or off (and, once, the many-sockets figure)."""
    os.mkdir(tmp)
    chain = Chain(tmp, heartbeat__interval="1", heartbeat__registry_interval="2",
                  heartbeat__registry_liveness="10", log__level="warning",
                  wssvc__ping_interval="60", zmq__curve=curve,
                  # throughput, not fairness: the per-connection and per-user limits off
                  wssvc__max_in_flight="100000", wssvc__connection_rate="1000000",
                  wssvc__connection_burst="1000000", wssvc__user_rate="1000000",
                  wssvc__user_burst="1000000")
    chain.start_all(workers=args.workers)
    try:
        wait_for(lambda: chain.health().get("brokers") == 1, what="broker")
        await asyncio.sleep(1.0)
        figures = await bench_chain(chain, args)
        many = await bench_sockets(chain, args.sockets) if sockets else None
    finally:
        chain.stop()
    return figures, many


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--compression", choices=["deflate", "none"], default="deflate",
                        help="permessage-deflate as browsers negotiate it (default), or none")
    args = parser.parse_args()
    args.compression = None if args.compression == "none" else args.compression
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 8192)), hard))

    with tempfile.TemporaryDirectory(prefix="etckit-bench-") as tmp:
        tmpdir = Path(tmp)
        results = {}
        for key, curve in (("chain", "true"), ("chain_plain", "false")):
            results[key], sockets_seen = await run_chain(args, tmpdir / key, curve,
                                                         sockets=key == "chain")
            if sockets_seen is not None:
                sockets = sockets_seen
        results["ws_echo"] = await bench_ws_echo(args, tmpdir)
    results["zmq_echo"] = bench_zmq_echo(args)

    print(f"etckit chain benchmark: {os.cpu_count()} cores, {args.clients} concurrent clients, "
          f"{args.workers} workers, {args.seconds:.0f} s per throughput run, "
          f"websocket compression {args.compression or 'off'}")
    print(f"{'path':<34}{'p50 ms':>9}{'p99 ms':>9}{'round trips/s':>15}")
    names = {"chain": "chain (ws→wssvc→broker→worker)",
             "chain_plain": "the same, CURVE off",
             "ws_echo": "(a) bare websocket echo",
             "zmq_echo": "(b) bare pyzmq DEALER→ROUTER"}
    for key, name in names.items():
        r = results[key]
        print(f"{name:<34}{r['p50']:>9.3f}{r['p99']:>9.3f}{r['rps']:>15.0f}")
    c, a, b = results["chain"], results["ws_echo"], results["zmq_echo"]
    plain = results["chain_plain"]
    print(f"ratio CURVE on/off: p50 {c['p50'] / plain['p50']:.2f}x, "
          f"p99 {c['p99'] / plain['p99']:.2f}x, throughput {c['rps'] / plain['rps']:.2f}x")
    print(f"ratio chain/ws_echo: p50 {c['p50'] / a['p50']:.2f}x (target <= 3x), "
          f"p99 {c['p99'] / a['p99']:.2f}x, throughput {c['rps'] / a['rps']:.2f}x")
    print(f"ratio chain/zmq_echo: p50 {c['p50'] / b['p50']:.2f}x, "
          f"throughput {c['rps'] / b['rps']:.2f}x")
    print(f"chain throughput {c['rps']:.0f}/s vs target 2000/s: {c['rps'] / 2000:.2f}x")
    print(f"{sockets['open']} open websockets on one wssvc: RSS {sockets['rss_during']:.1f} MB "
          f"(idle {sockets['rss_before']:.1f} MB; target < 200 MB: "
          f"{sockets['rss_during'] / 200:.2f}x); last one answers: {sockets['last_one_answers']}")


if __name__ == "__main__":
    asyncio.run(main())
