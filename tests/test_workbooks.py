"""Workbook contents through the real chain: sources, scenes, calculations, plots, downloads."""

from __future__ import annotations

import asyncio
import copy
import csv
import io
import json

import httpx
import pytest

from tests.support.chain import Chain

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    # one user does everything here, faster than a person: the fair-share limits are raised
    c = Chain(tmp_path_factory.mktemp("workbooks"), wssvc__user_rate="1000",
              wssvc__user_burst="1000", wssvc__connection_rate="1000",
              wssvc__connection_burst="1000")
    c.start_all(workers=2)
    yield c
    c.stop()


async def _workbook(chain, user="alice"):
    lister = await chain.connect(user)
    wb = (await lister.request("workbook.create", name="Deep field"))["workbook"]["id"]
    one = await chain.connect(user, workbook=wb)
    two = await chain.connect(user, workbook=wb)
    content = await one.request("workbook.open")
    return lister, one, two, wb, content


async def _build(one, content):
    d = content["defaults"]
    source = (await one.request("source.add", name="Galaxy", data=d["source"]))["item"]
    scene_data = {"sources": [{"source_id": source["id"], "offset_x_arcsec": 0.0,
                               "offset_y_arcsec": 0.0}]}
    scene = (await one.request("scene.add", name="Field", data=scene_data))["item"]
    reply = await one.request("calculation.add", name="F200W", scene=scene["id"],
                              data=d["calculation"], timeout=30)
    assert reply["type"] == "calculation.saved", reply
    calc = reply["item"]
    return source, scene, calc


async def _next(client, type_):
    while True:
        message = await client.recv(timeout=30)
        if message["type"] == type_:
            return message


async def test_build_a_calculation_and_see_it_everywhere(chain):
    _, one, two, wb, content = await _workbook(chain)
    assert content["type"] == "workbook.content" and content["sources"] == []
    assert {i["name"] for i in content["catalog"]["instruments"]} >= {"nircam", "miri"}
    source, scene, calc = await _build(one, content)
    assert calc["status"] == "ok" and calc["result"]["snr"] > 0
    assert calc["result"]["total_exposure_time_s"] > 0
    # the second client of the workbook heard every change
    assert (await _next(two, "source.saved"))["item"]["id"] == source["id"]
    assert (await _next(two, "scene.saved"))["item"]["id"] == scene["id"]
    assert (await _next(two, "calculation.saved"))["item"]["result"] == calc["result"]
    # reopening shows what was committed
    again = await one.request("workbook.open")
    assert [c["id"] for c in again["calculations"]] == [calc["id"]]


async def test_editing_a_source_recalculates_and_broadcasts(chain):
    _, one, two, wb, content = await _workbook(chain)
    source, scene, calc = await _build(one, content)
    brighter = copy.deepcopy(source["data"])
    brighter["normalization"]["value"] *= 100
    reply = await one.request("source.edit", source=source["id"], data=brighter,
                              base_revision=source["item_revision"], timeout=30)
    assert reply["type"] == "source.saved"
    recalculated = await _next(two, "calculation.saved")
    # skip the add broadcast, then the "pending" one the edit sends before recalculating
    while recalculated["item"]["revision"] == calc["revision"] \
            or recalculated["item"]["status"] == "pending":
        recalculated = await _next(two, "calculation.saved")
    assert recalculated["item"]["id"] == calc["id"]
    assert recalculated["item"]["result"]["snr"] > 5 * calc["result"]["snr"]


@pytest.mark.parametrize("kind, field, value, named", [
    ("source", "normalization", {"value": "bright", "unit": "nJy", "wavelength_um": 2},
     "data.normalization.value"),
    ("source", "spectrum", {"kind": "blackbody", "temperature": -5},
     "data.spectrum.temperature"),
    ("source", "redshift", -1, "data.redshift"),
    ("calculation", "filter", "F999W", "data.filter"),
    ("calculation", "readout_pattern", "TURBO", "data.readout_pattern"),
    ("calculation", "groups", 0, "data.groups"),
    ("calculation", "instrument", "hubble", "data.instrument"),
])
async def test_invalid_edits_name_the_field_and_change_nothing(chain, kind, field, value, named):
    _, one, two, wb, content = await _workbook(chain)
    source, scene, calc = await _build(one, content)
    item = source if kind == "source" else calc
    bad = copy.deepcopy(item["data"])
    bad[field] = value
    error = await one.request(f"{kind}.edit", **{kind: item["id"]}, data=bad,
                              base_revision=item["item_revision"])
    assert error["type"] == "error" and error["code"] == "invalid"
    assert error["field"] == named, error
    assert named in error["message"]
    after = await one.request("workbook.open")
    stored = {i["id"]: i for i in after[kind + "s"]}[item["id"]]
    assert stored["data"] == item["data"] and stored["updated_at"] == item["updated_at"]


