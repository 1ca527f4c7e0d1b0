"""wssvc's websocket handshake (asgi.websocket) under hostile input, in-process: any Origin,
any query string (huge, not UTF-8, many tickets, a valid ticket cut or altered) is answered
with one HTTP refusal naming what was wrong, never an exception, an accepted socket or a
database call; a valid ticket of a blocked user gets 429 with Retry-After, before the
database (the Service here has none: a call would raise)."""

from __future__ import annotations

import asyncio
import logging
import time
from urllib.parse import quote_from_bytes

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etckit import config
from etckit.auth import tickets
from etckit.wssvc.app import Service
from etckit.wssvc.asgi import _ticket_of, websocket
from etckit.wssvc.upstream import Upstream

ORIGIN = "https://etc.example"
KEY = Ed25519PrivateKey.generate()
BLOCKED = "mallory"


@pytest.fixture(scope="module")
def service():
    svc = Service(config.load(environ={"ETCKIT_AUTH__SESSION_SECRET": "s"}), db=None, pool="p")
    svc.allowed_origins = {ORIGIN}
    svc.ticket_keys = (KEY.public_key(),)
    svc.limits.blocks[BLOCKED] = time.monotonic() + 3600
    yield svc
    svc.upstream.ctx.term()


@pytest.fixture(autouse=True)
def a_broker(monkeypatch):
    monkeypatch.setattr(Upstream, "ready", property(lambda self: [object()]))


def _ticket(**over) -> str:
    claims = {"user": BLOCKED, "session": "s", "pool": "p", "purpose": "workbook",
              "workbook": "w", **over}
    return tickets.issue(KEY, **claims)


async def _handshake(service: Service, origin: str | None, query: bytes) -> list[dict]:
    sent: list[dict] = []
    events = iter([{"type": "websocket.connect"}])

    async def receive() -> dict:
        return next(events, {"type": "websocket.disconnect", "code": 1000})

    async def send(event: dict) -> None:
        sent.append(event)

    headers = [] if origin is None else [(b"origin", origin.encode("latin-1", "replace"))]
    scope = {"type": "websocket", "path": "/ws", "query_string": query, "headers": headers}
    await asyncio.wait_for(websocket(service, scope, receive, send), 5)
    return sent


def _refusal(sent: list[dict]) -> tuple[int, str, dict]:
    assert [e["type"] for e in sent] == ["websocket.http.response.start",
                                         "websocket.http.response.body"], sent
    body = sent[1]["body"].decode()
    assert "\n" not in body and body, body
    return sent[0]["status"], body, dict(sent[0]["headers"])


def _mutated(token: str, cut: int, at: int, char: str) -> str:
    if cut:
        return token[:-cut]
    i = at % len(token)
    return token[:i] + char + token[i + 1:] if token[i] != char else token[:i] + token[i + 1:]


QUERIES = st.one_of(
    st.binary(max_size=4000),
    st.builds(lambda b: b"ticket=" + b, st.binary(max_size=3000)),
    st.builds(lambda n, b: b"&".join([b"ticket=" + b] * n), st.integers(1, 400),
              st.binary(max_size=40)),
    st.builds(lambda cut, at, c: b"ticket=" + quote_from_bytes(
        _mutated(_ticket(), cut, at, c).encode()).encode(),
        st.integers(0, 90), st.integers(0, 10_000), st.characters()),
)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(origin=st.one_of(st.none(), st.just(ORIGIN), st.text(max_size=60)), query=QUERIES)
async def test_any_handshake_is_refused_with_a_reason(service, origin, query):
    status, body, _ = _refusal(await _handshake(service, origin, query))
    if origin != ORIGIN:
        assert (status, body) == (403, "origin not allowed")
    elif _still_valid(service, query):  # an edit of a signature's unused low bits
        assert status == 429, (status, body)
    else:
        assert status == 403 and body.startswith("ticket refused: "), (status, body)


def _still_valid(service: Service, query: bytes) -> bool:
    try:
        tickets.verify(service.ticket_keys, _ticket_of({"query_string": query}), pool="p")
    except tickets.TicketError:
        return False
    return True


async def test_a_blocked_users_valid_ticket_is_429_before_the_database(service):
    status, body, headers = _refusal(await _handshake(
        service, ORIGIN, f"ticket={_ticket()}".encode()))
    assert status == 429 and "retry after" in body
    assert 3500 < int(headers[b"retry-after"]) <= 3600
    for bad in (_ticket(pool="other"), _ticket(lifetime=-10.0)):  # not hers: no 429
        status, body, _ = _refusal(await _handshake(service, ORIGIN, f"ticket={bad}".encode()))
        assert status == 403 and body.startswith("ticket refused: "), body


async def test_a_refused_origin_is_logged_cut(service, caplog):
    """Anyone may send a 16 kB Origin, as often as she likes: the log line keeps 200
    characters of it (before, all of it, once per refused handshake)."""
    with caplog.at_level(logging.INFO, logger="etckit.wssvc.asgi"):
        status, _, _ = _refusal(await _handshake(service, "h" * 16_000, b""))
    assert status == 403
    [record] = [r for r in caplog.records if r.getMessage() == "websocket refused: origin"]
    assert record.origin == "h" * 200
