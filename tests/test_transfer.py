"""Export a workbook as one JSON object and import it into a new one (issue 17, item 5),
through the real chain: a round trip gives the same results; a faulty file is refused naming
the JSON path at fault, within the quotas and cost limits, and stores nothing."""

from __future__ import annotations

import asyncio
import copy

import numpy as np
import pytest

from etckit import __version__
from etckit.engine.version import data_version
from tests.support.chain import Chain
from tests.test_rights import users  # noqa: F401  (the fixture of the in-process tests)


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    c = Chain(tmp_path_factory.mktemp("transfer"), wssvc__user_rate="1000",
              wssvc__user_burst="1000", wssvc__connection_rate="1000",
              wssvc__connection_burst="1000")
    c.start_all(workers=2)
    yield c
    c.stop()


async def _exported(chain, user: str):
    lister = await chain.connect(user)
    made = (await lister.request("workbook.create", name="Deep field", description="HUDF",
                                 timeout=20))["workbook"]
    one = await chain.connect(user, workbook=made["id"])
    d = (await one.request("workbook.open", timeout=20))["defaults"]
    sources = [(await one.request("source.add", name=f"S{i}", data=d["source"]))["item"]
               for i in range(2)]
    placed = [{"source_id": s["id"], "offset_x_arcsec": 0.3 * i, "offset_y_arcsec": 0.0}
              for i, s in enumerate(sources)]
    scene = (await one.request("scene.add", name="F", data={"sources": placed}))["item"]
    longer = {**d["calculation"], "groups": 8}
    for n, data in enumerate((d["calculation"], longer)):
        reply = await one.request("calculation.add", name=f"C{n}", scene=scene["id"],
                                  data=data, timeout=60)
        assert reply.get("item", {}).get("status") == "ok", reply
    exported = await one.request("workbook.export", timeout=20)
    assert exported["type"] == "workbook.export", exported
    return lister, one, exported, d


async def _settled(chain, user: str, workbook: str) -> dict:
    client = await chain.connect(user, workbook=workbook)
    for _ in range(120):
        content = await client.request("workbook.open", timeout=20)
        if all(c["status"] != "pending" for c in content["calculations"]):
            return content
        await asyncio.sleep(0.5)  # the follow-ups are queued behind this user's requests
    raise AssertionError("the imported calculations were never computed")


async def test_export_then_import_gives_the_same_results(chain):
    lister, one, exported, _ = await _exported(chain, "roundtrip")
    content = exported["content"]
    assert exported["filename"] == "Deep_field.etckit.json"
    assert (content["format"], content["engine_version"], content["data_version"]) == \
        ("etckit-workbook", __version__, data_version())
    assert [len(content[k]) for k in ("sources", "scenes", "calculations")] == [2, 1, 2]
    imported = await lister.request("workbook.import", content=content, timeout=30)
    assert imported["type"] == "workbook.created", imported
    new = imported["workbook"]
    assert (new["name"], new["description"]) == ("Deep field", "HUDF")
    before = await one.request("workbook.open", timeout=20)
    after = await _settled(chain, "roundtrip", new["id"])
    for kind in ("sources", "scenes", "calculations"):
        assert [i["name"] for i in after[kind]] == [i["name"] for i in before[kind]]
        assert not {i["id"] for i in after[kind]} & {i["id"] for i in before[kind]}
    new_sources = {s["id"] for s in after["sources"]}
    assert {p["source_id"] for p in after["scenes"][0]["data"]["sources"]} == new_sources
    for old, again in zip(before["calculations"], after["calculations"], strict=True):
        assert again["scene"] == after["scenes"][0]["id"] and again["data"] == old["data"]
        assert again["status"] == "ok" and not again["outdated"]
        assert again["result"]["snr"] == pytest.approx(old["result"]["snr"], rel=1e-9)
        assert again["result"]["total_exposure_time_s"] == \
            pytest.approx(old["result"]["total_exposure_time_s"], rel=1e-9)
    renamed = await lister.request("workbook.import", content=content, name="Again",
                                   timeout=30)
    assert renamed["workbook"]["name"] == "Again"


