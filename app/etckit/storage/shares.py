"""The SQL of sharing and folders: who may use a workbook, and where each user keeps it.

A workbook belongs to its owner (``workbooks.owner_id``); ``workbook_shares`` gives other
users a right on it (``read``, ``write`` or ``grant``), each share recording who granted it.
Folders are per user: ``folders`` are a user's, and ``folder_entries`` place a workbook (the
user's own or one shared with them) in one of that user's folders. Like storage/workbooks.py,
every function takes an open transaction and computes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from .base import Row, Transaction

ACCESS = ("read", "write", "grant")  # what a share gives, weakest first
RIGHTS = ("none", *ACCESS, "owner")  # what a user has on a workbook, weakest first
REVOKE_BATCH = 200  # workbooks per query of revoked


def at_least(right: str, needed: str) -> bool:
    """Whether `right` includes `needed` (both names from RIGHTS)."""
    return RIGHTS.index(right) >= RIGHTS.index(needed)


# -- rights ---------------------------------------------------------------------------------

async def right_on(tx: Transaction, user: str, workbook: str) -> tuple[str, Row | None]:
    """(the user's right on the workbook, the workbook row or None if it does not exist)."""
    row = await tx.fetchone(
        "SELECT w.id, w.owner_id, w.name, w.description, w.created_at, w.updated_at,"
        " w.item_revision, w.edited_by, s.access FROM workbooks w LEFT JOIN workbook_shares s"
        " ON s.workbook_id = w.id AND s.user_id = :u WHERE w.id = :id",
        {"u": user, "id": workbook})
    if row is None:
        return "none", None
    if row["owner_id"] == user:
        return "owner", row
    return (row["access"] or "none"), row


async def find_user(tx: Transaction, who: str) -> list[Row]:
    """The users a name or e-mail names (SSO e-mail or name; a fake login's name). Text with
    an ``@`` names an e-mail only (or a fake login): an SSO name is whatever its user typed at
    the provider, so a name that looks like someone's address must not catch their share."""
    names = "" if "@" in who else " OR display_name = :w"
    return await tx.fetchall(
        f"SELECT id, kind, display_name, email FROM users WHERE email = :w{names}"
        " OR (kind = 'fake' AND subject = :w) ORDER BY id", {"w": who})


async def user_name(tx: Transaction, user: str) -> str:
    """How a user is shown to others: their name, else their e-mail, else their id."""
    row = await tx.fetchone("SELECT display_name, email FROM users WHERE id = :id",
                            {"id": user})
    if row is None:
        return user
    return row["display_name"] or row["email"] or user


async def share(tx: Transaction, workbook: str, user: str, access: str, granted_by: str
                ) -> None:
    """Give (or change) a user's share of a workbook (one statement: two shares of one user
    at once end in one row, the later one's)."""
    params = {"w": workbook, "u": user, "a": access, "by": granted_by, "t": time.time()}
    await tx.execute("INSERT INTO workbook_shares (workbook_id, user_id, access, granted_by,"
                     " granted_at) VALUES (:w, :u, :a, :by, :t) ON CONFLICT (workbook_id,"
                     " user_id) DO UPDATE SET access = excluded.access, granted_by ="
                     " excluded.granted_by, granted_at = excluded.granted_at", params)


async def share_of(tx: Transaction, workbook: str, user: str) -> Row | None:
    return await tx.fetchone("SELECT * FROM workbook_shares WHERE workbook_id = :w"
                             " AND user_id = :u", {"w": workbook, "u": user})


async def unshare(tx: Transaction, workbook: str, user: str) -> bool:
    """End a user's share (and their placing of it in a folder); False if there was none."""
    changed = await tx.execute("DELETE FROM workbook_shares WHERE workbook_id = :w"
                               " AND user_id = :u", {"w": workbook, "u": user})
    await tx.execute("DELETE FROM folder_entries WHERE workbook_id = :w AND user_id = :u",
                     {"w": workbook, "u": user})
    return changed == 1


async def shares_of(tx: Transaction, workbook: str) -> list[Row]:
    """Who a workbook is shared with, with their names, oldest share first."""
    return await tx.fetchall(
        "SELECT s.user_id, s.access, s.granted_by, s.granted_at, u.display_name, u.email"
        " FROM workbook_shares s JOIN users u ON u.id = s.user_id WHERE s.workbook_id = :w"
        " ORDER BY s.granted_at, s.user_id", {"w": workbook})


async def visible_to(tx: Transaction, user: str) -> list[Row]:
    """The user's own workbooks and those shared with them, each with the user's right
    (`access`), its owner's name and the user's folder for it, newest first."""
    return await tx.fetchall(
        "SELECT w.id, w.owner_id, w.name, w.description, w.created_at, w.updated_at,"
        " w.item_revision, w.edited_by, CASE WHEN w.owner_id = :u THEN 'owner'"
        " ELSE s.access END AS access, o.display_name AS owner_name, o.email AS owner_email,"
        " f.folder_id FROM workbooks w JOIN users o ON o.id = w.owner_id"
        " LEFT JOIN workbook_shares s ON s.workbook_id = w.id AND s.user_id = :u"
        " LEFT JOIN folder_entries f ON f.workbook_id = w.id AND f.user_id = :u"
        " WHERE w.owner_id = :u OR s.user_id IS NOT NULL"
        " ORDER BY w.updated_at DESC, w.id", {"u": user})


async def revoked(db: Any, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """Of these (user, workbook) pairs, those whose workbook still exists but which the user
    neither owns nor has a share of any more (a deleted workbook is no revoke: its sockets get
    `not_found` as before). One query per REVOKE_BATCH workbooks (`db`: a Database or a
    transaction)."""
    wanted = set(pairs)
    workbooks = sorted({w for _, w in wanted})
    found: set[tuple[str, str]] = set()
    for start in range(0, len(workbooks), REVOKE_BATCH):
        batch = workbooks[start:start + REVOKE_BATCH]
        params = {f"w{i}": w for i, w in enumerate(batch)}
        marks = ", ".join(f":w{i}" for i in range(len(batch)))
        rows = await db.fetchall(
            f"SELECT id AS w, owner_id AS u FROM workbooks WHERE id IN ({marks}) UNION"
            f" SELECT workbook_id AS w, user_id AS u FROM workbook_shares"
            f" WHERE workbook_id IN ({marks})", params)
        found |= {(r["u"], r["w"]) for r in rows}
    existing = {w for _, w in found}  # every existing workbook has its owner's row
    return {(u, w) for u, w in wanted if w in existing and (u, w) not in found}


# -- folders --------------------------------------------------------------------------------

async def folders_of(tx: Transaction, user: str) -> list[Row]:
    return await tx.fetchall("SELECT id, name, created_at FROM folders WHERE user_id = :u"
                             " ORDER BY name, id", {"u": user})


async def folder(tx: Transaction, user: str, folder_id: str) -> Row | None:
    """The user's folder, or None (another user's folder does not exist)."""
    return await tx.fetchone("SELECT id, name, created_at FROM folders WHERE id = :id"
                             " AND user_id = :u", {"id": folder_id, "u": user})


async def count_folders(tx: Transaction, user: str) -> int:
    return int(await tx.fetchval("SELECT COUNT(*) AS n FROM folders WHERE user_id = :u",
                                 {"u": user}))


async def insert_folder(tx: Transaction, row: dict[str, Any], user: str) -> None:
    await tx.execute("INSERT INTO folders (id, user_id, name, created_at) VALUES"
                     " (:id, :u, :name, :t)",
                     {"id": row["id"], "u": user, "name": row["name"], "t": row["created_at"]})


async def rename_folder(tx: Transaction, user: str, folder_id: str, name: str) -> None:
    await tx.execute("UPDATE folders SET name = :n WHERE id = :id AND user_id = :u",
                     {"n": name, "id": folder_id, "u": user})


async def folder_size(tx: Transaction, folder_id: str) -> int:
    return int(await tx.fetchval("SELECT COUNT(*) AS n FROM folder_entries"
                                 " WHERE folder_id = :f", {"f": folder_id}))


async def delete_folder(tx: Transaction, user: str, folder_id: str) -> None:
    await tx.execute("DELETE FROM folders WHERE id = :id AND user_id = :u",
                     {"id": folder_id, "u": user})


async def place(tx: Transaction, user: str, workbook: str, folder_id: str | None) -> None:
    """Put a workbook in one of the user's folders (None: out of any folder); one statement,
    so two moves at once end in one placing, the later one's."""
    if folder_id is None:
        await tx.execute("DELETE FROM folder_entries WHERE user_id = :u AND workbook_id = :w",
                         {"u": user, "w": workbook})
        return
    await tx.execute("INSERT INTO folder_entries (user_id, workbook_id, folder_id) VALUES"
                     " (:u, :w, :f) ON CONFLICT (user_id, workbook_id) DO UPDATE SET"
                     " folder_id = excluded.folder_id",
                     {"u": user, "w": workbook, "f": folder_id})
