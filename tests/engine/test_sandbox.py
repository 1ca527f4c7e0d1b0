"""The sandbox runs engine work in a child process under a memory cap and a timeout; a child
that exceeds either is killed and replaced and the caller gets TooExpensive (issue 11, item 3).

The functions run in the child are module-level so that the child can import them by name.
"""

import asyncio
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from etckit import config, engine
from etckit.engine import plots
from etckit.worker.sandbox import Sandbox, SandboxError
from tests.engine.test_cost import heavy

D = engine.defaults()
INPUTS = (D["calculation"], D["scene"], {"1": D["source"]})
MEMORY_MB = 600


def hog_memory(limits, mb):
    blocks = []
    for _ in range(mb // 64):
        blocks.append(bytearray(64 * 1024 * 1024))
    return len(blocks)


def hog_time(limits, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return "done"


def child_facts(limits):
    return (resource.getrlimit(resource.RLIMIT_AS)[0], os.environ.get("OPENBLAS_NUM_THREADS"),
            os.getpid(), limits)


def child_environment(limits):
    with open("/proc/self/environ", "rb") as f:  # the block the process was started with
        initial = f.read()
    return sorted(k for k in os.environ if k.startswith("ETCKIT_")), b"s3cret-pw" in initial


CHILD_ENVIRONMENT = """
import asyncio, os
os.environ["ETCKIT_DATABASE__PASSWORD"] = "s3cret-pw"
from etckit.worker.sandbox import Sandbox
from tests.engine.test_sandbox import child_environment

async def main():
    box = Sandbox()
    try:
        print(await box.run(child_environment))
    finally:
        await box.close()
    print(os.environ["ETCKIT_DATABASE__PASSWORD"])

asyncio.run(main())
"""


def crash(limits):
    os.kill(os.getpid(), signal.SIGKILL)


def bug(limits):
    return {}["missing"]


@pytest.fixture
async def sandbox():
    box = Sandbox(engine.CostLimits(), memory_mb=MEMORY_MB, timeout_seconds=120)
    yield box
    await box.close()


async def test_calculates_and_renders_like_the_engine(sandbox):
    result = await sandbox.calculate(*INPUTS)
    assert result.to_dict() == engine.calculate(*INPUTS).to_dict()
    assert result.images is not None  # the plots can reuse it
    for kind in plots.IMAGING_KINDS:
        png = await sandbox.render(kind, *INPUTS, result)
        assert png.startswith(b"\x89PNG")


async def test_the_child_runs_under_its_limits(sandbox):
    limit, threads, pid, limits = await sandbox.run(child_facts)
    assert limit == MEMORY_MB * 1024 * 1024
    assert threads == "1"
    assert pid != os.getpid()
    assert limits == engine.CostLimits()
    assert (await sandbox.run(child_facts))[2] == pid  # the same child serves again


async def test_input_errors_come_back_with_their_field(sandbox):
    with pytest.raises(engine.ValidationError) as e:
        await sandbox.calculate(dict(INPUTS[0], filter=[]), *INPUTS[1:])
    assert e.value.field == "calculation.filter"
    with pytest.raises(engine.TooExpensive) as e:
        await sandbox.calculate(*heavy())
    assert e.value.field == "scene.sources"
    with pytest.raises(engine.ValidationError) as e:
        await sandbox.render("pie_chart", *INPUTS)
    assert e.value.field == "kind"
    assert sandbox.restarts == 0


async def test_a_memory_hog_is_stopped_and_the_next_calculation_served(sandbox):
    pid = (await sandbox.run(child_facts))[2]
    with pytest.raises(engine.TooExpensive) as e:
        await sandbox.run(hog_memory, 4 * MEMORY_MB)
    assert e.value.field == "calculation" and "memory_mb" in e.value.message
    assert sandbox.restarts == 1
    assert (await sandbox.calculate(*INPUTS)).snr > 0
    assert (await sandbox.run(child_facts))[2] != pid


async def test_a_slow_calculation_is_killed_and_the_next_one_served(sandbox):
    sandbox.timeout_seconds = 1.0
    pid = (await sandbox.run(child_facts))[2]
    with pytest.raises(engine.TooExpensive) as e:
        await sandbox.run(hog_time, 3600)
    assert e.value.field == "calculation" and "timeout_seconds" in e.value.message
    assert sandbox.restarts == 1
    sandbox.timeout_seconds = 120  # a loaded test machine may be slow to serve the next one
    assert (await sandbox.calculate(*INPUTS)).snr > 0
    assert (await sandbox.run(child_facts))[2] != pid


async def test_a_dead_child_is_replaced(sandbox):
    with pytest.raises(engine.TooExpensive):
        await sandbox.run(crash)
    assert (await sandbox.calculate(*INPUTS)).snr > 0


async def test_a_bug_in_the_child_is_an_error_and_the_child_carries_on(sandbox):
    pid = (await sandbox.run(child_facts))[2]
    with pytest.raises(SandboxError, match="KeyError"):
        await sandbox.run(bug)
    assert (await sandbox.run(child_facts))[2] == pid


async def test_a_cancelled_request_does_not_leave_a_busy_child_behind(sandbox):
    await sandbox.start()
    task = asyncio.create_task(sandbox.run(hog_time, 3600))
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sandbox.restarts == 1
    assert await sandbox.run(hog_time, 0) == "done"


def test_the_child_holds_none_of_the_workers_settings():
    """The child parses hostile input: it gets no ETCKIT_ variable (the worker's database
    password is one), neither in its environment nor in the block it started with; the
    worker keeps its own. A fresh process, so that the forkserver starts here."""
    done = subprocess.run([sys.executable, "-c", CHILD_ENVIRONMENT], capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:2] == ["([], False)", "s3cret-pw"], done.stdout


def test_from_config_maps_the_calculation_section():
    cfg = config.load(environ={"ETCKIT_CALCULATION__MAX_SOURCES": "5",
                               "ETCKIT_CALCULATION__MEMORY_MB": "700",
                               "ETCKIT_CALCULATION__TIMEOUT_SECONDS": "3"})
    box = Sandbox.from_config(cfg)
    assert box.limits == engine.CostLimits(max_sources=5)
    assert (box.memory_mb, box.timeout_seconds) == (700, 3.0)


def child_templates(limits):
    return sorted(plots._TEMPLATES)


async def test_a_new_child_is_warm_before_its_first_request(sandbox):
    """Every plot template is built before the first request (plots.warm), also in a child
    that replaces a dead one: the first plots of a user cost what later ones do."""
    assert await sandbox.run(child_templates) == sorted(plots.KINDS)
    with pytest.raises(engine.TooExpensive):
        await sandbox.run(crash)
    assert await sandbox.run(child_templates) == sorted(plots.KINDS)
    assert sandbox.restarts == 1


async def test_start_does_not_wait_for_the_warm_up(sandbox):
    """A worker registers as soon as its child is forked: ``start`` returns before the child
    is warm, the first request waits for it."""
    await sandbox.start()
    assert sandbox._child is not None and not sandbox._child.warm
    assert await sandbox.run(child_templates) == sorted(plots.KINDS)
    assert sandbox._child.warm


async def test_a_child_that_never_gets_warm_is_an_error(sandbox, monkeypatch):
    from etckit.worker import sandbox as module

    monkeypatch.setattr(module._Child, "ready", lambda self, timeout: False)
    with pytest.raises(SandboxError, match="did not start"):
        await sandbox.run(child_templates)
    assert sandbox.restarts == 1 and sandbox._child is None
    monkeypatch.undo()
    assert await sandbox.run(child_templates) == sorted(plots.KINDS)


async def test_a_request_cancelled_while_the_child_warms_up_leaves_no_stale_child(sandbox):
    """Cancelled while waiting for a new child's ("ready",): that child is replaced (its
    ("ready",) may be read by the abandoned wait), and the next request is served."""
    await sandbox.start()  # forked, not warm yet: the request below waits for the warm-up
    task = asyncio.create_task(sandbox.run(child_templates))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sandbox.restarts == 1
    sandbox.timeout_seconds = 30  # a request waiting on a stale child would hang past this
    assert await asyncio.wait_for(sandbox.run(child_templates), 60) == sorted(plots.KINDS)
