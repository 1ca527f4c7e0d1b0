"""Sharing and folders in the browser (issue 17, items 1 and 2): the owner shares a workbook,
the other user sees it marked in their list and sees the owner's edit appear live; a read-only
user gets the page without edit controls; revoking sends that user back to the list (4004);
a recipient leaves a share;
folders are created, filled, refused deletion while full, emptied and deleted."""

from __future__ import annotations

from tests.browser.conftest import fake_login, open_list, shot


def _user(browser, system, name: str):
    context = browser.new_context(viewport={"width": 1100, "height": 760})
    context.set_default_timeout(20000)
    page = context.new_page()
    fake_login(page, system.url, name)
    return context, page


def _share(page, user: str, access: str) -> None:
    page.locator("#share-user").fill(user)
    page.locator("#share-access").select_option(access)
    page.locator("#share-submit").click()
    page.locator("#share-list li", has_text=user).wait_for()


def test_share_edit_live_read_only_and_revoke(browser, context, system):
    alice = context.new_page()
    fake_login(alice, system.url, "alice-s")
    bob_context, bob = _user(browser, system, "bob-s")
    carol_context, carol = _user(browser, system, "carol-s")
    try:
        open_list(alice, system.url)
        alice.locator("#new-name").fill("Team plan")
        alice.locator("#create").click()
        row = alice.locator("tr", has_text="Team plan")
        row.locator("button.share-workbook").click()
        _share(alice, "bob-s", "write")
        _share(alice, "carol-s", "read")
        shot(alice, "share-dialog")
        alice.locator("#share-close").click()

        open_list(bob, system.url)
        mark = bob.locator("tr", has_text="Team plan").locator(".shared-mark")
        assert mark.inner_text() == "shared by alice-s (write)"
        assert bob.locator("tr", has_text="Team plan").locator(".delete-workbook").count() == 0
        shot(bob, "workbook-list-shared")

        row.locator("a.open-workbook").click()
        alice.wait_for_selector("body[data-ready=true]")
        bob.goto(alice.url)
        bob.wait_for_selector("body[data-ready=true]")
        carol.goto(alice.url)
        carol.wait_for_selector("body[data-ready=true][data-access=read]")

        alice.locator("#add-source").click()
        alice.locator("#source-form [name='name']").fill("Nebula")
        alice.locator("#form-save").click()
        # the other users see it appear without reloading
        bob.locator("#source-list tr[data-id]", has_text="Nebula").wait_for()
        carol.locator("#source-list tr[data-id]", has_text="Nebula").wait_for()
        assert bob.locator("#add-source").is_visible()
        assert not carol.locator("#add-source").is_visible()
        carol_row = carol.locator("#source-list tr[data-id]")
        assert not carol_row.get_by_role("button", name="Edit").is_visible()
        assert carol_row.get_by_role("button", name="History").is_visible()
        assert not carol.locator("#spectrum-file").is_visible()
        assert "to read" in carol.locator("#access-note").inner_text()
        shot(carol, "workbook-read-only")

        # revoking carol sends her page back to the Workbook List (close code 4004)
        open_list(alice, system.url)
        alice.locator("tr", has_text="Team plan").locator("button.share-workbook").click()
        alice.locator("#share-list li", has_text="carol-s").locator(".revoke-share").click()
        alice.locator("#share-list li", has_text="carol-s").wait_for(state="detached")
        carol.wait_for_url(system.url + "/workbooks", timeout=30000)
        carol.wait_for_selector("body[data-ready=true]")
        assert carol.locator("tr", has_text="Team plan").count() == 0

        # bob leaves the share himself: out of his list, and out of alice's share list
        open_list(bob, system.url)
        assert alice.locator("tr", has_text="Team plan").locator(".leave-workbook").count() == 0
        bob.locator("tr", has_text="Team plan").locator("button.leave-workbook").click()
        bob.locator("#confirm-leave-yes").click()
        bob.locator("tr", has_text="Team plan").wait_for(state="detached")
        bob.reload()
        bob.wait_for_selector("body[data-ready=true]")
        assert bob.locator("tr", has_text="Team plan").count() == 0
        alice.locator("#share-close").click()
        alice.locator("tr", has_text="Team plan").locator("button.share-workbook").click()
        alice.locator("#share-list li", has_text="bob-s").wait_for(state="detached")
    finally:
        bob_context.close()
        carol_context.close()


def test_folders(context, system):
    page = context.new_page()
    fake_login(page, system.url, "folder-user")
    open_list(page, system.url)
    for name in ("Alpha", "Beta"):
        page.locator("#new-name").fill(name)
        page.locator("#create").click()
        page.locator("tr", has_text=name).wait_for()
    page.locator("#new-folder").fill("Projects")
    page.locator("#create-folder").click()
    heading = page.locator("tr.folder-heading", has_text="Projects")
    heading.wait_for()
    page.locator("tr[data-workbook-id]", has_text="Alpha").locator(
        "select.move-workbook").select_option(label="Projects")
    page.wait_for_function(
        "() => [...document.querySelectorAll('tr.folder-heading')]"
        ".some(r => r.textContent.includes('Projects (1)'))")
    # the workbook sits under its folder heading; the other one is not in a folder
    order = page.locator("#workbooks tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.folderId ? 'F' : r.textContent.includes('Alpha')"
        " ? 'A' : r.textContent.includes('Beta') ? 'B' : '-')")
    assert order == ["F", "A", "-", "B"], order
    shot(page, "workbook-list-folders")
    heading.locator(".delete-folder").click()
    page.locator("#list-error").wait_for()
    assert "move them out" in page.locator("#list-error").inner_text()
    page.locator("tr[data-workbook-id]", has_text="Alpha").locator(
        "select.move-workbook").select_option(value="")
    page.wait_for_function(
        "() => [...document.querySelectorAll('tr.folder-heading')]"
        ".some(r => r.textContent.includes('Projects (0)'))")
    page.locator("tr.folder-heading", has_text="Projects").locator(".delete-folder").click()
    page.locator("tr.folder-heading", has_text="Projects").wait_for(state="detached")
    # it stays deleted after a reload
    open_list(page, system.url)
    assert page.locator("tr.folder-heading").count() == 0
