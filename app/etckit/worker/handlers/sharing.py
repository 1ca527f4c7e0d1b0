"""Sharing a workbook with other users (read, write, grant) and revoking; folders of the
Workbook List (per user). The right each type needs is worker/rights.py's; docs/workbooks.md
("Sharing", "Folders") says what each right allows.

A `grant` share may share onward with any right up to its own (read, write or grant) and
revoke the shares it granted itself; only the owner changes or revokes anyone else's.
Anonymous users can neither share nor be shared with. A revoked user's open workbook socket is
closed by wssvc (4004), which polls the rights behind its sockets (wssvc/sessions.py).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from ...storage import shares
from ..dispatch import Context, HandlerError, handler
from .fields import hold_items, hold_quota, ident, name, owned_workbook, text

FOLDERS_MAX = 100  # folders per user (quota `folders_per_user`)
WHO_MAX = 254  # the longest name or e-mail a share may name


def list_view(row: dict[str, Any]) -> dict[str, Any]:
    """A workbook as the Workbook List shows it to one user: their right on it (`access`),
    its owner's name, whether it is shared with them, and their folder for it."""
    return {**{k: row[k] for k in ("id", "name", "description", "created_at", "updated_at",
                                    "item_revision", "edited_by", "access")},
            "owner": row["owner_name"] or row["owner_email"] or row["owner_id"],
            "shared": row["access"] != "owner", "folder": row["folder_id"]}


def share_view(row: dict[str, Any]) -> dict[str, Any]:
    return {"user": row["user_id"], "name": row["display_name"] or row["email"] or row["user_id"],
            "email": row["email"], "access": row["access"], "granted_by": row["granted_by"],
            "granted_at": row["granted_at"]}


async def _kind(tx, user: str) -> str:
    return await tx.fetchval("SELECT kind FROM users WHERE id = :id", {"id": user}) or ""


async def _recipient(tx, ctx: Context, message: dict[str, Any], owner: str) -> str:
    """The user a share names (`user`: a name or e-mail, or a user id from
    workbook.shares)."""
    who = text(message.get("user"), "user", limit=WHO_MAX, required=True)
    found = await shares.find_user(tx, who)
    if not found and await _kind(tx, who):
        found = [{"id": who, "kind": await _kind(tx, who)}]
    if not found:
        raise HandlerError("not_found", f"no user {who}")
    if len(found) > 1:
        raise HandlerError("invalid", f"user: {len(found)} users are called {who!r}; name"
                           " one by e-mail", field="user")
    target = found[0]
    if target["kind"] == "anonymous":
        raise HandlerError("invalid", "user: anonymous users cannot be shared with",
                           field="user")
    if target["id"] in (owner, ctx.user):
        raise HandlerError("invalid", "user: that is the owner or yourself", field="user")
    return target["id"]


async def _sharer(tx, ctx: Context, workbook: str) -> dict[str, Any]:
    """The workbook, if this user may change its shares (the central check, and not
    anonymous); held (its items lock) so that it is not deleted before the share is written."""
    row = await owned_workbook(tx, ctx, workbook)
    await hold_items(tx, workbook)
    if await _kind(tx, ctx.user) == "anonymous":
        raise HandlerError("forbidden", "anonymous users cannot share workbooks: log in"
                           " with an account first")
    return row


def _may_change(row: dict[str, Any], existing: dict[str, Any] | None, ctx: Context) -> None:
    if existing is not None and row["access"] != "owner" and existing["granted_by"] != ctx.user:
        raise HandlerError("forbidden", "only the owner or the user who granted it may change"
                           " or revoke that share")


@handler("workbook.share")
async def share(ctx: Context, message: dict[str, Any]) -> None:
    workbook = ident(message, "workbook")
    access = message.get("access")
    if access not in shares.ACCESS:
        raise HandlerError("invalid", "access must be read, write or grant", field="access")
    async with ctx.db.transaction() as tx:
        row = await _sharer(tx, ctx, workbook)
        target = await _recipient(tx, ctx, message, row["owner_id"])
        _may_change(row, await shares.share_of(tx, workbook, target), ctx)
        await shares.share(tx, workbook, target, access, ctx.user)
        listed = [r for r in await shares.shares_of(tx, workbook) if r["user_id"] == target]
        view = [r for r in await shares.visible_to(tx, target) if r["id"] == workbook]
    ctx.reply({"type": "workbook.shared", "workbook": workbook, "share": share_view(listed[0])})
    ctx.to_user({"type": "workbook.updated", "workbook": list_view(view[0])}, user=target)


@handler("workbook.unshare")
async def unshare(ctx: Context, message: dict[str, Any]) -> None:
    workbook = ident(message, "workbook")
    async with ctx.db.transaction() as tx:
        row = await _sharer(tx, ctx, workbook)
        target = await _recipient(tx, ctx, message, row["owner_id"])
        existing = await shares.share_of(tx, workbook, target)
        if existing is None:
            raise HandlerError("not_found", f"no share of workbook {workbook} with that user")
        _may_change(row, existing, ctx)
        await shares.unshare(tx, workbook, target)
    ctx.reply({"type": "workbook.unshared", "workbook": workbook, "user": target})
    ctx.to_user({"type": "workbook.deleted", "workbook": workbook}, user=target)


