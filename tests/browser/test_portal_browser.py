"""The operator portal in a real Chromium, against gunicorn, a Celery worker and real
``jobs-agent`` processes: what an operator does, clicked, and what a viewer cannot do."""

from __future__ import annotations

import functools
import http.server
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from agent_processes import start_agent
from json_http import JsonHttp
from portal_browser import PHONE, WIDE, chromium
from processes import free_port
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from suite_constants import TEST_ADMIN_TOKEN

from dispatcher import db
from dispatcher.fleet.tokens import create_api_token

pytestmark = pytest.mark.slow


@pytest.fixture
def browser(request, tmp_path):
    with chromium(request.node.name, tmp_path) as session:
        yield session

ADMIN = {"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}
AGENTS = 3
DEVICE_TYPE = "portal-pi"
SCRIPT_STDOUT = "<script>document.title='owned'</script>"
GOOD_DOCUMENT = (
    '{"version": "1.0", "includeStdOut": true, "steps": ['
    '{"name": "Greet", "type": "runCommand", "input": {"command": "echo,{{GREETING}}"}},'
    '{"name": "Markup", "type": "runCommand", "input": {"command": "echo,' + SCRIPT_STDOUT
    + '"}}]}'
)


def shell(name: str, script: str) -> dict:
    return {"name": name, "type": "runCommand", "input": {"command": f"sh,-c,{script}"}}


def wait_for(browser, condition, timeout_s: float = 30.0, what: str = "the page"):
    def check(driver):
        try:
            return condition(driver)
        except StaleElementReferenceException:  # a live region was just replaced
            return False
    return WebDriverWait(browser.driver, timeout_s, poll_frequency=0.2).until(
        check, f"timed out waiting for {what}")


def text_of(driver, css: str) -> str:
    found = driver.find_elements(By.CSS_SELECTOR, css)
    return found[0].text if found else ""


def sign_in(browser, base_url: str, token: str) -> None:
    browser.get(f"{base_url}/", "login")
    browser.driver.find_element(By.ID, "token").send_keys(token)
    browser.driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait_for(browser, lambda d: "/portal/executions" in d.current_url, what="the dashboard")


def submit(browser, form_css: str) -> None:
    browser.driver.find_element(By.CSS_SELECTOR, f"{form_css} button[type=submit]").click()


class Stack:
    """gunicorn, a Celery worker (and beat), devices and their agents for one test."""

    def __init__(self, settings, server_processes, tmp_path: Path, agents: int,
                 worker: bool = True, beat: bool = False) -> None:
        self.settings = settings
        self.worker = server_processes.start_worker(settings) if worker else None
        self.beat = server_processes.start_beat(settings) if beat else None
        self.api = server_processes.start_api(settings)
        self.http = JsonHttp(self.api.url)
        self.devices = []
        db.configure(settings)
        for i in range(agents):
            device = self.call("POST", "/devices", {
                "device_name": f"portal-pi-{i}", "device_type": DEVICE_TYPE,
                "attributes": {"site": "lab"}}, 201)
            start_agent(server_processes, self.api.url, device, tmp_path / f"home-{i}", 1.0,
                        cancel_check_s="1")
            self.devices.append(device)

    def call(self, method: str, path: str, body: object = None, expect: int = 200) -> dict:
        status, answer = self.http.request(method, f"/api/v1{path}", body, ADMIN)
        assert status == expect, answer
        return answer

    def execute_on(self, device: dict, name: str, steps: list[dict]) -> str:
        answer = self.call("POST", "/jobs/execute", {
            "job_name": name, "target_type": "device", "target_devices": [device["uuid"]],
            "job_document": {"version": "1.0", "includeStdOut": True, "steps": steps}}, 201)
        return answer["job"]["job_id"]


def test_an_operator_runs_watches_retries_and_cancels(settings, server_processes, tmp_path,
                                                      browser):
    # Beat counts the fleet every 2 s, so the dashboard's "devices online" follows the agents.
    stack = Stack(replace(settings, poll_after_s=1, fleet_count_interval_s=2), server_processes,
                  tmp_path, AGENTS, beat=True)
    base, driver = stack.api.url, browser.driver
    sign_in(browser, base, TEST_ADMIN_TOKEN)
    browser.shot("dashboard-empty")

    # A template with a parameter; a bad document first shows the API's field error.
    browser.get(f"{base}/portal/templates/new")
    driver.find_element(By.ID, "name").send_keys("greet-fleet")
    document = driver.find_element(By.ID, "job_document")
    document.clear()
    document.send_keys('{"version": "1.0", "steps": []}')
    submit(browser, "#template-form")
    error = wait_for(browser, lambda d: text_of(d, "#job_document-error"), what="a field error")
    assert "steps" in error
    browser.shot("template-field-error")
    document = driver.find_element(By.ID, "job_document")
    document.clear()
    document.send_keys(GOOD_DOCUMENT)
    parameters = driver.find_element(By.ID, "parameters")
    parameters.clear()
    parameters.send_keys('{"GREETING": "hello-from-the-portal"}')
    submit(browser, "#template-form")
    wait_for(browser, lambda d: "Template greet-fleet created." in d.page_source,
             what="the template page")
    browser.shot("template-created")

    # Execute it on the group; the form counts the devices before submitting.
    driver.find_element(By.LINK_TEXT, "Execute…").click()
    wait_for(browser, lambda d: d.find_elements(By.ID, "param_GREETING"), what="the form")
    driver.find_element(By.ID, "device_type").send_keys(DEVICE_TYPE)
    driver.find_element(By.ID, "attributes").send_keys('{"site": "lab"}')
    wait_for(browser, lambda d: text_of(d, "#target-count") == f"{AGENTS} device(s) match",
             what="the live device count")
    browser.shot("execute-form")
    submit(browser, "#execute-form")
    wait_for(browser, lambda d: "/portal/executions/" in d.current_url
             and d.find_elements(By.ID, "job-status"), what="the execution page")
    driver.execute_script("window.notReloaded = true;")
    browser.shot("execution-running")
    wait_for(browser, lambda d: text_of(d, ".succeeded-count")
             == f"{AGENTS}/{AGENTS} succeeded", 60, "the progress bar to reach N/N")
    assert driver.execute_script("return window.notReloaded === true;"), "the page reloaded"
    wait_for(browser, lambda d: "SUCCEEDED" in text_of(d, "#job-status"), what="job SUCCEEDED")
    browser.shot("execution-succeeded")
    # The job has ended: the page stops polling (it polls every 2 s while the job runs).
    polls = "return performance.getEntriesByType('resource')" \
            ".filter(e => e.name.includes('/live')).length;"
    polled = driver.execute_script(polls)
    assert polled > 0
    time.sleep(5)
    assert driver.execute_script(polls) == polled, "still polling after the job ended"

    # One device's output: the device's <script> is text, not markup.
    driver.find_elements(By.CSS_SELECTOR, "a.view-output")[0].click()
    stdout = wait_for(browser, lambda d: text_of(d, "#stdout"), what="the output page")
    assert "hello-from-the-portal" in stdout and SCRIPT_STDOUT in stdout
    assert driver.title != "owned"
    browser.shot("device-output")

    # A device fails its first attempt; retried from the page, its second attempt succeeds.
    flaky = stack.devices[0]
    job_id = stack.execute_on(flaky, "flaky-once", [shell(
        "Fail once", "test -f $DEVICE_HOME/tried && echo second-try-ok || "
        "{ touch $DEVICE_HOME/tried; echo first-try-fails; exit 3; }")])
    browser.get(f"{base}/portal/executions/{job_id}")
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "button.retry-device"), 40,
             "the device to fail")
    browser.shot("device-failed")
    driver.find_element(By.CSS_SELECTOR, "button.retry-device").click()
    wait_for(browser, lambda d: "Queued again for this device (attempt 2)." in d.page_source,
             what="the retry message")
    wait_for(browser, lambda d: "1/1 succeeded" in text_of(d, ".succeeded-count"), 40,
             "the second attempt to succeed")
    row = driver.find_element(By.CSS_SELECTOR, ".devices-table tbody tr")
    assert "SUCCEEDED" in row.text and row.find_elements(By.TAG_NAME, "td")[2].text == "2"
    browser.shot("retried-succeeded")

    # A long job, force-canceled from the page after a confirmation.
    long_job = stack.execute_on(stack.devices[1], "long-sleep", [shell("Sleep", "sleep 120")])
    browser.get(f"{base}/portal/executions/{long_job}")
    wait_for(browser, lambda d: "IN_PROGRESS" in text_of(d, ".devices-table tbody tr"), 40,
             "the long job to run")
    browser.shot("long-running")
    driver.find_element(By.ID, "force-cancel-job").click()
    alert = wait_for(browser, lambda d: d.switch_to.alert, what="the confirmation")
    assert "Force cancel" in alert.text
    alert.accept()
    wait_for(browser, lambda d: "Force-canceled the job" in d.page_source, what="the message")
    wait_for(browser, lambda d: "CANCELED" in text_of(d, "#job-status"), what="CANCELED")
    wait_for(browser, lambda d: "CANCELED" in text_of(d, ".devices-table tbody tr"), 20,
             "the device row CANCELED")
    browser.shot("force-canceled")

    # The device page's Jobs tab, and the pages at phone width.
    browser.get(f"{base}/portal/devices/{flaky['uuid']}", "device-jobs-tab")
    assert "View Output" in driver.page_source
    browser.get(f"{base}/portal/devices", "devices")
    browser.get(f"{base}/portal/templates", "templates")
    browser.size(PHONE)
    browser.get(f"{base}/portal/executions", "phone-dashboard")
    browser.get(f"{base}/portal/executions/{job_id}", "phone-execution")
    browser.size(WIDE)

    def every_agent_online(d) -> bool:
        d.get(f"{base}/portal/executions")  # no job is live: the page itself does not poll
        return f"{AGENTS}/{AGENTS}\ndevices online" in text_of(d, ".counters")
    wait_for(browser, every_agent_online, 30, "every agent counted online")
    browser.shot("dashboard-wide")


