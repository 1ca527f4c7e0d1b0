"""Run engine work in a child process under hard limits, so no calculation can hurt the worker.

Why: the engine's cost limits (``engine.CostLimits``) refuse expensive inputs up front, but a
hard cap is still needed for what they do not foresee. The child runs under ``RLIMIT_AS``
(``calculation.memory_mb``) and each request under a wall-clock timeout
(``calculation.timeout_seconds``); a child that runs out of either is killed and replaced,
and the caller gets ``engine.TooExpensive("calculation", ...)``.

The child is persistent (numpy and matplotlib are imported once, by the forkserver it is
forked from) and serves one request at a time over a pipe. It is started from a "forkserver"
context: the worker holds ZeroMQ sockets and an event loop, which must never be forked.

Usage (one request at a time per sandbox; concurrent callers wait their turn)::

    sandbox = Sandbox(engine.CostLimits(), memory_mb=600, timeout_seconds=10)
    result = await sandbox.calculate(calculation, scene, sources)   # engine.Result
    png = await sandbox.render("snr_map", calculation, scene, sources, result)
    await sandbox.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import resource
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import Any

from .. import engine
from ..messaging.types import PLOT_KINDS

log = logging.getLogger("etckit.worker.sandbox")

# numpy's BLAS, OpenMP and friends: one thread each in the child (threads cost address space
# under RLIMIT_AS and CPU the limits do not account for).
CHILD_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
             "NUMEXPR_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
PRELOAD = ["etckit.engine.plots", "etckit.worker.sandbox"]
_START_LOCK = threading.Lock()
READY_SECONDS = 60.0  # at most this long (or the request timeout) for a new child to be warm


class SandboxError(RuntimeError):
    """The child failed in a way that is not the user's input (a bug): the text is its
    traceback, for the log."""


# --------------------------------------------------------------------------- the child


def _calculate(limits: engine.CostLimits, calculation: Any, scene: Any, sources: Any
               ) -> engine.Result:
    return engine.calculate(calculation, scene, sources, limits=limits)


def _render(limits: engine.CostLimits, kind: str, calculation: Any, scene: Any, sources: Any,
            result: engine.Result | None) -> bytes:
    from ..engine import plots

    return plots.render(kind, calculation, scene, sources, result=result, limits=limits)


def _serve_one(request: tuple, limits: engine.CostLimits) -> tuple:
    func, args = request
    try:
        return ("ok", func(limits, *args))
    except engine.ValidationError as exc:
        return ("invalid", exc.field, exc.message)
    except engine.TooExpensive as exc:
        return ("too_expensive", exc.field, exc.message)
    except MemoryError:
        return ("memory",)
    except Exception:  # a bug: the parent logs it; the child carries on
        return ("error", traceback.format_exc())


def _warm() -> None:
    """The plot templates built before the first request (``plots.warm``); a failure here is
    left to the first request, which meets it again and reports it."""
    from ..engine import plots

    try:
        plots.warm()
    except Exception:  # reported by the request that meets it
        pass


def _child_main(conn: Any, memory_bytes: int, limits: engine.CostLimits) -> None:
    """The child's loop: ("ready",) once warm, then one (function, args) request in, one reply
    tuple out."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    _warm()
    conn.send(("ready",))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        reply = _serve_one(request, limits)
        conn.send(reply)
        if reply[0] == "memory":  # the heap may be fragmented or half-built: start afresh
            return


# --------------------------------------------------------------------------- the parent


@contextlib.contextmanager
def _without_settings() -> Iterator[None]:
    """os.environ without the ETCKIT_ settings while a child starts (put back after): the
    child, where hostile input is parsed, reads no configuration and holds no secret."""
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("ETCKIT_")}
    try:
        yield
    finally:
        os.environ.update(saved)


class _Child:
    """One child process and the parent's end of its pipe (blocking calls: run in a thread)."""

    def __init__(self, memory_mb: int, limits: engine.CostLimits) -> None:
        # the forkserver inherits this environment when it first starts: the thread limits,
        # and none of the worker's settings (its database password among them)
        with _START_LOCK, _without_settings():
            os.environ.update(CHILD_ENV)
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(PRELOAD)
            self.conn, child_conn = ctx.Pipe()
            self.process = ctx.Process(target=_child_main, name="etckit-sandbox", daemon=True,
                                       args=(child_conn, memory_mb * 1024 * 1024, limits))
            self.process.start()
        child_conn.close()
        self.warm = False  # until its ("ready",) is read

    def ready(self, timeout: float) -> bool:
        """Whether the child said it is ready (warm) within ``timeout`` seconds."""
        try:
            return self.conn.poll(timeout) and self.conn.recv() == ("ready",)
        except (EOFError, OSError):
            return False

    def roundtrip(self, request: tuple, timeout: float) -> tuple:
        """The reply, ("timeout",) or ("died",); never raises for the child's failures."""
        try:
            self.conn.send(request)
            if not self.conn.poll(timeout):
                return ("timeout",)
            return self.conn.recv()
        except (EOFError, OSError, BrokenPipeError):
            return ("died",)

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.conn.close()

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.process.join(2)
        self.kill()


