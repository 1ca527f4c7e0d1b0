"""Anonymous logins are limited per client address: a token bucket and a daily cap."""

from __future__ import annotations

import ipaddress

import pytest

from etckit.main_server.limits import LoginLimiter, client_address

from .conftest import csrf

SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_the_burst_then_refills_at_the_rate():
    clock = Clock()
    limiter = LoginLimiter(per_minute=10, burst=5, per_day=0, clock=clock)
    assert [limiter.take("a") for _ in range(5)] == [None] * 5
    refusal = limiter.take("a")
    assert refusal is not None and refusal.retry_after == 6  # one login per 6 s
    assert "10 a minute" in refusal.message
    assert limiter.take("b") is None  # another address has its own bucket
    clock.now += 6
    assert limiter.take("a") is None
    assert limiter.take("a") is not None


def test_daily_cap_on_accounts_per_address():
    clock = Clock()
    limiter = LoginLimiter(per_minute=60, burst=1, per_day=3, clock=clock)
    for _ in range(3):
        assert limiter.take("a") is None
        clock.now += 1
    refusal = limiter.take("a")
    assert refusal is not None and "3 a day" in refusal.message
    assert refusal.retry_after == 86400 - 3
    clock.now += 86400
    assert limiter.take("a") is None


def test_memory_is_bounded_by_forgetting_the_least_recent_address():
    limiter = LoginLimiter(per_minute=1, burst=1, per_day=0, max_addresses=3, clock=Clock())
    for address in "abcd":
        assert limiter.take(address) is None
    assert len(limiter) == 3
    assert limiter.take("a") is None  # forgotten, so a fresh bucket
    assert limiter.take("d") is not None


def test_zero_turns_the_limits_off():
    limiter = LoginLimiter(per_minute=0, burst=1, per_day=0, clock=Clock())
    assert all(limiter.take("a") is None for _ in range(100))


def test_client_address_believes_forwarding_only_from_trusted_proxies():
    proxies = [ipaddress.ip_network("10.0.0.0/8")]
    assert client_address("192.0.2.7", "198.51.100.1", proxies) == "192.0.2.7"  # not trusted
    assert client_address("10.0.0.2", "198.51.100.1", proxies) == "198.51.100.1"
    # the client may send its own X-Forwarded-For: only the hop HAProxy appended counts
    assert client_address("10.0.0.2", "1.2.3.4, 198.51.100.1", proxies) == "198.51.100.1"
    assert client_address("10.0.0.2", "198.51.100.1, 10.0.0.9", proxies) == "198.51.100.1"
    assert client_address("10.0.0.2", "garbage", proxies) == "10.0.0.2"
    assert client_address("10.0.0.2", None, proxies) == "10.0.0.2"
    assert client_address("2001:db8:1:2:3::4", None, proxies) == "2001:db8:1:2::/64"
    assert client_address("::ffff:192.0.2.1", None, proxies) == "192.0.2.1"
    assert client_address(None, "1.2.3.4", proxies) == "unknown"


async def anonymous(client, *, peer: str = "192.0.2.10", forwarded: str | None = None,
                    accept: str = "application/json"):
    headers = {"Accept": accept}
    if forwarded:
        headers["X-Forwarded-For"] = forwarded
    return await client.post("/login/anonymous", form={"csrf": await csrf(client)},
                             headers=headers, scope_base={"client": (peer, 40000)})


@SQLITE
def frozen(app):
    """The app's limiter on a clock that stands still: no test depends on its speed."""
    app.extensions["etckit.site"].login_limiter.clock = Clock()
    return app


@SQLITE
async def test_sixth_quick_anonymous_login_is_429_with_retry_after(app):
    client = frozen(app).test_client()
    for _ in range(5):
        assert (await anonymous(client)).status_code == 303
    refused = await anonymous(client)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "6"
    body = await refused.get_json()
    assert body["error"] == "rate_limited" and body["retry_after"] == 6
    assert "anonymous logins" in body["message"]
    for accept in ("*/*", ""):  # curl and scripts get the JSON too
        other = await anonymous(client, accept=accept)
        assert other.status_code == 429 and (await other.get_json())["retry_after"] == 6
    # a browser's form post gets the message as a page, with the same status and header
    page = await anonymous(client, accept="text/html,application/xhtml+xml,*/*;q=0.8")
    assert page.status_code == 429 and page.headers["Retry-After"] == "6"
    text = await page.get_data(as_text=True)
    assert "Too many logins" in text and "try again in 6 seconds" in text


@SQLITE
async def test_a_spoofed_forwarded_for_does_not_escape_the_limit(make_app):
    app = make_app(main_server__trusted_proxies="10.0.0.0/8",
                   main_server__anonymous_login_burst="1")
    client = frozen(app).test_client()
    assert (await anonymous(client, forwarded="1.1.1.1")).status_code == 303
    assert (await anonymous(client, forwarded="2.2.2.2")).status_code == 429  # untrusted peer
    # behind the trusted proxy each client address has its own bucket
    assert (await anonymous(client, peer="10.0.0.2", forwarded="1.1.1.1")).status_code == 303
    assert (await anonymous(client, peer="10.0.0.2", forwarded="2.2.2.2")).status_code == 303
    assert (await anonymous(client, peer="10.0.0.2", forwarded="2.2.2.2")).status_code == 429


@SQLITE
async def test_daily_account_cap_in_the_app(make_app):
    app = make_app(main_server__anonymous_accounts_per_day="2",
                   main_server__anonymous_login_burst="10")
    client = frozen(app).test_client()
    assert (await anonymous(client)).status_code == 303
    assert (await anonymous(client)).status_code == 303
    refused = await anonymous(client)
    assert refused.status_code == 429
    assert "2 a day" in (await refused.get_json())["message"]
