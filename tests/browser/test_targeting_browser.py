"""Targeting in a real Chromium against gunicorn, a worker and real agents reporting their
inventory: the devices page's filter with its live count and inventory columns, saving it as a
group, the group's page, a device's reported facts, and the execute form aimed at the group."""

from __future__ import annotations

from dataclasses import replace

import pytest
from portal_browser import chromium
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select
from suite_constants import TEST_ADMIN_TOKEN
from test_portal_browser import Stack, sign_in, submit, text_of, wait_for

from dispatcher import db

pytestmark = pytest.mark.slow


@pytest.fixture
def browser(request, tmp_path):
    with chromium(request.node.name, tmp_path) as session:
        yield session


def reported(stack) -> bool:
    with db.pool().connection() as conn:
        return conn.execute("SELECT count(*) AS n FROM devices WHERE inventory ? 'kernel'"
                            ).fetchone()["n"] == len(stack.devices)


def test_an_operator_filters_by_inventory_saves_a_group_and_runs_a_job_on_it(
        settings, server_processes, tmp_path, browser):
    stack = Stack(replace(settings, poll_after_s=1), server_processes, tmp_path, 2)
    base, driver = stack.api.url, browser.driver
    wait_for(browser, lambda d: reported(stack), 30, "every agent's inventory")
    sign_in(browser, base, TEST_ADMIN_TOKEN)

    # The count follows the filter as it is typed; a bad one says what is wrong.
    browser.get(f"{base}/portal/devices")
    wait_for(browser, lambda d: text_of(d, "#filter-count") == "2 device(s) match",
             what="the fleet count")
    box = driver.find_element(By.ID, "attributes")
    box.send_keys('{"site": {"$in": []}}')
    wait_for(browser, lambda d: "site.$in" in text_of(d, "#filter-count"), what="the error")
    box.clear()
    box.send_keys('{"inventory.kernel": {"$exists": true}, "system.name": "portal-pi-1"}')
    wait_for(browser, lambda d: text_of(d, "#filter-count") == "1 device(s) match",
             what="the narrowed count")
    driver.find_element(By.ID, "columns").send_keys("os.id, kernel, agent_version")
    submit(browser, "#device-filter")
    wait_for(browser, lambda d: "kernel (reported)" in text_of(d, "table thead").lower(),
             what="the inventory columns")
    assert "portal-pi-1" in text_of(driver, "table tbody")
    assert "portal-pi-0" not in text_of(driver, "table tbody")
    browser.shot("devices-filtered-with-inventory-columns")

    # One click saves the filter as a group.
    driver.find_element(By.ID, "group_name").send_keys("pi-one")
    submit(browser, "#save-group")
    wait_for(browser, lambda d: "/portal/groups/pi-one" in d.current_url, what="the group page")
    assert text_of(driver, "#member-count") == "1"
    assert "portal-pi-1" in text_of(driver, "table tbody")
    browser.shot("group-page")

    # The group is edited in a form: a bad filter comes back with the API's message next to
    # the field, the preview counts what is typed, and the saved filter changes the members.
    driver.find_element(By.ID, "edit-group").click()
    wait_for(browser, lambda d: "/portal/groups/pi-one/edit" in d.current_url, what="the form")
    wait_for(browser, lambda d: text_of(d, "#filter-count") == "1 device(s) match",
             what="the preview of the group's filter")
    box = driver.find_element(By.ID, "filter")
    box.clear()
    box.send_keys('{"inventory.kernel": {"$exists": true}, "system.name": {"$in": []}}')
    description = driver.find_element(By.ID, "description")
    description.clear()
    description.send_keys("Every Pi that reported its kernel")
    submit(browser, "#group-form")
    wait_for(browser, lambda d: "system.name.$in" in text_of(d, "#filter-error"),
             what="the filter's error next to it")
    assert "Must be a non-empty list of values." in text_of(driver, "#filter-error")
    assert driver.find_element(By.ID, "description").get_attribute("value") == (
        "Every Pi that reported its kernel")
    browser.shot("group-edit-refused")
    box = driver.find_element(By.ID, "filter")
    box.clear()
    box.send_keys('{"inventory.kernel": {"$exists": true}}')
    wait_for(browser, lambda d: text_of(d, "#filter-count") == "2 device(s) match",
             what="the preview of the edited filter")
    assert not driver.find_element(By.ID, "filter-error").is_displayed()
    browser.shot("group-edit-preview")
    submit(browser, "#group-form")
    wait_for(browser, lambda d: "Group pi-one saved: 2 device(s) now." in d.page_source,
             what="the saved group")
    assert text_of(driver, "#member-count") == "2"
    assert "Every Pi that reported its kernel" in text_of(driver, "dl.facts")
    assert "portal-pi-0" in text_of(driver, "table tbody")
    browser.get(f"{base}/portal/groups")
    assert text_of(driver, "table tbody td[data-label=Devices]") == "2"
    browser.shot("groups-with-member-counts")
    browser.get(f"{base}/portal/groups/pi-one")

    # A device's page shows what it reported, marked as its own word.
    driver.find_element(By.LINK_TEXT, "portal-pi-1").click()
    wait_for(browser, lambda d: "reported by the device" in d.page_source, what="the device")
    assert "kernel" in text_of(driver, "dl.reported")
    browser.shot("device-inventory")

    # The execute form aims at the group, with its live count.
    browser.get(f"{base}/portal/executions/new?source=custom")
    driver.find_element(By.ID, "job_name").send_keys("on the group")
    document = driver.find_element(By.ID, "job_document")
    document.clear()
    document.send_keys('{"version": "1.0", "steps": [{"name": "Hi", "type": "runCommand",'
                       ' "input": {"command": "echo,hi"}}]}')
    driver.find_element(By.CSS_SELECTOR, "input[name=target_type][value=group]").click()
    Select(driver.find_element(By.ID, "group_name")).select_by_value("pi-one")
    wait_for(browser, lambda d: text_of(d, "#target-count") == "2 device(s) match",
             what="the group's count")
    browser.shot("execute-form-group")
    submit(browser, "#execute-form")
    wait_for(browser, lambda d: "SUCCEEDED" in text_of(d, "#job-status"), 60,
             "the job on the group to succeed")
    browser.shot("execution-on-group")

    # A group an unfinished job targets cannot go; once the job is done it can.
    browser.get(f"{base}/portal/groups/pi-one")
    submit(browser, "form[data-confirm]")
    driver.switch_to.alert.accept()
    wait_for(browser, lambda d: "Group pi-one deleted." in d.page_source, what="the deletion")
    browser.shot("groups-after-delete")
