"""Benchmark of fairness: what a hostile user's flood costs another user, in one run.

    python bench/fairness.py [--samples 200] [--flood-sockets 4] [--pipeline 16]

Starts a chain on loopback (wssvc, broker, two workers, SQLite, the default limits). Bob, a
normal user, measures the round trip of `workbook.list` and of one small calculation
(`calculation.edit`, which recalculates), at a person's pace, alone; then Mallory opens
--flood-sockets sockets and keeps --pipeline `calculation.download` requests in flight on
each (answered or refused, she sends again at once) plus a stream of source edits that
recalculate her calculations, while Bob measures again. Prints p50 and p99 alone and under
the flood, and the ratios; the target (issue 11) is p99 under the flood <= 3x p99 alone.

Mallory's flood runs in a process of its own (as it would on her own machine): in Bob's event
loop, its thousands of answers a second would delay Bob's reads in the bench itself, and the
figure would measure the load generator rather than the service.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import itertools
import json
import multiprocessing
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import websockets

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.chain import ORIGIN, Chain, Client  # noqa: E402

PACE = 0.15  # seconds Bob waits between rounds (two requests), well under the default limits


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


async def build(chain: Chain, user: str, sources: int = 1) -> tuple:
    """A workbook with `sources` sources in one scene and one calculation; its clients."""
    lister = await chain.connect(user)
    wb = (await lister.request("workbook.create", name=f"{user}'s"))["workbook"]["id"]
    client = await chain.connect(user, workbook=wb)
    d = (await client.request("workbook.open"))["defaults"]
    placed = []
    for i in range(sources):
        src = (await client.request("source.add", name=f"s{i}", data=d["source"]))["item"]
        placed.append({"source_id": src["id"], "offset_x_arcsec": 0.1 * i,
                       "offset_y_arcsec": 0.0})
    scene = (await client.request("scene.add", name="field", data={"sources": placed}))["item"]
    calc = (await client.request("calculation.add", name="c", scene=scene["id"],
                                 data=d["calculation"], timeout=60))["item"]
    return lister, client, wb, src, calc


async def measure(lister, client, calc: dict, samples: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"workbook.list": [], "calculation.edit": []}
    data = copy.deepcopy(calc["data"])
    base = calc["item_revision"]
    for i in range(samples):
        t0 = time.perf_counter()
        reply = await lister.request("workbook.list", timeout=120)
        times["workbook.list"].append(time.perf_counter() - t0)
        assert reply["type"] == "workbook.list", reply
        data["groups"] = 2 + i % 9
        t0 = time.perf_counter()
        reply = await client.request("calculation.edit", calculation=calc["id"], data=data,
                                     base_revision=base, timeout=120)
        times["calculation.edit"].append(time.perf_counter() - t0)
        assert reply["type"] == "calculation.saved", reply
        base = calc["item_revision"] = reply["item"]["item_revision"]  # the next run's base
        await asyncio.sleep(PACE)  # a person's pace, under wssvc's per-socket rate
    return times


async def flood(chain: Chain, calc: dict, src: dict, wb: str, sockets: int, pipeline: int,
                stop: asyncio.Event, outcomes: Counter) -> None:
    """Mallory's sockets, each keeping `pipeline` requests in flight whatever the answer;
    when wssvc closes one (1008: she ignored retry_after), she opens another at once, with a
    ticket made here, and again at once when it is refused (429 while wssvc blocks her). In
    production a new ticket costs a trip to main_server, which HAProxy limits per address:
    this is the attacker's best case."""
    base = [src["item_revision"]]  # the source's latest revision heard of

    async def one_socket(n: int, client) -> None:
        inflight = asyncio.Semaphore(pipeline)

        async def reader() -> None:
            while True:
                message = json.loads(await client.ws.recv())
                if message.get("type") == "ping":
                    await client.send({"type": "pong", "id": "p", "ref": message["id"]})
                    continue
                item = message.get("item")
                if isinstance(item, dict) and item.get("id") == src["id"]:
                    base[0] = max(base[0], item["item_revision"])  # saved, conflict
                if message.get("ref") is not None:
                    outcomes[message.get("code") or message.get("type")] += 1
                    inflight.release()

        task = asyncio.create_task(reader())
        edit = copy.deepcopy(src["data"])
        try:
            for seq in itertools.count(1):
                if stop.is_set() or task.done():
                    return
                acquired = asyncio.ensure_future(inflight.acquire())
                await asyncio.wait({acquired, task}, return_when=asyncio.FIRST_COMPLETED)
                if not acquired.done():
                    acquired.cancel()
                    return
                if seq % 10 == 0:  # edits recalculate the calculation that uses the source
                    edit["normalization"]["value"] = 100.0 + seq
                    message = {"id": f"m{n}-{seq}", "type": "source.edit",
                               "source": src["id"], "data": edit, "base_revision": base[0]}
                else:
                    message = {"id": f"m{n}-{seq}", "type": "calculation.download",
                               "calculation": calc["id"], "format": "json"}
                await client.send(message)
        except websockets.ConnectionClosed:
            return
        finally:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            with contextlib.suppress(Exception):
                await client.close()

    async def reopen() -> Client | None:
        """A new socket with a new ticket (made here, with no database work: her best
        case); None when wssvc refuses it at the handshake (she is blocked)."""
        try:
            ws = await websockets.connect(chain.url(chain.ticket("mallory", workbook=wb)),
                                          origin=ORIGIN, max_size=None)
        except websockets.InvalidStatus as refused:
            outcomes[f"new socket refused {refused.response.status_code}"] += 1
            return None
        client = Client(ws)
        await client.recv()  # hello
        return client

    async def run(n: int) -> None:
        client = await chain.connect("mallory", workbook=wb)
        while not stop.is_set():
            if client is not None:
                await one_socket(n, client)
                outcomes["socket closed by wssvc"] += 1
            client = await reopen()  # at once: she never waits what she is told

    await asyncio.gather(*(run(n) for n in range(sockets)))


