"""wssvc's edge in-process: what Service.check admits, and the fair-share bookkeeping of
wssvc/limits.py driven by a fake clock (no sleeps). The real-process tests are in
test_wssvc_edge_chain.py."""

from __future__ import annotations

import asyncio
import json

import pytest

from etckit import config
from etckit.wssvc import limits
from etckit.wssvc.app import Service, _Bad
from etckit.wssvc.hub import Client
from etckit.wssvc.limits import InFlight, Limits, Rates, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


RATES = Rates(max_in_flight=2, connection_rate=1.0, connection_burst=3,
              user_rate=2.0, user_burst=4)


# -- token buckets and requests in flight ------------------------------------------------------

def test_a_bucket_gives_its_burst_then_one_token_per_interval():
    clock = Clock()
    bucket = TokenBucket(rate=2.0, burst=3, clock=clock)
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == pytest.approx(0.5)  # one token every 1/rate seconds
    clock.now += 0.25
    assert bucket.take() == pytest.approx(0.25)  # a refusal takes nothing
    clock.now += 0.25
    assert bucket.take() == 0.0
    assert bucket.take() == pytest.approx(0.5)
    clock.now += 100
    assert bucket.full()
    assert [bucket.take() for _ in range(4)][-1] > 0  # refilled to the burst, not beyond


def test_a_clock_going_backwards_adds_nothing():
    clock = Clock()
    bucket = TokenBucket(rate=1.0, burst=1, clock=clock)
    assert bucket.take() == 0.0
    clock.now -= 50
    assert bucket.take() == pytest.approx(1.0)


@pytest.mark.parametrize("rate, burst", [(0, 1), (-1, 5), (1, 0)])
def test_a_bucket_needs_a_rate_and_a_burst(rate, burst):
    with pytest.raises(ValueError):
        TokenBucket(rate, burst)


def test_in_flight_is_bounded_and_released():
    counter = InFlight(2)
    assert counter.acquire() and counter.acquire()
    assert not counter.acquire()
    counter.release()
    assert counter.acquire()
    for _ in range(5):
        counter.release()
    assert counter.count == 0  # never below zero


def test_admit_counts_in_flight_then_the_connection_then_the_user():
    clock = Clock()
    lim = Limits(RATES, clock)
    conn = lim.connection()
    assert lim.admit(conn, "alice") == 0.0
    assert lim.admit(conn, "alice") == 0.0
    assert lim.admit(conn, "alice") == limits.IN_FLIGHT_RETRY  # two in flight
    assert conn.bucket.tokens == 1  # that refusal took no token
    conn.in_flight.release()
    assert lim.admit(conn, "alice") == 0.0
    conn.in_flight.release()
    assert lim.admit(conn, "alice") == pytest.approx(1.0)  # connection bucket empty (burst 3)
    assert lim.users["alice"].tokens == 1  # and the user's bucket gave nothing for it


def test_a_user_bucket_spans_the_users_connections_and_no_one_elses():
    clock = Clock()
    lim = Limits(RATES, clock)
    a1, a2, bob = lim.connection(), lim.connection(), lim.connection()
    for conn in (a1, a1, a2, a2):  # user burst 4 over two connections
        assert lim.admit(conn, "alice", in_flight=False) == 0.0
    assert lim.admit(a2, "alice", in_flight=False) == pytest.approx(0.5)
    assert a2.bucket.tokens == 1  # the connection's token was not spent on a refusal
    assert lim.admit(bob, "bob", in_flight=False) == 0.0
    assert lim.admit(None, "alice", in_flight=False) == pytest.approx(0.5)  # plots count too
    clock.now += 0.5
    assert lim.admit(None, "alice", in_flight=False) == 0.0


def test_full_user_buckets_are_forgotten():
    clock = Clock()
    lim = Limits(RATES, clock)
    lim.admit(None, "alice", in_flight=False)
    lim.admit(None, "bob", in_flight=False)
    clock.now += 0.25
    lim.admit(None, "bob", in_flight=False)
    clock.now += 0.3  # alice has refilled (1 token at 2/s), bob has not
    assert lim.prune() == 1 and set(lim.users) == {"bob"}
    clock.now += 10
    assert lim.prune() == 0


def test_a_user_who_empties_her_refusals_is_blocked_until_they_have_filled_again():
    clock = Clock()
    lim = Limits(Rates(max_in_flight=2, connection_rate=2.0, connection_burst=3,
                       user_rate=2.0, user_burst=4, max_refusals=4, block_seconds=2.0),
                 clock)
    assert [lim.ignored("mallory") for _ in range(5)] == [False] * 4 + [True]
    assert lim.blocked("mallory") == 2.0 and lim.blocked("bob") == 0.0
    assert not lim.ignored("bob")
    clock.now += 1.5
    assert lim.blocked("mallory") == 0.5
    lim.prune()  # her block and her bucket are still kept, bob's full bucket is not
    assert set(lim.blocks) == {"mallory"} and set(lim.refusals) == {"mallory"}
    clock.now += 0.5
    assert lim.blocked("mallory") == 0.0 and not lim.blocks
    lim.prune()
    assert not lim.refusals


