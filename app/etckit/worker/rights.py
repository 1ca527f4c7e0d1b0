"""Who may send which message about a workbook: the one check every handler goes through.

A user's right on a workbook is one of storage.shares.RIGHTS: ``none`` < ``read`` <
``write`` < ``grant`` < ``owner``. REQUIRED names, for every request type a worker handles,
the right it needs on the workbook it touches (None: it touches no workbook of anyone else's,
e.g. ``workbook.create``). ``check`` is the one function that compares them: a user without
any right (or a workbook that does not exist) gets ``not_found``, exactly as for a workbook
that does not exist; a user who can see the workbook but whose right is too weak gets
``forbidden``. tests/test_rights.py runs every right against every type.
"""

from __future__ import annotations

from typing import Any

from ..messaging.types import READ_TYPES, REQUEST_TYPES
from ..storage import shares
from .dispatch import Context, HandlerError

_KINDS = ("source", "scene", "calculation")

# what changes the workbook (its items, its results, its spectra)
WRITE_TYPES = frozenset({
    "workbook.recalculate",
    "calculation.expand",
    *(f"{kind}.{verb}" for kind in _KINDS for verb in ("add", "edit", "copy", "delete")),
    "spectrum.upload",
    "spectrum.delete",
})
OWNER_TYPES = frozenset({"workbook.rename", "workbook.delete"})
GRANT_TYPES = frozenset({"workbook.share", "workbook.unshare"})
# change only the sender's own data, reading the workbook they name
READ_TO_OWN = frozenset({"workbook.copy", "folder.move", "workbook.leave"})
# touch no workbook but the sender's own (or none at all)
NO_WORKBOOK = frozenset({"echo", "test.sleep", "test.broadcast", "workbook.list",
                         "workbook.create", "workbook.import", "folder.create",
                         "folder.rename", "folder.delete"})
# the worker's own follow-ups of a write (worker/dispatch.INTERNAL_TYPES; no browser can send
# one): authorized by the edit that asked for them, so an editor who leaves (or is revoked)
# before they run does not leave the calculations their edit made pending for good
FOLLOW_UPS = frozenset({"calculation.recalculate"})

REQUIRED: dict[str, str | None] = {
    # READ_TYPES also names wssvc's own types (ping, pong), which never reach a worker
    **{t: "read" for t in ((READ_TYPES & set(REQUEST_TYPES)) | READ_TO_OWN) - NO_WORKBOOK},
    **{t: "write" for t in WRITE_TYPES},
    **{t: "owner" for t in OWNER_TYPES},
    **{t: "grant" for t in GRANT_TYPES},
    **{t: None for t in NO_WORKBOOK | FOLLOW_UPS},
}
assert not (set(REQUEST_TYPES) - set(REQUIRED)), "a request type without a rule"


def needed(message_type: str) -> str:
    """The right a message type needs on a workbook it names (owner for an unknown type or
    one that should not name a workbook at all)."""
    return REQUIRED.get(message_type) or "owner"


async def check(tx: Any, ctx: Context, workbook: str, *, missing: str = "") -> dict[str, Any]:
    """The workbook row (with the user's ``access``) if the user's right on it covers
    ctx.message_type; else ``not_found`` (no right at all; the message names `missing`, by
    default the workbook) or ``forbidden`` (a weaker right than the type needs)."""
    right, row = await shares.right_on(tx, ctx.user, workbook)
    if row is None or right == "none":
        raise HandlerError("not_found", missing or f"no workbook {workbook}")
    need = needed(ctx.message_type)
    if not shares.at_least(right, need):
        raise HandlerError("forbidden", f"{ctx.message_type or 'this request'} needs the"
                           f" {need} right on workbook {workbook}; you have {right}")
    return {**row, "access": right}
