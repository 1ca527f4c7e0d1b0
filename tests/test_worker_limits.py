"""Quotas, stored-data hygiene, cost limits and wide edits through the real chain."""

from __future__ import annotations

import copy

import pytest

from tests.support.chain import Chain

FAST_USER = {"wssvc__user_rate": "1000", "wssvc__user_burst": "1000",
             "wssvc__connection_rate": "1000", "wssvc__connection_burst": "1000"}


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    c = Chain(tmp_path_factory.mktemp("limits"), quotas__workbooks_per_user="3",
              quotas__items_per_workbook="12", **FAST_USER)
    c.start_all(workers=2)
    yield c
    c.stop()


async def _open(chain, user):
    lister = await chain.connect(user)
    created = await lister.request("workbook.create", name="W")
    wb = created["workbook"]["id"]
    client = await chain.connect(user, workbook=wb)
    return lister, client, wb, (await client.request("workbook.open"))["defaults"]


async def test_workbooks_per_user_is_a_quota_naming_its_limit(chain):
    lister = await chain.connect("quota-user")
    for i in range(3):
        assert (await lister.request("workbook.create", name=f"w{i}"))["type"] \
            == "workbook.created"
    refused = await lister.request("workbook.create", name="one more")
    assert refused["code"] == "quota"
    assert refused["limit"] == "quotas.workbooks_per_user" and refused["value"] == 3
    assert len((await lister.request("workbook.list"))["workbooks"]) == 3


async def test_unknown_fields_are_refused_and_nothing_is_stored(chain):
    _, client, _, d = await _open(chain, "tidy")
    junk = {**d["source"], "junk": "x" * 1000}
    refused = await client.request("source.add", name="S", data=junk)
    assert refused["code"] == "invalid" and refused["field"] == "data.junk"
    assert (await client.request("workbook.open"))["sources"] == []


async def test_another_users_item_is_just_not_found(chain):
    _, alice, _, d = await _open(chain, "owner")
    source = (await alice.request("source.add", name="S", data=d["source"]))["item"]
    _, bob, _, _ = await _open(chain, "intruder")
    for verb in ("edit", "copy", "delete"):
        reply = await bob.request(f"source.{verb}", source=source["id"], data=d["source"])
        assert reply["code"] == "not_found"
        assert reply["message"] == f"no source {source['id']}"


async def test_a_calculation_over_the_cost_limits_is_too_expensive(chain):
    _, client, _, d = await _open(chain, "heavy")
    big = copy.deepcopy(d["source"])
    big["shape"] = {"kind": "gaussian", "fwhm_arcsec": 1.0}
    ids = [(await client.request("source.add", name=f"g{i}", data=big))["item"]["id"]
           for i in range(11)]
    placed = [{"source_id": s, "offset_x_arcsec": 0.1 * i, "offset_y_arcsec": 0.0}
              for i, s in enumerate(ids)]
    scene = (await client.request("scene.add", name="crowd", data={"sources": placed}))["item"]
    refused = await client.request("calculation.add", name="c", scene=scene["id"],
                                   data=d["calculation"], timeout=30)
    assert refused["code"] == "too_expensive" and refused["field"] == "scene.sources"
    assert (await client.request("workbook.open"))["calculations"] == []


async def test_items_per_workbook_is_a_quota(chain):
    _, client, _, d = await _open(chain, "many")
    for i in range(12):
        assert (await client.request("source.add", name=f"s{i}", data=d["source"]))["type"] \
            == "source.saved"
    refused = await client.request("source.add", name="s13", data=d["source"])
    assert refused["code"] == "quota" and refused["limit"] == "quotas.items_per_workbook"


async def test_a_wide_edit_answers_first_and_recalculates_each_calculation_after(chain):
    _, client, wb, d = await _open(chain, "wide")
    watcher = await chain.connect("wide", workbook=wb)
    source = (await client.request("source.add", name="S", data=d["source"]))["item"]
    placed = [{"source_id": source["id"], "offset_x_arcsec": 0.0, "offset_y_arcsec": 0.0}]
    scene = (await client.request("scene.add", name="F", data={"sources": placed}))["item"]
    calcs = {}
    for i in range(8):
        c = (await client.request("calculation.add", name=f"c{i}", scene=scene["id"],
                                  data=d["calculation"], timeout=30))["item"]
        calcs[c["id"]] = c
    brighter = copy.deepcopy(source["data"])
    brighter["normalization"]["value"] *= 100
    reply = await client.request("source.edit", source=source["id"], data=brighter,
                                 base_revision=source["item_revision"], timeout=30)
    assert reply["type"] == "source.saved"
    done: dict[str, dict] = {}
    while len(done) < len(calcs):  # every calculation is broadcast once recalculated
        event = await watcher.recv(timeout=60)
        item = event.get("item") or {}
        if event["type"] == "calculation.saved" and item.get("status") == "ok" \
                and item["revision"] > calcs[item["id"]]["revision"]:
            done[item["id"]] = item
    for calc_id, item in done.items():
        assert item["result"]["snr"] > 5 * calcs[calc_id]["result"]["snr"]
    stored = (await client.request("workbook.open"))["calculations"]
    assert {c["id"]: c["status"] for c in stored} == {c: "ok" for c in calcs}
