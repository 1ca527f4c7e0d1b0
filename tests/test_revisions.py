"""No silent clobbering (issue 17, item 3) and results pinned to an engine version (item 6).

Every workbook and item carries an `item_revision`; an edit names the one it was made from
(`base_revision`) and a stale edit is refused with `conflict` and the current item. Through
the real chain (wssvc, broker, two workers) on SQLite and PostgreSQL, and on the storage layer
itself with two transactions racing.
"""

from __future__ import annotations

import asyncio
import copy
import json

import pytest

from etckit import __version__
from etckit.engine.version import data_version
from etckit.storage import workbooks as wb
from tests.support.chain import Chain

FAST_USER = {"wssvc__user_rate": "1000", "wssvc__user_burst": "1000",
             "wssvc__connection_rate": "1000", "wssvc__connection_burst": "1000"}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def chain(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"revisions-{request.param}")
    url = None
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_server").create_database(f"revisions_{id(tmp)}")
    c = Chain(tmp, db_url=url, **FAST_USER)
    c.start_all(workers=2)
    yield c
    c.stop()


async def _built(chain, user="alice"):
    """Two windows on a new workbook holding a source, a scene and a calculation."""
    lister = await chain.connect(user)
    created = (await lister.request("workbook.create", name="Field", timeout=20))["workbook"]
    one = await chain.connect(user, workbook=created["id"])
    two = await chain.connect(user, workbook=created["id"])
    d = (await one.request("workbook.open", timeout=20))["defaults"]
    source = (await one.request("source.add", name="Galaxy", data=d["source"]))["item"]
    placed = [{"source_id": source["id"], "offset_x_arcsec": 0.0, "offset_y_arcsec": 0.0}]
    scene = (await one.request("scene.add", name="F", data={"sources": placed}))["item"]
    calc = (await one.request("calculation.add", name="C", scene=scene["id"],
                              data=d["calculation"], timeout=60))["item"]
    return lister, one, two, created, source, scene, calc


def _brighter(source: dict, factor: float) -> dict:
    data = copy.deepcopy(source["data"])
    data["normalization"]["value"] *= factor
    return data


async def test_two_clients_editing_one_source_at_once_one_wins_one_conflicts(chain):
    _, one, two, _, source, _, _ = await _built(chain)
    assert source["item_revision"] == 1 and source["edited_by"] == "alice"
    for round_ in range(4):  # every round: both edit the revision both were shown
        base = source["item_revision"]
        mine, theirs = _brighter(source, 2), _brighter(source, 3)
        replies = await asyncio.gather(
            one.request("source.edit", source=source["id"], data=mine, base_revision=base,
                        timeout=60),
            two.request("source.edit", source=source["id"], data=theirs, base_revision=base,
                        timeout=60))
        kinds = sorted(r["type"] if r["type"] != "error" else r["code"] for r in replies)
        assert kinds == ["conflict", "source.saved"], (round_, replies)
        won = next(r for r in replies if r["type"] == "source.saved")["item"]
        lost = next(r for r in replies if r["type"] == "error")
        assert won["item_revision"] == base + 1
        assert lost["item"] == won  # the conflict carries the item as now stored
        assert str(base) in lost["message"]
        source = won
    # the loser keeps theirs: the same edit again, from the revision the conflict showed
    kept = await two.request("source.edit", source=source["id"], data=_brighter(source, 5),
                             base_revision=lost["item"]["item_revision"], timeout=60)
    assert kept["type"] == "source.saved" and kept["item"]["item_revision"] == base + 2
    stored = (await one.request("workbook.open", timeout=20))["sources"][0]
    assert stored == kept["item"]


async def test_stale_edits_of_every_kind_are_refused_and_change_nothing(chain):
    lister, one, _, workbook, source, scene, calc = await _built(chain)
    ok = await one.request("scene.edit", scene=scene["id"], name="F2", base_revision=1)
    assert ok["type"] == "scene.saved" and ok["item"]["item_revision"] == 2
    for type_, fields, current in (
            ("scene.edit", {"scene": scene["id"], "name": "F3"}, ok["item"]),
            ("scene.delete", {"scene": scene["id"]}, ok["item"])):
        refused = await one.request(type_, **fields, base_revision=1)
        assert refused["code"] == "conflict" and refused["item"] == current, refused
    edited = await one.request("calculation.edit", calculation=calc["id"], name="C2",
                               base_revision=1, timeout=60)
    assert edited["item"]["item_revision"] == 2
    stale = await one.request("calculation.edit", calculation=calc["id"], name="C3",
                              base_revision=1, timeout=60)
    assert stale["code"] == "conflict" and stale["item"]["name"] == "C2"
    renamed = await lister.request("workbook.rename", workbook=workbook["id"], name="W2",
                                   description="about", base_revision=1)
    assert renamed["workbook"]["item_revision"] == 2
    assert renamed["workbook"]["description"] == "about"
    again = await lister.request("workbook.rename", workbook=workbook["id"], name="W3",
                                 base_revision=1)
    assert again["code"] == "conflict" and again["item"]["name"] == "W2"
    after = await one.request("workbook.open", timeout=20)
    assert after["workbook"]["name"] == "W2" and after["scenes"][0]["name"] == "F2"
    assert after["calculations"][0]["name"] == "C2"