async def test_scene_must_use_sources_of_the_workbook(chain):
    _, one, _, _, content = await _workbook(chain)
    error = await one.request("scene.add", name="x", data={"sources": [
        {"source_id": "nope", "offset_x_arcsec": 0, "offset_y_arcsec": 0}]})
    assert error["code"] == "invalid" and error["field"] == "data.sources.0.source_id"
    source, scene, calc = await _build(one, content)
    in_use = await one.request("source.delete", source=source["id"])
    assert in_use["code"] == "in_use" and "Field" in in_use["message"]
    in_use = await one.request("scene.delete", scene=scene["id"])
    assert in_use["code"] == "in_use" and "F200W" in in_use["message"]
    assert (await one.request("calculation.delete", calculation=calc["id"]))["type"] == \
        "calculation.deleted"
    assert (await one.request("scene.delete", scene=scene["id"]))["type"] == "scene.deleted"


async def test_copies(chain):
    lister, one, _, wb, content = await _workbook(chain)
    source, scene, calc = await _build(one, content)
    copied = await one.request("calculation.copy", calculation=calc["id"])
    assert copied["item"]["name"] == "Copy of F200W" and copied["item"]["id"] != calc["id"]
    wb_copy = await lister.request("workbook.copy", workbook=wb)
    assert wb_copy["workbook"]["name"] == "Copy of Deep field"
    inside = await (await chain.connect("alice", workbook=wb_copy["workbook"]["id"])).request(
        "workbook.open")
    assert len(inside["calculations"]) == 2 and len(inside["sources"]) == 1
    placed = inside["scenes"][0]["data"]["sources"][0]["source_id"]
    assert placed == inside["sources"][0]["id"] != source["id"]


async def test_plots_over_https_from_the_same_wssvc_with_a_cache(chain):
    _, one, _, wb, content = await _workbook(chain)
    _, _, calc = await _build(one, content)
    hello_key = one.hello["plot_key"]
    base = f"http://127.0.0.1:{chain.port}/plots/{calc['id']}/{calc['revision']}"
    auth = {"client": one.id, "key": hello_key}
    async with httpx.AsyncClient(timeout=60) as http:
        for kind in ("snr_vs_time", "spectrum", "snr_map", "saturation_map"):
            r = await http.get(f"{base}/{kind}.png", params=auth)
            assert r.status_code == 200, r.text
            assert r.headers["content-type"] == "image/png" and r.content.startswith(PNG)
            assert r.headers["x-plot-cache"] == "miss"
            again = await http.get(f"{base}/{kind}.png", params=auth)
            assert again.headers["x-plot-cache"] == "hit" and again.content == r.content
        assert (await http.get(f"{base}/snr_map.png")).status_code == 401
        assert (await http.get(f"{base}/snr_map.png", params={**auth, "key": "x"})
                ).status_code == 401
        assert (await http.get(f"{base}/nonsense.png", params=auth)).status_code == 400
        bob = await chain.connect("bob")
        other = {"client": bob.id, "key": bob.hello["plot_key"]}
        assert (await http.get(f"{base}/snr_map.png", params=other)).status_code == 404


async def test_downloads(chain):
    _, one, _, wb, content = await _workbook(chain)
    _, _, calc = await _build(one, content)
    as_json = await one.request("calculation.download", calculation=calc["id"], format="json")
    assert as_json["filename"] == "F200W.json"
    assert json.loads(as_json["content"])["snr"] == pytest.approx(calc["result"]["snr"])
    as_csv = await one.request("calculation.download", calculation=calc["id"], format="csv")
    rows = dict(csv.reader(io.StringIO(as_csv["content"])))
    assert float(rows["snr"]) == pytest.approx(calc["result"]["snr"])
    bad = await one.request("calculation.download", calculation=calc["id"], format="xls")
    assert bad["code"] == "invalid"


async def test_another_users_contents_do_not_exist(chain):
    _, one, _, wb, content = await _workbook(chain, "alice")
    source, _, calc = await _build(one, content)
    bob = await chain.connect("bob")
    for type_, fields in (("source.edit", {"source": source["id"], "data": source["data"],
                                           "base_revision": source["item_revision"]}),
                          ("calculation.delete", {"calculation": calc["id"]}),
                          ("workbook.open", {"workbook": wb})):
        reply = await bob.request(type_, **fields)
        assert reply["code"] == "not_found", reply
    await asyncio.sleep(0)
