"""The approval page in a real browser: Debian's Chromium, headless, driven by selenium.

Open an approval link, sign in as alice at oidc-provider-mock, approve, see the decision
recorded; each page is saved to build/screenshots/approval-*.png (`make screenshots` saves
them to docs/images/ instead, which docs/APPROVALS.md shows).
Chromium missing is a failure, never a skip: `make setup` installs it (scripts/bootstrap.sh).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from tests.integration.test_approval_oidc import Endpoint, endpoint_fixture
from tests.integration.test_approval_oidc_rig import ALICE_ID, MOCK_PROVIDER_WARNINGS, mock_provider

if TYPE_CHECKING:
    from collections.abc import Iterator

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ROOT = Path(__file__).resolve().parents[2]
IMAGES = Path(os.environ.get("ORCHESTRATOR_SCREENSHOTS") or ROOT / "build" / "screenshots")
"""Where the pages are saved: build/ unless asked (a test run never edits tracked files)."""

pytestmark = MOCK_PROVIDER_WARNINGS


@pytest.fixture
def endpoint(
    table_name: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Endpoint]:
    with mock_provider() as issuer:
        yield from endpoint_fixture(table_name, moto_endpoint, monkeypatch, issuer)


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    for program in (CHROMIUM, CHROMEDRIVER):
        assert Path(program).exists(), f"{program} is missing: run `make setup` (bootstrap.sh)"
    profile = tempfile.mkdtemp(prefix="approval-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        "--window-size=900,800",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        driver.set_page_load_timeout(30)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _wait_for(driver: webdriver.Chrome, text: str) -> None:
    WebDriverWait(driver, 20).until(
        expected_conditions.text_to_be_present_in_element((By.TAG_NAME, "body"), text)
    )


def test_sign_in_as_alice_and_approve_in_chromium(
    endpoint: Endpoint, browser: webdriver.Chrome
) -> None:
    run_id = endpoint.run(message="Ship build 42 to production?")
    link = endpoint.link(run_id)
    IMAGES.mkdir(parents=True, exist_ok=True)

    browser.get(link)
    _wait_for(browser, "Sign in to decide")
    assert "Nothing has been recorded yet" in browser.page_source
    browser.save_screenshot(str(IMAGES / "approval-sign-in.png"))

    browser.find_element(By.LINK_TEXT, "Sign in to decide").click()
    _wait_for(browser, "Authorize")  # oidc-provider-mock's page: choose who you are
    browser.find_element(By.CSS_SELECTOR, "button[name='sub'][value='alice']").click()

    _wait_for(browser, "Signed in as")
    assert ALICE_ID in browser.find_element(By.CLASS_NAME, "who").text
    assert browser.current_url == link
    browser.find_element(By.ID, "comment").send_keys("Staging is green.")
    browser.save_screenshot(str(IMAGES / "approval-signed-in.png"))
    assert endpoint.decisions(run_id) == {}

    browser.find_element(By.CSS_SELECTOR, "button.approve").click()
    _wait_for(browser, "Decision recorded")
    assert f"by {ALICE_ID}." in browser.find_element(By.TAG_NAME, "body").text
    browser.save_screenshot(str(IMAGES / "approval-recorded.png"))

    decision = endpoint.decisions(run_id)[ALICE_ID]
    assert (decision["decision"], decision["comment"], decision["via"]) == (
        "approve",
        "Staging is green.",
        "oidc",
    )
    # The session cookie is HttpOnly: the page's scripts (it has none) could not read it.
    assert browser.execute_script("return document.cookie") == ""
