"""The failover drill's writer (molecule/roles/verify.yml): etckit's own storage layer,
writing one row per transaction through the kit's multi-host URL until told to stop.

    python failover_writer.py URL OUTDIR      (password in $ETCKIT_DRILL_PASSWORD)

OUTDIR/acked.txt gets each acknowledged row's number as soon as its commit returns; touching
OUTDIR/stop ends it, and OUTDIR/summary.json then holds the counts and the longest gap between
two acknowledged writes (the failover gap, in seconds)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import TextIO

from etckit.storage import StorageError, open_database


async def write_until_stopped(url: str, out: Path, log: TextIO) -> dict:
    db = open_database(url, pool_min=2, pool_max=4, busy_timeout=5,
                       options={"password": os.environ["ETCKIT_DRILL_PASSWORD"]})
    await db.connect()
    n, acked, unavailable, other, gap, last = 0, 0, 0, [], 0.0, None
    while not (out / "stop").exists():
        n += 1
        try:
            async with db.transaction() as tx:
                await tx.execute("INSERT INTO failover_drill (n) VALUES (:n)", {"n": n})
        except StorageError:  # what a client sees as `unavailable`
            unavailable += 1
            await asyncio.sleep(0.1)
            continue
        except Exception as exc:  # would be `internal`: the drill fails on any
            other.append(repr(exc))
            await asyncio.sleep(0.1)
            continue
        now = time.monotonic()
        gap = max(gap, now - last) if last is not None else 0.0
        last = now
        acked += 1
        log.write(f"{n}\n")
        log.flush()
        await asyncio.sleep(0.02)
    await db.close()
    return {"acked": acked, "unavailable": unavailable, "other_errors": other,
            "gap_seconds": round(gap, 2)}


def main() -> None:
    url, out = sys.argv[1], Path(sys.argv[2])
    with open(out / "acked.txt", "a") as log:
        summary = asyncio.run(write_until_stopped(url, out, log))
    (out / "summary.json").write_text(json.dumps(summary))


if __name__ == "__main__":
    main()