@pytest.mark.parametrize("value", [None, "1", True, 0, -1, 1.5, 2**60])
async def test_an_edit_must_name_its_base_revision(chain, value):
    _, one, _, _, source, _, _ = await _built(chain)
    fields = {} if value is None else {"base_revision": value}
    error = await one.request("source.edit", source=source["id"], name="x", **fields)
    assert error["code"] == "invalid" and error["field"] == "base_revision", error


async def test_a_source_edit_recalculates_without_making_calculation_forms_stale(chain):
    _, one, two, _, source, _, calc = await _built(chain)
    await one.request("source.edit", source=source["id"], data=_brighter(source, 10),
                      base_revision=1, timeout=60)
    while True:  # the calculation is recalculated: a new input revision ...
        event = await two.recv(timeout=60)
        item = event.get("item") or {}
        if event["type"] == "calculation.saved" and item.get("status") == "ok" \
                and item["revision"] > calc["revision"]:
            break
    assert item["item_revision"] == calc["item_revision"]  # ... but no edit of its own
    edited = await one.request("calculation.edit", calculation=calc["id"], name="C2",
                               base_revision=calc["item_revision"], timeout=60)
    assert edited["type"] == "calculation.saved", edited


async def test_results_record_their_engine_and_older_ones_are_recalculated(chain):
    from etckit.storage import open_database

    _, one, two, workbook, _, _, calc = await _built(chain)
    assert (calc["engine_version"], calc["data_version"]) == (__version__, data_version())
    assert calc["outdated"] is False
    content = await one.request("workbook.open", timeout=20)
    assert content["engine"] == {"engine_version": __version__, "data_version": data_version()}
    assert (await one.request("workbook.recalculate"))["calculations"] == []
    async with open_database(chain.db_url) as db:  # as if computed by an older release
        await db.execute("UPDATE calculations SET engine_version = '0.0.1',"
                         " result = '{\"snr\": -1}' WHERE id = :id", {"id": calc["id"]})
    old = (await one.request("workbook.open", timeout=20))["calculations"][0]
    assert old["outdated"] is True and old["engine_version"] == "0.0.1"
    # a download never hands out the old engine's result as this one's
    fresh = await one.request("calculation.download", calculation=calc["id"], format="json",
                              timeout=60)
    assert json.loads(fresh["content"])["snr"] == pytest.approx(calc["result"]["snr"])
    reply = await one.request("workbook.recalculate", timeout=20)
    assert reply["type"] == "workbook.recalculating" and reply["calculations"] == [calc["id"]]
    while True:
        event = await two.recv(timeout=60)
        item = event.get("item") or {}
        if event["type"] == "calculation.saved" and item.get("status") == "ok" \
                and item["revision"] > calc["revision"]:  # new plot URLs: no old image
            break
    assert item["outdated"] is False and item["engine_version"] == __version__
    assert item["result"]["snr"] == pytest.approx(calc["result"]["snr"])


async def test_storage_compare_and_set_lets_one_of_two_racing_edits_through(db):
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO users (id, issuer, subject, kind, created_at)"
                         " VALUES ('u', 't', 'u', 'fake', 0)")
        await wb.insert_workbook(tx, {"id": "w", "name": "W", "description": "",
                                      "created_at": 0, "updated_at": 0}, "u")
        await wb.insert_item(tx, "source", "s", "w", "S", {"a": 0}, user="u")

    async def edit(n: int) -> bool:
        async with db.transaction() as tx:
            await wb.item(tx, "source", "s")
            await asyncio.sleep(0.05)  # on PostgreSQL both read revision 1 before a write
            return await wb.update_item(tx, "source", "s", f"S{n}", {"a": n},
                                        base_revision=1, user=f"u{n}")

    results = await asyncio.gather(edit(1), edit(2))
    assert sorted(results) == [False, True]
    row = await db.fetchone("SELECT * FROM sources WHERE id = 's'")
    assert row["item_revision"] == 2 and row["edited_by"] == f"u{results.index(True) + 1}"
    async with db.transaction() as tx:
        assert not await wb.delete_item(tx, "source", "s", base_revision=1)
        assert await wb.delete_item(tx, "source", "s", base_revision=2)


