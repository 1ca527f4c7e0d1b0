"""The worker's calculations: engine work in the sandbox, results kept by revision.

A calculation is computed outside any database transaction: read its inputs (with the
revision they belong to), compute in the sandbox (a child process under hard time and memory
limits, worker/sandbox.py), then store the result only if the revision is still the current
one (storage.workbooks.store_result). Results (with their images) are kept by (calculation,
revision), so downloads and the plots a page fetches reuse them instead of computing again.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from .. import engine
from ..config import Config
from .sandbox import Sandbox, SandboxError

log = logging.getLogger("etckit.worker")

Key = tuple[str, int]  # (calculation id, revision)


class ResultCache:
    """The last few results by (calculation, revision), least recently used out first."""

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self.items: OrderedDict[Key, engine.Result] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, key: Key) -> engine.Result | None:
        result = self.items.get(key)
        if result is None:
            self.misses += 1
            return None
        self.hits += 1
        self.items.move_to_end(key)
        return result

    def put(self, key: Key, result: engine.Result) -> None:
        self.items[key] = result
        self.items.move_to_end(key)
        while len(self.items) > self.size:
            self.items.popitem(last=False)


class Compute:
    """What handlers use to calculate and draw (ctx.services)."""

    def __init__(self, cfg: Config) -> None:
        self.sandbox = Sandbox.from_config(cfg)
        self.limits = self.sandbox.limits
        self.results = ResultCache()

    async def start(self) -> None:
        await self.sandbox.start()

    async def close(self) -> None:
        await self.sandbox.close()

    async def result(self, key: Key, inputs: tuple[dict, dict, dict]) -> engine.Result:
        """The result for a revision's inputs: from the cache, else computed in the sandbox.
        Raises ValidationError or TooExpensive."""
        result = self.results.get(key)
        if result is None:
            result = await self.sandbox.calculate(*inputs)
            self.results.put(key, result)
        return result

    async def render(self, kind: str, key: Key, inputs: tuple[dict, dict, dict]) -> bytes:
        result = await self.result(key, inputs)
        return await self.sandbox.render(kind, *inputs, result)

    async def outcome(self, key: Key, inputs: tuple[dict, dict, dict]
                      ) -> tuple[str, str | None, str]:
        """(status, result JSON or None, error text) to store for a calculation: a result
        with errors, invalid inputs or a calculation over its limits is an error of that
        calculation alone."""
        try:
            result = await self.result(key, inputs)
        except engine.ValidationError as exc:
            return "error", None, f"{exc.field}: {exc.message}"
        except engine.TooExpensive as exc:
            return "error", None, f"too expensive: {exc.field}: {exc.message}"
        except SandboxError as exc:
            log.error("calculation failed in the sandbox: %s", exc)
            return "error", None, "the calculation failed (a bug, logged)"
        return ("error" if result.errors else "ok"), result.to_json(), ""


def check_cost(compute: Any, inputs: tuple[dict, dict, dict]) -> None:
    """Raise TooExpensive/ValidationError for inputs over the cost limits (no arrays made)."""
    engine.check_cost(*inputs, limits=compute.limits)
