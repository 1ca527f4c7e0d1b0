"""How often one client address may log in anonymously.

Two limits per address: a token bucket (``per_minute`` logins refilled steadily, up to
``burst`` at once) and a cap on the anonymous accounts made in 24 hours (``per_day``). An
IPv6 address counts as its /64, which is what one household or host is usually given.

The state lives in this process: N main_servers behind the load balancer allow N times as
much, and HAProxy's stick-table limits on ``/login/*`` (the kit) are the global guard. It is
bounded: past ``max_addresses`` the address seen least recently is forgotten.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

DAY = 86400.0
MAX_ADDRESSES = 65536

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _parse(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address((text or "").strip())
    except ValueError:
        return None


def client_address(remote: str | None, forwarded: str | None,
                   proxies: Sequence[Network]) -> str:
    """The address to hold responsible for a request.

    The peer's own address, unless the peer is a trusted proxy: then the nearest address in
    X-Forwarded-For that is not itself a trusted proxy (HAProxy appends the client's).
    """
    peer = _parse(remote)
    if peer is None:
        return "unknown"

    def trusted(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(addr in net for net in proxies)

    if not forwarded or not trusted(peer):
        return _key(peer)
    for part in reversed(forwarded.split(",")):
        hop = _parse(part)
        if hop is None:
            break  # a proxy we trust wrote garbage: hold the proxy responsible
        if not trusted(hop):
            return _key(hop)
    return _key(peer)


def _key(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


@dataclass
class _Entry:
    tokens: float
    at: float
    day_start: float
    accounts: int = 0


@dataclass(frozen=True)
class Refusal:
    """Why a login was refused and when to try again (whole seconds, at least 1)."""

    message: str
    retry_after: int


class LoginLimiter:
    """Token bucket plus daily cap per address; ``0`` for a setting turns that limit off."""

    def __init__(self, *, per_minute: float, burst: int, per_day: int,
                 max_addresses: int = MAX_ADDRESSES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.per_day = per_day
        self.max_addresses = max_addresses
        self.clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def _entry(self, address: str, now: float) -> _Entry:
        entry = self._entries.get(address)
        if entry is None:
            entry = self._entries[address] = _Entry(tokens=self.burst, at=now, day_start=now)
            while len(self._entries) > self.max_addresses:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(address)
        entry.tokens = min(self.burst, entry.tokens + (now - entry.at) * self.rate)
        entry.at = now
        if now - entry.day_start >= DAY:
            entry.day_start, entry.accounts = now, 0
        return entry

    def take(self, address: str) -> Refusal | None:
        """Count one anonymous login from `address`, or say why it is refused."""
        if self.rate <= 0 and self.per_day <= 0:
            return None
        now = self.clock()
        entry = self._entry(address, now)
        if self.per_day > 0 and entry.accounts >= self.per_day:
            wait = entry.day_start + DAY - now
            return Refusal(f"too many anonymous accounts from your address today (the limit"
                           f" is {self.per_day} a day)", max(1, math.ceil(wait)))
        if self.rate > 0:
            if entry.tokens < 1.0:
                wait = (1.0 - entry.tokens) / self.rate
                return Refusal("too many anonymous logins from your address (the limit is"
                               f" {self.rate * 60:g} a minute)", max(1, math.ceil(wait)))
            entry.tokens -= 1.0
        entry.accounts += 1
        return None
