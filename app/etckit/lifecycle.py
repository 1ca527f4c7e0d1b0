"""How every program starts and stops: logging, SIGTERM/SIGINT, exit codes."""

from __future__ import annotations

import asyncio
import ctypes
import logging
import signal
import sys
from collections.abc import Awaitable, Callable

from . import log as logsetup
from . import metrics
from .config import Config
from .storage import StorageError

log = logging.getLogger("etckit")

Program = Callable[[Config, asyncio.Event], Awaitable[int | None]]
PR_SET_DUMPABLE = 4  # prctl(2)


class Fatal(Exception):
    """The program cannot do its job; logged as one line, exit status 1."""


def run_program(name: str, program: Program, cfg: Config) -> int:
    """Run an async program until it returns or SIGTERM/SIGINT asks it to stop."""
    logsetup.setup(name, cfg.log.level)
    if not forbid_inspection():
        log.warning("cannot make this process non-dumpable: other processes of its user can"
                    " read its memory and environment")

    try:  # the one start path: every program's /metrics starts here (metrics.port > 0)
        exporter = metrics.serve(cfg, name)
    except metrics.MetricsError as exc:
        log.error("cannot start: %s", exc)
        return 1
    if exporter is not None:
        log.info("metrics served", extra={"address": cfg.metrics.address, "port": exporter.port})

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, _on_signal, stop, sig)
        log.info("starting", extra={"config": cfg.path})
        try:
            code = await program(cfg, stop)
        except (Fatal, StorageError) as exc:
            log.error("cannot continue: %s", exc)
            return 1
        return 0 if code is None else code

    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            code = runner.run(main())
    except KeyboardInterrupt:
        code = 0
    except Exception:
        log.exception("crashed")
        code = 1
    if exporter is not None:
        exporter.close()
    log.info("stopped", extra={"exit_status": code})
    sys.stdout.flush()
    return code


def forbid_inspection() -> bool:
    """Make this process non-dumpable (prctl PR_SET_DUMPABLE 0): another process of the same
    user, e.g. a compromised wssvc next to main_server, can then neither read its memory,
    environment (its database password) and file descriptors through /proc nor ptrace it;
    root still can. No core dumps either. True when done, or where there is no prctl."""
    if not sys.platform.startswith("linux"):
        return True
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0


async def wait_first(*events: asyncio.Event) -> None:
    """Return as soon as any of these events is set."""
    waits = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


def loop_factory():
    """uvloop where it is installed (it is a dependency), else asyncio's own loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return None
    return uvloop.new_event_loop


def _on_signal(stop: asyncio.Event, sig: signal.Signals) -> None:
    log.info("signal received, stopping", extra={"signal": sig.name})
    stop.set()
