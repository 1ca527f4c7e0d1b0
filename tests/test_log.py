"""etckit.log: one JSON object a line; a client that left without closing TLS is no error."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from etckit import log


@pytest.fixture
def lines(capsys):
    """The JSON lines etckit.log wrote since this was called; the root logger is restored
    after the test."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level

    def read() -> list[dict]:
        return [json.loads(line) for line in capsys.readouterr().out.splitlines()]

    yield read
    root.handlers[:], level = saved
    root.setLevel(level)


async def _report(exc: BaseException) -> None:
    """What asyncio does with a task that failed and that nobody awaited."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    loop.call_exception_handler({"message": "Task exception was never retrieved",
                                 "exception": exc, "future": future})
    future.cancel()


async def test_a_tls_shutdown_timeout_is_one_info_line_without_a_traceback(lines):
    log.setup("wssvc")
    await _report(TimeoutError("SSL shutdown timed out"))
    [event] = lines()
    assert (event["level"], event["program"], event["logger"]) == ("info", "wssvc", "asyncio")
    assert event["event"] == "a client left without closing TLS (SSL shutdown timed out)"
    assert "traceback" not in event


async def test_other_unretrieved_task_errors_stay_errors_with_their_traceback(lines):
    log.setup("wssvc")
    await _report(TimeoutError("something else timed out"))
    await _report(ValueError("SSL shutdown timed out"))
    events = lines()
    assert [e["level"] for e in events] == ["error", "error"]
    assert all(e["event"].startswith("Task exception was never retrieved") for e in events)
    assert "TimeoutError: something else timed out" in events[0]["traceback"]
    assert "ValueError: SSL shutdown timed out" in events[1]["traceback"]


def test_setup_twice_adds_the_filter_once(lines):
    log.setup("broker")
    log.setup("broker")
    filters = logging.getLogger("asyncio").filters
    assert sum(isinstance(f, log.ClientLeftTls) for f in filters) == 1
