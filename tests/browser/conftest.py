"""Browser tests: Playwright driving Debian's Chromium against real etckit processes.

Never downloads a browser: Chromium is /usr/bin/chromium (apt-get install chromium); without
it the tests skip with the reason, and fail under CI=true. Screenshots of every page go to
test-artifacts/screenshots/ (not committed).
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.support.chain import Chain
from tests.support.procs import Proc, wait_http
from tests.support.system import free_port, missing

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]



def chromium_path() -> str:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium") or ""):
        if candidate and Path(candidate).exists():
            return candidate
    missing("Debian's chromium", "chromium")
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")  # not session: Playwright's sync API holds an event loop
def browser():                   # while it runs, which later asyncio tests must not find
    path = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("the playwright Python package", "python3-venv (pip install '.[test]')")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


class System:
    """main_server plus wssvc pools (each wssvc with its broker and a worker) on loopback."""

    def __init__(self, tmp: Path, **settings: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.chain = Chain(tmp, main_server__public_url=self.url, main_server__port=str(self.port),
                           auth__fake_login="true", **settings)
        self.pools: dict[str, list[Proc]] = {}

    def add_pool(self, name: str) -> list[Proc]:
        port = free_port()
        procs = [self.chain.start("wssvc", wssvc__port=str(port), wssvc__pool=name),
                 self.chain.start("broker", broker__pool=name),
                 self.chain.start("worker", worker__pool=name)]
        wait_http(f"http://127.0.0.1:{port}/healthz", proc=procs[0], timeout=30)
        self.pools[name] = procs
        return procs

    def start(self, pools: int = 1) -> System:
        for n in range(pools):
            self.add_pool(f"p{n + 1}")
        self.main = self.chain.start("main-server")
        wait_http(f"{self.url}/healthz", proc=self.main, timeout=30)
        return self

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        path = self.chain.db_url[len("sqlite:///"):]
        with sqlite3.connect(path, timeout=10) as conn:
            return conn.execute(sql, params).fetchall()

    def stop(self) -> None:
        self.chain.stop()


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    system = System(tmp_path_factory.mktemp("system")).start(pools=1)
    yield system
    system.stop()


@pytest.fixture
def context(browser):
    context = browser.new_context(viewport={"width": 1100, "height": 760})
    context.set_default_timeout(20000)
    yield context
    context.close()


def fake_login(page, base: str, name: str) -> None:
    page.goto(base + "/")
    page.locator("#fake-name").fill(name)
    page.locator("#fake-button").click()
    page.wait_for_url(base + "/welcome")


def source_in_a_scene(page, brightness: str | None = None, name: str | None = None) -> None:
    """In the open workbook: a source (the form's defaults, or this normalization value in
    the form's unit, or this name) saved through its form, and a scene saved through its own."""
    page.locator("#add-source").click()
    if brightness is not None:
        page.locator("#source-form [name='data.normalization.value']").fill(brightness)
    if name is not None:
        page.locator("#source-form [name='name']").fill(name)
    page.locator("#form-save").click()
    page.wait_for_selector("#source-list tr[data-id]")
    page.locator("#add-scene").click()
    page.locator("#form-save").click()
    page.wait_for_selector("#scene-list tr[data-id]")


def open_list(page, base: str) -> None:
    page.goto(base + "/workbooks")
    page.wait_for_selector("body[data-ready=true]")
