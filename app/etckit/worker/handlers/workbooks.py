"""The Workbook List: list, create, rename, delete, copy; and opening one workbook.

Reads use read transactions; each write is one short transaction, committed before the reply.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from ... import engine
from ...storage import shares, spectra
from ...storage import workbooks as wb
from ..dispatch import Context, handler
from .fields import (
    base_revision,
    conflict,
    copy_name,
    hold_items,
    hold_quota,
    ident,
    name,
    owned_workbook,
    quota,
    room_for_points,
    text,
    workbook_of,
)
from .sharing import folder_view, list_view
from .views import engine_view, item_view


def workbook_view(row: dict[str, Any]) -> dict[str, Any]:
    """A workbook with its `item_revision` (what a rename names as its `base_revision`)."""
    return {k: row[k] for k in ("id", "name", "description", "created_at", "updated_at",
                                "item_revision", "edited_by")}


@handler("workbook.list")
async def list_workbooks(ctx: Context, message: dict[str, Any]) -> None:
    """The user's workbooks and those shared with them (marked, with the owner), and the
    user's folders."""
    async with ctx.db.read() as tx:
        rows = await shares.visible_to(tx, ctx.user)
        folders = await shares.folders_of(tx, ctx.user)
    ctx.reply({"type": "workbook.list", "workbooks": [list_view(r) for r in rows],
               "folders": [folder_view(f) for f in folders]})


async def _tell_sharers(ctx: Context, tx, workbook: str, event: dict[str, Any]) -> None:
    """The users the workbook is shared with hear a change of it in their Workbook List."""
    for row in await shares.shares_of(tx, workbook):
        ctx.to_user(event, user=row["user_id"])


async def room_for_one_more(tx, ctx: Context) -> None:
    limit = ctx.cfg.quotas.workbooks_per_user
    await hold_quota(tx, "user", ctx.user)
    if await wb.count_for(tx, ctx.user) >= limit:
        raise quota("workbooks_per_user", limit, "you have as many workbooks as allowed")


def announce_created(ctx: Context, row: dict[str, Any]) -> None:
    event = {"type": "workbook.created", "workbook": workbook_view(row)}
    ctx.reply(event)
    ctx.to_user(event, except_sender=True)


@handler("workbook.create")
async def create_workbook(ctx: Context, message: dict[str, Any]) -> None:
    title = name(ctx, message.get("name"))
    description = text(message.get("description"), "description",
                       limit=ctx.cfg.quotas.description_max, required=False)
    now = time.time()
    row = {"id": uuid.uuid4().hex, "name": title, "description": description,
           "created_at": now, "updated_at": now, "item_revision": 1, "edited_by": ctx.user}
    async with ctx.db.transaction() as tx:
        await room_for_one_more(tx, ctx)
        await wb.insert_workbook(tx, row, ctx.user)
    announce_created(ctx, row)


@handler("workbook.rename")
async def rename_workbook(ctx: Context, message: dict[str, Any]) -> None:
    """A new name (and description, when given), if the workbook is still at base_revision."""
    workbook = ident(message, "workbook")
    title = name(ctx, message.get("name"))
    async with ctx.db.transaction() as tx:
        row = await owned_workbook(tx, ctx, workbook)
        base = base_revision(message)
        description = row["description"] if "description" not in message else text(
            message["description"], "description", limit=ctx.cfg.quotas.description_max,
            required=False)
        if row["item_revision"] != base or not await wb.rename(
                tx, workbook, title, description, time.time(), base_revision=base,
                user=ctx.user):
            raise conflict("workbook", workbook, base,
                           workbook_view(await owned_workbook(tx, ctx, workbook)))
        row = await owned_workbook(tx, ctx, workbook)
        event = {"type": "workbook.updated", "workbook": workbook_view(row)}
        await _tell_sharers(ctx, tx, workbook, event)
    ctx.reply(event)
    ctx.to_user(event, except_sender=True)


@handler("workbook.delete")
async def delete_workbook(ctx: Context, message: dict[str, Any]) -> None:
    workbook = ident(message, "workbook")
    async with ctx.db.transaction() as tx:
        await owned_workbook(tx, ctx, workbook)
        await hold_items(tx, workbook)  # an item being added lands first, and goes with it
        event = {"type": "workbook.deleted", "workbook": workbook}
        await _tell_sharers(ctx, tx, workbook, event)
        await wb.delete_workbook(tx, workbook)
    ctx.reply(event)
    ctx.to_user(event, except_sender=True)


@handler("workbook.copy")
async def copy_workbook(ctx: Context, message: dict[str, Any]) -> None:
    workbook = ident(message, "workbook")
    now = time.time()
    async with ctx.db.transaction() as tx:
        source = await owned_workbook(tx, ctx, workbook)
        await room_for_one_more(tx, ctx)
        await room_for_points(tx, ctx, ctx.user, await spectra.points_of(tx, workbook))
        new = {"id": uuid.uuid4().hex,
               "name": copy_name(ctx, source["name"]),
               "description": source["description"], "created_at": now, "updated_at": now,
               "item_revision": 1, "edited_by": ctx.user}
        await wb.insert_workbook(tx, new, ctx.user)
        await _copy_items(tx, workbook, new["id"], ctx.user)
    announce_created(ctx, new)


async def _copy_items(tx, workbook: str, into: str, user: str) -> None:
    """Every uploaded spectrum, source, scene and calculation, with new ids (sources point at
    the new spectra, scenes at the new sources)."""
    ids = await spectra.copy_all(tx, workbook, into, lambda: uuid.uuid4().hex)
    for kind in wb.KINDS:
        for row in await wb.items(tx, kind, workbook):
            ids[row["id"]] = uuid.uuid4().hex
            data = json.loads(row["data"])
            if kind == "scene":
                for p in data.get("sources", []):
                    p["source_id"] = ids.get(p.get("source_id"), p.get("source_id"))
            spectrum = data.get("spectrum") if kind == "source" else None
            if isinstance(spectrum, dict) and spectrum.get("spectrum_id") in ids:
                spectrum["spectrum_id"] = ids[spectrum["spectrum_id"]]
            await wb.insert_item(tx, kind, ids[row["id"]], into, row["name"], data,
                                 scene=ids.get(row.get("scene_id") or ""),
                                 result=row.get("result"), status=row.get("status", ""),
                                 error=row.get("error", ""), user=user,
                                 versions=(row.get("engine_version", ""),
                                           row.get("data_version", "")))


@handler("workbook.open")
async def open_workbook(ctx: Context, message: dict[str, Any]) -> None:
    workbook = workbook_of(ctx, message)
    async with ctx.db.read() as tx:
        row = await owned_workbook(tx, ctx, workbook)
        content = {k + "s": [item_view(k, r) for r in await wb.items(tx, k, workbook)]
                   for k in wb.KINDS}
    ctx.reply({"type": "workbook.content",
               "workbook": {**workbook_view(row), "access": row["access"]}, **content,
               "defaults": engine.defaults(), "catalog": engine.catalog(),
               "engine": engine_view()})
