"""Checking ZeroMQ frames before acting on them, and logging the bad ones without flooding.

Whatever a peer sends, the checks here either accept it or name what is wrong (one line); they
never raise anything else. docs/protocol.md lists the frames each command carries.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

RID_MAX = 64  # bytes in a request id (wssvc makes short decimal ones)
META_MAX = 4096  # bytes in the request's "who" frame
HELLO_MAX = 4096  # bytes in a worker's READY frame


class FrameError(Exception):
    """Frames that do not follow the protocol; str(self) says which part and why."""


def request_user(meta: bytes) -> str:
    """The user of a REQUEST's meta frame {"client", "user", "workbook"}, checked."""
    if len(meta) > META_MAX:
        raise FrameError(f"request meta frame is larger than {META_MAX} bytes")
    try:
        who = json.loads(meta)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise FrameError("request meta frame is not JSON") from None
    if not isinstance(who, dict):
        raise FrameError("request meta frame is not a JSON object")
    for key in ("client", "user"):
        if not isinstance(who.get(key), str) or not who[key]:
            raise FrameError(f"request meta frame: {key} is not a non-empty string")
    if not isinstance(who.get("workbook", None), str | None):
        raise FrameError("request meta frame: workbook is not a string or null")
    return who["user"]


class RequestUsers:
    """request_user with the answers remembered: a wssvc sends the same meta frame with every
    message of a client, so the broker reads its JSON once per client, not per request. At
    most ``size`` frames are kept (all forgotten when full); only valid frames are kept."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self.known: dict[bytes, str] = {}

    def __call__(self, meta: bytes) -> str:
        user = self.known.get(meta)
        if user is None:
            user = request_user(meta)  # raises FrameError: nothing kept
            if len(self.known) >= self.size:
                self.known.clear()
            self.known[meta] = user
        return user


def check_rid(rid: bytes) -> None:
    if not 0 < len(rid) <= RID_MAX:
        raise FrameError(f"request id must be 1 to {RID_MAX} bytes")


def check_hello(hello: bytes) -> None:
    if len(hello) > HELLO_MAX:
        raise FrameError(f"READY frame is larger than {HELLO_MAX} bytes")
    try:
        ok = isinstance(json.loads(hello), dict)
    except (ValueError, UnicodeDecodeError, RecursionError):
        ok = False
    if not ok:
        raise FrameError("READY frame is not a JSON object")


class Complaints:
    """Warnings about bad peers, at most `burst` lines per `window` seconds per logger; the
    rest are counted and summed up in one line when the window ends."""

    def __init__(self, log: logging.Logger, burst: int = 10, window: float = 10.0) -> None:
        self.log = log
        self.burst = burst
        self.window = window
        self.started = time.monotonic()
        self.logged = 0
        self.suppressed = 0
        self.total = 0  # every complaint ever (tests and metrics read it)

    def __call__(self, message: str, *, exc_info: bool = False, **extra: Any) -> None:
        self.total += 1
        now = time.monotonic()
        if now - self.started >= self.window:
            if self.suppressed:
                self.log.warning("%d more bad messages from peers were not logged",
                                 self.suppressed, extra={"seconds": round(now - self.started)})
            self.started, self.logged, self.suppressed = now, 0, 0
        if self.logged >= self.burst:
            self.suppressed += 1
            return
        self.logged += 1
        self.log.warning(message, exc_info=exc_info, extra=extra)
