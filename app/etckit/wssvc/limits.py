"""What wssvc admits: fair shares (token buckets, requests in flight) and message shapes.

Pure functions and bookkeeping with an injected clock (no sleeping, no I/O), so tests drive
time. A refusal carries how long to wait (``retry_after``, seconds), which the browser is told.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

Clock = Callable[[], float]

# Retrying after a refusal for requests in flight makes sense once a reply came back: about
# the time one request takes, which wssvc cannot know; this is what the browser is told.
IN_FLIGHT_RETRY = 0.5


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; a request takes one."""

    __slots__ = ("rate", "burst", "clock", "tokens", "stamp")

    def __init__(self, rate: float, burst: float, clock: Clock = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = float(burst)
        self.clock = clock
        self.tokens = float(burst)
        self.stamp = clock()

    def _refill(self) -> float:
        now = self.clock()
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return now

    def wait(self) -> float:
        """Seconds until a token is there (0.0: one is there now); takes nothing."""
        self._refill()
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self) -> float:
        """Take a token: 0.0 when taken, else the seconds to wait (nothing taken)."""
        wait = self.wait()
        if wait == 0.0:
            self.tokens -= 1
        return wait

    def full(self) -> bool:
        """True when the bucket is as if never used (it can be forgotten)."""
        self._refill()
        return self.tokens >= self.burst


class InFlight:
    """Requests sent on and not yet answered, at most ``limit``."""

    __slots__ = ("limit", "count")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    def acquire(self) -> bool:
        if self.count >= self.limit:
            return False
        self.count += 1
        return True

    def release(self) -> None:
        if self.count > 0:
            self.count -= 1


@dataclass(frozen=True)
class Rates:
    """The settings (wssvc.max_in_flight, connection_rate/burst, user_rate/burst,
    max_refusals, block_seconds)."""

    max_in_flight: int
    connection_rate: float
    connection_burst: int
    user_rate: float
    user_burst: int
    max_refusals: int = 100
    block_seconds: float = 60.0


class ConnectionLimit:
    """One websocket's share: its requests in flight and its bucket."""

    __slots__ = ("in_flight", "bucket")

    def __init__(self, rates: Rates, clock: Clock = time.monotonic) -> None:
        self.in_flight = InFlight(rates.max_in_flight)
        self.bucket = TokenBucket(rates.connection_rate, rates.connection_burst, clock)


class Limits:
    """The connections' and users' shares on one wssvc.

    ``admit`` takes a token from the connection's bucket and from its user's bucket only when
    both have one (a refusal costs nothing), then counts the request in flight.

    Each user also has a bucket of refusals (``max_refusals``, refilled at
    ``connection_rate``), shared by all her sockets: ``ignored`` empties it one `rate_limited`
    answer at a time. A user who empties it keeps sending while told to wait; she is then
    ``blocked`` for ``block_seconds``: new sockets of hers are refused at the handshake
    (cheaply: before any database work). Buckets that have filled up
    again and ended blocks are forgotten by ``prune``, so memory follows active users.
    """

    def __init__(self, rates: Rates, clock: Clock = time.monotonic) -> None:
        self.rates = rates
        self.clock = clock
        self.users: dict[str, TokenBucket] = {}
        self.refusals: dict[str, TokenBucket] = {}
        self.blocks: dict[str, float] = {}  # user: when (clock) her block ends

    def connection(self) -> ConnectionLimit:
        return ConnectionLimit(self.rates, self.clock)

    def user(self, user: str) -> TokenBucket:
        bucket = self.users.get(user)
        if bucket is None:
            bucket = self.users[user] = TokenBucket(self.rates.user_rate,
                                                    self.rates.user_burst, self.clock)
        return bucket

    def admit(self, conn: ConnectionLimit | None, user: str, in_flight: bool = True) -> float:
        """0.0 if the request may go (counted in flight when ``in_flight``), else the seconds
        to wait before retrying. ``conn`` None: a request outside any websocket (a plot)."""
        user_bucket = self.users.get(user) or self.user(user)
        if conn is None:
            return user_bucket.take()
        if in_flight and conn.in_flight.count >= conn.in_flight.limit:
            return IN_FLIGHT_RETRY
        wait = max(conn.bucket.wait(), user_bucket.wait())  # no list, no generator: per message
        if wait > 0:
            return wait
        conn.bucket.take()
        user_bucket.take()
        if in_flight:
            conn.in_flight.acquire()
        return 0.0

    def ignored(self, user: str) -> bool:
        """Count one `rate_limited` answer to ``user``; True when her refusals bucket was
        empty (she keeps sending faster than she is told she may): she is blocked from now
        for block_seconds."""
        bucket = self.refusals.get(user)
        if bucket is None:
            bucket = self.refusals[user] = TokenBucket(self.rates.connection_rate,
                                                       self.rates.max_refusals, self.clock)
        if bucket.take() == 0.0:
            return False
        self.blocks[user] = self.clock() + self.rates.block_seconds
        return True

    def blocked(self, user: str) -> float:
        """Seconds until ``user`` may open a socket again (0.0: she may now)."""
        until = self.blocks.get(user)
        if until is None:
            return 0.0
        left = until - self.clock()
        if left > 0:
            return left
        del self.blocks[user]
        return 0.0

    def prune(self) -> int:
        """Forget the users whose buckets are full again and ended blocks; returns how many
        users' rate buckets are kept."""
        for table in (self.users, self.refusals):
            for user in [u for u, bucket in table.items() if bucket.full()]:
                del table[user]
        for user in list(self.blocks):
            self.blocked(user)
        return len(self.users)


