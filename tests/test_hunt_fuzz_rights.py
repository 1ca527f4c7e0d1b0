"""Valid messages of every type with one field made hostile, sent by every right (owner,
grant, write, read, none) through the worker's dispatch in-process, on SQLite: no reply is
`internal`, and a user without a right on the workbook hears only `not_found` or `invalid`
(never `forbidden`, which would tell her it exists).

tests/test_fuzz_chain.py sends random messages through the whole chain; these start from a
message that would succeed (test_rights.messages) so that a mutation reaches the handler's
later checks (rights, quotas, the engine, the sandbox) instead of its first field check."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_rights import USERS, messages, send, users, workbook  # noqa: F401 (a fixture)

NASTY = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=80), st.sampled_from(["", " ", "$x^^$", "_", "..", "\x00", "a" * 65,
                                           "read", "owner", "grant", "o", "x", "anon"]),
    st.lists(st.text(max_size=8), max_size=10),
    st.dictionaries(st.text(max_size=8), st.integers(), max_size=4),
)
EXAMPLES = int(os.environ.get("HUNT_EXAMPLES", "400"))

CHUNK = 30  # messages per fresh workbook: the deletes among them leave the rest less to do


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_one_hostile_field_in_a_valid_message_is_never_internal(db, users):  # noqa: F811
    types = sorted(t for t in messages(await workbook(db, users))
                   if t not in ("workbook.delete", "workbook.leave"))
    cases: list[tuple] = []

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(kind=st.sampled_from(types), who=st.sampled_from(sorted(USERS)),
           pick=st.integers(0, 20), value=NASTY)
    def case(kind, who, pick, value):
        cases.append((kind, users[USERS[who]], pick, value))

    case()
    for n, (kind, user, pick, value) in enumerate(cases):
        if n % CHUNK == 0:
            f = await workbook(db, users)
            templates = messages(f)
        message = dict(templates[kind])
        keys = sorted(k for k in message if k != "type") + ["extra"]
        message[keys[pick % len(keys)]] = value
        reply = await send(db, user, message)
        if reply is None:
            continue
        assert reply.get("code") != "internal", (message, reply)
        if user == users["n"] and reply["type"] == "error":
            assert reply["code"] in ("not_found", "invalid"), (message, reply)

