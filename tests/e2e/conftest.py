"""Fixtures of the browser tests: headless Debian Chromium driven by Playwright, pointed at the
chat page behind nginx (helpers in tests/browser.py)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.browser import CHROMIUM, CHROMIUM_ARGS, ConsoleErrors, chat_page
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
    viewport = {"width": 1100, "height": 800}
    async with chat_page(browser, console_errors, base_url=edge.url, viewport=viewport) as page:
        yield page
