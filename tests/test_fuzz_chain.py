"""Property-based fuzzing of the whole chain (issue 11): at least 10,000 generated websocket
messages to real processes (wssvc, a broker and two workers on SQLite). Whatever arrives, no
process exits, every message gets exactly one reply (by ref; null when the message had no
usable id) and no reply is `internal`.

Hypothesis generates batches; each batch is sent by three clients of two users (alice with a
list socket and a workbook socket, bob on his workbook), mixing valid and invalid JSON, every
request type with random fields and values: lone surrogates, control characters, deep nesting,
huge strings and numbers, NaN and Infinity, wrong types everywhere, ids of the other user's
items. Shrinking is off: after a crash the system is not the one the failing batch met, so a
failure reports the batch's suspects (the messages answered `worker_lost` or `internal`)."""

from __future__ import annotations

import asyncio
import copy
import json
import math
import os
import threading
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from etckit.messaging.types import LOCAL_TYPES, REQUEST_TYPES
from tests.support.chain import Chain

MESSAGES = int(os.environ.get("FUZZ_MESSAGES", "10000"))  # fewer while developing
# The same messages in every run unless FUZZ_RANDOM=1 (`make fuzz`): a gate that draws new
# ones each time fails at random; exploring belongs to `make fuzz`, whose finds become cases
# of the deterministic sweep below or of the handler's own tests.
RANDOM = os.environ.get("FUZZ_RANDOM") == "1"
SEED = int(os.environ.get("FUZZ_SEED", "20261128"))
BATCH = 25
MAX_BYTES = 1_048_576  # wssvc.max_message_bytes (default)
DEPTH = 32  # wssvc.max_json_depth (default)
TYPES = sorted((REQUEST_TYPES | LOCAL_TYPES) - {"pong"})  # a valid pong gets no reply
FIELDS = ["name", "description", "workbook", "source", "scene", "calculation", "data", "kind",
          "format", "item", "seconds", "count", "size", "sources", "revision", "id", "type",
          "source_id", "offset_x_arcsec", "filter", "instrument", "target_snr", "aperture",
          "calculations", "parameter", "values", "folder", "user", "access", "content",
          "flux_unit", "spectrum", "base_revision"]
KINDS = ["workbook", "source", "scene", "calculation"]  # the order of _setup's ids, per user
NASTY_STRINGS = ["\ud83d", "a\udc00b", "\udfff\ud800", "\x00", "\x1b[2J", "\u2028\u2029",
                 "😀", "\ufeff", "é" * 70, "", " ", "null", "NaN", "../../etc/passwd",
                 "'; DROP TABLE workbooks; --", "%s%n", "\\u0000"]
NASTY_NUMBERS = [0, -1, 2**31, 2**63, -(2**64), 10**300, 10**400, 1e308, -1e-320, 0.5,
                 float("nan"), float("inf"), float("-inf"), True, False]
SETTINGS = {  # limits raised, so that the messages are served rather than rate_limited
    "wssvc__connection_rate": "1000000", "wssvc__connection_burst": "1000000",
    "wssvc__user_rate": "1000000", "wssvc__user_burst": "1000000",
    "wssvc__max_in_flight": "100000", "wssvc__max_bad_messages": "100000",
    "worker__diagnostics": "false",  # test.sleep and test.broadcast answer unknown_type
}


# -- the oracle: which ref the one reply to a message must carry ------------------------------