# -- the shape of a message --------------------------------------------------------------------

@pytest.mark.parametrize("text, limit, deep", [
    ("[" * 33 + "]" * 33, 32, True),
    ("[" * 32 + "]" * 32, 32, False),
    ("[" * 100_000, 32, True),
    ('{"a":' * 40 + "1" + "}" * 40, 32, True),
    ('["' + "[" * 1000 + '"]', 32, False),  # brackets in a string do not nest
    ('["\\"' + "[" * 1000 + '"]', 32, False),  # nor after an escaped quote
    ("[]" * 10_000, 32, False),  # wide, not deep
    ('"' + "[" * 100, 32, False),  # an unterminated string is a string
])
def test_depth(text, limit, deep):
    assert limits.deeper_than(text, limit) is deep


def test_surrogates_are_found_where_they_are():
    assert limits.surrogate_at({"id": 1, "a": ["x", {"b": "ok\udc00"}]}) == "a[1].b"
    assert limits.surrogate_at({"\ud800": 1}) == "a key of the message"
    assert limits.surrogate_at({"a": {"\ud800x": 1}}) == "a key of a"
    assert limits.surrogate_at({"a": "😀", "b": ["\u00e9"]}) is None
    assert limits.surrogate_at({"k" * 500: "\ud800"}).endswith("…")
    assert not limits.may_hold_surrogates('{"a": "é 😀"}')
    assert limits.may_hold_surrogates('{"a": "\\u00e9"}')


def _service(**settings: str) -> Service:
    """A Service without a database or brokers: enough for check and handle."""
    env = {"ETCKIT_AUTH__SESSION_SECRET": "s",
           **{f"ETCKIT_WSSVC__{k.upper()}": v for k, v in settings.items()}}
    return Service(config.load(environ=env), db=None, pool="p")


@pytest.fixture
def service():
    svc = _service(max_message_bytes="20000")
    yield svc
    svc.upstream.ctx.term()


def _refused(service, text):
    with pytest.raises(_Bad) as info:
        service.check(text)
    return info.value


@pytest.mark.parametrize("text, code, ref", [
    ('{"id":"\\ud83d","type":"workbook.list"}', "bad_unicode", None),  # issue 11
    ('{"id":"x","type":"workbook.create","name":"\\udfff"}', "bad_unicode", "x"),
    ('{"id":7,"type":"echo","data":{"\\ud83d":1}}', "bad_unicode", 7),
    ('{"id":"x","type":"\\ud83d"}', "bad_unicode", "x"),
    ("[" * 5000 + "]" * 5000, "too_deep", None),
    ('{"id":1,"type":"echo","data":' + "[" * 33 + "]" * 33 + "}", "too_deep", None),
    ('{"id":1,"type":"echo","data":NaN}', "bad_json", None),
    ('{"id":1,"type":"echo","data":-Infinity}', "bad_json", None),
    ('{"id":1,"type":"echo","data":1e999}', "bad_json", None),
    ('{"id":1,"type":"echo","data":' + "9" * 309 + "}", "bad_json", None),
    ('{"id":1,"type":"echo","data":' + "9" * 5000 + "}", "bad_json", None),
    ('{"id":[],"type":"echo"}', "bad_id", None),
    ('{"id":"' + "x" * 65 + '","type":"echo"}', "bad_id", None),
    ('{"id":1,"type":[]}', "missing_type", 1),
    ('{"id":1,"type":"x' + "\\u0000" * 3 + '"}', "unknown_type", 1),
])
def test_check_refuses_with_a_named_code(service, text, code, ref):
    bad = _refused(service, text)
    assert (bad.code, bad.ref) == (code, ref), bad.text
    assert bad.text and "\n" not in bad.text
    json.dumps(bad.text, ensure_ascii=False).encode()  # the error itself encodes


@pytest.mark.parametrize("frame", [b"", b"{}", None])  # Quart: None for an empty binary frame
def test_binary_frames_are_refused_even_empty(service, frame):
    assert _refused(service, frame).code == "binary_frame"


def test_raw_surrogates_are_refused_too(service):  # wsproto never hands one over; still
    text = '{"id":1,"type":"echo","data":"' + "\udc80" * 6000 + '"}'
    assert _refused(service, text).code == "bad_unicode"


def test_check_names_the_field_with_a_surrogate(service):
    bad = _refused(service, '{"id":1,"type":"echo","data":{"list":["a","\\udc80"]}}')
    assert "data.list[1]" in bad.text


@pytest.mark.parametrize("text", [
    '{"id":1,"type":"echo","data":"\\ud83d\\ude00 and \\u00e9"}',  # a pair is fine
    '{"id":"a","type":"echo","data":' + "[" * 31 + "]" * 31 + "}",  # 32 with the object
    '{"id":"a","type":"echo","data":"' + "[{" * 1000 + '"}',
    '{"id":1,"type":"echo","data":[1.5e300, -1e-300, ' + "9" * 308 + "]}",
])
def test_check_admits_good_messages(service, text):
    assert service.check(text)["type"] == "echo"