async def test_history_shows_who_changed_what_and_an_old_revision_can_be_restored(chain):
    _, one, _, _, source, _, _ = await _built(chain)
    item = source
    for factor in (2, 3):
        item = (await one.request("source.edit", source=source["id"],
                                  data=_brighter(item, factor),
                                  base_revision=item["item_revision"], timeout=60))["item"]
    item = (await one.request("source.edit", source=source["id"], name="Renamed",
                              base_revision=item["item_revision"], timeout=60))["item"]
    shown = await one.request("source.history", source=source["id"])
    assert shown["type"] == "source.history" and shown["source"] == source["id"]
    revisions = shown["revisions"]
    assert [r["item_revision"] for r in revisions] == [4, 3, 2, 1]
    assert [r["changed"] for r in revisions] == [
        ["name"], ["data.normalization.value"], ["data.normalization.value"], ["created"]]
    assert {r["edited_by"] for r in revisions} == {"alice"}
    assert revisions[-1]["data"] == source["data"] and revisions[0]["name"] == "Renamed"
    oldest = revisions[-1]  # restored: sent as an edit of the current revision
    restored = await one.request("source.edit", source=source["id"], name=oldest["name"],
                                 data=oldest["data"], base_revision=4, timeout=60)
    assert restored["item"]["data"] == source["data"] and restored["item"]["item_revision"] == 5
    again = (await one.request("source.history", source=source["id"]))["revisions"][0]
    assert again["item_revision"] == 5
    assert again["changed"] == ["data.normalization.value", "name"]
    bob = await chain.connect("bob")
    nope = await bob.request("source.history", source=source["id"])
    assert nope["code"] == "not_found" and nope["message"] == f"no source {source['id']}"


async def test_history_keeps_the_last_revisions_and_goes_with_its_item(db):
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO users (id, issuer, subject, kind, created_at)"
                         " VALUES ('u', 't', 'u', 'fake', 0)")
        await wb.insert_workbook(tx, {"id": "w", "name": "W", "description": "",
                                      "created_at": 0, "updated_at": 0}, "u")
        await wb.insert_item(tx, "source", "s", "w", "S", {"a": 0}, user="u")
        for n in range(1, wb.HISTORY_KEEP + 5):
            assert await wb.update_item(tx, "source", "s", "S", {"a": n}, base_revision=n,
                                        user="u")
        kept = [r["item_revision"] for r in await wb.history(tx, "s")]
        assert kept == list(range(wb.HISTORY_KEEP + 5, 5, -1))
        assert await wb.delete_item(tx, "source", "s")
        assert await wb.history(tx, "s") == []


async def test_an_edit_clears_the_engine_stamp_until_a_stamped_result_is_stored(db):
    from etckit.engine.version import versions
    from etckit.worker.handlers.views import item_view

    async with db.transaction() as tx:
        await tx.execute("INSERT INTO users (id, issuer, subject, kind, created_at)"
                         " VALUES ('u', 't', 'u', 'fake', 0)")
        await wb.insert_workbook(tx, {"id": "w", "name": "W", "description": "",
                                      "created_at": 0, "updated_at": 0}, "u")
        await wb.insert_item(tx, "scene", "s", "w", "S", {"sources": []})
        await wb.insert_item(tx, "calculation", "c", "w", "C", {}, scene="s")
        assert await wb.store_result(tx, "c", 1, "ok", "{}", "", versions())
        assert not item_view("calculation", await wb.item(tx, "calculation", "c"))["outdated"]
        await wb.mark_pending(tx, ["c"])
        row = await wb.item(tx, "calculation", "c")
        assert (row["engine_version"], row["data_version"]) == ("", "")
        # a release that does not stamp its results (the previous one, mid-upgrade)
        await tx.execute("UPDATE calculations SET status = 'ok' WHERE id = 'c'")
        assert item_view("calculation", await wb.item(tx, "calculation", "c"))["outdated"]
        assert [r["id"] for r in await wb.outdated(tx, "w", versions())] == ["c"]
