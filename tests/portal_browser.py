"""Chromium from the distribution's packages, driven by Selenium, against a real stack.

Nothing is downloaded: the browser is /usr/bin/chromium and its driver /usr/bin/chromedriver
(installed by deploy/services.sh). Every page a test visits is saved as a PNG under
``.artifacts/portal/``, so a person can look at the run afterwards.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[1] / ".artifacts" / "portal"
WIDE = (1280, 900)
PHONE = (390, 844)


class Browser:
    """A Chromium session that names and keeps a screenshot of each page it shows."""

    def __init__(self, driver, test_name: str) -> None:
        self.driver = driver
        self.prefix = re.sub(r"[^A-Za-z0-9_]+", "_", test_name)
        self.shots = 0

    def get(self, url: str, shot: str | None = None) -> None:
        self.driver.get(url)
        if shot:
            self.shot(shot)

    def shot(self, name: str) -> Path:
        """Save the page as it is now, full height, under .artifacts/portal/."""
        self.shots += 1
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.prefix}-{self.shots:02d}-{name}.png"
        width = self.driver.get_window_size()["width"]
        self.driver.set_window_size(width, WIDE[1])
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        self.driver.set_window_size(width, min(max(height + 120, 600), 4000))
        self.driver.save_screenshot(str(path))
        return path

    def size(self, width_height: tuple[int, int]) -> None:
        self.driver.set_window_size(*width_height)


@contextlib.contextmanager
def chromium(test_name: str, tmp_path: Path) -> Iterator[Browser]:
    """A headless Chromium for one test (the test fails when Chromium is not installed)."""
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.fail("chromium and chromium-driver are not installed: run deploy/services.sh")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium'}",
                 f"--window-size={WIDE[0]},{WIDE[1]}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    try:
        yield Browser(driver, test_name)
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "chromium", ignore_errors=True)
