"""Checks of the fields of browser messages, shared by the handlers; each failure is a
HandlerError naming the field."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from ...storage import spectra
from ...storage import workbooks as wb
from .. import rights
from ..dispatch import Context, HandlerError

ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def ident(message: dict[str, Any], field: str) -> str:
    """An item id: 1-64 letters, digits, '-' or '_'."""
    value = message.get(field)
    if not isinstance(value, str) or not ID_RE.match(value):
        raise HandlerError("invalid", f"{field} must be an id (1 to 64 letters, digits, - or _)",
                           field=field)
    return value


def text(value: Any, field: str, *, limit: int, required: bool) -> str:
    """A name or description: a string without control characters, stripped, at most limit
    characters (and not empty when required)."""
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise HandlerError("invalid", f"{field} must be a string", field=field)
    if CONTROL_RE.search(value.replace("\n", "").replace("\t", "")):
        raise HandlerError("invalid", f"{field} must not hold control characters", field=field)
    value = value.strip()
    if required and not value:
        raise HandlerError("invalid", f"{field} must not be empty", field=field)
    if len(value) > limit:
        raise HandlerError("invalid", f"{field} is longer than {limit} characters",
                           field=field)
    return value


def name(ctx: Context, value: Any, field: str = "name") -> str:
    return text(value, field, limit=ctx.cfg.quotas.name_max, required=True)


def data(message: dict[str, Any], field: str = "data") -> dict[str, Any]:
    value = message.get(field)
    if not isinstance(value, dict):
        raise HandlerError("invalid", f"{field} must be an object", field=field)
    return value


def workbook_of(ctx: Context, message: dict[str, Any]) -> str:
    """The workbook named by the message, else the one the socket was opened for."""
    if "workbook" in message:
        return ident(message, "workbook")
    if ctx.workbook is None or not ID_RE.match(ctx.workbook):
        raise HandlerError("invalid", "workbook must be a workbook id (open one first)",
                           field="workbook")
    return ctx.workbook


async def owned_workbook(tx, ctx: Context, workbook: str) -> dict[str, Any]:
    """The workbook (with the user's `access`) if the user's right on it covers this
    message type (worker/rights.py); else `not_found` or `forbidden`."""
    return await rights.check(tx, ctx, workbook)


async def owned_item(tx, ctx: Context, kind: str, item: str) -> dict[str, Any]:
    """The item if the user's right on its workbook covers this message type; else
    `no <kind> <id>` and nothing more (or `forbidden` to a user who may see it)."""
    row = await wb.item(tx, kind, item)
    if row is None:
        raise HandlerError("not_found", f"no {kind} {item}")
    await rights.check(tx, ctx, row["workbook_id"], missing=f"no {kind} {item}")
    return row


async def hold_quota(tx, counter: str, of: str) -> None:
    """Serialize the checks of one quota's count (`counter` of a user or a workbook) until the
    transaction ends, so that two requests at once cannot both see room for the last one (on
    PostgreSQL each counted before the other inserted; on SQLite the write lock already
    serializes). Taken before counting; a transaction takes an ``items`` lock before a
    ``user`` one, never the other way round."""
    key = hashlib.sha256(f"quota {counter} {of}".encode()).digest()[:8]
    await tx.lock(int.from_bytes(key, "big", signed=True))


async def hold_items(tx, workbook: str) -> None:
    """Serialize what counts a workbook's items or checks the references between them (a
    scene placing a source, a calculation naming a scene) against their deletion, until the
    transaction ends: the ``items`` lock of hold_quota."""
    await hold_quota(tx, "items", workbook)


def quota(key: str, value: int, what: str) -> HandlerError:
    return HandlerError("quota", f"{what}: the limit is {value} (quotas.{key})",
                        limit=f"quotas.{key}", value=value)


async def room_for_points(tx, ctx: Context, owner: str, more: int) -> None:
    """Uploaded spectra may hold at most quotas.spectrum_points_per_user points across the
    workbooks one user owns (an upload or a copy adding ``more`` points must fit)."""
    limit = ctx.cfg.quotas.spectrum_points_per_user
    if more:
        await hold_quota(tx, "user", owner)
    if more and await spectra.points_of_owner(tx, owner) + more > limit:
        raise quota("spectrum_points_per_user", limit,
                    "the uploaded spectra of your workbooks would hold more points than "
                    "allowed")


def copy_name(ctx: Context, original: str) -> str:
    """The name of a copy (of a workbook or an item), cut to quotas.name_max."""
    return ("Copy of " + original)[:ctx.cfg.quotas.name_max]


REVISION_MAX = 2**53  # what a browser's number holds exactly


def base_revision(message: dict[str, Any], *, required: bool = True) -> int | None:
    """The item revision an edit was made from (`base_revision`): a whole number ≥ 1."""
    value = message.get("base_revision")
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= REVISION_MAX:
        raise HandlerError("invalid", "base_revision must be the item_revision the edit was"
                           " made from (a whole number from 1)", field="base_revision")
    return value


def conflict(kind: str, item_id: str, base: int, current: dict[str, Any]) -> HandlerError:
    """A stale edit: refused, with the item as it is now (`item`)."""
    return HandlerError("conflict", f"{kind} {item_id} was changed since revision {base} (now"
                        f" {current['item_revision']}); nothing was saved: keep yours by"
                        " sending it again with the new base_revision, or take the other",
                        item=current)
