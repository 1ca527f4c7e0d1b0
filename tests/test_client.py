"""etckit.client and examples/batch.py against a real system (main_server, wssvc, broker,
worker as processes, as `etckit dev` runs them): tokens made the way the tokens page makes
them, then only the scripting API."""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from etckit.client import Client, ConflictError, EtckitError
from tests.support.chain import Chain
from tests.support.procs import wait_http
from tests.support.system import free_port

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    chain = Chain(tmp, auth__fake_login="true", auth__session_check_interval="1",
                  main_server__public_url=public, main_server__port=str(port))
    try:
        chain.start_all(workers=1)
        main = chain.start("main-server")
        wait_http(f"{public}/healthz", proc=main, timeout=30)
        yield public
    finally:
        chain.stop()


def browser_login(public: str, name: str) -> httpx.Client:
    """A logged-in browser session (cookies), as the tokens page has it."""
    http = httpx.Client(base_url=public, headers={"Origin": public}, timeout=30)
    csrf = http.get("/api/login-options").json()["csrf"]
    assert http.post("/login/fake", data={"name": name, "csrf": csrf}).status_code == 303
    return http


def make_token(public: str, user: str, scope: str) -> tuple[str, str, httpx.Client]:
    http = browser_login(public, user)
    made = http.post("/api/tokens", json={"name": f"{scope} test", "scope": scope,
                                          "expires_in_days": 1})
    assert made.status_code == 201, made.text
    return made.json()["token"], made.json()["item"]["id"], http


def small_workbook(etc: Client) -> tuple[str, dict, dict, dict]:
    book = etc.create_workbook("client test")["id"]
    defaults = etc.defaults(book)
    source = etc.add_source(book, "Star", defaults["source"])
    scene = etc.add_scene(book, "Field", [source["id"]])
    calc = etc.add_calculation(book, "F200W", scene["id"], defaults["calculation"])
    return book, source, scene, calc


def test_the_batch_example_writes_its_table(site, tmp_path):
    token, _, _ = make_token(site, "erin", "write")
    out = tmp_path / "snr.csv"
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "batch.py"), "--url", site, "--token", token,
         "--out", str(out), "--filters", "F150W,F200W", "--groups", "3,10,99"],
        capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [(r["filter"], r["groups"]) for r in rows] == [
        ("F150W", "3"), ("F150W", "10"), ("F150W", "99"),
        ("F200W", "3"), ("F200W", "10"), ("F200W", "99")]
    ok = [r for r in rows if r["groups"] != "99"]
    assert all(r["status"] == "ok" and float(r["snr"]) > 0 for r in ok), ok
    for f in ("F150W", "F200W"):  # more groups: a longer exposure and a higher S/N
        three, ten = (float(r["snr"]) for r in ok if r["filter"] == f)
        assert ten > three
    refused = [r for r in rows if r["groups"] == "99"]  # over MEDIUM8's 10 groups
    assert all(r["status"] == "refused" and "groups" in r["error"] for r in refused), refused


def test_edits_name_the_revision_for_the_caller_and_conflicts_are_raised(site):
    token, _, _ = make_token(site, "fay", "write")
    with Client(site, token) as etc, Client(site, token) as other:
        book, source, _, calc = small_workbook(etc)
        assert calc["status"] == "ok" and calc["result"]["snr"] > 0
        data = {**source["data"], "redshift": 0.5}
        edited = etc.edit("source", book, source["id"], data=data)
        assert edited["item_revision"] == source["item_revision"] + 1
        # the edit made every calculation of the source pending; its result comes back
        later = etc.wait_result(book, calc["id"])
        assert later["status"] == "ok" and later["revision"] > calc["revision"]
        # another script edits the source: this one's next edit is a conflict...
        other.edit("source", book, source["id"], name="Renamed elsewhere")
        with pytest.raises(ConflictError) as conflict:
            etc.edit("source", book, source["id"], name="Mine")
        assert conflict.value.item["name"] == "Renamed elsewhere"
        # ...unless it asks to keep its own
        kept = etc.edit("source", book, source["id"], name="Mine", overwrite=True)
        assert kept["name"] == "Mine"
        renamed = etc.rename_workbook(book, "client test 2")
        assert renamed["name"] == "client test 2"
        text = etc.download(book, calc["id"], "csv")
        assert "snr" in text.lower()
        png = etc.plot(book, calc["id"], "snr_vs_time")
        assert png.startswith(b"\x89PNG")
        etc.delete_workbook(book)
        assert book not in [w["id"] for w in etc.workbooks()]


def test_a_read_token_reads_but_cannot_write_and_a_revoked_one_stops(site):
    writer_token, _, http = make_token(site, "gus", "write")
    with Client(site, writer_token) as writer:
        book, source, _, calc = small_workbook(writer)
    made = http.post("/api/tokens", json={"name": "reader", "scope": "read",
                                          "expires_in_days": 1}).json()
    with Client(site, made["token"]) as reader:
        assert reader.whoami()["token"]["scope"] == "read"
        assert [w["id"] for w in reader.workbooks()] == [book]
        assert reader.wait_result(book, calc["id"])["status"] == "ok"
        with pytest.raises(EtckitError) as refused:
            reader.edit("source", book, source["id"], name="nope")
        assert refused.value.code == "forbidden"
        with pytest.raises(EtckitError) as refused:
            reader.create_workbook("nope")
        assert refused.value.code == "forbidden"
        assert http.delete(f"/api/tokens/{made['item']['id']}").status_code == 200
        with pytest.raises(EtckitError) as gone:  # the socket closes (4003), or the
            for _ in range(20):                  # next ticket is refused: either way, 401
                reader.workbooks()
                time.sleep(0.5)
        assert gone.value.code == "not_authenticated"
    with pytest.raises(EtckitError) as gone, Client(site, made["token"]) as again:
        again.workbooks()
    assert gone.value.code == "not_authenticated"
    assert "revoked" in str(gone.value)