class OtherOrigin:
    """A static site on another port: a page of an external frontend calling the API."""

    PAGE = """<!doctype html><html><head><title>external</title>
<script src="app.js"></script></head><body><p id="result">waiting</p></body></html>"""
    SCRIPT = """
window.addEventListener("DOMContentLoaded", async () => {
  const params = new URLSearchParams(location.hash.slice(1));
  const out = document.getElementById("result");
  try {
    const answer = await fetch(params.get("api") + "/api/v1/devices?limit=5",
      { headers: { "Authorization": "Bearer " + params.get("token") } });
    const body = await answer.json();
    out.textContent = "devices: " + body.total;
  } catch (error) {
    out.textContent = "blocked: " + error;
  }
});
"""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "index.html").write_text(self.PAGE)
        (directory / "app.js").write_text(self.SCRIPT)
        self.port = free_port()
        handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                    directory=str(directory))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_viewer_finds_no_write_control_and_other_origins_call_the_api(
        settings, server_processes, tmp_path, browser):
    site = OtherOrigin(tmp_path / "site")
    try:
        allowed = f"http://127.0.0.1:{site.port}"
        stack = Stack(replace(settings, cors_allowed_origins=allowed), server_processes,
                      tmp_path, agents=0, worker=False)
        base, driver = stack.api.url, browser.driver
        device = stack.call("POST", "/devices", {"device_name": "<b>bold-name</b>",
                                                 "device_type": DEVICE_TYPE}, 201)
        job_id = stack.execute_on(device, "viewed", [shell("Hi", "echo hi")])
        template = stack.call("POST", "/jobs/templates", {
            "name": "viewed-template", "job_document": {"version": "1.0", "steps": [
                shell("Hi", "echo hi")]}}, 201)
        stack.call("POST", "/jobs/handlers", {"name": "viewed.sh", "script_type": "bash",
                                               "script_content": "echo hi\n"}, 201)
        viewer_token, _ = create_api_token("viewer", "browser viewer")

        sign_in(browser, base, viewer_token)
        pages = {
            "viewer-dashboard": "/portal/executions",
            "viewer-execution": f"/portal/executions/{job_id}",
            "viewer-templates": "/portal/templates",
            "viewer-template": f"/portal/templates/{template['id']}",
            "viewer-devices": "/portal/devices",
            "viewer-device": f"/portal/devices/{device['uuid']}",
            "viewer-handlers": "/portal/handlers",
            "viewer-handler": "/portal/handlers/viewed.sh",
        }
        for shot, path in pages.items():
            browser.get(base + path, shot)
            post_forms = [form.get_attribute("action") for form in
                          driver.find_elements(By.CSS_SELECTOR, "form[method=post]")]
            assert all(action.endswith("/portal/logout") for action in post_forms), (path,
                                                                                      post_forms)
            for label in ("Execute a job", "New template", "Register a device", "Force cancel",
                          "Test on device", "New handler", "Save handler", "Run a job here",
                          "Retry", "Delete", "Deactivate", "Edit"):
                assert label not in driver.page_source, (path, label)
            if shot == "viewer-devices":  # the device's name is text, not markup
                assert driver.find_elements(By.XPATH, "//a[text()='<b>bold-name</b>']")

        # An external frontend's page on an allowed origin calls the API with a bearer token.
        browser.get(f"{allowed}/index.html#api={base}&token={viewer_token}")
        wait_for(browser, lambda d: text_of(d, "#result").startswith("devices: "),
                 what="the cross-origin call")
        assert text_of(driver, "#result") == "devices: 1"
        browser.shot("cors-allowed-origin")
        # The same page on an origin not configured is refused by the browser.
        browser.get(f"http://localhost:{site.port}/index.html#api={base}&token={viewer_token}")
        wait_for(browser, lambda d: text_of(d, "#result").startswith("blocked"),
                 what="the refused cross-origin call")
        browser.shot("cors-other-origin")
    finally:
        site.close()
