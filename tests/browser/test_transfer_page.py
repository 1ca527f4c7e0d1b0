"""Export a workbook from its page and import the file on the Workbook List (issue 17,
item 5); a faulty file is refused with the JSON path at fault shown."""

from __future__ import annotations

import json

from tests.browser.conftest import fake_login, open_list, shot


def test_export_a_workbook_and_import_the_file(context, system, tmp_path):
    page = context.new_page()
    fake_login(page, system.url, "porter")
    open_list(page, system.url)
    page.locator("#new-name").fill("Carried")
    page.locator("#create").click()
    page.locator("tr", has_text="Carried").locator("a.open-workbook").click()
    page.wait_for_selector("body[data-ready=true]")
    page.locator("#add-source").click()
    page.locator("#source-form [name='name']").fill("Star")
    page.locator("#form-save").click()
    page.wait_for_selector("#source-list tr[data-id]")

    with page.expect_download() as download:
        page.locator("#export-workbook").click()
    exported = tmp_path / download.value.suggested_filename
    download.value.save_as(exported)
    assert exported.name == "Carried.etckit.json"
    content = json.loads(exported.read_text())
    assert [s["name"] for s in content["sources"]] == ["Star"]

    open_list(page, system.url)
    page.locator("#import-file").set_input_files(str(exported))
    page.wait_for_function("() => document.querySelectorAll('tr a.open-workbook').length == 2")
    assert page.locator("tr", has_text="Carried").count() == 2

    content["sources"][0]["data"]["redshift"] = -1
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(content))
    page.locator("#import-file").set_input_files(str(broken))
    error = page.locator("#list-error")
    error.wait_for()
    assert "content.sources.0.data.redshift" in error.inner_text()
    shot(page, "workbook-import-refused")
    assert page.locator("tr a.open-workbook").count() == 2
