"""Issue 16 through the real chain: the FITS download of a calculation (imaging and
spectroscopic), a batch expansion computed as follow-ups with progress broadcast, and a compare
plot of several calculations (S/N against time or wavelength; ids checked against the workbook
and the user, imaging and spectroscopy not mixed)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import math
import tarfile

import pytest
from astropy.io import fits

from tests.support.chain import Chain


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    c = Chain(tmp_path_factory.mktemp("batch"), wssvc__user_rate="1000",
              wssvc__user_burst="1000", wssvc__connection_rate="1000",
              wssvc__connection_burst="1000", quotas__items_per_workbook="12")
    c.start_all(workers=1)
    yield c
    c.stop()


async def _calculation(chain, user: str):
    lister = await chain.connect(user)
    made = (await lister.request("workbook.create", name="Batch"))["workbook"]["id"]
    one = await chain.connect(user, workbook=made)
    d = (await one.request("workbook.open", timeout=20))["defaults"]
    source = (await one.request("source.add", name="star", data=d["source"]))["item"]
    scene = (await one.request("scene.add", name="field", data={"sources": [
        {"source_id": source["id"]}]}))["item"]
    calc = await one.request("calculation.add", name="deep", scene=scene["id"],
                             data=d["calculation"], timeout=60)
    assert calc["item"]["status"] == "ok", calc
    return one, made, calc["item"]


async def test_the_fits_download_holds_the_result(chain):
    one, _, calc = await _calculation(chain, "fits")
    reply = await one.request("calculation.download", calculation=calc["id"], format="fits",
                              timeout=60)
    assert (reply["type"], reply["filename"]) == ("calculation.download", "deep.tar.gz"), reply
    blob = base64.b64decode(reply["content_base64"])
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        names = tar.getnames()
        images = tar.extractfile("deep/images.fits").read()
        curves = tar.extractfile("deep/curves.fits").read()
    assert "deep/input.json" in names and "deep/report.txt" in names
    with fits.open(io.BytesIO(images)) as hdul:
        assert hdul[0].header["CALCID"] == calc["id"]
        assert hdul["SOURCE"].header["BUNIT"] == "electron / s"
        assert hdul["APWEIGHT"].data.sum() == pytest.approx(calc["result"]["aperture_pixels"],
                                                            rel=1e-5)
    with fits.open(io.BytesIO(curves)) as hdul:
        rows = hdul["SNR_TIME"].data
        at = rows["integrations"] == calc["result"]["integrations"]
        assert rows["snr"][at][0] == pytest.approx(calc["result"]["snr"], rel=1e-9)
    bad = await one.request("calculation.download", calculation=calc["id"], format="zip")
    assert (bad["code"], bad["field"]) == ("invalid", "format")


async def _settled(one, ids: set[str], timeout: float = 120) -> dict[str, dict]:
    """calculation.saved events until every id is computed: {id: item}."""
    done: dict[str, dict] = {}
    seen_pending = set()
    async with asyncio.timeout(timeout):
        while set(done) != ids:
            message = await one.recv(timeout)
            item = message.get("item") or {}
            if message.get("type") != "calculation.saved" or item.get("id") not in ids:
                continue
            if item["status"] == "pending":
                seen_pending.add(item["id"])
            else:
                done[item["id"]] = item
    assert seen_pending == ids  # each shown pending first, then as its result arrives
    return done


async def test_expand_makes_calculations_computed_as_followups(chain):
    one, _, calc = await _calculation(chain, "expand")
    reply = await one.request("calculation.expand", calculation=calc["id"],
                              parameter="groups", values=[3, 6, 9], timeout=30)
    assert reply["type"] == "calculation.expanded", reply
    done = await _settled(one, set(reply["calculations"]))
    items = [done[i] for i in reply["calculations"]]
    assert [i["name"] for i in items] == ["deep groups=3", "deep groups=6", "deep groups=9"]
    assert [i["result"]["groups"] for i in items] == [3, 6, 9]
    assert all(i["status"] == "ok" for i in items)
    snr = [i["result"]["snr"] for i in items]
    assert snr[0] < snr[1] < snr[2]
    lw = await one.request("calculation.expand", calculation=calc["id"], parameter="filter",
                           values=["F444W"], timeout=30)
    item = (await _settled(one, set(lw["calculations"])))[lw["calculations"][0]]
    assert (item["data"]["mode"], item["data"]["filter"]) == ("lw_imaging", "F444W")


@pytest.mark.parametrize("fields, code, field", [
    ({"parameter": "aperture"}, "invalid", "parameter"),
    ({"values": []}, "invalid", "values"),
    ({"values": [4, 4]}, "invalid", "values.1"),
    ({"values": [4, "5"]}, "invalid", "values.1"),
    ({"values": [4, 100000]}, "invalid", "values.1"),
    ({"values": list(range(2, 14)), "parameter": "integrations"}, "quota", None),
    ({"parameter": "filter", "values": ["F200W", "F9999W"]}, "invalid", "values.1"),
])
async def test_a_bad_expansion_is_refused_naming_the_value_and_adds_nothing(
        chain, fields, code, field):
    one, _, calc = await _calculation(chain, f"bad-{len(fields)}-{code}-{field}")
    message = {"calculation": calc["id"], "parameter": "groups", **fields}
    refused = await one.request("calculation.expand", timeout=30, **message)
    assert refused["code"] == code, refused
    if field:
        assert refused["field"] == field and refused["message"].startswith(field)
    else:
        assert refused["limit"] == "quotas.items_per_workbook"
    content = await one.request("workbook.open", timeout=20)
    assert len(content["calculations"]) == 1


async def test_compare_overplots_calculations_of_one_workbook(chain):
    one, workbook, calc = await _calculation(chain, "compare")
    copy = (await one.request("calculation.expand", calculation=calc["id"],
                              parameter="exposures", values=[1], timeout=30))["calculations"]
    await _settled(one, set(copy))
    reply = await one.request("plot.compare", calculations=[calc["id"], *copy], timeout=60)
    assert reply["type"] == "plot.compare", reply
    png = base64.b64decode(reply["png"])
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    other, _, foreign = await _calculation(chain, "compare-other")
    refused = await one.request("plot.compare", calculations=[calc["id"], foreign["id"]])
    assert (refused["code"], refused["message"]) == ("not_found",
                                                     f"no calculation {foreign['id']}")
    _, _, mine_elsewhere = await _calculation(chain, "compare")
    refused = await one.request("plot.compare", workbook=workbook,
                                calculations=[mine_elsewhere["id"]])
    assert refused["code"] == "not_found" and refused["field"] == "calculations.0"
    for bad, field in ((["x"] * 9, "calculations"), ([calc["id"]] * 2, "calculations"),
                       ("abc", "calculations")):
        refused = await one.request("plot.compare", calculations=bad)
        assert (refused["code"], refused["field"]) == ("invalid", field), refused
    refused = await one.request("plot.compare", calculations=[calc["id"]], kind="pie")
    assert (refused["code"], refused["field"]) == ("invalid", "kind")


SPECTRO = {"instrument": "nirspec", "mode": "fixed_slit", "disperser": "G140M",
           "filter": "F100LP", "readout_pattern": "NRSIRS2", "groups": 14, "integrations": 1,
           "exposures": 10, "reference_wavelength_um": 1.4}


async def _spectroscopic(one, imaging: dict, name: str, **change) -> dict:
    """A NIRSpec fixed-slit calculation on the scene of ``imaging``."""
    reply = await one.request("calculation.add", name=name, scene=imaging["scene"],
                              data={**SPECTRO, **change}, timeout=60)
    assert reply["type"] == "calculation.saved" and reply["item"]["status"] == "ok", reply
    return reply["item"]


async def test_compare_overplots_spectra_and_refuses_mixing_with_imaging(chain):
    one, _, image = await _calculation(chain, "compare-spectra")
    g140 = await _spectroscopic(one, image, "g140m")
    g235 = await _spectroscopic(one, image, "g235m", disperser="G235M", filter="F170LP",
                                reference_wavelength_um=2.2)
    reply = await one.request("plot.compare", calculations=[g140["id"], g235["id"]],
                              kind="snr_vs_wavelength", timeout=60)
    assert (reply["type"], reply["kind"]) == ("plot.compare", "snr_vs_wavelength"), reply
    png = base64.b64decode(reply["png"])
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    for kind, ids, wrong in (("snr_vs_wavelength", [g140["id"], image["id"]], "imaging"),
                             ("snr_vs_time", [image["id"], g235["id"]], "spectroscopic")):
        refused = await one.request("plot.compare", calculations=ids, kind=kind, timeout=60)
        assert (refused["code"], refused["field"]) == ("invalid", "calculations.1"), refused
        assert f"is an {wrong}" in refused["message"] or f"is a {wrong}" in refused["message"]
    for kind in (["snr_vs_wavelength"], {"a": 1}, 7, None, "snr_vs_frequency"):
        refused = await one.request("plot.compare", calculations=[g140["id"]], kind=kind)
        assert (refused["code"], refused["field"]) == ("invalid", "kind"), (kind, refused)


async def test_the_fits_download_of_a_spectroscopic_calculation(chain):
    one, _, image = await _calculation(chain, "fits-spectra")
    calc = await _spectroscopic(one, image, "slit")
    reply = await one.request("calculation.download", calculation=calc["id"], format="fits",
                              timeout=60)
    assert reply.get("filename") == "slit.tar.gz", reply
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(reply["content_base64"])),
                      mode="r:gz") as tar:
        files = {n.split("/", 1)[1]: tar.extractfile(n).read() for n in tar.getnames()}
    assert json.loads(files["input.json"])["calculation"]["data"]["disperser"] == "G140M"
    assert "spectrum.snr = " in files["report.txt"].decode()
    as_json = await one.request("calculation.download", calculation=calc["id"], format="json",
                                timeout=60)
    result = json.loads(as_json["content"])  # the messages carry no per-pixel lists
    spec, j = result["spectrum"], result["spectrum"]["reference_pixel"]
    with fits.open(io.BytesIO(files["curves.fits"])) as hdul:
        table = hdul["SPECTRUM"]
        units = {table.columns[k].name: table.columns[k].unit for k in range(len(table.columns))}
        rows = table.data
        assert len(rows) == len(spec["wavelength_um"])
        assert rows["wavelength"][j] == pytest.approx(spec["wavelength_um"][j], rel=1e-6)
        assert rows["snr"][j] == pytest.approx(result["snr"], rel=1e-9)
        assert rows["flux"][j] == pytest.approx(spec["flux_e_s"][j], rel=1e-3)
        assert rows["noise"][j] == pytest.approx(spec["noise_e_s"][j], rel=1e-3)
    assert {k: units[k] for k in ("wavelength", "snr", "flux", "noise", "source_fnu")} == {
        "wavelength": "um", "snr": None, "flux": "electron / s", "noise": "electron / s",
        "source_fnu": "mJy"}
    with fits.open(io.BytesIO(files["images.fits"])) as hdul:
        assert hdul[0].header["CALCID"] == calc["id"]
        total, snr = hdul["TOTAL"], hdul["SNR"]
        assert total.header["BUNIT"] == "electron / s" and total.header["CTYPE1"] == "PIXEL"
        assert total.data.shape[1] == len(spec["wavelength_um"]) == snr.data.shape[1]
        assert total.header["WAVEMIN"] < spec["wavelength_um"][0]
        ap = hdul["APWEIGHT"].data[:, j]
        assert float(ap.sum()) == pytest.approx(result["aperture_pixels"], rel=1e-5)
        assert math.isfinite(float(snr.data.max())) and snr.data.max() > 0


async def test_expanding_a_spectroscopic_calculation(chain):
    """Over groups it makes spectroscopic calculations; over a filter its disperser does not
    take is invalid naming the value (it was internal: the filter was looked up in every mode
    of the instrument, the slit modes too)."""
    one, _, image = await _calculation(chain, "expand-spectra")
    calc = await _spectroscopic(one, image, "slit")
    reply = await one.request("calculation.expand", calculation=calc["id"],
                              parameter="groups", values=[8], timeout=30)
    assert reply["type"] == "calculation.expanded", reply
    item = (await _settled(one, set(reply["calculations"])))[reply["calculations"][0]]
    assert (item["status"], item["data"]["disperser"], item["result"]["groups"]) == (
        "ok", "G140M", 8), item
    for values in (["F170LP"], ["F9999W"], ["F770W"]):
        refused = await one.request("calculation.expand", calculation=calc["id"],
                                    parameter="filter", values=values, timeout=30)
        assert (refused["code"], refused["field"]) == ("invalid", "values.0"), refused
        assert "data.filter" in refused["message"]


async def test_a_compare_computes_what_its_worker_lacks_in_one_sandbox_run(tmp_path):
    """A worker that has not the results (restarted, or another worker computed them) draws
    the comparison in one sandbox run, computing them there: one request holds a worker no
    longer than one calculation may, however many calculations it compares."""
    import httpx

    from tests.support.procs import wait_for
    from tests.support.system import free_port
    from tests.test_metrics import scrape, value

    chain = Chain(tmp_path)
    try:
        chain.start_all(workers=1)
        one, _, calc = await _calculation(chain, "comparer")
        copies = (await one.request("calculation.expand", calculation=calc["id"],
                                    parameter="groups", values=[4, 6, 8], timeout=30))
        assert copies["type"] == "calculation.expanded", copies
        await _settled(one, set(copies["calculations"]))
        chain.workers[0].stop()  # its results go with it
        port = free_port()
        chain.workers = [chain.start("worker", metrics__port=str(port))]
        def started() -> bool:  # its sandbox is up once the cache is counted
            try:
                return value(scrape(port), "etckit_worker_cache_requests_total",
                             cache="result", result="miss") == 0
            except httpx.HTTPError:
                return False

        wait_for(started, timeout=30, what="the new worker serves its metrics")
        ids = [calc["id"], *copies["calculations"]]
        reply = await one.request("plot.compare", calculations=ids, timeout=60)
        assert reply["type"] == "plot.compare", reply
        assert base64.b64decode(reply["png"]).startswith(b"\x89PNG")
        samples = scrape(port)  # four looked up, none there, none computed one at a time
        assert value(samples, "etckit_worker_cache_requests_total", cache="result",
                     result="miss") == 4
        assert value(samples, "etckit_worker_calculation_seconds_count") == 0
    finally:
        chain.stop()
