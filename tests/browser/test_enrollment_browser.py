"""Enrollment in a real Chromium: an admin makes an enrollment token on the portal, a device
enrolls with it (a real ``jobs-agent enroll``), waits as pending, and is accepted by a click."""

from __future__ import annotations

import subprocess
import sys

import pytest
from portal_browser import chromium
from selenium.webdriver.common.by import By
from suite_constants import TEST_ADMIN_TOKEN
from test_portal_browser import sign_in, submit, wait_for

from agent.config import load_config
from agent.server_api import DeviceApi

pytestmark = pytest.mark.slow


def test_an_admin_makes_a_token_and_accepts_the_device_that_enrolled(settings, server_processes,
                                                                     tmp_path, request):
    api = server_processes.start_api(settings)
    with chromium(request.node.name, tmp_path) as browser:
        driver = browser.driver
        sign_in(browser, api.url, TEST_ADMIN_TOKEN)
        browser.get(f"{api.url}/portal/devices")
        driver.find_element(By.ID, "pending-link").click()
        wait_for(browser, lambda d: "No device is waiting." in d.page_source, what="enrollment")
        driver.find_element(By.ID, "name").send_keys("kitchen batch")
        driver.find_element(By.ID, "device_type").clear()
        driver.find_element(By.ID, "device_type").send_keys("raspberry-pi")
        driver.find_element(By.NAME, "requires_acceptance").click()
        browser.shot("enrollment-empty")
        submit(browser, "#enrollment-token-form")
        token_field = wait_for(browser, lambda d: d.find_elements(By.ID, "enrollment-token"),
                               what="the new token")[0]
        token = token_field.get_attribute("value")
        assert f"--enrollment-token {token}" in driver.find_element(By.ID, "device-commands").text
        browser.shot("enrollment-token-shown-once")

        (tmp_path / "machine-id").write_text("0f0e0d0c0b0a09080706050403020100\n")
        enrolled = subprocess.run(
            [sys.executable, "-m", "agent", "enroll", "--server", api.url, "--enrollment-token",
             token, "--name", "pi-kitchen", "--config", str(tmp_path / "agent.conf"),
             "--token-file", str(tmp_path / "token"), "--hardware-id-file",
             str(tmp_path / "machine-id"), "--no-start"], capture_output=True, text=True,
            timeout=60)
        assert enrolled.returncode == 0 and "pending" in enrolled.stdout, enrolled.stderr
        config = load_config({}, environ={}, config_file=str(tmp_path / "agent.conf"))
        device = DeviceApi(config.server_url, config.device_uuid, config.token)
        assert device.next_job().status == 401

        browser.get(f"{api.url}/portal/devices")
        assert "Enrollment (1 pending)" in driver.find_element(By.ID, "pending-link").text
        driver.find_element(By.ID, "pending-link").click()
        wait_for(browser, lambda d: "pi-kitchen" in d.page_source, what="the pending device")
        browser.shot("enrollment-pending")
        driver.find_element(By.CSS_SELECTOR, "#pending-devices button.accept-device").click()
        wait_for(browser, lambda d: "Accepted pi-kitchen" in d.page_source, what="acceptance")
        browser.shot("enrollment-accepted")
        assert device.next_job().status == 200