def _break(content: dict, how: str) -> dict:
    c = copy.deepcopy(content)
    if how == "format":
        c["format"] = "zip"
    elif how == "top":
        c["extra"] = 1
    elif how == "redshift":
        c["sources"][0]["data"]["redshift"] = -1
    elif how == "junk":
        c["sources"][0]["junk"] = 1
    elif how == "duplicate":
        c["sources"][1]["id"] = c["sources"][0]["id"]
    elif how == "placed":
        c["scenes"][0]["data"]["sources"][0]["source_id"] = "nope"
    elif how == "scene":
        c["calculations"][0]["scene"] = "nope"
    elif how == "scene_list":
        c["calculations"][0]["scene"] = [1]
    elif how == "groups":
        c["calculations"][1]["data"]["groups"] = 0
    elif how == "name":
        c["calculations"][1]["name"] = ""
    elif how == "sources_type":
        c["sources"] = {"a": 1}
    elif how == "uploaded":
        c["sources"][0]["data"]["spectrum"] = {"kind": "uploaded", "spectrum_id": "abc123"}
    elif how.startswith("spectrum_"):
        table = {"wave_um": [1.0, 2.0, 3.0, 2.5, 4.0], "fnu_jy": [1.0] * 5}
        spectrum = {"id": "sp", "name": "sp", "format": "ascii", "flux_unit": "Jy",
                    "data": table}
        c["spectra"] = [spectrum]
        if how == "spectrum_nan":
            table["wave_um"][3] = 3.5
            table["fnu_jy"][2] = "NaN"
        elif how == "spectrum_short":
            table["wave_um"][3] = 3.5
            table["fnu_jy"].pop()
        elif how == "spectrum_unit":
            spectrum["flux_unit"] = "furlongs"
        elif how == "spectrum_key":
            table["junk"] = []
    return c


@pytest.mark.parametrize("how, field", [
    ("format", "content.format"),
    ("top", "content.extra"),
    ("redshift", "content.sources.0.data.redshift"),
    ("junk", "content.sources.0.junk"),
    ("duplicate", "content.sources.1.id"),
    ("placed", "content.scenes.0.data.sources.0.source_id"),
    ("scene", "content.calculations.0.scene"),
    ("scene_list", "content.calculations.0.scene"),
    ("groups", "content.calculations.1.data.groups"),
    ("name", "content.calculations.1.name"),
    ("sources_type", "content.sources"),
    ("uploaded", "content.sources.0.data.spectrum.spectrum_id"),
    ("spectrum_order", "content.spectra.0.data.wave_um.3"),
    ("spectrum_nan", "content.spectra.0.data.fnu_jy.2"),
    ("spectrum_short", "content.spectra.0.data.fnu_jy"),
    ("spectrum_unit", "content.spectra.0.flux_unit"),
    ("spectrum_key", "content.spectra.0.data.junk"),
])
async def test_a_faulty_file_is_refused_naming_its_path_and_stores_nothing(chain, how, field):
    lister, _, exported, _ = await _exported(chain, f"faulty-{how}")
    refused = await lister.request("workbook.import", content=_break(exported["content"], how),
                                   timeout=30)
    assert refused["code"] == "invalid" and refused["field"] == field, refused
    assert refused["message"].startswith(field)
    assert len((await lister.request("workbook.list"))["workbooks"]) == 1
    not_a_file = await lister.request("workbook.import", content="x")
    assert not_a_file["field"] == "content"


FLAT = "".join(f"{w:.3f} {1 + 0.1 * w:.3f}\n" for w in np.linspace(0.5, 30.0, 200))


async def test_uploaded_spectra_travel_in_the_file_and_give_the_same_results(chain):
    lister, one, _, d = await _exported(chain, "spectra")
    up = await one.request("spectrum.upload", name="rising", format="ascii", flux_unit="mJy",
                           content=FLAT, timeout=60)
    assert up["type"] == "spectrum.saved", up
    used = {**d["source"], "spectrum": {"kind": "uploaded", "spectrum_id": up["item"]["id"]}}
    source = (await one.request("source.add", name="U", data=used))["item"]
    scene = (await one.request("scene.add", name="FU", data={"sources": [
        {"source_id": source["id"]}]}))["item"]
    calc = await one.request("calculation.add", name="CU", scene=scene["id"],
                             data=d["calculation"], timeout=60)
    assert calc["item"]["status"] == "ok", calc
    content = (await one.request("workbook.export", timeout=20))["content"]
    assert [s["id"] for s in content["spectra"]] == [up["item"]["id"]]
    assert len(content["spectra"][0]["data"]["wave_um"]) == 200
    imported = await lister.request("workbook.import", content=content, timeout=30)
    assert imported["type"] == "workbook.created", imported
    after = await _settled(chain, "spectra", imported["workbook"]["id"])
    again = await chain.connect("spectra", workbook=imported["workbook"]["id"])
    spectra = (await again.request("spectrum.list"))["spectra"]
    assert [(s["name"], s["points"]) for s in spectra] == [("rising", 200)]
    assert spectra[0]["id"] != up["item"]["id"]
    new_source = next(s for s in after["sources"] if s["name"] == "U")
    assert new_source["data"]["spectrum"]["spectrum_id"] == spectra[0]["id"]
    new_calc = next(c for c in after["calculations"] if c["name"] == "CU")
    assert new_calc["status"] == "ok", new_calc
    assert new_calc["result"]["snr"] == pytest.approx(calc["item"]["result"]["snr"], rel=1e-9)