@handler("workbook.leave")
async def leave(ctx: Context, message: dict[str, Any]) -> None:
    """A recipient gives up their share of someone else's workbook (any right may; the
    shares they granted onward stay, as when a granter is revoked). Their other sockets drop
    it from the list; an open workbook socket of theirs is closed 4004 by wssvc's poll."""
    workbook = ident(message, "workbook")
    async with ctx.db.transaction() as tx:
        row = await owned_workbook(tx, ctx, workbook)
        if row["access"] == "owner":
            raise HandlerError("invalid", "workbook: you own it; delete it instead of leaving",
                               field="workbook")
        await hold_items(tx, workbook)  # a folder.move of hers waits, then finds no share
        await shares.unshare(tx, workbook, ctx.user)
    ctx.reply({"type": "workbook.left", "workbook": workbook})
    ctx.to_user({"type": "workbook.deleted", "workbook": workbook}, except_sender=True)


@handler("workbook.shares")
async def list_shares(ctx: Context, message: dict[str, Any]) -> None:
    workbook = ident(message, "workbook")
    async with ctx.db.read() as tx:
        row = await owned_workbook(tx, ctx, workbook)
        rows = await shares.shares_of(tx, workbook)
    ctx.reply({"type": "workbook.shares", "workbook": workbook, "access": row["access"],
               "shares": [share_view(r) for r in rows]})


# -- folders --------------------------------------------------------------------------------

def folder_view(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "name": row["name"], "created_at": row["created_at"]}


async def _folder(tx, ctx: Context, message: dict[str, Any]) -> dict[str, Any]:
    folder_id = ident(message, "folder")
    row = await shares.folder(tx, ctx.user, folder_id)
    if row is None:
        raise HandlerError("not_found", f"no folder {folder_id}")
    return row


def _tell(ctx: Context, event: dict[str, Any]) -> None:
    ctx.reply(event)
    ctx.to_user(event, except_sender=True)


@handler("folder.create")
async def create_folder(ctx: Context, message: dict[str, Any]) -> None:
    row = {"id": uuid.uuid4().hex, "name": name(ctx, message.get("name")),
           "created_at": time.time()}
    async with ctx.db.transaction() as tx:
        await hold_quota(tx, "user", ctx.user)
        if await shares.count_folders(tx, ctx.user) >= FOLDERS_MAX:
            raise HandlerError("quota", f"you have as many folders as allowed: the limit is"
                               f" {FOLDERS_MAX}", limit="folders_per_user", value=FOLDERS_MAX)
        await shares.insert_folder(tx, row, ctx.user)
    _tell(ctx, {"type": "folder.saved", "folder": folder_view(row)})


@handler("folder.rename")
async def rename_folder(ctx: Context, message: dict[str, Any]) -> None:
    title = name(ctx, message.get("name"))
    async with ctx.db.transaction() as tx:
        row = await _folder(tx, ctx, message)
        await shares.rename_folder(tx, ctx.user, row["id"], title)
    _tell(ctx, {"type": "folder.saved", "folder": folder_view({**row, "name": title})})


@handler("folder.delete")
async def delete_folder(ctx: Context, message: dict[str, Any]) -> None:
    async with ctx.db.transaction() as tx:
        await hold_quota(tx, "user", ctx.user)  # placings into it wait, or go first (move)
        row = await _folder(tx, ctx, message)
        held = await shares.folder_size(tx, row["id"])
        if held:
            raise HandlerError("in_use", f"folder {row['name']!r} holds {held} workbook(s):"
                               " move them out before deleting it")
        await shares.delete_folder(tx, ctx.user, row["id"])
    _tell(ctx, {"type": "folder.deleted", "folder": row["id"]})


@handler("folder.move")
async def move(ctx: Context, message: dict[str, Any]) -> None:
    """Put a workbook (one's own or one shared with one) into one of one's folders, or out
    of any folder (`folder`: null)."""
    workbook = ident(message, "workbook")
    async with ctx.db.transaction() as tx:
        await owned_workbook(tx, ctx, workbook)
        await hold_items(tx, workbook)  # not deleted before the placing is written
        await hold_quota(tx, "user", ctx.user)  # nor the folder (folder.delete takes it too)
        # again under the lock: a share ended meanwhile (unshare, leave) left no placing to
        # undo, and a placing nobody sees would keep its folder from being deleted
        await owned_workbook(tx, ctx, workbook)
        folder = None if message.get("folder") is None else (
            await _folder(tx, ctx, message))["id"]
        await shares.place(tx, ctx.user, workbook, folder)
    _tell(ctx, {"type": "workbook.moved", "workbook": workbook, "folder": folder})
