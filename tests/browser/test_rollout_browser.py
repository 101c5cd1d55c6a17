"""A staged rollout in a real Chromium, against gunicorn, a Celery worker, beat and real
``jobs-agent`` processes: the execute form's preset and rows, the stage panel, and the admin's
Approve, Resume and Promote, clicked."""

from __future__ import annotations

from dataclasses import replace

import pytest
from portal_browser import chromium
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select
from suite_constants import TEST_ADMIN_TOKEN
from test_portal_browser import Stack, sign_in, submit, text_of, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def browser(request, tmp_path):
    with chromium(request.node.name, tmp_path) as session:
        yield session


def stage_states(driver) -> list[tuple[str, str]]:
    return [(li.get_attribute("data-stage"), li.get_attribute("data-state"))
            for li in driver.find_elements(By.CSS_SELECTOR, "#rollout li.stage")]


def click(browser, element_id: str) -> None:
    browser.driver.find_element(By.ID, element_id).click()


def test_an_operator_approves_resumes_and_promotes_a_staged_rollout(
        settings, server_processes, tmp_path, browser):
    stack = Stack(replace(settings, poll_after_s=1, stage_gate_sweep_interval_s=1),
                  server_processes, tmp_path, 3, beat=True)
    base, driver = stack.api.url, browser.driver
    sign_in(browser, base, TEST_ADMIN_TOKEN)

    # The preset fills three stage rows; the canary gets one device and pauses after passing,
    # the ten percent soaks an hour; the job waits for approval.
    browser.get(f"{base}/portal/executions/new?source=custom")
    driver.find_element(By.ID, "job_name").send_keys("staged hello")
    driver.find_element(By.CSS_SELECTOR, "input[name=target_type][value=all]").click()
    driver.find_element(By.CSS_SELECTOR, "#stages-section summary").click()
    click(browser, "stage-preset")
    rows = driver.find_elements(By.CSS_SELECTOR, "#stage-rows tbody tr")
    assert [r.find_element(By.NAME, "stage_name").get_attribute("value") for r in rows] == [
        "canary", "ten-percent", "rest"]
    size = rows[0].find_element(By.NAME, "stage_size")
    size.clear()
    size.send_keys("1")
    Select(rows[0].find_element(By.NAME, "stage_after")).select_by_value("pause")
    rows[1].find_element(By.NAME, "stage_soak_minutes").send_keys("60")
    click(browser, "requires_approval")
    browser.shot("execute-form-stages")
    submit(browser, "#execute-form")

    wait_for(browser, lambda d: text_of(d, "#rollout-state") == "Waiting for approval",
             what="the stage panel waiting for approval")
    assert stage_states(driver) == [("canary", "PENDING"), ("ten-percent", "PENDING"),
                                    ("rest", "PENDING")]
    assert not driver.find_elements(By.ID, "rollout-pause")
    browser.shot("waiting-for-approval")
    browser.get(f"{base}/portal/executions")
    assert "staged hello" in text_of(driver, "#waiting-for-a-person")
    browser.shot("dashboard-waiting-first")
    driver.find_element(By.CSS_SELECTOR, "#waiting-for-a-person a.job-name").click()

    click(browser, "rollout-approve")
    wait_for(browser, lambda d: text_of(d, "#rollout-state") == "Paused", 60,
             "the canary to pass and the rollout to pause")
    assert "stage canary passed: 1 of 1 devices succeeded" in text_of(driver, "#rollout-reason")
    assert stage_states(driver)[0] == ("canary", "PASSED")
    browser.shot("stage-panel-paused-after-canary")

    click(browser, "rollout-resume")
    wait_for(browser, lambda d: "soaking until" in text_of(d, "#rollout li.stage.current"), 60,
             "the ten percent to soak")
    assert stage_states(driver)[1] == ("ten-percent", "RELEASED")
    browser.shot("stage-panel-soaking")

    click(browser, "rollout-promote")
    driver.switch_to.alert.accept()
    wait_for(browser, lambda d: text_of(d, "#rollout-state") == "Finished", 60,
             "the rollout to finish")
    assert stage_states(driver) == [("canary", "PASSED"), ("ten-percent", "PROMOTED"),
                                    ("rest", "PASSED")]
    wait_for(browser, lambda d: "SUCCEEDED" in text_of(d, "#job-status"), 60, "job SUCCEEDED")
    browser.shot("stage-panel-finished")
