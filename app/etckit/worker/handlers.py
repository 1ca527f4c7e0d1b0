"""Message handlers: echo, diagnostics and the workbook list.

Every handler commits before it returns; the reply is sent only after that.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from .core import Context, HandlerError, handler

NAME_MAX = 200
DESCRIPTION_MAX = 5000


def _text(message: dict[str, Any], field: str, *, required: bool, limit: int) -> str:
    value = message.get(field)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise HandlerError("invalid", f"{field} must be a string")
    value = value.strip()
    if required and not value:
        raise HandlerError("invalid", f"{field} must not be empty")
    if len(value) > limit:
        raise HandlerError("invalid", f"{field} is longer than {limit} characters")
    return value


def _workbook_id(message: dict[str, Any]) -> str:
    value = message.get("workbook")
    if not isinstance(value, str) or not value or len(value) > 64:
        raise HandlerError("invalid", "workbook must be a workbook id (string)")
    return value


def workbook_view(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("id", "name", "description", "created_at", "updated_at")}


async def owned_workbook(tx, ctx: Context, workbook: str) -> dict[str, Any]:
    row = await tx.fetchone(
        "SELECT id, owner_id, name, description, created_at, updated_at FROM workbooks"
        " WHERE id = :id", {"id": workbook})
    if row is None or row["owner_id"] != ctx.user:  # another user's workbook does not exist
        raise HandlerError("not_found", f"no workbook {workbook}")
    return row


@handler("echo")
async def echo(ctx: Context, message: dict[str, Any]) -> None:
    """A round trip through the whole chain (used by the benchmark and health probes)."""
    ctx.reply({"type": "echo", "data": message.get("data")})


@handler("test.sleep")
async def sleep(ctx: Context, message: dict[str, Any]) -> None:
    """Diagnostics for fault-injection tests: hold the worker for a while."""
    if not ctx.cfg.worker.diagnostics:
        raise HandlerError("unknown_type", "no handler for type 'test.sleep'")
    seconds = message.get("seconds", 1)
    if not isinstance(seconds, int | float) or not 0 <= seconds <= 60:
        raise HandlerError("invalid", "seconds must be a number from 0 to 60")
    await asyncio.sleep(seconds)
    ctx.reply({"type": "test.slept", "seconds": seconds})


@handler("test.broadcast")
async def broadcast(ctx: Context, message: dict[str, Any]) -> None:
    """Diagnostics for tests of slow readers: send `count` messages of `size` bytes to the
    user's other clients."""
    if not ctx.cfg.worker.diagnostics:
        raise HandlerError("unknown_type", "no handler for type 'test.broadcast'")
    count, size = message.get("count", 1), message.get("size", 10)
    if not isinstance(count, int) or not 1 <= count <= 1000:
        raise HandlerError("invalid", "count must be an integer from 1 to 1000")
    if not isinstance(size, int) or not 1 <= size <= 1_000_000:
        raise HandlerError("invalid", "size must be an integer from 1 to 1000000")
    for i in range(count):
        ctx.to_user({"type": "test.noise", "n": i, "data": "x" * size}, except_sender=True)
    ctx.reply({"type": "test.broadcast", "count": count})


@handler("workbook.list")
async def list_workbooks(ctx: Context, message: dict[str, Any]) -> None:
    rows = await ctx.db.fetchall(
        "SELECT id, name, description, created_at, updated_at FROM workbooks"
        " WHERE owner_id = :user ORDER BY updated_at DESC, id", {"user": ctx.user})
    ctx.reply({"type": "workbook.list", "workbooks": [workbook_view(r) for r in rows]})


@handler("workbook.create")
async def create_workbook(ctx: Context, message: dict[str, Any]) -> None:
    name = _text(message, "name", required=True, limit=NAME_MAX)
    description = _text(message, "description", required=False, limit=DESCRIPTION_MAX)
    now = time.time()
    row = {"id": uuid.uuid4().hex, "name": name, "description": description,
           "created_at": now, "updated_at": now}
    async with ctx.db.transaction() as tx:
        await tx.execute(
            "INSERT INTO workbooks (id, owner_id, name, description, created_at, updated_at)"
            " VALUES (:id, :owner, :name, :description, :created_at, :updated_at)",
            {**row, "owner": ctx.user})
    ctx.reply({"type": "workbook.created", "workbook": row})
    ctx.to_user({"type": "workbook.created", "workbook": row}, except_sender=True)


@handler("workbook.rename")
async def rename_workbook(ctx: Context, message: dict[str, Any]) -> None:
    workbook = _workbook_id(message)
    name = _text(message, "name", required=True, limit=NAME_MAX)
    async with ctx.db.transaction() as tx:
        row = await owned_workbook(tx, ctx, workbook)
        row.update(name=name, updated_at=time.time())
        await tx.execute("UPDATE workbooks SET name = :name, updated_at = :t,"
                         " revision = revision + 1 WHERE id = :id",
                         {"name": name, "t": row["updated_at"], "id": workbook})
    event = {"type": "workbook.updated", "workbook": workbook_view(row)}
    ctx.reply(event)
    ctx.to_user(event, except_sender=True)


@handler("workbook.delete")
async def delete_workbook(ctx: Context, message: dict[str, Any]) -> None:
    workbook = _workbook_id(message)
    async with ctx.db.transaction() as tx:
        await owned_workbook(tx, ctx, workbook)
        await tx.execute("DELETE FROM workbooks WHERE id = :id", {"id": workbook})
    event = {"type": "workbook.deleted", "workbook": workbook}
    ctx.reply(event)
    ctx.to_user(event, except_sender=True)
