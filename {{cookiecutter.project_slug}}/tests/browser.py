"""Headless Chromium for the run report's tests, here and in the template's lifecycle test.

Debian's packages (``apt-get install chromium chromium-driver``); GitHub's and Azure's Ubuntu images
ship both at the same paths.  Selenium is given both, so it never downloads a browser or a driver."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def start_chromium(profile: Path) -> Any:
    """Headless Chromium driven by its own chromedriver, logging the page's console; a missing binary
    fails the test with the fix (the browser test never skips)."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not found: the run report is tested in a real browser. Fix: "
                    "apt-get install chromium chromium-driver (as root; Debian's packages)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--window-size=1280,1600", f"--user-data-dir={profile}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