# -- the shape of a browser's message ----------------------------------------------------------
# Checked before and right after JSON decoding, so that nothing wssvc forwards can make a later
# reader recurse without bound or fail to encode it again.

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.S)  # a JSON string, maybe unterminated
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_SURROGATE = re.compile("[\ud800-\udfff]")
PATH_MAX = 80  # characters of a field's path quoted in an error


def deeper_than(text: str, limit: int) -> bool:
    """True if the JSON text nests arrays and objects more than ``limit`` deep. Brackets inside
    strings do not count. Costs one count of two characters unless the text holds more
    brackets than the limit."""
    if text.count("[") + text.count("{") <= limit:
        return False
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > limit


def may_hold_surrogates(text: str) -> bool:
    """False when decoding ``text`` cannot give a lone surrogate (no \\u escape, none raw)."""
    return "\\u" in text or (not text.isascii() and _SURROGATE.search(text) is not None)


def has_surrogate(value: str) -> bool:
    return _SURROGATE.search(value) is not None


def surrogate_at(message: Any) -> str | None:
    """Where the decoded message holds a lone UTF-16 surrogate (a dotted path, or "a key of
    PATH"), None if nowhere. Iterative: the depth was bounded before decoding, but a walk
    needs no stack anyway."""
    stack: list[tuple[Any, str]] = [(message, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                return _short(path or "the message")
        elif isinstance(value, dict):
            for key, item in value.items():
                if _SURROGATE.search(key):
                    return f"a key of {_short(path or 'the message')}"
                stack.append((item, f"{path}.{key}" if path else key))
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{i}]") for i, item in enumerate(value))
    return None


def _short(path: str) -> str:
    return path if len(path) <= PATH_MAX else path[:PATH_MAX - 1] + "…"


# JSON as browsers write it: no NaN or Infinity (JSON has none; Python's json reads them), and
# no number beyond a double's range (1e999 would become inf, a 400-digit integer no reader in a
# browser can hold). The C scanner still does the work; these run only for numbers.
DIGITS_MAX = 308  # any integer of at most this many digits converts to a finite double


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:24]} is beyond the range of a double")
    return value


def _bounded_int(text: str) -> int:
    if len(text) > DIGITS_MAX and len(text.lstrip("-")) > DIGITS_MAX:
        raise ValueError(f"an integer of {len(text.lstrip('-'))} digits is beyond the range "
                         "of a double")
    return int(text)


DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite_float,
                           parse_int=_bounded_int)
