"""Uploaded spectra through the real chain (issue 16): upload, use by a source, refusals that
name the line or field, in_use, and no access to another user's spectra."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from astropy.io import fits

from tests.support.chain import Chain

FLAT = "".join(f"{w:.3f} 1.0\n" for w in np.linspace(0.5, 30.0, 200))


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    c = Chain(tmp_path_factory.mktemp("spectra"), wssvc__user_rate="1000",
              wssvc__user_burst="1000", wssvc__connection_rate="1000",
              wssvc__connection_burst="1000", calculation__upload_max_points="500",
              quotas__spectrum_points_per_user="450")
    c.start_all(workers=1)
    yield c
    c.stop()


async def _open(chain, user="alice"):
    lister = await chain.connect(user)
    wb = (await lister.request("workbook.create", name="Spectra"))["workbook"]["id"]
    one = await chain.connect(user, workbook=wb)
    content = await one.request("workbook.open")
    return one, wb, content


async def test_an_uploaded_spectrum_computes_like_the_builtin_one(chain):
    one, wb, content = await _open(chain)
    up = await one.request("spectrum.upload", name="flat", format="ascii", flux_unit="mJy",
                           content="# rest um, mJy\n" + FLAT, timeout=60)
    assert up["type"] == "spectrum.saved", up
    item = up["item"]
    assert item["points"] == 200 and item["wave_min_um"] == 0.5
    listed = await one.request("spectrum.list")
    assert [s["id"] for s in listed["spectra"]] == [item["id"]]
    d = content["defaults"]
    src_up = {**d["source"], "spectrum": {"kind": "uploaded", "spectrum_id": item["id"]}}
    results = []
    for data in (src_up, d["source"]):
        source = (await one.request("source.add", name="s", data=data))["item"]
        scene = (await one.request("scene.add", name="f", data={"sources": [
            {"source_id": source["id"]}]}))["item"]
        calc = await one.request("calculation.add", name="c", scene=scene["id"],
                                 data=d["calculation"], timeout=60)
        assert calc["item"]["status"] == "ok", calc
        results.append(calc["item"]["result"]["snr"])
    assert results[0] == pytest.approx(results[1], rel=1e-9)
    in_use = await one.request("spectrum.delete", spectrum=item["id"])
    assert in_use["code"] == "in_use" and "source s" in in_use["message"]


async def test_fits_upload_and_refusals_name_what_is_wrong(chain):
    one, wb, content = await _open(chain)
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns([
        fits.Column(name="WAVE", format="D", unit="um", array=np.array([1.0, 2.0, 3.0])),
        fits.Column(name="FLUX", format="D", unit="Jy", array=np.array([1.0, 2.0, 3.0]))])
    ]).writeto(buf)
    ok = await one.request("spectrum.upload", name="fits", format="fits", flux_unit="mJy",
                           content_base64=base64.b64encode(buf.getvalue()).decode(), timeout=60)
    assert ok["type"] == "spectrum.saved" and ok["item"]["points"] == 3, ok
    bad = await one.request("spectrum.upload", name="x", format="ascii", flux_unit="mJy",
                            content="1 2\n2 oops\n", timeout=60)
    assert bad["code"] == "invalid" and bad["field"] == "content"
    assert "line 2: column 2 is not a number" in bad["message"]
    many = await one.request("spectrum.upload", name="x", format="ascii", flux_unit="mJy",
                             content=FLAT * 3, timeout=60)
    assert many["code"] == "invalid" and "at most 500 points" in many["message"]
    unit = await one.request("spectrum.upload", name="x", format="ascii", flux_unit="W",
                             content=FLAT, timeout=60)
    assert unit["code"] == "invalid" and unit["field"] == "flux_unit"
    nob64 = await one.request("spectrum.upload", name="x", format="fits", flux_unit="mJy",
                              content_base64="***", timeout=60)
    assert nob64["code"] == "invalid" and nob64["field"] == "content_base64"
    d = content["defaults"]
    ghost = {**d["source"], "spectrum": {"kind": "uploaded", "spectrum_id": "nope"}}
    refused = await one.request("source.add", name="g", data=ghost)
    assert refused["code"] == "invalid" and refused["field"] == "data.spectrum.spectrum_id"
    listed = await one.request("spectrum.list")
    assert [s["name"] for s in listed["spectra"]] == ["fits"]  # nothing bad was stored


async def test_another_users_spectrum_is_not_found(chain):
    one, wb, _ = await _open(chain, "alice")
    up = await one.request("spectrum.upload", name="mine", format="ascii", flux_unit="Jy",
                           content=FLAT, timeout=60)
    other, _, _ = await _open(chain, "bob")
    gone = await other.request("spectrum.delete", spectrum=up["item"]["id"])
    assert gone["code"] == "not_found" and gone["message"] == f"no spectrum {up['item']['id']}"
    peek = await other.request("spectrum.list", workbook=wb)
    assert peek["code"] == "not_found"
    deleted = await one.request("spectrum.delete", spectrum=up["item"]["id"])
    assert deleted["type"] == "spectrum.deleted"


async def test_a_copied_workbook_brings_its_spectra_and_its_sources_use_the_copies(chain):
    one, wb, content = await _open(chain, "carol")
    up = (await one.request("spectrum.upload", name="flat", format="ascii", flux_unit="mJy",
                            content=FLAT, timeout=60))["item"]
    d = content["defaults"]
    data = {**d["source"], "spectrum": {"kind": "uploaded", "spectrum_id": up["id"]}}
    source = (await one.request("source.add", name="s", data=data))["item"]
    scene = (await one.request("scene.add", name="f", data={"sources": [
        {"source_id": source["id"]}]}))["item"]
    calc = await one.request("calculation.add", name="c", scene=scene["id"],
                             data=d["calculation"], timeout=60)
    assert calc["item"]["status"] == "ok", calc
    lister = await chain.connect("carol")
    copied = await lister.request("workbook.copy", workbook=wb, timeout=60)
    new_wb = copied["workbook"]["id"]
    copy = await chain.connect("carol", workbook=new_wb)
    new = await copy.request("workbook.open")
    listed = (await copy.request("spectrum.list"))["spectra"]
    assert [s["name"] for s in listed] == ["flat"] and listed[0]["id"] != up["id"]
    src = new["sources"][0]
    assert src["data"]["spectrum"]["spectrum_id"] == listed[0]["id"]
    # the original's spectrum cannot be deleted out from under the copy, and vice versa
    gone = await one.request("spectrum.delete", spectrum=up["id"])
    assert gone["code"] == "in_use"
    again = await copy.request("calculation.edit", calculation=new["calculations"][0]["id"],
                               data={**d["calculation"], "groups": 7},
                               base_revision=new["calculations"][0]["item_revision"],
                               timeout=60)
    assert again["item"]["status"] == "ok", again


async def test_stored_spectrum_points_are_a_quota_on_uploads_and_copies(chain):
    """quotas.spectrum_points_per_user (450 here) counts every point of the spectra in the
    workbooks a user owns: a third 200-point upload and a copy of 400 points are refused."""
    one, wb, _ = await _open(chain, "dave")
    for i in range(2):
        up = await one.request("spectrum.upload", name=f"s{i}", format="ascii",
                               flux_unit="mJy", content=FLAT, timeout=60)
        assert up["type"] == "spectrum.saved", up
    refused = await one.request("spectrum.upload", name="s2", format="ascii", flux_unit="mJy",
                                content=FLAT, timeout=60)
    assert refused["code"] == "quota", refused
    assert refused["limit"] == "quotas.spectrum_points_per_user" and refused["value"] == 450
    lister = await chain.connect("dave")
    copied = await lister.request("workbook.copy", workbook=wb, timeout=60)
    assert copied["code"] == "quota" and copied["limit"] == "quotas.spectrum_points_per_user"
    assert len((await lister.request("workbook.list"))["workbooks"]) == 1
    assert len((await one.request("spectrum.list"))["spectra"]) == 2


async def test_editing_a_source_with_an_uploaded_spectrum_keeps_its_calculations_in_limits(
        chain):
    """The cost check of the calculations a source edit touches sees the uploaded table (it
    was skipped for such sources): too large a source is too_expensive, nothing stored."""
    one, wb, content = await _open(chain, "erin")
    up = (await one.request("spectrum.upload", name="flat", format="ascii", flux_unit="mJy",
                            content=FLAT, timeout=60))["item"]
    d = content["defaults"]
    data = {**d["source"], "spectrum": {"kind": "uploaded", "spectrum_id": up["id"]}}
    source = (await one.request("source.add", name="s", data=data))["item"]
    placed = [{"source_id": source["id"], "offset_x_arcsec": 0.2 * i, "offset_y_arcsec": 0.0}
              for i in range(11)]  # eleven copies: fine as points, too many extended ones
    scene = (await one.request("scene.add", name="f", data={"sources": placed}))["item"]
    calc = await one.request("calculation.add", name="c", scene=scene["id"],
                             data=d["calculation"], timeout=60)
    assert calc["item"]["status"] == "ok", calc
    extended = {**data, "shape": {"kind": "gaussian", "fwhm_arcsec": 0.5}}
    refused = await one.request("source.edit", source=source["id"], data=extended,
                                base_revision=source["item_revision"], timeout=60)
    assert refused["code"] == "too_expensive", refused
    assert refused["field"] == "scene.sources" and "calculation c" in refused["message"]
    stored = (await one.request("workbook.open"))["sources"][0]
    assert stored["data"]["shape"]["kind"] == "point"
