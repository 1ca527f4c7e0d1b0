"""Every right (owner, grant, write, read, none) against every message type that touches a
workbook, in-process through the worker's dispatch, on SQLite and PostgreSQL.

MESSAGES holds one message per request type (worker/rights.REQUIRED's types); a type without
an entry here, and not listed as touching no workbook, fails the table test, so a new message
type cannot ship without a rule and a test of it.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from etckit import engine
from etckit.auth import sessions
from etckit.config import load
from etckit.messaging.protocol import dumps
from etckit.messaging.types import READ_TYPES, REQUEST_TYPES
from etckit.storage import shares
from etckit.storage import spectra as stored_spectra
from etckit.storage import workbooks as stored_workbooks
from etckit.worker import HANDLERS, INTERNAL_TYPES
from etckit.worker.compute import Compute
from etckit.worker.dispatch import handle
from etckit.worker.rights import FOLLOW_UPS, NO_WORKBOOK, REQUIRED

CFG = load(None, environ={"ETCKIT_QUOTAS__WORKBOOKS_PER_USER": "1000"})  # a workbook per case
USERS = {"owner": "o", "grant": "g", "write": "w", "read": "r", "none": "n"}
SPECTRUM = "".join(f"{1 + i * 0.1:.1f} {1.0 + i * 0.01:.3f}\n" for i in range(20))


class InlineSandbox:
    """The engine in this process (no child, no plots drawn): rights are what is tested."""

    def __init__(self, limits) -> None:
        self.limits = limits

    async def calculate(self, calculation, scene, sources):
        return engine.calculate(calculation, scene, sources, limits=self.limits)

    async def render(self, kind, *inputs):
        return b"\x89PNG\r\n\x1a\nfake"

    async def run(self, func, *args):  # plot.compare's drawing: not what is tested here
        return b"\x89PNG\r\n\x1a\nfake"


def services() -> Compute:
    compute = Compute(CFG)
    compute.sandbox = InlineSandbox(compute.limits)
    return compute


SERVICES = services()


async def send(db, user: str, message: dict, workbook: str | None = None, cfg=CFG
               ) -> dict | None:
    """The reply to the sender (None when the handler sent none, as a follow-up may)."""
    who = dumps({"client": f"c-{user}", "user": user, "workbook": workbook})
    reply, _ = await handle(db, cfg, [who, dumps({"id": 1, **message})], services=SERVICES)
    recipients = json.loads(reply[0])["to"]
    for i, to in enumerate(recipients):
        if to.get("client") == f"c-{user}":
            return json.loads(reply[1 + i])
    return None


async def ok(db, user: str, message: dict) -> dict:
    reply = await send(db, user, message)
    assert reply is not None and reply["type"] != "error", (message, reply)
    return reply


@pytest.fixture
async def users(db):
    for name in (*USERS.values(), "x", "anon"):
        await sessions.upsert_user(db, issuer="fake", subject=name, kind="fake",
                                   display_name=name, email=f"{name}@example.org")
    await db.execute("UPDATE users SET kind = 'anonymous' WHERE subject = 'anon'")
    return {name: await db.fetchval("SELECT id FROM users WHERE subject = :s", {"s": name})
            for name in (*USERS.values(), "x", "anon")}


async def workbook(db, ids: dict) -> dict:
    """A workbook of o's, shared g (grant), w (write), r (read); x shared by g (read); with a
    source used by a scene used by a calculation, a spare source and scene, a spectrum."""
    o = ids["o"]
    made = await ok(db, o, {"type": "workbook.create", "name": "W"})
    book = made["workbook"]["id"]
    for name, access in (("g", "grant"), ("w", "write"), ("r", "read")):
        await ok(db, o, {"type": "workbook.share", "workbook": book, "user": name,
                         "access": access})
    await ok(db, ids["g"], {"type": "workbook.share", "workbook": book, "user": "x",
                            "access": "read"})
    d = engine.defaults()
    src = (await ok(db, o, {"type": "source.add", "workbook": book, "name": "S",
                            "data": d["source"]}))["item"]
    spare = (await ok(db, o, {"type": "source.add", "workbook": book, "name": "S2",
                              "data": d["source"]}))["item"]
    placed = {"sources": [{"source_id": src["id"], "offset_x_arcsec": 0.0,
                           "offset_y_arcsec": 0.0}]}
    scene = (await ok(db, o, {"type": "scene.add", "workbook": book, "name": "F",
                              "data": placed}))["item"]
    spare_scene = (await ok(db, o, {"type": "scene.add", "workbook": book, "name": "F2",
                                    "data": placed}))["item"]
    calc = (await ok(db, o, {"type": "calculation.add", "workbook": book, "name": "C",
                             "scene": scene["id"], "data": d["calculation"]}))["item"]
    spectrum = (await ok(db, o, {"type": "spectrum.upload", "workbook": book, "name": "U",
                                 "format": "ascii", "flux_unit": "Jy",
                                 "content": SPECTRUM}))["item"]
    return {"book": book, "rev": made["workbook"]["item_revision"], "source": src,
            "spare": spare, "scene": scene, "spare_scene": spare_scene, "calc": calc,
            "spectrum": spectrum["id"], "defaults": d}


def _items(f: dict) -> dict[str, dict]:
    """Per kind: the item to edit, copy, show the history of, and one that may be deleted."""
    return {"source": {"edit": f["source"], "delete": f["spare"]},
            "scene": {"edit": f["scene"], "delete": f["spare_scene"]},
            "calculation": {"edit": f["calc"], "delete": f["calc"]}}


def messages(f: dict) -> dict[str, dict]:
    """One message of every type that names a workbook (or an item of one), for fixture f."""
    book = f["book"]
    out = {
        "workbook.open": {"workbook": book},
        "workbook.export": {"workbook": book},
        "workbook.copy": {"workbook": book},
        "workbook.recalculate": {"workbook": book},
        "workbook.rename": {"workbook": book, "name": "W2", "base_revision": f["rev"]},
        "workbook.delete": {"workbook": book},
        "workbook.share": {"workbook": book, "user": "x", "access": "write"},
        "workbook.unshare": {"workbook": book, "user": "x"},
        "workbook.shares": {"workbook": book},
        "workbook.leave": {"workbook": book},
        "folder.move": {"workbook": book, "folder": None},
        "calculation.download": {"calculation": f["calc"]["id"], "format": "csv"},
        "plot.render": {"calculation": f["calc"]["id"], "kind": "snr_vs_time"},
        "plot.compare": {"workbook": book, "calculations": [f["calc"]["id"]],
                         "kind": "snr_vs_time"},
        "calculation.expand": {"calculation": f["calc"]["id"], "parameter": "groups",
                               "values": [5]},
        "calculation.recalculate": {"calculation": f["calc"]["id"],
                                    "revision": f["calc"]["revision"]},
        "spectrum.upload": {"workbook": book, "name": "U2", "format": "ascii",
                            "flux_unit": "Jy", "content": SPECTRUM},
        "spectrum.list": {"workbook": book},
        "spectrum.delete": {"spectrum": f["spectrum"]},
    }
    for kind, items in _items(f).items():
        item = items["edit"]
        out[f"{kind}.add"] = {"workbook": book, "name": "N", **(
            {"data": f["defaults"]["source"]} if kind == "source" else
            {"data": f["scene"].get("data", {})} if kind == "scene" else
            {"scene": f["scene"]["id"], "data": f["defaults"]["calculation"]})}
        out[f"{kind}.edit"] = {kind: item["id"], "name": "Renamed",
                               "base_revision": item["item_revision"]}
        out[f"{kind}.copy"] = {kind: item["id"]}
        out[f"{kind}.history"] = {kind: item["id"]}
        out[f"{kind}.delete"] = {kind: items["delete"]["id"]}
    return {t: {"type": t, **m} for t, m in out.items()}


def test_every_message_type_has_a_rule_and_a_case():
    every = set(REQUEST_TYPES) | set(INTERNAL_TYPES)
    assert every <= set(REQUIRED), sorted(every - set(REQUIRED))
    cases = set(messages({"book": "b", "rev": 1, "calc": {"id": "c", "revision": 1,
                                                          "item_revision": 1},
                          "source": {"id": "s", "item_revision": 1},
                          "spare": {"id": "s2"}, "scene": {"id": "f", "item_revision": 1},
                          "spare_scene": {"id": "f2"}, "spectrum": "u",
                          "defaults": {"source": {}, "calculation": {}}}))
    assert every - set(NO_WORKBOOK) == cases, sorted((every - set(NO_WORKBOOK)) ^ cases)
    # the read right allows exactly the types that change nothing stored (plus copying a
    # workbook into one's own, placing it in one's own folder, and leaving a share)
    assert {t for t, r in REQUIRED.items() if r == "read"} == (
        (set(READ_TYPES) & set(REQUEST_TYPES)) - set(NO_WORKBOOK)) | {
            "workbook.copy", "folder.move", "workbook.leave"}


def test_every_registered_handler_has_a_rights_rule():
    """What the worker really dispatches (every @handler registered when the worker starts),
    not the lists of types: a handler registered under a type without a rule fails here."""
    assert HANDLERS, "no handlers registered"
    assert set(HANDLERS) <= set(REQUIRED), sorted(set(HANDLERS) - set(REQUIRED))
    # and each rule is a right (or None: touches no workbook but the sender's own)
    assert {r for r in REQUIRED.values() if r is not None} <= set(shares.RIGHTS) - {"none"}
    # unchecked follow-ups are the worker's own types only, never one a browser may send
    assert FOLLOW_UPS == INTERNAL_TYPES and not FOLLOW_UPS & REQUEST_TYPES


# an allowed right that is still refused, with the code: the owner cannot leave its own
REFUSED_ANYWAY = {("workbook.leave", "owner"): "invalid"}


async def test_every_right_against_every_message_type(db, users):
    refused = await workbook(db, users)
    for mtype, rule in sorted(REQUIRED.items()):
        if rule is None:
            continue
        for right, name in USERS.items():
            allowed = shares.at_least(right, rule)
            fixture = await workbook(db, users) if allowed else refused
            message = messages(fixture)[mtype]
            reply = await send(db, users[name], message)
            where = (mtype, right)
            if right == "none":
                assert reply["type"] == "error" and reply["code"] == "not_found", (where, reply)
                assert reply["message"].startswith("no "), (where, reply)
            elif not allowed:
                assert reply["type"] == "error" and reply["code"] == "forbidden", (where, reply)
            elif where in REFUSED_ANYWAY:
                assert reply["code"] == REFUSED_ANYWAY[where], (where, reply)
            else:
                assert reply is None or reply["type"] != "error", (where, reply)
    # the refusals changed nothing: the shared workbook is as it was made
    opened = await ok(db, users["o"], {"type": "workbook.open", "workbook": refused["book"]})
    assert opened["workbook"]["name"] == "W" and len(opened["sources"]) == 2
    assert len(opened["calculations"]) == 1


async def test_not_found_is_the_same_for_a_stranger_and_a_missing_workbook(db, users):
    f = await workbook(db, users)
    theirs = await send(db, users["n"], {"type": "workbook.open", "workbook": f["book"]})
    missing = await send(db, users["n"], {"type": "workbook.open", "workbook": "nosuch"})
    assert theirs["code"] == missing["code"] == "not_found"
    assert theirs["message"] == f"no workbook {f['book']}"
    item = await send(db, users["n"], {"type": "source.edit", "source": f["source"]["id"],
                                       "base_revision": 1, "name": "x"})
    assert item["code"] == "not_found" and item["message"] == f"no source {f['source']['id']}"


async def test_sharing_rules(db, users):
    f = await workbook(db, users)
    book = f["book"]
    listed = await ok(db, users["r"], {"type": "workbook.list"})
    mine = [w for w in listed["workbooks"] if w["id"] == book]
    assert mine and mine[0]["shared"] and mine[0]["access"] == "read"
    assert mine[0]["owner"] == "o"
    # by e-mail as well as by name; changing a share the granter made is the owner's
    again = await ok(db, users["o"], {"type": "workbook.share", "workbook": book,
                                      "user": "r@example.org", "access": "write"})
    assert again["share"]["access"] == "write"
    taken = await send(db, users["g"], {"type": "workbook.unshare", "workbook": book,
                                        "user": "r"})
    assert taken["code"] == "forbidden"  # granted by the owner, not by g
    for who, code, field in (("anon", "invalid", "user"), ("nobody", "not_found", None),
                             ("o", "invalid", "user")):
        reply = await send(db, users["o"], {"type": "workbook.share", "workbook": book,
                                            "user": who, "access": "read"})
        assert reply["code"] == code and reply.get("field") == field, reply
    bad = await send(db, users["o"], {"type": "workbook.share", "workbook": book,
                                      "user": "r", "access": "admin"})
    assert bad["code"] == "invalid" and bad["field"] == "access"
    # an anonymous user cannot share even its own workbook
    own = await ok(db, users["anon"], {"type": "workbook.create", "name": "A"})
    reply = await send(db, users["anon"], {"type": "workbook.share",
                                           "workbook": own["workbook"]["id"], "user": "o",
                                           "access": "read"})
    assert reply["code"] == "forbidden" and "anonymous" in reply["message"]
    # quotas: a shared workbook counts against its owner only
    assert all(w["shared"] for w in listed["workbooks"])
    # revoked: not found any more, and gone from the list
    await ok(db, users["o"], {"type": "workbook.unshare", "workbook": book, "user": "r"})
    gone = await send(db, users["r"], {"type": "workbook.open", "workbook": book})
    assert gone["code"] == "not_found"
    assert not (await ok(db, users["r"], {"type": "workbook.list"}))["workbooks"]
    pairs = [(users["r"], book), (users["w"], book), (users["o"], book), (users["r"], "gone")]
    assert await shares.revoked(db, pairs) == {(users["r"], book)}  # a missing one is no revoke
    await ok(db, users["o"], {"type": "workbook.delete", "workbook": book})
    assert await shares.revoked(db, pairs) == set()


async def test_folders_are_limited_per_user(db, users, monkeypatch):
    from etckit.worker.handlers import sharing

    monkeypatch.setattr(sharing, "FOLDERS_MAX", 1)
    await ok(db, users["o"], {"type": "folder.create", "name": "One"})
    over = await send(db, users["o"], {"type": "folder.create", "name": "Two"})
    assert over["code"] == "quota" and over["limit"] == "folders_per_user" and over["value"] == 1
    await ok(db, users["r"], {"type": "folder.create", "name": "Theirs"})  # per user


async def test_folders_are_per_user(db, users):
    f = await workbook(db, users)
    o, r = users["o"], users["r"]
    box = (await ok(db, o, {"type": "folder.create", "name": "Box"}))["folder"]
    await ok(db, o, {"type": "folder.move", "workbook": f["book"], "folder": box["id"]})
    theirs = (await ok(db, r, {"type": "folder.create", "name": "Theirs"}))["folder"]
    await ok(db, r, {"type": "folder.move", "workbook": f["book"], "folder": theirs["id"]})
    # each user's placing is their own
    listed = {u: (await ok(db, u, {"type": "workbook.list"})) for u in (o, r)}
    assert [w["folder"] for w in listed[o]["workbooks"]] == [box["id"]]
    assert [w["folder"] for w in listed[r]["workbooks"]] == [theirs["id"]]
    assert [x["name"] for x in listed[r]["folders"]] == ["Theirs"]
    # another user's folder does not exist for you
    other = await send(db, r, {"type": "folder.move", "workbook": f["book"],
                               "folder": box["id"]})
    assert other["code"] == "not_found" and other["message"] == f"no folder {box['id']}"
    full = await send(db, o, {"type": "folder.delete", "folder": box["id"]})
    assert full["code"] == "in_use" and "move them out" in full["message"]
    renamed = await ok(db, o, {"type": "folder.rename", "folder": box["id"], "name": "Crate"})
    assert renamed["folder"]["name"] == "Crate"
    await ok(db, o, {"type": "folder.move", "workbook": f["book"], "folder": None})
    await ok(db, o, {"type": "folder.delete", "folder": box["id"]})
    assert (await ok(db, o, {"type": "workbook.list"}))["folders"] == []
    empty = await send(db, o, {"type": "folder.create", "name": " "})
    assert empty["code"] == "invalid" and empty["field"] == "name"


async def test_a_recipient_leaves_a_share(db, users):
    """workbook.leave: the share and the leaver's folder placing go, the workbook leaves
    their list and is not_found to them after; the shares they granted onward stay; the
    owner cannot leave their own workbook."""
    f = await workbook(db, users)
    book, g = f["book"], users["g"]
    box = (await ok(db, g, {"type": "folder.create", "name": "Box"}))["folder"]
    await ok(db, g, {"type": "folder.move", "workbook": book, "folder": box["id"]})
    left = await ok(db, g, {"type": "workbook.leave", "workbook": book})
    assert left == {"type": "workbook.left", "workbook": book, "ref": 1}
    assert [w["id"] for w in (await ok(db, g, {"type": "workbook.list"}))["workbooks"]] == []
    again = await send(db, g, {"type": "workbook.open", "workbook": book})
    assert again["code"] == "not_found"
    assert (await send(db, g, {"type": "workbook.leave", "workbook": book}))["code"] == \
        "not_found"
    box_now = await ok(db, g, {"type": "folder.delete", "folder": box["id"]})  # now empty
    assert box_now["type"] != "error"
    shared = await ok(db, users["o"], {"type": "workbook.shares", "workbook": book})
    assert sorted(s["name"] for s in shared["shares"]) == ["r", "w", "x"]  # x, by g, stays
    own = await send(db, users["o"], {"type": "workbook.leave", "workbook": book})
    assert own["code"] == "invalid" and own["field"] == "workbook"


def _slow_count(monkeypatch, module, name: str) -> None:
    """Let a quota's count be read, then hold the transaction a moment before it writes: two
    requests at once both count before either inserts, unless the check serializes them."""
    real = getattr(module, name)

    async def counted_then_slow(*args, **kwargs):
        value = await real(*args, **kwargs)
        await asyncio.sleep(0.3)
        return value

    monkeypatch.setattr(module, name, counted_then_slow)


@pytest.mark.parametrize("quota", ["workbooks_per_user", "spectrum_points_per_user",
                                   "items_per_workbook", "folders_per_user"])
async def test_requests_at_once_cannot_pass_a_quota_together(db, users, monkeypatch, quota):
    """Two requests of one user at once (two workers), each fitting the quota alone and not
    both: exactly one is stored, the other is refused `quota` (on PostgreSQL the count and
    the insert of each ran side by side, and both were stored)."""
    o = users["o"]
    points = SPECTRUM.count("\n")
    cfg = load(None, environ={"ETCKIT_QUOTAS__WORKBOOKS_PER_USER": "3",
                              "ETCKIT_QUOTAS__ITEMS_PER_WORKBOOK": "2",
                              "ETCKIT_QUOTAS__SPECTRUM_POINTS_PER_USER": str(points * 3)})
    books = [(await ok(db, o, {"type": "workbook.create", "name": f"B{i}"}))["workbook"]["id"]
             for i in range(2)]
    source = engine.defaults()["source"]
    if quota == "workbooks_per_user":  # 2 of 3: room for one more
        _slow_count(monkeypatch, stored_workbooks, "count_for")
        make = [{"type": "workbook.create", "name": f"N{i}"} for i in range(2)]
    elif quota == "spectrum_points_per_user":  # 2 tables of 3 held: room for one more
        for book in books:
            await ok(db, o, {"type": "spectrum.upload", "workbook": book, "name": "U",
                             "format": "ascii", "flux_unit": "Jy", "content": SPECTRUM})
        _slow_count(monkeypatch, stored_spectra, "points_of_owner")
        make = [{"type": "spectrum.upload", "workbook": book, "name": "U2", "format": "ascii",
                 "flux_unit": "Jy", "content": SPECTRUM} for book in books]
    elif quota == "folders_per_user":  # one folder of 2: room for one more
        from etckit.worker.handlers import sharing

        monkeypatch.setattr(sharing, "FOLDERS_MAX", 2)
        await ok(db, o, {"type": "folder.create", "name": "F"})
        _slow_count(monkeypatch, shares, "count_folders")
        make = [{"type": "folder.create", "name": f"F{i}"} for i in range(2)]
    else:  # one source of 2: room for one more
        await ok(db, o, {"type": "source.add", "workbook": books[0], "name": "S",
                         "data": source})
        _slow_count(monkeypatch, stored_workbooks, "count_items")
        make = [{"type": "source.add", "workbook": books[0], "name": f"S{i}", "data": source}
                for i in range(2)]
    replies = await asyncio.gather(*(send(db, o, m, cfg=cfg) for m in make))
    codes = sorted(r.get("code", "ok") for r in replies)
    assert codes == ["ok", "quota"], replies
    limit = quota if quota == "folders_per_user" else f"quotas.{quota}"
    assert [r["limit"] for r in replies if r.get("code")] == [limit]
    held = {"workbooks_per_user": "SELECT COUNT(*) FROM workbooks",
            "spectrum_points_per_user": "SELECT SUM(points) FROM spectra",
            "items_per_workbook": "SELECT COUNT(*) FROM sources",
            "folders_per_user": "SELECT COUNT(*) FROM folders"}[quota]
    assert await db.fetchval(held) == {"workbooks_per_user": 3,
                                       "spectrum_points_per_user": points * 3,
                                       "items_per_workbook": 2, "folders_per_user": 2}[quota]


async def test_a_name_that_looks_like_an_e_mail_cannot_catch_a_share(db, users):
    """An SSO name is whatever the user typed at the provider; only a verified e-mail is
    vouched for. A user who calls themselves by someone else's address gets neither a share
    meant for that address (before its owner ever logged in) nor the power to block one
    (after: "2 users are called ...")."""
    o = users["o"]
    book = (await ok(db, o, {"type": "workbook.create", "name": "Private"}))["workbook"]["id"]
    await sessions.upsert_user(db, issuer="https://sso.example.org", subject="m-1",
                               kind="sso", display_name="carol@example.org",
                               email="mallory@example.org")
    mallory = await db.fetchval("SELECT id FROM users WHERE subject = 'm-1'")
    early = await send(db, o, {"type": "workbook.share", "workbook": book,
                               "user": "carol@example.org", "access": "read"})
    assert (early["code"], early["message"]) == ("not_found", "no user carol@example.org")
    assert (await send(db, mallory, {"type": "workbook.open", "workbook": book}))["code"] == \
        "not_found"
    await sessions.upsert_user(db, issuer="https://sso.example.org", subject="c-1",
                               kind="sso", display_name="Carol", email="carol@example.org")
    shared = await ok(db, o, {"type": "workbook.share", "workbook": book,
                              "user": "carol@example.org", "access": "read"})
    assert shared["share"]["email"] == "carol@example.org"
    # names without an @ still name users (one of them, or refused when several share it)
    named = await ok(db, o, {"type": "workbook.share", "workbook": book, "user": "Carol",
                             "access": "write"})
    assert named["share"]["email"] == "carol@example.org"
    assert named["share"]["access"] == "write"


async def test_a_writer_who_leaves_strands_no_calculation_their_edit_made_pending(db, users):
    """A source edit makes its calculations pending and asks for each to be recalculated as
    a follow-up in the editor's name; the editor leaving (or being revoked, as an owner
    would a vandal) before the follow-up runs must not leave them pending for good (nothing
    else recomputes a pending calculation: workbook.recalculate takes outdated ones)."""
    f = await workbook(db, users)
    w = users["w"]
    edit = {"id": 1, "type": "source.edit", "source": f["source"]["id"], "name": "Edited",
            "base_revision": f["source"]["item_revision"]}
    who = dumps({"client": "c-w", "user": w, "workbook": None})
    _, followups = await handle(db, CFG, [who, dumps(edit)], services=SERVICES)
    assert len(followups) == 1
    await ok(db, w, {"type": "workbook.leave", "workbook": f["book"]})
    await handle(db, CFG, followups[0], services=SERVICES)
    opened = await ok(db, users["o"], {"type": "workbook.open", "workbook": f["book"]})
    assert [c["status"] for c in opened["calculations"]] == ["ok"]


@pytest.mark.parametrize("what", ["share", "folder"])
async def test_the_same_share_or_placing_twice_at_once_is_no_internal_error(
        db, users, monkeypatch, what):
    """Two workbook.share of one user, or two folder.move of one workbook, at once: each
    ends in one row, and neither answers `internal` (on PostgreSQL each found no row, both
    inserted, and the second hit the primary key)."""
    o = users["o"]
    book = (await ok(db, o, {"type": "workbook.create", "name": "Twice"}))["workbook"]["id"]
    if what == "share":
        _slow_count(monkeypatch, shares, "share_of")
        make = [{"type": "workbook.share", "workbook": book, "user": "r", "access": access}
                for access in ("read", "write")]
        table = "workbook_shares"
    else:
        boxes = [(await ok(db, o, {"type": "folder.create", "name": f"Box{i}"}))["folder"]["id"]
                 for i in range(2)]
        real = shares.place

        async def placed_then_slow(*args):  # the first holds its row uncommitted a moment
            await real(*args)
            await asyncio.sleep(0.3)

        monkeypatch.setattr(shares, "place", placed_then_slow)
        make = [{"type": "folder.move", "workbook": book, "folder": box} for box in boxes]
        table = "folder_entries"
    replies = await asyncio.gather(*(send(db, o, m) for m in make))
    assert all(r["type"] != "error" for r in replies), replies
    assert await db.fetchval(f"SELECT COUNT(*) FROM {table}") == 1


@pytest.mark.parametrize("kind", ["calculation", "scene"])
async def test_an_item_and_what_it_uses_are_not_added_and_deleted_at_once(
        db, users, monkeypatch, kind):
    """A calculation added on a scene (or a scene placing a source) while that scene (or
    source) is deleted: one of the two is refused (`in_use`, or `invalid` naming it), never
    `internal` and never an item left using one that is gone (on PostgreSQL the delete saw
    no user yet and went ahead: the calculation then hit the scene's foreign key, the scene
    was stored placing a deleted source)."""
    f = await workbook(db, users)
    o, book = users["o"], f["book"]
    if kind == "calculation":
        _slow_count(monkeypatch, stored_workbooks, "scene_workbook")
        add = {"type": "calculation.add", "workbook": book, "name": "On spare",
               "scene": f["spare_scene"]["id"], "data": f["defaults"]["calculation"]}
        delete = {"type": "scene.delete", "scene": f["spare_scene"]["id"]}
    else:
        _slow_count(monkeypatch, stored_workbooks, "source_ids")
        add = {"type": "scene.add", "workbook": book, "name": "On spare", "data": {
            "sources": [{"source_id": f["spare"]["id"]}]}}
        delete = {"type": "source.delete", "source": f["spare"]["id"]}
    added, deleted = await asyncio.gather(send(db, o, add), send(db, o, delete))
    outcome = (added.get("code", "ok"), deleted.get("code", "ok"))
    assert outcome in (("ok", "in_use"), ("invalid", "ok")), (added, deleted)
    opened = await ok(db, o, {"type": "workbook.open", "workbook": book})
    scenes = {s["id"] for s in opened["scenes"]}
    sources = {s["id"] for s in opened["sources"]}
    assert all(c["scene"] in scenes for c in opened["calculations"])
    assert all(p["source_id"] in sources for s in opened["scenes"]
               for p in s["data"]["sources"])


async def test_an_expansion_whose_calculation_goes_meanwhile_is_not_found(
        db, db_url, users, monkeypatch):
    """calculation.expand reads the calculation, checks every value (no transaction held),
    then writes: if the calculation and its scene were deleted in between, it answers
    `not_found` (it hit the scene's foreign key: `internal`)."""
    if db_url.startswith("sqlite"):
        pytest.skip("one process's SQLite transactions wait for each other: the deletes"
                    " could not run during the expansion's read (two workers could)")
    f = await workbook(db, users)
    o, book = users["o"], f["book"]
    calc = (await ok(db, o, {"type": "calculation.add", "workbook": book, "name": "Spare",
                             "scene": f["spare_scene"]["id"],
                             "data": f["defaults"]["calculation"]}))["item"]
    deleted = asyncio.Event()
    real = stored_workbooks.count_items

    async def count_then_wait(*args):  # the expansion's first look: then both are deleted
        value = await real(*args)
        if not deleted.is_set():
            await deleted.wait()
        return value

    async def delete_both():
        await asyncio.sleep(0)
        await ok(db, o, {"type": "calculation.delete", "calculation": calc["id"]})
        await ok(db, o, {"type": "scene.delete", "scene": f["spare_scene"]["id"]})
        deleted.set()

    monkeypatch.setattr(stored_workbooks, "count_items", count_then_wait)
    expanded, _ = await asyncio.gather(
        send(db, o, {"type": "calculation.expand", "calculation": calc["id"],
                     "parameter": "groups", "values": [4, 6]}), delete_both())
    assert (expanded["code"], expanded["message"]) == ("not_found",
                                                       f"no calculation {calc['id']}")


async def test_an_item_added_while_its_workbook_is_deleted_is_no_internal_error(
        db, users, monkeypatch):
    """source.add and workbook.delete at once: the add lands before the delete (and goes
    with the workbook) or is refused not_found; never `internal` (on PostgreSQL the delete
    went ahead and the add hit the workbook's foreign key)."""
    o = users["o"]
    book = (await ok(db, o, {"type": "workbook.create", "name": "Going"}))["workbook"]["id"]
    _slow_count(monkeypatch, stored_workbooks, "count_items")
    added, deleted = await asyncio.gather(
        send(db, o, {"type": "source.add", "workbook": book, "name": "S",
                     "data": engine.defaults()["source"]}),
        send(db, o, {"type": "workbook.delete", "workbook": book}))
    assert deleted["type"] == "workbook.deleted", deleted
    assert added["type"] == "source.saved" or (added["code"], added["message"]) == (
        "not_found", f"no workbook {book}"), added
    assert await db.fetchval("SELECT COUNT(*) FROM sources") == 0


@pytest.mark.parametrize("race", ["share", "move"])
async def test_a_share_or_placing_whose_workbook_goes_at_once(
        db, users, monkeypatch, race):
    """workbook.share or folder.move while the workbook is deleted: the share or placing
    lands first and goes with it, or is refused `not_found`; never
    `internal` (on PostgreSQL the delete went ahead between the check and the insert, which
    hit the foreign key)."""
    o = users["o"]
    book = (await ok(db, o, {"type": "workbook.create", "name": "Going"}))["workbook"]["id"]
    box = (await ok(db, o, {"type": "folder.create", "name": "Box"}))["folder"]["id"]
    if race == "share":
        _slow_count(monkeypatch, shares, "share_of")
        first = {"type": "workbook.share", "workbook": book, "user": "r", "access": "read"}
    else:
        _slow_count(monkeypatch, shares, "folder")
        first = {"type": "folder.move", "workbook": book, "folder": box}
    gone = {"type": "workbook.delete", "workbook": book}
    done, deleted = await asyncio.gather(send(db, o, first), send(db, o, gone))
    assert done.get("code") in (None, "not_found"), done
    assert deleted["type"] == "workbook.deleted", deleted


async def test_a_placing_into_a_folder_being_deleted_is_one_or_the_other(db, users, monkeypatch):
    """folder.move into a folder while folder.delete removes it: the placing lands first and
    the delete answers `in_use`, or the delete lands first and the move `not_found`; never
    `internal` (on PostgreSQL both read the folder, the delete went ahead, and the placing hit
    the foreign key), and never a delete that takes a placed workbook out with it."""
    o = users["o"]
    book = (await ok(db, o, {"type": "workbook.create", "name": "Placed"}))["workbook"]["id"]
    box = (await ok(db, o, {"type": "folder.create", "name": "Box"}))["folder"]["id"]
    _slow_count(monkeypatch, shares, "folder_size")  # the delete counts, then waits

    async def move_while_the_delete_waits() -> dict:
        await asyncio.sleep(0.1)
        return await send(db, o, {"type": "folder.move", "workbook": book, "folder": box})

    deleted, moved = await asyncio.gather(send(db, o, {"type": "folder.delete", "folder": box}),
                                          move_while_the_delete_waits())
    placed = await db.fetchval("SELECT COUNT(*) FROM folder_entries")
    folders = await db.fetchval("SELECT COUNT(*) FROM folders")
    if moved["type"] == "workbook.moved":
        assert deleted.get("code") == "in_use", deleted
        assert (placed, folders) == (1, 1)
    else:
        assert moved.get("code") == "not_found", moved
        assert deleted["type"] == "folder.deleted", deleted
        assert (placed, folders) == (0, 0)
