"""The worker's dispatch and storage, in-process: nothing a request holds makes the worker
raise, and results are stored only for the revision they were computed from."""

from __future__ import annotations

import json

from etckit.config import load
from etckit.messaging.protocol import dumps
from etckit.storage import workbooks as wb
from etckit.worker.dispatch import HandlerError, handle

CFG = load(None, environ={"ETCKIT_QUOTAS__REPLY_MAX_BYTES": "4096"})
WHO = dumps({"client": "c1", "user": "alice", "workbook": None})


async def _echo(ctx, message):
    ctx.reply({"type": "echo", "data": message.get("data")})


async def _boom(ctx, message):
    raise RuntimeError("a bug")


async def _refuse(ctx, message):
    raise HandlerError("quota", "too many", limit="quotas.x", value=3)


async def _huge(ctx, message):
    ctx.reply({"type": "big", "data": "x" * 10_000})


HANDLERS = {"echo": _echo, "boom": _boom, "refuse": _refuse, "huge": _huge}


def _message(reply):
    return json.loads(reply[1])


async def _run(message: bytes | dict, who: bytes = WHO):
    text = message if isinstance(message, bytes) else dumps(message)
    return await handle(None, CFG, [who, text], handlers=HANDLERS)


async def test_a_lone_surrogate_is_echoed_without_failing_to_encode():
    reply, _ = await _run(b'{"id": "\\ud83d", "type": "echo", "data": "\\udc00"}')
    assert _message(reply) == {"type": "echo", "data": "\udc00", "ref": "\ud83d"}


async def test_a_type_that_is_not_a_string_is_unknown_type():
    for odd in ([], {}, 1, None, True):
        reply, _ = await _run({"id": 1, "type": odd})
        assert _message(reply)["code"] == "unknown_type"


async def test_deep_json_in_a_request_frame_is_dropped_not_a_crash():
    deep = b'{"id": 1, "type": "echo", "data": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    reply, followups = await _run(deep)
    assert reply is None and followups == []
    reply, _ = await _run({"id": 1, "type": "echo"}, who=b"[" * 5000 + b"]" * 5000)
    assert reply is None


async def test_malformed_bodies_are_dropped():
    for who in (b"not json", b"[]", dumps({"client": 1, "user": "a"}), dumps({"client": "c"})):
        assert (await _run({"id": 1, "type": "echo"}, who=who))[0] is None


async def test_a_bug_answers_internal_and_a_refusal_keeps_its_fields():
    assert _message((await _run({"id": 7, "type": "boom"}))[0])["code"] == "internal"
    refused = _message((await _run({"id": 8, "type": "refuse"}))[0])
    assert refused == {"type": "error", "code": "quota", "message": "too many", "ref": 8,
                       "limit": "quotas.x", "value": 3}


async def test_a_reply_over_the_size_limit_is_refused_too_large():
    error = _message((await _run({"id": 9, "type": "huge"}))[0])
    assert error["code"] == "too_large" and error["limit"] == "quotas.reply_max_bytes"


async def test_a_result_computed_from_an_old_revision_is_not_stored(db):
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO users (id, issuer, subject, kind, created_at)"
                         " VALUES ('u', 't', 'u', 'fake', 0)")
        await wb.insert_workbook(tx, {"id": "w", "name": "W", "description": "",
                                      "created_at": 0, "updated_at": 0}, "u")
        await wb.insert_item(tx, "scene", "s", "w", "S", {"sources": []})
        await wb.insert_item(tx, "calculation", "c", "w", "C", {}, scene="s")
        row = await wb.item(tx, "calculation", "c")
    async with db.transaction() as tx:  # the inputs change while it is being computed
        await wb.mark_pending(tx, ["c"])
    async with db.transaction() as tx:
        assert not await wb.store_result(tx, "c", row["revision"], "ok", "{}", "")
        assert await wb.store_result(tx, "c", row["revision"] + 1, "ok", '{"snr": 1}', "")
        assert (await wb.item(tx, "calculation", "c"))["result"] == '{"snr": 1}'


async def test_a_read_transaction_does_not_hold_sqlites_write_lock(tmp_path):
    from etckit.storage import open_database, upgrade

    url = f"sqlite:///{tmp_path / 'x.db'}"
    async with open_database(url, busy_timeout=0.5) as reader, \
            open_database(url, busy_timeout=0.5) as writer:
        await upgrade(writer)
        async with reader.read() as tx:
            await tx.fetchall("SELECT * FROM workbooks")
            # another process's writer is not kept waiting by the open read
            await writer.execute("INSERT INTO users (id, issuer, subject, kind, created_at)"
                                 " VALUES ('u', 't', 'u', 'fake', 0)")
