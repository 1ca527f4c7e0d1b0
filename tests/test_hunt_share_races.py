"""A share revoked (or left) while its recipient files the workbook into a folder, on SQLite
and PostgreSQL, in-process through the worker's dispatch (tests/test_rights.py's harness).

folder.move checked the user's right on the workbook before it took the workbook's lock; on
PostgreSQL an unshare could commit in between (it takes the same lock), and the move then
placed the workbook in the folder of a user who no longer had it: a placing nobody could see
or move out, so that folder could never be deleted (`in_use` for good). The right is checked
again under the lock now, and workbook.leave takes the lock too."""

from __future__ import annotations

import asyncio

import pytest

from etckit.storage import shares
from tests.test_rights import ok, send, users  # noqa: F401 (a fixture)


@pytest.mark.parametrize("ender", ["unshare", "leave"])
async def test_a_placing_racing_the_end_of_its_share_leaves_no_stuck_folder(
        db, users, monkeypatch, ender):  # noqa: F811
    o, r = users["o"], users["r"]
    book = (await ok(db, o, {"type": "workbook.create", "name": "Shared"}))["workbook"]["id"]
    await ok(db, o, {"type": "workbook.share", "workbook": book, "user": "r", "access": "read"})
    box = (await ok(db, r, {"type": "folder.create", "name": "Box"}))["folder"]["id"]
    real = shares.unshare

    async def unshared_then_slow(*args):  # the share is gone, not yet committed, a moment
        done = await real(*args)
        await asyncio.sleep(0.3)
        return done

    monkeypatch.setattr(shares, "unshare", unshared_then_slow)
    end = ({"type": "workbook.unshare", "workbook": book, "user": "r"}, o) if ender == "unshare" \
        else ({"type": "workbook.leave", "workbook": book}, r)

    async def move_meanwhile() -> dict:
        await asyncio.sleep(0.1)
        return await send(db, r, {"type": "folder.move", "workbook": book, "folder": box})

    ended, moved = await asyncio.gather(send(db, end[1], end[0]), move_meanwhile())
    assert ended["type"] != "error", ended
    assert moved["type"] == "workbook.moved" or moved["code"] == "not_found", moved
    assert await db.fetchval("SELECT COUNT(*) FROM folder_entries") == 0
    deleted = await send(db, r, {"type": "folder.delete", "folder": box})
    assert deleted["type"] == "folder.deleted", deleted
