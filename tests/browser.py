"""Headless Debian Chromium as the browser tests drive it, and what they check it logged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from playwright.async_api import Browser, ConsoleMessage, Page

from tests.processes import ROOT

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking switches Chromium keeps trying to reach Google's hosts.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SCREENSHOTS = ROOT / ".cache" / "screenshots"


class ConsoleErrors(list[str]):
    def record(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.append(message.text)

    def expect(self, fragment: str) -> None:
        """Chromium logs every failed HTTP response itself; a test that provokes one says so."""
        self[:] = [text for text in self if fragment not in text]


async def watched_page(browser: Browser, errors: ConsoleErrors, **context: Any) -> Page:
    """A page in a fresh browser context (own cookies: a new user) whose console errors and
    uncaught exceptions go to `errors`."""
    page = await (await browser.new_context(**context)).new_page()
    page.on("console", errors.record)
    page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
    return page


@asynccontextmanager
async def chat_page(browser: Browser, errors: ConsoleErrors, **context: Any) -> AsyncIterator[Page]:
    """The chat page, loaded and ready to send; when the block ends its context is closed and
    the page must have logged no console error nor thrown (tests that provoke one say so with
    `errors.expect`)."""
    page = await watched_page(browser, errors, **context)
    try:
        await page.goto("/")
        await page.locator("#send:not([disabled])").wait_for()
        yield page
    finally:
        await page.context.close()
    assert errors == [], f"console errors: {errors}"


# Every conversation the page keeps in IndexedDB (frontend/src/storage.js), read in the page:
# the rows keyed by a conversation's id, not its summary's (keyed by an array, which sorts after
# every string).
_READ_CONVERSATIONS = """() => new Promise((resolve, reject) => {
    const opening = indexedDB.open('relaychat');
    opening.onerror = () => reject(opening.error);
    opening.onsuccess = () => {
        const db = opening.result;
        if (!db.objectStoreNames.contains('conversations')) return resolve([]);
        const all = db.transaction('conversations').objectStore('conversations')
            .getAll(IDBKeyRange.upperBound([], true));
        all.onerror = () => reject(all.error);
        all.onsuccess = () => { db.close(); resolve(all.result.filter(Boolean)); };
    };
})"""


async def stored_conversations(page: Page) -> list[dict[str, Any]]:
    """The conversations as the page keeps them (IndexedDB), each with its `turns`."""
    conversations: list[dict[str, Any]] = await page.evaluate(_READ_CONVERSATIONS)
    return conversations


async def wait_until_stored(page: Page, condition: str) -> None:
    """Until `condition` (JS, of the kept conversations as `stored_conversations` gives them)
    holds; the page checks every 100 ms (IndexedDB tells no one of changes). The caller bounds
    the wait."""
    await page.evaluate(f"""async () => {{
        const read = {_READ_CONVERSATIONS};
        while (!({condition})(await read())) await new Promise((r) => setTimeout(r, 100));
    }}""")


async def stored_turns(page: Page) -> list[dict[str, Any]]:
    """The turns of the conversation on screen (its id is the page's `#<id>`), as kept: each
    answer's text exactly as it was received."""
    current = (await page.evaluate("location.hash")).removeprefix("#")
    for conversation in await stored_conversations(page):
        if conversation["id"] == current:
            turns: list[dict[str, Any]] = conversation["turns"]
            return turns
    return []
