"""wssvc's websocket server candidates side by side: one raw ASGI echo app (as wssvc serves
/ws: no Quart on the websocket path) under Hypercorn (what wssvc runs, with and without
permessage-deflate) and under granian (Rust; embedded in the same uvloop program).

    python bench/ws_servers.py [--seconds 4] [--clients 50] [--sockets 2000]

Prints per server: round-trip p50/p99 (one client, sequential), round trips/s (--clients
concurrent), the server's CPU time per round trip, the compression it negotiated, and its
resident memory per idle open websocket. granian is not an etckit dependency: install it in
the venv to compare (pip install granian); without it only Hypercorn is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import websockets  # noqa: E402

from chain import latency, rss_mb, thread_cpu, throughput  # noqa: E402
from tests.support.procs import Proc, wait_http  # noqa: E402
from tests.support.system import free_port  # noqa: E402

SERVER = """
import asyncio, signal, sys
from etckit.lifecycle import loop_factory

async def app(scope, receive, send):
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while (event := await receive())["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": event.get("text")})
    elif scope["type"] == "http":
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

async def main(kind, port):
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    if kind == "granian":
        from granian.constants import Interfaces
        from granian.server.embed import Server
        server = Server(app, address="127.0.0.1", port=port, interface=Interfaces.ASGINL,
                        log_enabled=False)
        task = asyncio.create_task(server.serve())
        await stop.wait()
        server.stop()
        await task
    else:
        from etckit.http import serve_app
        await serve_app(app, host="127.0.0.1", port=port, stop=stop,
                        ws_compression=kind.partition("/")[2])

with asyncio.Runner(loop_factory=loop_factory()) as runner:
    runner.run(main(sys.argv[1], int(sys.argv[2])))
"""


def echo(ws):
    async def send_recv(i: int) -> None:
        await ws.send(json.dumps({"id": i, "type": "echo", "data": None}))
        await ws.recv()
    return send_recv


async def measure(kind: str, args, tmp: Path) -> dict:
    port = free_port()
    proc = Proc(kind.replace("/", "-"), [sys.executable, "-c", SERVER, kind, str(port)],
                dict(os.environ), tmp)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        url = f"ws://127.0.0.1:{port}/ws"
        one = await websockets.connect(url, compression="deflate")
        for i in range(200):
            await echo(one)(i)
        p50, p99 = await latency(echo(one), args.requests)
        clients = [await websockets.connect(url, compression="deflate")
                   for _ in range(args.clients)]
        cpu0, t0 = sum(thread_cpu([proc.pid]).values()), time.perf_counter()
        rps = await throughput(clients, echo, args.seconds)
        trips = max(1.0, rps * (time.perf_counter() - t0))
        cpu_us = 1e6 * (sum(thread_cpu([proc.pid]).values()) - cpu0) / trips
        idle = rss_mb(proc.pid)
        many = [await websockets.connect(url, compression="deflate", ping_interval=None)
                for _ in range(args.sockets)]
        await asyncio.sleep(1)
        per_socket_kb = (rss_mb(proc.pid) - idle) * 1024 / args.sockets
        for ws in [one, *clients, *many]:
            await ws.close()
        return {"p50": p50, "p99": p99, "rps": rps, "cpu_us": cpu_us,
                "kb": per_socket_kb,
                "ext": one.response.headers.get("sec-websocket-extensions") or "none"}
    finally:
        proc.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--sockets", type=int, default=2000)
    args = parser.parse_args()
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 8192)), hard))
    # wssvc.compression: message (its default), stream, off
    kinds = ["hypercorn/message", "hypercorn/stream", "hypercorn/off"]
    try:
        import granian  # noqa: F401
        kinds.append("granian")
    except ImportError:
        print("granian is not installed: only Hypercorn measured")
    with tempfile.TemporaryDirectory(prefix="etckit-ws-servers-") as tmp:
        results = {kind: await measure(kind, args, Path(tmp)) for kind in kinds}
    print(f"raw ASGI websocket echo, {os.cpu_count()} cores, clients offer permessage-deflate;"
          f" {args.clients} clients for round trips/s, {args.sockets} idle sockets for memory")
    print(f"{'server':<17}{'p50 ms':>8}{'p99 ms':>8}{'trips/s':>9}{'CPU us/trip':>13}"
          f"{'KB/socket':>11}  negotiated")
    for kind, r in results.items():
        print(f"{kind:<17}{r['p50']:>8.3f}{r['p99']:>8.3f}{r['rps']:>9.0f}{r['cpu_us']:>13.0f}"
              f"{r['kb']:>11.1f}  {r['ext']}")


if __name__ == "__main__":
    asyncio.run(main())
