"""The API tokens page: reached from the Workbook List; create (the secret shown once, stored
only hashed), list, revoke; anonymous users get no form."""

from __future__ import annotations

import hashlib

import pytest
from playwright.sync_api import expect

from .conftest import fake_login, open_list, shot

pytestmark = pytest.mark.browser


def test_create_show_once_and_revoke_a_token(system, context):
    page = context.new_page()
    fake_login(page, system.url, "tess")
    open_list(page, system.url)
    page.locator("#api-tokens").click()
    page.wait_for_url(system.url + "/tokens")
    page.wait_for_selector("body[data-ready=true]")
    expect(page.locator("#no-tokens")).to_be_visible()
    page.locator("#token-name").fill("nightly batch")
    page.locator("#token-scope").select_option("read")
    page.locator("#token-days").fill("7")
    page.locator("#create-token").click()
    expect(page.locator("#new-token")).to_be_visible()
    secret = page.locator("#new-token-secret").text_content()
    assert secret.startswith("etk_")
    row = page.locator("#tokens tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator(".token-name")).to_have_text("nightly batch")
    expect(row.locator(".token-scope")).to_have_text("read")
    shot(page, "40-token-created")
    stored = system.query("SELECT token_hash FROM api_tokens")
    assert stored == [(hashlib.sha256(secret.encode()).hexdigest(),)]

    page.reload()  # shown once: a reload lists the token but never its secret again
    page.wait_for_selector("body[data-ready=true]")
    expect(page.locator("#tokens tbody tr")).to_have_count(1)
    expect(page.locator("#new-token")).to_be_hidden()
    assert secret not in page.content()

    page.locator(".revoke-token").click()
    expect(page.locator("#tokens tbody tr")).to_have_count(0)
    expect(page.locator("#no-tokens")).to_be_visible()
    assert system.query("SELECT revoked_at IS NOT NULL FROM api_tokens") == [(1,)]
    shot(page, "41-token-revoked")


def test_anonymous_users_see_no_form(system, context):
    page = context.new_page()
    page.goto(system.url + "/")
    page.locator("#anonymous-button").click()
    page.wait_for_url(system.url + "/welcome")
    page.goto(system.url + "/tokens")
    page.wait_for_selector("body[data-ready=true]")
    expect(page.locator("#anonymous-note")).to_be_visible()
    expect(page.locator("#token-form")).to_be_hidden()
    shot(page, "42-tokens-anonymous")