def test_check_never_recurses_whatever_the_depth():
    service = _service(max_message_bytes=str(2 * 1024 * 1024))
    try:
        for depth in (1_000, 100_000, 500_000):
            text = '{"id":1,"type":"echo","data":' + "[" * depth + "]" * depth + "}"
            assert _refused(service, text).code == "too_deep"
    finally:
        service.upstream.ctx.term()


async def test_rate_limited_requests_say_when_to_retry():
    service = _service(connection_burst="2", connection_rate="0.5")
    try:
        client = Client(id="c", user="u", workbook=None, queue=asyncio.Queue(10),
                        limit=service.limits.connection())
        for n in range(3):
            service.handle(client, {"id": n, "type": "ping"}, "")
        replies = [json.loads(client.queue.get_nowait()) for _ in range(3)]
        assert [r["type"] for r in replies] == ["pong", "pong", "error"]
        assert replies[2]["code"] == "rate_limited" and replies[2]["ref"] == 2
        assert 1.9 < replies[2]["retry_after"] <= 2.0
        # no broker: the request is answered unavailable and its in-flight slot released
        service.limits.users.clear()
        client.limit.bucket.tokens = 2
        service.handle(client, {"id": "e", "type": "echo"}, '{"id":"e","type":"echo"}')
        assert json.loads(client.queue.get_nowait())["code"] == "unavailable"
        assert client.limit.in_flight.count == 0
    finally:
        service.upstream.ctx.term()


async def test_a_user_who_ignores_retry_after_is_closed_with_1008_and_blocked():
    service = _service(connection_burst="2", connection_rate="0.01", max_refusals="3")
    try:
        def client(user: str) -> Client:
            return Client(id="c", user=user, workbook=None, queue=asyncio.Queue(20),
                          limit=service.limits.connection())

        patient = client("patient")
        for n in range(5):  # two served, three refused: within max_refusals
            service.handle(patient, {"id": n, "type": "ping"}, "")
        assert not patient.closed.done()
        first, second = client("flooder"), client("flooder")
        for n in range(4):  # two served, two refused
            service.handle(first, {"id": n, "type": "ping"}, "")
        assert not first.closed.done()
        for n in range(4):  # her second socket: two served, one refused, then one too many
            service.handle(second, {"id": n, "type": "ping"}, "")
        replies = [json.loads(second.queue.get_nowait()) for _ in range(4)]
        assert [r.get("code") for r in replies] == [None, None] + ["rate_limited"] * 2
        assert second.closed.done() and second.close_code == 1008
        assert "retry_after" in second.close_reason
        # the refusals are the user's, not one socket's: she is blocked for block_seconds
        # (60 s by default); the patient user is not
        assert 59 < service.limits.blocked("flooder") <= 60
        assert service.limits.blocked("patient") == 0.0
    finally:
        service.upstream.ctx.term()


def test_plot_kinds_agree_with_the_engine():
    from etckit.engine.plots import KINDS
    from etckit.messaging.types import PLOT_KINDS

    assert tuple(PLOT_KINDS) == tuple(KINDS)


async def test_every_reply_frees_its_slot_and_the_requester_always_hears_back():
    service = _service(max_in_flight="20")
    try:
        client = Client(id="c", user="u", workbook="w", queue=asyncio.Queue(20),
                        limit=service.limits.connection())
        service.hub.add(client)
        replies = [  # reply frames -> what the requester gets
            ([b'{"to":[{"client":"c"}]}', b'{"type":"echo","ref":"r0"}'], "echo"),
            ([b'{"to":[{"workbook":"w"}]}', b'{"type":"x","ref":"r1"}'], "x"),
            ([b'{"error":{"code":"busy","message":"all busy"}}'], "busy"),
            ([b"not json"], "internal"),
            ([b'{"error":"no"}'], "internal"),
            ([b'{"to":[1]}', b"{}"], "internal"),
            ([b'{"to":[]}'], "internal"),  # a worker that answered no one
            ([b'{"to":[{"user":"u","except":"c"}]}', b"{}"], "internal"),
            ([b'{"to":[{"client":"c"}]}', b"\xff\xfe"], "internal"),
        ]
        for n in range(len(replies)):
            assert client.limit.in_flight.acquire()
            service.pending[str(n).encode()] = (client, f"r{n}")
        for n, (frames, expected) in enumerate(replies):
            service.on_reply(str(n).encode(), frames)
            got = json.loads(client.queue.get_nowait())
            assert got["type"] == expected or got.get("code") == expected, (n, got)
            assert got["ref"] == f"r{n}"
            assert client.limit.in_flight.count == len(replies) - n - 1
        assert client.queue.empty()
        for n in range(3):  # a lost broker frees the slots of what it held
            client.limit.in_flight.acquire()
            service.pending[f"x{n}".encode()] = (client, n)
        service.on_broker_lost("b1")
        assert client.limit.in_flight.count == 0 and client.close_code == 1012
    finally:
        service.upstream.ctx.term()
