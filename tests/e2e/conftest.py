"""Fixtures of the browser tests: headless Debian Chromium driven by Playwright, pointed at the
chat page behind nginx (helpers in tests/browser.py)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.browser import CHROMIUM, CHROMIUM_ARGS, ConsoleErrors
from tests.processes import missing_component
from tests.stack import Edge


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        missing_component(f"{CHROMIUM} is missing: apt-get install chromium (or `make test-tools`)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


@pytest.fixture
def console_errors() -> ConsoleErrors:
    return ConsoleErrors()


@pytest.fixture
async def page(browser: Browser, edge: Edge, console_errors: ConsoleErrors) -> AsyncIterator[Page]:
    """A fresh browser context (own cookies: a new user) on the chat page. The test fails if
    the page logged any console error or threw."""
    context = await browser.new_context(base_url=edge.url, viewport={"width": 1100, "height": 800})
    page = await context.new_page()
    errors = console_errors
    page.on("console", errors.record)
    page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
    await page.goto("/")
    await page.get_by_role("button", name="Send").wait_for()
    await page.locator("#send:not([disabled])").wait_for()
    yield page
    await context.close()
    assert errors == [], f"console errors: {errors}"
