"""Single sign-on against a real OpenID provider (panva/oidc-provider on Node, loopback).

The provider is tests/oidc/provider.mjs: its development login page takes any login name and
any password, then asks for consent. The failures are made by rewriting what really passes
between the browser and the two servers (Playwright routes): a tampered state, a nonce that
is not ours, an error from the provider (the user cancels there).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import pytest
from playwright.sync_api import expect

from tests.support.procs import Proc, wait_http
from tests.support.system import free_port, missing

from .conftest import System, shot

pytestmark = pytest.mark.browser

OIDC_DIR = Path(__file__).resolve().parents[1] / "oidc"
CLIENT_ID = "etckit-test"
CLIENT_SECRET = "etckit-test-client-secret"


def node_provider_ready() -> str:
    node = shutil.which("node")
    npm = shutil.which("npm")
    if node is None or npm is None:
        missing("node and npm", "nodejs npm")
    if not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=OIDC_DIR,
                              capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            missing(f"oidc-provider (npm ci in tests/oidc failed: {done.stderr[-300:]})",
                    "nodejs npm")
    return node


@pytest.fixture(scope="module")
def sso_system(tmp_path_factory):
    node = node_provider_ready()
    tmp = tmp_path_factory.mktemp("sso")
    op_port = free_port()
    issuer = f"http://127.0.0.1:{op_port}"
    system = System(tmp, sso__enabled="true", sso__issuer=issuer, sso__client_id=CLIENT_ID,
                    sso__client_secret=CLIENT_SECRET,
                    sso__registration_url=f"{issuer}/register-here")
    env = {**os.environ, "PORT": str(op_port), "CLIENT_ID": CLIENT_ID,
           "CLIENT_SECRET": CLIENT_SECRET,
           "REDIRECT_URI": f"{system.url}/login/sso/callback"}
    provider = Proc("oidc-provider", [node, str(OIDC_DIR / "provider.mjs")], env, tmp)
    try:
        wait_http(f"{issuer}/.well-known/openid-configuration", proc=provider, timeout=30)
        system.start(pools=1)
        system.issuer = issuer
        yield system
    finally:
        system.stop()
        provider.stop()


def rewrite(url: str, **params: str | None) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    for key, value in params.items():
        if value is None:
            query.pop(key, None)
        else:
            query[key] = value
    return urlunsplit(parts._replace(query=urlencode(query)))


def start_login(page, base: str) -> None:
    page.goto(base + "/")
    page.wait_for_selector("body[data-ready=true]")
    page.locator("#sso-button").click()


def provider_login(page, login: str) -> None:
    page.locator("input[name=login]").fill(login)
    page.locator("input[name=password]").fill("any password")
    page.locator("button[type=submit]").click()
    page.locator("button[type=submit]", has_text="Continue").click()  # consent


def tamper_authorization_request(page, base: str, **params: str | None) -> None:
    """Change the authorization request etckit sends the browser to (its Location)."""
    def handle(route):
        response = route.fetch(max_redirects=0)
        headers = {**response.headers, "location": rewrite(response.headers["location"],
                                                            **params)}
        route.fulfill(response=response, headers=headers)
    page.route(base + "/login/sso", handle)


def expect_failure_page(page, text: str, screenshot: str | None = None) -> None:
    expect(page.locator("h1")).to_have_text("Single sign-on failed")
    expect(page.locator(".message")).to_contain_text(text)
    if screenshot:
        shot(page, screenshot)
    body = page.content()
    assert "Traceback" not in body
    page.locator("#back").click()
    expect(page.locator("#sso-button")).to_be_visible()


def test_sso_login_through_a_real_provider(sso_system, context):
    base = sso_system.url
    page = context.new_page()
    page.goto(base + "/")
    page.wait_for_selector("body[data-ready=true]")
    expect(page.locator("#create-account")).to_be_visible()
    assert page.locator("#create-account").get_attribute("href") == \
        f"{sso_system.issuer}/register-here"
    shot(page, "20-login-with-sso")
    page.locator("#sso-button").click()
    page.wait_for_url(f"{sso_system.issuer}/interaction/**")
    assert page.url.startswith(sso_system.issuer)
    shot(page, "21-provider-login")
    provider_login(page, "carol")
    page.wait_for_url(base + "/welcome")
    expect(page.locator("[data-user-name]")).to_have_text("User carol")
    expect(page.locator("[data-user-kind]")).to_have_text("carol@example.org")
    shot(page, "22-sso-logged-in")
    rows = sso_system.query("SELECT issuer, subject, kind, email FROM users")
    assert rows == [(sso_system.issuer, "carol", "sso", "carol@example.org")]
    # the login transaction cookie is gone once used
    assert not [c for c in context.cookies() if c["name"] == "etckit_sso"]


def tamper_callback(page, issuer: str, base: str, **params: str | None) -> None:
    """Change the provider's redirect back to etckit's callback.

    Playwright intercepts only the first request of a navigation, not its redirects, so the
    form POSTs at the provider are fetched here and their redirects followed by hand (with
    the browser context's cookies) until the one that goes to the callback, which the
    browser then receives rewritten.
    """
    callback = base + "/login/sso/callback"

    def handle(route):
        if route.request.method != "POST":
            route.continue_()
            return
        response = route.fetch(max_redirects=0)
        location = response.headers.get("location")
        while location:
            location = urljoin(issuer + "/", location)
            if location.startswith(callback):
                location = rewrite(location, **params)
                break
            hop = page.context.request.get(location, max_redirects=0)
            if "location" not in hop.headers:
                break
            location = hop.headers["location"]
        if location is None:
            route.fulfill(response=response)
        else:
            route.fulfill(status=303, headers={"location": location})
    page.route(issuer + "/interaction/**", handle)


def test_tampered_state_is_refused(sso_system, context):
    base = sso_system.url
    page = context.new_page()
    tamper_callback(page, sso_system.issuer, base, state="forged-state")
    start_login(page, base)
    provider_login(page, "mallory")
    expect_failure_page(page, "state mismatch", "23-sso-failed-state")
    assert sso_system.query("SELECT COUNT(*) FROM users WHERE subject = 'mallory'") == [(0,)]


def test_wrong_nonce_is_refused(sso_system, context):
    base = sso_system.url
    page = context.new_page()
    tamper_authorization_request(page, base, nonce="a-nonce-etckit-never-made")
    start_login(page, base)
    provider_login(page, "mallory")
    expect_failure_page(page, "nonce", "25-sso-failed-nonce")
    assert sso_system.query("SELECT COUNT(*) FROM users WHERE subject = 'mallory'") == [(0,)]


def test_provider_error_is_answered_with_the_clear_page(sso_system, context):
    base = sso_system.url
    page = context.new_page()
    start_login(page, base)
    page.wait_for_url(f"{sso_system.issuer}/interaction/**")
    page.locator("a", has_text="Cancel").click()  # the user gives up at the provider
    expect_failure_page(page, "did not log you in", "24-sso-failed-provider-error")


def test_callback_without_a_login_in_progress(sso_system, context):
    page = context.new_page()
    response = page.goto(sso_system.url + "/login/sso/callback?code=x&state=y")
    assert response.status == 400
    expect_failure_page(page, "not started from this browser")