def flood_process(chain: Chain, target: tuple, sockets: int, pipeline: int, stop, results) -> None:
    """A forked child: floods until `stop` (a multiprocessing Event) is set, then puts the
    outcomes it counted on `results`."""
    async def run() -> None:
        stop_flood, outcomes = asyncio.Event(), Counter()
        calc, src, wb = target
        task = asyncio.create_task(flood(chain, calc, src, wb, sockets, pipeline, stop_flood,
                                         outcomes))
        told = asyncio.ensure_future(asyncio.to_thread(stop.wait))
        await asyncio.wait({task, told}, return_when=asyncio.FIRST_COMPLETED)
        stop_flood.set()
        await asyncio.wait_for(task, 60)
        results.put(dict(outcomes))

    asyncio.run(run())


def report(alone: dict, flooded: dict, outcomes: Counter) -> None:
    print(f"{'request':20} {'alone p50':>10} {'p99':>8} {'flood p50':>10} {'p99':>8}"
          f" {'p50 x':>6} {'p99 x':>6}")
    for kind in alone:
        a50, a99 = pct(alone[kind], 0.5) * 1e3, pct(alone[kind], 0.99) * 1e3
        f50, f99 = pct(flooded[kind], 0.5) * 1e3, pct(flooded[kind], 0.99) * 1e3
        print(f"{kind:20} {a50:9.2f}ms {a99:7.2f}ms {f50:9.2f}ms {f99:7.2f}ms"
              f" {f50 / a50:6.2f} {f99 / a99:6.2f}")
    total = sum(outcomes.values())
    print(f"flood: {total} answers to mallory: "
          + ", ".join(f"{k} {v}" for k, v in outcomes.most_common()))
    worst = max(pct(flooded[k], 0.99) / pct(alone[k], 0.99) for k in alone)
    print(f"target p99 under flood <= 3x alone: worst {worst:.2f}x"
          f" {'MET' if worst <= 3 else 'NOT MET'}")


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        chain = Chain(Path(tmp))
        try:
            chain.start_all(workers=2)
            b_lister, b_client, _, _, b_calc = await build(chain, "bob")
            _, _, m_wb, m_src, m_calc = await build(chain, "mallory", sources=3)
            await measure(b_lister, b_client, b_calc, 10)  # warm up
            alone = await measure(b_lister, b_client, b_calc, args.samples)
            fork = multiprocessing.get_context("fork")  # inherits the chain and sessions
            stop, results = fork.Event(), fork.Queue()
            flooding = fork.Process(target=flood_process, args=(
                chain, (m_calc, m_src, m_wb), args.flood_sockets, args.pipeline, stop, results))
            flooding.start()
            await asyncio.sleep(2.0)  # her sockets open and the flood fills every queue
            flooded = await measure(b_lister, b_client, b_calc, args.samples)
            stop.set()
            outcomes = Counter(await asyncio.to_thread(results.get, timeout=90))
            flooding.join(30)
            report(alone, flooded, outcomes)
        finally:
            chain.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--flood-sockets", type=int, default=4)
    parser.add_argument("--pipeline", type=int, default=16)
    asyncio.run(main(parser.parse_args()))
