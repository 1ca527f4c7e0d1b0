"""The pages in Chromium: logins, the Workbook List, the Workbook page, live updates."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .conftest import fake_login, open_list, shot

pytestmark = pytest.mark.browser


def test_fake_login_proceed_create_open_delete(system, context):
    page = context.new_page()
    base = system.url
    page.goto(base + "/")
    page.wait_for_selector("body[data-ready=true]")
    expect(page.locator("#fake-login")).to_be_visible()
    expect(page.locator("#anonymous-login")).to_be_visible()
    expect(page.locator("#sso-login")).to_be_hidden()  # sso not configured here
    shot(page, "01-login")

    page.locator("#fake-name").fill("alice")
    page.locator("#fake-button").click()
    page.wait_for_url(base + "/welcome")
    expect(page.locator("h1")).to_have_text("You are logged in")
    expect(page.locator("[data-user-name]")).to_have_text("alice")
    shot(page, "02-logged-in")

    page.locator("#proceed").click()
    page.wait_for_url(base + "/workbooks")
    expect(page.locator("#connection-status")).to_have_text("Connected")
    expect(page.locator("#empty")).to_be_visible()
    shot(page, "03-workbook-list-empty")

    page.locator("#new-name").fill("M31 deep field")
    page.locator("#new-description").fill("F200W, 10 ks")
    page.locator("#create").click()
    row = page.locator("tr", has_text="M31 deep field")
    expect(row).to_be_visible()
    expect(page.locator("#new-name")).to_have_value("")
    shot(page, "04-workbook-list")

    row.locator("a.open-workbook").click()
    page.wait_for_url(re.compile(r".*/workbooks/[0-9a-f]{32}$"))
    expect(page.locator("#workbook-name")).to_have_text("M31 deep field")
    expect(page.locator("#connection-status")).to_have_text("Connected")
    expect(page.locator("#workbook-content")).to_be_attached()
    shot(page, "05-workbook")
    workbook_url = page.url

    page.locator("#back-to-list").click()
    page.wait_for_url(base + "/workbooks")
    row = page.locator("tr", has_text="M31 deep field")
    row.locator("button.delete-workbook").click()
    expect(page.locator("#confirm-delete")).to_be_visible()
    shot(page, "06-confirm-delete")
    page.locator("#confirm-delete-no").click()  # cancel keeps it
    expect(row).to_be_visible()
    row.locator("button.delete-workbook").click()
    page.locator("#confirm-delete-yes").click()
    expect(row).to_have_count(0)
    expect(page.locator("#empty")).to_be_visible()

    # the deleted workbook's page is now 404, as is anyone else's
    response = page.goto(workbook_url)
    assert response.status == 404
    expect(page.locator("h1")).to_have_text("Workbook not found")
    shot(page, "07-workbook-not-found")
    response = page.goto(base + "/no/such/page")
    assert response.status == 404
    shot(page, "08-not-found")


def test_another_users_workbook_is_not_found(system, context, browser):
    alice = context.new_page()
    fake_login(alice, system.url, "alice2")
    open_list(alice, system.url)
    alice.locator("#new-name").fill("private")
    alice.locator("#create").click()
    link = alice.locator("tr", has_text="private").locator("a.open-workbook")
    url = system.url + link.get_attribute("href")
    other = browser.new_context()
    try:
        bob = other.new_page()
        fake_login(bob, system.url, "bob")
        assert bob.goto(url).status == 404
        expect(bob.locator("h1")).to_have_text("Workbook not found")
    finally:
        other.close()


def test_anonymous_login_and_logout(system, context):
    page = context.new_page()
    base = system.url
    page.goto(base + "/")
    page.locator("#anonymous-button").click()
    page.wait_for_url(base + "/welcome")
    expect(page.locator("[data-user-name]")).to_have_text("Anonymous")
    expect(page.locator("[data-user-kind]")).to_contain_text("deleted when you log out")
    shot(page, "09-anonymous-logged-in")
    page.locator("#proceed").click()
    page.wait_for_selector("body[data-ready=true]")
    page.locator("#new-name").fill("scratch")
    page.locator("#create").click()
    expect(page.locator("tr", has_text="scratch")).to_be_visible()
    assert system.query("SELECT COUNT(*) FROM users WHERE kind = 'anonymous'") == [(1,)]

    page.locator("#logout").click()
    page.wait_for_url(base + "/")
    expect(page.locator("#anonymous-button")).to_be_visible()
    assert system.query("SELECT COUNT(*) FROM users WHERE kind = 'anonymous'") == [(0,)]
    assert system.query("SELECT COUNT(*) FROM workbooks WHERE name = 'scratch'") == [(0,)]
    assert page.goto(base + "/workbooks").url == base + "/"  # logged out: back to login


def test_two_tabs_see_each_others_changes(system, context):
    one = context.new_page()
    fake_login(one, system.url, "carol")
    open_list(one, system.url)
    two = context.new_page()
    open_list(two, system.url)

    one.locator("#new-name").fill("from tab one")
    one.locator("#create").click()
    expect(two.locator("tr", has_text="from tab one")).to_be_visible()
    shot(two, "10-second-tab-sees-create")

    two.locator("tr", has_text="from tab one").locator("button.delete-workbook").click()
    two.locator("#confirm-delete-yes").click()
    expect(one.locator("tr", has_text="from tab one")).to_have_count(0)
    expect(one.locator("#empty")).to_be_visible()