async def test_imports_are_held_to_the_quotas_and_cost_limits(chain):
    lister, _, exported, d = await _exported(chain, "limits")
    many = copy.deepcopy(exported["content"])
    many["sources"] += [{"id": f"x{i}", "name": f"x{i}", "data": d["source"]}
                        for i in range(200)]
    refused = await lister.request("workbook.import", content=many, timeout=30)
    assert refused["code"] == "quota" and refused["limit"] == "quotas.items_per_workbook"
    big = {**d["source"], "shape": {"kind": "gaussian", "fwhm_arcsec": 1.0}}
    crowd = {"format": "etckit-workbook", "format_version": 1,
             "workbook": {"name": "crowd"},
             "sources": [{"id": f"g{i}", "name": f"g{i}", "data": big} for i in range(11)],
             "scenes": [{"id": "s", "name": "s", "data": {"sources": [
                 {"source_id": f"g{i}", "offset_x_arcsec": 0.1 * i, "offset_y_arcsec": 0.0}
                 for i in range(11)]}}],
             "calculations": [{"id": "c", "name": "c", "scene": "s",
                               "data": d["calculation"]}]}
    refused = await lister.request("workbook.import", content=crowd, timeout=30)
    assert refused["code"] == "too_expensive", refused
    assert refused["field"] == "content.calculations.0.scene.sources"
    assert len((await lister.request("workbook.list"))["workbooks"]) == 1


# -- in-process, on SQLite and PostgreSQL: what an import may link to, and what a refusal
# leaves in the database (the worker's dispatch, as tests/test_rights.py drives it)

TABLES = ("workbooks", "sources", "scenes", "calculations", "spectra")


async def _rows(db) -> dict[str, int]:
    return {t: int(await db.fetchval(f"SELECT COUNT(*) AS n FROM {t}")) for t in TABLES}


async def test_an_import_links_only_to_its_own_new_items(db, users):  # noqa: F811
    from tests.test_rights import ok, send, workbook

    theirs = await workbook(db, users)  # o's, with a spectrum; n may not see it
    content = (await ok(db, users["o"], {"type": "workbook.export",
                                         "workbook": theirs["book"]}))["content"]
    made = await ok(db, users["n"], {"type": "workbook.import", "content": content})
    mine = await ok(db, users["n"], {"type": "workbook.open", "workbook": made["workbook"]["id"]})
    ids = {k: {i["id"] for i in mine[k]} for k in ("sources", "scenes", "calculations")}
    old = {theirs[k]["id"] for k in ("source", "spare", "scene", "spare_scene", "calc")}
    assert not old & set().union(*ids.values())  # nothing kept an id of o's
    assert {p["source_id"] for s in mine["scenes"] for p in s["data"]["sources"]} <= \
        ids["sources"]
    assert {c["scene"] for c in mine["calculations"]} <= ids["scenes"]
    listed = await ok(db, users["n"], {"type": "spectrum.list",
                                       "workbook": made["workbook"]["id"]})
    assert [s["id"] for s in listed["spectra"]] != [theirs["spectrum"]]
    # a file naming o's items that it does not hold itself is refused, naming the path
    before = await _rows(db)
    for how, field in (("spectrum", "content.sources.0.data.spectrum.spectrum_id"),
                       ("source", "content.scenes.0.data.sources.0.source_id"),
                       ("scene", "content.calculations.0.scene")):
        c = copy.deepcopy(content)
        if how == "spectrum":
            c["spectra"] = []
            c["sources"][0]["data"]["spectrum"] = {"kind": "uploaded",
                                                   "spectrum_id": theirs["spectrum"]}
        elif how == "source":
            c["scenes"][0]["data"]["sources"][0]["source_id"] = theirs["spare"]["id"]
            c["sources"] = [s for s in c["sources"] if s["id"] != theirs["spare"]["id"]]
        else:
            c["calculations"][0]["scene"] = theirs["spare_scene"]["id"]
            c["scenes"] = [s for s in c["scenes"] if s["id"] != theirs["spare_scene"]["id"]]
        refused = await send(db, users["n"], {"type": "workbook.import", "content": c})
        assert (refused["code"], refused["field"]) == ("invalid", field), (how, refused)
    assert await _rows(db) == before
    opened = await ok(db, users["o"], {"type": "workbook.open", "workbook": theirs["book"]})
    assert len(opened["sources"]) == 2 and len(opened["calculations"]) == 1