class Sandbox:
    """Engine work in a persistent child process with hard memory and time limits."""

    def __init__(self, limits: engine.CostLimits | None = None, *, memory_mb: int = 600,
                 timeout_seconds: float = 10.0) -> None:
        self.limits = limits or engine.CostLimits()
        self.memory_mb = memory_mb
        self.timeout_seconds = timeout_seconds
        self._child: _Child | None = None
        self._lock = asyncio.Lock()
        self.restarts = 0  # children killed and replaced (for metrics and tests)

    @classmethod
    def from_config(cls, cfg: Any) -> Sandbox:
        """A sandbox configured by the ``[calculation]`` section of an etckit Config."""
        section = cfg.calculation
        limits = engine.CostLimits(**{
            name: getattr(section, name) for name in engine.CostLimits.__dataclass_fields__})
        return cls(limits, memory_mb=section.memory_mb,
                   timeout_seconds=section.timeout_seconds)

    async def start(self) -> None:
        """Start the child now (otherwise the first request does); it warms up meanwhile."""
        async with self._lock:
            await self._ensure()

    async def calculate(self, calculation: Any, scene: Any, sources: Any) -> engine.Result:
        """``engine.calculate`` with the cost limits, in the child. Raises ValidationError,
        TooExpensive (over a cost limit, the timeout or the memory cap) or SandboxError."""
        return await self.run(_calculate, calculation, scene, sources)

    async def render(self, kind: str, calculation: Any, scene: Any, sources: Any,
                     result: engine.Result | None = None) -> bytes:
        """``plots.render`` in the child: PNG bytes. ``result`` (from ``calculate`` on the
        same inputs) saves computing again. An unknown ``kind`` is a ValidationError."""
        # the list without importing matplotlib here: that would stall the worker's loop
        if kind not in PLOT_KINDS:
            raise engine.ValidationError("kind", f"must be one of {', '.join(PLOT_KINDS)}")
        return await self.run(_render, kind, calculation, scene, sources, result)

    async def run(self, func: Callable[..., Any], *args: Any) -> Any:
        """``func(limits, *args)`` in the child (``func`` must be importable by name)."""
        async with self._lock:
            child = await self._ensure()
            await self._warm(child)
            try:
                reply = await asyncio.to_thread(child.roundtrip, (func, args),
                                                self.timeout_seconds)
            except asyncio.CancelledError:  # the child may still be busy: do not reuse it
                await self._replace(child)
                raise
            if reply[0] in ("timeout", "died", "memory"):
                await self._replace(child)
        return self._answer(reply)

    async def close(self) -> None:
        async with self._lock:
            if self._child is not None:
                child, self._child = self._child, None
                await asyncio.to_thread(child.stop)

    async def _ensure(self) -> _Child:
        if self._child is None or not self._child.process.is_alive():
            self._child = await asyncio.to_thread(_Child, self.memory_mb, self.limits)
        return self._child

    async def _warm(self, child: _Child) -> None:
        """Wait for a new child to be warm before its first request (not counted in the
        request's timeout; ``start`` does not wait, so a worker registers at once while its
        child warms up); a child that never gets there is replaced and a SandboxError."""
        if child.warm:
            return
        try:
            ready = await asyncio.to_thread(child.ready, max(READY_SECONDS, self.timeout_seconds))
        except asyncio.CancelledError:  # the thread may still read its ("ready",): start afresh
            await self._replace(child)
            raise
        if not ready:
            await self._replace(child)
            raise SandboxError("the sandbox process did not start")
        child.warm = True

    async def _replace(self, child: _Child) -> None:
        self.restarts += 1
        self._child = None
        await asyncio.to_thread(child.kill)

    def _answer(self, reply: tuple) -> Any:
        kind = reply[0]
        if kind == "ok":
            return reply[1]
        if kind == "invalid":
            raise engine.ValidationError(reply[1], reply[2])
        if kind == "too_expensive":
            raise engine.TooExpensive(reply[1], reply[2])
        if kind == "timeout":
            raise engine.TooExpensive("calculation", f"took longer than {self.timeout_seconds:g} s"
                                      " (limit timeout_seconds) and was stopped")
        if kind == "memory":
            raise engine.TooExpensive("calculation", f"needed more than {self.memory_mb} MB "
                                      "(limit memory_mb) and was stopped")
        if kind == "died":
            log.warning("the calculation process died; a new one replaces it")
            raise engine.TooExpensive("calculation", "its process died (over its memory limit?)"
                                      " and was replaced")
        log.error("calculation failed in the sandbox:\n%s", reply[1])
        raise SandboxError(reply[1].strip().splitlines()[-1])
