"""The chat page takes its limits from `GET /api/config` instead of keeping copies: the longest
prompt the textarea takes, and how much earlier conversation goes with a prompt."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from playwright.async_api import Browser, Page, Request, Route, expect

from tests.e2e.chat import record_executes

FINISHED = ".turn.assistant[aria-busy=false]"


def config_route(**limits: int) -> Callable[[Route], Awaitable[None]]:
    """A handler that answers `GET /api/config` with the server's limits, `limits` replacing
    some of them, as a backend configured that way would."""

    async def handle(route: Route) -> None:
        response = await route.fetch()
        body = await response.json()
        await route.fulfill(response=response, json={**body, **limits})

    return handle


async def reload_ready(page: Page) -> None:
    await page.reload()
    await page.locator("#send:not([disabled])").wait_for()


async def send(page: Page, text: str, answered: int) -> None:
    await page.get_by_label("Your message", exact=True).fill(text)
    await page.get_by_label("Your message", exact=True).press("Enter")
    await page.locator(FINISHED).nth(answered).wait_for()


async def test_a_prompt_over_the_servers_limit_is_kept_whole_and_not_sent(page: Page) -> None:
    """The page follows the server's limit, counting as it does; a longer prompt is neither cut
    nor sent. Regression (browser probe): the box's `maxlength` cut a pasted text without a
    word, and counted an emoji as two characters where the server counts one."""
    box = page.get_by_label("Your message", exact=True)
    length = page.locator("#prompt-length")
    # A server with another limit: the page follows it, it has no number of its own.
    await page.route("**/api/config", config_route(max_text_chars=37))
    await reload_ready(page)
    executes = record_executes(page)
    await expect(box).not_to_have_attribute("maxlength", re.compile(".*"))

    await box.fill("x" * 50)  # as a paste
    await expect(length).to_have_text("50 of 37 characters: shorten the prompt to send it.")
    await expect(box).to_have_attribute("aria-invalid", "true")
    await box.press("Enter")
    await expect(box).to_have_value("x" * 50)  # kept whole, not sent
    await expect(page.locator(".turn.user")).to_have_count(0)

    await box.fill("🙂" * 37)  # 37 characters as the server counts (74 UTF-16 units)
    await expect(length).to_have_text("37 of 37 characters.")
    await box.press("Enter")
    await page.locator(FINISHED).wait_for()
    await expect(length).to_be_hidden()
    assert [e["text"] for e in executes] == ["🙂" * 37]

    # Editing a prompt: the same limit, and the edit (and the answer after it) kept when over.
    await page.locator(".message.from-user").first.get_by_role("button", name="Edit").click()
    editor = page.get_by_role("textbox", name="Edit your message")
    await editor.fill("y" * 38)
    await editor.press("Enter")
    assert "shorten the prompt" in await editor.evaluate("box => box.validationMessage")
    await expect(editor).to_have_value("y" * 38)
    await expect(page.locator(".turn.assistant")).to_have_count(1)
    assert len(executes) == 1


async def test_crossing_the_limit_while_typing_is_said_once_each_way(page: Page) -> None:
    """Probe: a prompt typed past the limit was said to be too long only at Enter. Said at every
    keystroke it would drown the typing: once over, once back under."""
    box = page.get_by_label("Your message", exact=True)
    said = page.locator("#announcer p")
    over = said.filter(
        has_text="Your message is over the 10-character limit; shorten it to send it."
    )
    back = said.filter(has_text="Your message is within the 10-character limit again.")
    await page.route("**/api/config", config_route(max_text_chars=10))
    await reload_ready(page)
    await box.press_sequentially("x" * 9)
    await box.press_sequentially("xxxx")  # 11, 12, 13: over once
    await expect(box).to_have_attribute("aria-invalid", "true")
    await expect(over).to_have_count(1)
    await expect(back).to_have_count(0)
    for _ in range(3):  # 12, 11, 10: back under once
        await box.press("Backspace")
    await expect(box).to_have_attribute("aria-invalid", "false")
    await expect(back).to_have_count(1)
    await expect(over).to_have_count(1)


async def test_the_history_sent_with_a_prompt_keeps_to_the_servers_limits(page: Page) -> None:
    await page.route("**/api/config", config_route(max_history_turns=2))
    await reload_ready(page)
    histories: list[Any] = []

    def record(request: Request) -> None:
        if request.url.endswith("/api/execute"):
            histories.append((request.post_data_json or {})["history"])

    page.on("request", record)
    await send(page, "hello", 0)
    await send(page, "explain", 1)
    await send(page, "code", 2)
    await expect(page.locator(".turn.user")).to_have_text(["hello", "explain", "code"])
    assert [[turn["content"] for turn in history[::2]] for history in histories] == [
        [],
        ["hello"],
        ["explain"],  # two turns at most: the newest exchange only, the oldest dropped
    ]
    assert [turn["role"] for turn in histories[2]] == ["user", "assistant"]


async def test_without_the_limits_the_page_says_so_and_still_answers(
    browser: Browser, edge: Any
) -> None:
    context = await browser.new_context(base_url=edge.url)
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
    asked: list[int] = []

    async def unavailable(route: Route) -> None:
        asked.append(1)
        await route.fulfill(status=503, json={"detail": "the limits are being changed"})

    await page.route("**/api/config", unavailable)
    histories: list[Any] = []

    def record(request: Request) -> None:
        if request.url.endswith("/api/execute"):
            histories.append((request.post_data_json or {})["history"])

    page.on("request", record)
    await page.goto("/")
    await page.locator("#send:not([disabled])").wait_for()

    status = page.locator("#status")
    await expect(status).to_be_visible()
    await expect(status).to_have_text(
        "Cannot read the server's limits (the limits are being changed), so prompts are sent "
        "without the earlier conversation."
    )
    assert await page.get_by_label("Your message", exact=True).get_attribute("maxlength") is None

    await send(page, "hello", 0)
    await send(page, "explain", 1)
    answers = page.locator(".turn.assistant .answer")
    await expect(answers.nth(0)).to_contain_text("Hello!")
    await expect(answers.nth(1)).to_contain_text("relaychat")
    assert histories == [[], []]
    assert len(asked) >= 3  # asked again with each prompt, in case the server is back
    await expect(status).to_be_visible()  # connecting did not hide it

    # Once the server answers again the next prompt takes the conversation along.
    await page.unroute("**/api/config")
    await send(page, "code", 2)
    await expect(status).to_be_hidden()
    assert [turn["content"] for turn in histories[2][::2]] == ["hello", "explain"]
    await context.close()
    # Chromium logs each failed response itself; nothing else may fail.
    assert [text for text in errors if "503" not in text] == []