async def test_a_refused_import_leaves_no_row_behind(db, users):  # noqa: F811
    """Over the user's spectrum points, over the workbooks quota, or faulty deep inside the
    last calculation: refused, and not one row of the workbook, its items or its spectra is
    stored."""
    from etckit.config import load
    from tests.test_rights import SPECTRUM, ok, send, workbook

    theirs = await workbook(db, users)
    content = (await ok(db, users["o"], {"type": "workbook.export",
                                         "workbook": theirs["book"]}))["content"]
    points = len(content["spectra"][0]["data"]["wave_um"])
    n = users["n"]
    own = (await ok(db, n, {"type": "workbook.create", "name": "Mine"}))["workbook"]["id"]
    await ok(db, n, {"type": "spectrum.upload", "workbook": own, "name": "U", "format": "ascii",
                     "flux_unit": "Jy", "content": SPECTRUM})
    tight = load(None, environ={"ETCKIT_QUOTAS__SPECTRUM_POINTS_PER_USER": str(points * 2 - 1),
                                "ETCKIT_QUOTAS__WORKBOOKS_PER_USER": "2"})
    before = await _rows(db)
    refused = await send(db, n, {"type": "workbook.import", "content": content}, cfg=tight)
    assert (refused["code"], refused["limit"]) == ("quota", "quotas.spectrum_points_per_user")
    deep = copy.deepcopy(content)
    deep["calculations"][-1]["data"]["aperture_radius_arcsec"] = -1
    refused = await send(db, n, {"type": "workbook.import", "content": deep})
    assert refused["code"] == "invalid", refused
    assert refused["field"].startswith(f"content.calculations.{len(deep['calculations']) - 1}"
                                       ".data."), refused
    assert await _rows(db) == before
    await ok(db, n, {"type": "workbook.create", "name": "Second"})
    before = await _rows(db)
    refused = await send(db, n, {"type": "workbook.import", "content": content}, cfg=tight)
    assert (refused["code"], refused["limit"]) == ("quota", "quotas.workbooks_per_user")
    assert await _rows(db) == before


async def test_an_integer_beyond_a_double_is_refused_naming_it(db, users):  # noqa: F811
    """wssvc refuses integers of 309+ digits; a worker given one anyway (in a spectrum's
    table, or a source's inline table) answers `invalid` naming it, not `internal`."""
    from tests.test_rights import ok, send, workbook

    theirs = await workbook(db, users)
    content = (await ok(db, users["o"], {"type": "workbook.export",
                                         "workbook": theirs["book"]}))["content"]
    huge = 10 ** 400
    c = copy.deepcopy(content)
    c["spectra"][0]["data"]["wave_um"][3] = huge
    refused = await send(db, users["n"], {"type": "workbook.import", "content": c})
    assert (refused["code"], refused["field"]) == ("invalid", "content.spectra.0.data.wave_um.3")
    c = copy.deepcopy(content)
    c["sources"][0]["data"]["spectrum"] = {"kind": "uploaded",
                                           "spectrum_id": c["spectra"][0]["id"],
                                           "table": {"wave_um": [1, 2], "fnu_jy": [1, huge]}}
    refused = await send(db, users["n"], {"type": "workbook.import", "content": c})
    assert (refused["code"], refused["field"]) == \
        ("invalid", "content.sources.0.data.spectrum.table.fnu_jy"), refused