def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _numbers_ok(value: Any) -> bool:
    """JSON as wssvc reads it: finite numbers within a double's range."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return len(str(abs(value))) <= 308
    if isinstance(value, dict):
        return all(_numbers_ok(v) for v in value.values())
    if isinstance(value, list):
        return all(_numbers_ok(v) for v in value)
    return True


def _usable_id(mid: Any) -> bool:
    if isinstance(mid, str):
        return len(mid) <= 64 and not any(0xD800 <= ord(c) <= 0xDFFF for c in mid)
    return isinstance(mid, int) and not isinstance(mid, bool) and len(str(mid)) <= 64


def expected_ref(message: dict[str, Any], text: str, deep: int) -> Any:
    """The message's id, or None when wssvc cannot read one: too large, too deep, or numbers
    that are not JSON (checked before the id)."""
    too_large = len(text) > MAX_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES
    if too_large or max(_depth(message), 1 + deep) > DEPTH or not _numbers_ok(message):
        return None
    mid = message.get("id")
    return mid if _usable_id(mid) else None


def _not_an_object_with_an_id(text: str) -> bool:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return True
    return not (isinstance(value, dict) and "id" in value)


# -- the generators -------------------------------------------------------------------------

def strategies(ids: list[str], defaults: dict[str, Any]):
    small = st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
        st.sampled_from(NASTY_STRINGS), st.sampled_from(NASTY_NUMBERS), st.sampled_from(ids),
    )
    huge = st.tuples(st.text(min_size=1, max_size=3), st.sampled_from([20_000, 400_000])).map(
        lambda t: t[0] * t[1])  # up to 1.2 M characters: some messages are over the limit
    scalars = st.integers(0, 200).flatmap(lambda n: huge if n == 0 else small)
    values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(FIELDS) | st.text(max_size=8), inner, max_size=3), max_leaves=5)

    @st.composite
    def mutated_data(draw, kind: str | None = None):
        """Valid data for a source or calculation with a few keys made wrong."""
        kind = kind or draw(st.sampled_from(["source", "calculation"]))
        data = copy.deepcopy(defaults[kind])
        for _ in range(draw(st.integers(1, 3))):
            target = data
            while isinstance(target, dict) and target and draw(st.booleans()):
                key = draw(st.sampled_from(sorted(target)))
                if not isinstance(target[key], dict):
                    break
                target = target[key]
            if isinstance(target, dict):
                key = draw(st.sampled_from(sorted(target) + ["extra"])) if target else "x"
                target[key] = draw(values)
        return data

    @st.composite
    def edit(draw):
        """An add or edit of a real source or calculation (alice's or bob's) whose data is
        valid but for a few keys: past the id checks, into validation and the engine."""
        kind, verb = draw(st.sampled_from(["source", "calculation"])), draw(
            st.sampled_from(["add", "edit"]))
        user = 4 * draw(st.integers(0, 1))
        message = {"type": f"{kind}.{verb}", kind: ids[KINDS.index(kind) + user],
                   "data": draw(mutated_data(kind)), "name": draw(st.text(max_size=8))}
        if kind == "calculation":
            message["scene"] = ids[2 + user]
        return message

    @st.composite
    def request(draw):
        """(message, deep): a JSON object; ``deep`` levels of arrays are appended as one more
        field when the text is written (json.dumps cannot write thousands of levels)."""
        if draw(st.integers(0, 3)) == 0:
            return draw(edit()), None, 0
        message = draw(st.dictionaries(st.sampled_from(FIELDS), values, max_size=4))
        message["type"] = draw(st.sampled_from(TYPES) | values.filter(lambda v: v != "pong"))
        kind = str(message["type"]).split(".")[0]
        if kind in KINDS and draw(st.booleans()):  # reach past the id checks, often
            message[kind] = ids[KINDS.index(kind) + 4 * draw(st.integers(0, 1))]
            if kind == "calculation" and draw(st.booleans()):
                message["scene"] = ids[2 + 4 * draw(st.integers(0, 1))]
        if draw(st.integers(0, 4)) == 0:
            message["data"] = draw(mutated_data())
        message.pop("id", None)
        bad_id = draw(st.sampled_from([None] * 40 + ["absent", [], True, 1.5, "x" * 65,
                                                     "\ud83d", {"a": 1}, 10**70]))
        deep = draw(st.sampled_from([0] * 30 + [DEPTH - 2, DEPTH, 1_000, 5_000]))
        return message, bad_id, deep

    garbage = st.one_of(
        st.text(max_size=60),
        st.sampled_from(["[]", "null", "1", '"x"', "{", '{"id":', "[" * 5000, "{}" * 3,
                         '{"id": NaN, "type": "echo"}', "\x00", "", " " * 10]),
        st.binary(max_size=40),
    ).filter(lambda t: isinstance(t, bytes) or _not_an_object_with_an_id(t))
    return request(), garbage


def write(message: dict[str, Any], deep: int, ascii_only: bool) -> str:
    text = json.dumps(message, ensure_ascii=ascii_only)
    if deep:
        text = text[:-1] + ', "deep": ' + "[" * deep + "]" * deep + "}"
    try:
        text.encode()
    except UnicodeEncodeError:  # a websocket text frame is UTF-8: surrogates go escaped
        return write(message, deep, True)
    return text


# -- the run --------------------------------------------------------------------------------

class Fuzzer:
    def __init__(self, chain: Chain, clients: list) -> None:
        self.chain = chain
        self.clients = clients
        self.sent = 0
        self.n = 0
        self.failures: list[str] = []

    async def batch(self, items: list[Sent]) -> None:
        """Send each (client, text, expected ref) and check that each gets exactly one reply."""
        expected: list[dict[Any, str]] = [{} for _ in self.clients]
        nulls: list[list[str]] = [[] for _ in self.clients]
        for who, text, ref in items:
            await self.clients[who].send(text)
            (nulls[who].append(text) if ref is None else expected[who].__setitem__(ref, text))
        self.sent += len(items)
        await asyncio.gather(*(self._collect(c, expected[i], nulls[i])
                               for i, c in enumerate(self.clients)))

    async def _collect(self, client, expected: dict[Any, str], nulls: list[str]) -> None:
        waiting, null_left = dict(expected), len(nulls)
        while waiting or null_left:
            try:
                reply = await client.recv(timeout=90)
            except TimeoutError:
                raise AssertionError(f"no reply to {len(waiting)} + {null_left} (null ref)"
                                     f" messages, e.g. {_short(waiting or nulls)}") from None
            if "ref" not in reply:
                continue  # a broadcast to this client
            ref = reply["ref"]
            if ref is None:
                null_left -= 1
                assert null_left >= 0, f"an extra reply with ref null: {reply}"
                source = nulls[0] if nulls else "?"
            else:
                assert ref in waiting, f"a reply to nothing sent or a second one: {reply}"
                source = waiting.pop(ref)
            if reply.get("code") in ("internal", "worker_lost"):
                self.failures.append(f"{reply.get('code')}: {_short(source)} -> {reply}")
        alive = [p.name for p in self.chain.procs if p.popen.poll() is not None]
        assert not alive, f"{alive} exited; suspects: {self.failures}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 300 else text[:300] + f"… ({len(text)} chars)"


@pytest.fixture(scope="module")
def loop():
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def _run(loop, coro, timeout: float = 600):
    return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)


async def _setup(chain: Chain):
    """Alice (a list socket and a workbook socket) and bob (his workbook), each with a
    source, a scene and a calculation; the ids of all of them for the generators."""
    clients, ids, defaults = [], [], {}
    for user in ("alice", "bob"):
        lister = await chain.connect(user)
        wb = (await lister.request("workbook.create", name=f"{user}'s"))["workbook"]["id"]
        one = await chain.connect(user, workbook=wb)
        defaults = (await one.request("workbook.open"))["defaults"]
        source = (await one.request("source.add", name="s", data=defaults["source"]))["item"]
        scene = (await one.request("scene.add", name="f", data={"sources": [
            {"source_id": source["id"], "offset_x_arcsec": 0.0, "offset_y_arcsec": 0.0}]}
        ))["item"]
        calc = (await one.request("calculation.add", name="c", scene=scene["id"],
                                  data=defaults["calculation"], timeout=60))["item"]
        ids += [wb, source["id"], scene["id"], calc["id"]]
        clients += [lister, one] if user == "alice" else [one]
    return clients, ids, defaults


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")
def test_ten_thousand_hostile_messages_break_nothing(tmp_path, loop):
    chain = Chain(tmp_path, **SETTINGS)
    chain.start_all(workers=2)
    try:
        clients, ids, defaults = _run(loop, _setup(chain))
        fuzzer = Fuzzer(chain, clients)
        requests, garbage = strategies(ids, defaults)

        @st.composite
        def item(draw):
            who = draw(st.integers(0, 2))
            if draw(st.integers(0, 9)) == 0:
                return Sent(who, draw(garbage), None)
            sent = _request_item(fuzzer, who, draw(requests), draw(st.booleans()))
            if len(sent.text) > 3 * MAX_BYTES:  # Hypercorn closes with 1009: test_wssvc_edge
                return Sent(who, "x" * (MAX_BYTES + 1), None)
            return sent

        @settings(max_examples=MESSAGES // BATCH + 20, deadline=None, database=None,
                  phases=[Phase.explicit, Phase.generate], derandomize=False,
                  suppress_health_check=list(HealthCheck))
        @given(st.lists(item(), min_size=BATCH, max_size=BATCH))
        def run_batch(items):
            _run(loop, fuzzer.batch(items))

        rounds = 0
        while fuzzer.sent < MESSAGES:
            (run_batch if RANDOM else seed(SEED + rounds)(run_batch))()
            rounds += 1
        assert not fuzzer.failures, "\n".join(fuzzer.failures[:20])
    finally:
        chain.stop()


class Sent(NamedTuple):
    who: int  # which client sends it
    text: str | bytes
    ref: Any  # the ref its one reply must carry

    def __repr__(self) -> str:  # failing batches are printed: keep huge texts short
        return f"Sent({self.who}, {_short(self.text)}, ref={self.ref!r})"


def _request_item(fuzzer: Fuzzer, who: int, request, ascii_only: bool) -> Sent:
    message, bad_id, deep = request
    fuzzer.n += 1
    if bad_id is None:
        message = {"id": f"f{fuzzer.n}", **message}
    elif bad_id != "absent":
        message = {"id": bad_id, **message}
    text = write(message, deep, ascii_only)
    return Sent(who, text, expected_ref(message, text, deep))


# -- the sweep: every field of every request type, with each wrong JSON type ------------------

SWEEP_FIELDS = FIELDS  # every key a handler reads (grep message.get / ident in worker/)
WRONG = [[], {}, None, 1.5, -1, True, "x", ["x"], {"a": 1}]


def _sweep_base(mtype: str, ids: list[str], defaults: dict[str, Any]) -> dict[str, Any]:
    """A message of ``mtype`` that names alice's real items (so that a wrong field is met past
    the id checks); a delete names nothing, so that the sweep keeps its items."""
    if mtype.endswith(".delete"):
        return {"type": mtype}
    kind = mtype.split(".")[0]
    base = {"type": mtype, "workbook": ids[0], "source": ids[1], "scene": ids[2],
            "calculation": ids[3], "calculations": [ids[3]], "name": "n"}
    if kind in ("source", "calculation"):
        base["data"] = copy.deepcopy(defaults[kind])
    return base


@pytest.mark.slow
def test_every_field_of_every_type_with_a_wrong_type(tmp_path, loop):
    """Deterministic where the fuzz above is random: each request type, each field any handler
    reads, each wrong JSON type (a list where a string belongs once made `internal`)."""
    chain = Chain(tmp_path, **SETTINGS, wssvc__client_queue="100000",
                  quotas__items_per_workbook="12")  # few calculations to recompute
    chain.start_all(workers=2)
    try:
        clients, ids, defaults = _run(loop, _setup(chain))
        fuzzer = Fuzzer(chain, clients[1:2])  # alice's workbook socket
        items = []
        for mtype in sorted(REQUEST_TYPES - {"test.sleep", "test.broadcast"}):
            base = _sweep_base(mtype, ids, defaults)
            for field in SWEEP_FIELDS:
                for value in WRONG:
                    fuzzer.n += 1
                    message = {**base, field: value, "id": f"s{fuzzer.n}"}
                    items.append(Sent(0, json.dumps(message), message["id"]))
        for start in range(0, len(items), BATCH):
            _run(loop, fuzzer.batch(items[start:start + BATCH]))
        assert not fuzzer.failures, "\n".join(fuzzer.failures[:20])
    finally:
        chain.stop()
