"""The portal's Artifacts page in a real Chromium against gunicorn: an operator uploads a file
(the form follows it with a progress bar), sees its size, sha256 and where it is used, offers
it to the template editor as a download-file step, and deletes it."""

from __future__ import annotations

import hashlib
import os

import pytest
from portal_browser import chromium
from selenium.webdriver.common.by import By
from suite_constants import TEST_ADMIN_TOKEN
from test_portal_browser import sign_in, text_of, wait_for

pytestmark = pytest.mark.slow


def test_upload_with_progress_offer_to_the_editor_and_delete(settings, server_processes,
                                                             tmp_path, request):
    api = server_processes.start_api(settings)
    data = os.urandom(6 * 1024 * 1024)
    upload = tmp_path / "nginx.conf"
    upload.write_bytes(data)
    with chromium(request.node.name, tmp_path) as browser:
        sign_in(browser, api.url, TEST_ADMIN_TOKEN)
        browser.driver.find_element(By.LINK_TEXT, "Artifacts").click()
        wait_for(browser, lambda d: d.find_elements(By.ID, "upload-form"), what="upload form")
        browser.shot("artifacts-empty")
        browser.driver.find_element(By.ID, "file").send_keys(str(upload))
        browser.driver.find_element(By.ID, "upload-artifact").click()
        wait_for(browser, lambda d: text_of(d, "#upload-status"), what="the progress line")
        wait_for(browser, lambda d: "uploaded" in text_of(d, ".flash-ok"), what="the upload")
        browser.shot("artifact-uploaded")
        row = text_of(browser.driver, "#artifacts tbody tr")
        assert "artifact:nginx.conf" in row
        assert hashlib.sha256(data).hexdigest() in row
        assert f"{len(data)} bytes" in row

        browser.get(f"{api.url}/portal/templates/new")
        browser.driver.find_element(By.CSS_SELECTOR,
                                    "[data-insert-artifact='artifact:nginx.conf']").click()
        document = browser.driver.find_element(By.ID, "job_document").get_attribute("value")
        assert '"artifact:nginx.conf"' in document and '"download-file"' in document
        parameters = browser.driver.find_element(By.ID, "parameters").get_attribute("value")
        assert '"DESTINATION":null' in parameters
        browser.shot("editor-offers-artifact")

        browser.get(f"{api.url}/portal/artifacts")
        browser.driver.execute_script("window.confirm = () => true;")
        browser.driver.find_element(By.CSS_SELECTOR, "#artifacts button.danger").click()
        wait_for(browser, lambda d: "deleted" in text_of(d, ".flash-ok"), what="the delete")
        assert browser.driver.find_elements(By.ID, "artifacts") == []
