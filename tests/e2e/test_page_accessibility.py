"""axe-core (from the page's npm dev dependencies) finds no violation on the chat page when it is
empty, while an answer streams and once it finished, with the conversation list open on a
phone, with a deleted conversation's Undo, and with answers marked in the list (arriving, ended
out of sight); in light and dark, at desktop and phone sizes.
Each state's screenshot goes to .cache/screenshots/. On a phone the open list (a drawer) keeps
the keyboard and screen readers to itself. An answer shown again while it arrives is not read out
again from its start; Jump to latest leaves the keyboard on the latest message."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import pytest
from playwright.async_api import Browser, Page, ViewportSize, expect

from tests.browser import SCREENSHOTS, ConsoleErrors, chat_page
from tests.e2e.chat import FINISHED, StandInModel, send, violations
from tests.stack import Edge

SIZES: dict[str, ViewportSize] = {
    "desktop": {"width": 1280, "height": 800},
    "phone": {"width": 375, "height": 740},
}

ANSWER = [
    "Here is a comparison of the two clients, with an example.\n\n",
    "| Client | Transport | Recovers history |\n|:---|:---|:---:|\n",
    "| centrifuge-js | WebSocket | yes |\n| curl | Server-Sent Events | no |\n\n",
    "```python\nimport httpx\n\nasync def ask(prompt: str) -> str:\n",
    "    async with httpx.AsyncClient() as client:\n",
    "        reply = await client.post('/api/chat/sync', json={'prompt': prompt})\n",
    "        return reply.json()['response']  # the whole answer at once\n```\n\n",
    "Subscribe **before** you execute, so the first token cannot be missed. "
    "[The protocol](/docs/protocol.md) has the details.",
]


@pytest.fixture(params=["light", "dark"])
def scheme(request: pytest.FixtureRequest) -> Literal["light", "dark"]:
    value: Literal["light", "dark"] = request.param
    return value


@pytest.fixture(params=list(SIZES))
def size(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
async def themed_page(
    browser: Browser,
    edge: Edge,
    console_errors: ConsoleErrors,
    scheme: Literal["light", "dark"],
    size: str,
) -> AsyncIterator[Page]:
    context = {"base_url": edge.url, "viewport": SIZES[size], "color_scheme": scheme}
    async with chat_page(browser, console_errors, **context) as page:
        yield page


async def check(page: Page, state: str, scheme: str, size: str) -> Path:
    # Once the drawer (or any other transition) has finished moving; the cursor blinks for ever.
    await page.evaluate(
        """Promise.all(document.getAnimations()
            .filter(a => a instanceof CSSTransition).map(a => a.finished))"""
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / f"{state}-{scheme}-{size}.png"
    await page.screenshot(path=shot)
    found = await violations(page)
    assert found == [], f"axe, {state} {scheme} {size}: {found}"
    return shot


async def test_no_axe_violations_empty_streaming_finished(
    themed_page: Page, edge: Edge, scheme: str, size: str
) -> None:
    page = themed_page
    await check(page, "empty", scheme, size)

    model = StandInModel(edge)
    await model.install(page)
    await send(page, "Compare the clients, with an example")
    channel = await model.next_channel()
    for text in ANSWER[:5]:
        await model.chunk(channel, text)
    await expect(page.locator(".turn.assistant .answer")).to_contain_text("async with httpx")
    await expect(page.get_by_role("button", name="Stop", exact=True)).to_be_visible()
    await check(page, "streaming", scheme, size)

    for text in ANSWER[5:]:
        await model.chunk(channel, text)
    await model.done(channel)
    await page.locator(FINISHED).wait_for()
    await expect(page.locator(".hljs-keyword").first).to_be_visible()
    await expect(page.get_by_role("button", name="Regenerate")).to_be_visible()
    await check(page, "finished", scheme, size)

    # Scrolled up, Jump to latest appears (the phone's screen is short enough for this answer).
    await page.locator("#conversation").evaluate("c => c.scrollTo(0, 0)")
    if await page.locator("#conversation").evaluate("c => c.scrollHeight > c.clientHeight + 100"):
        jump = page.get_by_role("button", name="Jump to latest")
        await expect(jump).to_be_visible()
        await check(page, "scrolled-up", scheme, size)
        await jump.click()
        await expect(jump).to_be_hidden()

    if size == "phone":
        toggle = page.get_by_role("button", name="Conversations", exact=True)
        await toggle.click()
        await expect(toggle).to_have_attribute("aria-expanded", "true")
        await expect(page.locator("#conversation-list .open")).to_have_text(
            ["Compare the clients, with an example"]
        )
        await check(page, "conversations", scheme, size)
        await page.keyboard.press("Escape")
        await expect(page.locator("#conversation-list .open")).to_be_hidden()
        await expect(toggle).to_be_focused()
        await toggle.click()
        await page.get_by_role("button", name="Close conversations").click()
        await expect(page.locator("#conversation-list .open")).to_be_hidden()
        await toggle.click()

    # A deleted conversation's Undo (in the list, so in the drawer on a phone).
    await page.get_by_role("button", name="Delete Compare the clients, with an example").click()
    undo = page.get_by_role("button", name="Undo")
    await expect(undo).to_be_visible()
    await check(page, "deleted", scheme, size)
    await undo.click()
    await expect(page.locator("#conversation-list .open")).to_have_text(
        ["Compare the clients, with an example"]
    )


async def test_no_axe_violations_with_answers_marked_in_the_list(
    themed_page: Page, edge: Edge, scheme: str, size: str
) -> None:
    """The list's marks: one answer still arriving and one ended in conversations not on screen
    (on a phone, the drawer's toggle says there is news, then the open drawer shows them)."""
    page = themed_page
    model = StandInModel(edge)
    await model.install(page)
    channels = []
    for prompt in ("first", "second"):
        await send(page, prompt)
        channels.append(await model.next_channel())
        await model.chunk(channels[-1], f"Part of the {prompt} answer")
        await expect(page.locator(".turn.assistant .answer")).to_contain_text(prompt)
        await page.get_by_role("button", name="New chat").click()
        await expect(page.locator(".turn")).to_have_count(0)
    await model.done(channels[0])
    if size == "phone":  # the list is in the closed drawer: its toggle shows the news
        toggle = page.locator("#toggle-sidebar")
        await expect(toggle).to_have_class(re.compile(r"\bhas-news\b"))
        # In its name too (probe: the dot was for the eye only).
        await expect(toggle).to_have_accessible_name("Conversations, new answers")
        await check(page, "news", scheme, size)
        await toggle.click()
        await expect(toggle).to_have_attribute("aria-expanded", "true")
    marks = page.locator("#conversation-list")
    await expect(marks.get_by_role("img", name="new answer")).to_have_count(1)
    await expect(marks.get_by_role("img", name="answer arriving")).to_have_count(1)
    await check(page, "marked", scheme, size)
    await model.done(channels[1])


async def test_phone_layout_keeps_the_composer_still_and_the_placeholder_whole(
    browser: Browser, edge: Edge
) -> None:
    context = await browser.new_context(base_url=edge.url, viewport=SIZES["phone"])
    page = await context.new_page()
    await page.goto("/")
    await page.locator("#send:not([disabled])").wait_for()
    box = page.get_by_label("Your message", exact=True)

    async def geometry() -> dict[str, Any]:
        found: dict[str, Any] = await page.evaluate(
            """() => { const f = document.querySelector('#composer').getBoundingClientRect();
                const t = document.querySelector('#prompt');
                const s = document.querySelector('#send').getBoundingClientRect();
                return {top: f.top, height: f.height, send: [s.width, s.height],
                        boxFits: t.scrollHeight <= t.clientHeight + 1,
                        width: document.documentElement.scrollWidth}; }"""
        )
        return found

    empty = await geometry()
    assert empty["boxFits"], empty  # the placeholder is not cut
    # A longer prompt grows the box (up to a limit), a sent one shrinks it back.
    one_line = await box.evaluate("b => b.clientHeight")
    await box.press_sequentially("one")
    for line in ("two", "three"):
        await box.press("Shift+Enter")
        await box.press_sequentially(line)
    assert await box.evaluate("b => b.clientHeight") > one_line
    await box.fill("")
    await box.press("Backspace")
    assert await box.evaluate("b => b.clientHeight") == one_line
    assert empty["width"] <= 375
    assert empty["top"] + empty["height"] <= 740

    await send(page, "code")
    await expect(page.get_by_role("button", name="Stop", exact=True)).to_be_visible()
    streaming = await geometry()
    await page.locator(FINISHED).wait_for()
    finished = await geometry()
    # The composer does not jump or change size between states.
    assert empty["top"] == streaming["top"] == finished["top"], (empty, streaming, finished)
    assert empty["send"] == streaming["send"] == finished["send"]
    assert finished["width"] <= 375  # code scrolls inside its block, not the page
    await expect(box).to_be_in_viewport()
    await context.close()


async def screen_reader_names(page: Page) -> set[str]:
    """The names of what a screen reader can reach: Chromium's accessibility tree, without
    the nodes it ignores (hidden, inert)."""
    cdp = await page.context.new_cdp_session(page)
    tree = await cdp.send("Accessibility.getFullAXTree")
    await cdp.detach()
    return {
        str(node["name"]["value"])
        for node in tree["nodes"]
        if not node.get("ignored") and node.get("name", {}).get("value")
    }


async def test_the_open_drawer_keeps_the_keyboard_and_screen_readers_in_it(
    browser: Browser, edge: Edge, console_errors: ConsoleErrors
) -> None:
    context = {"base_url": edge.url, "viewport": SIZES["phone"]}
    async with chat_page(browser, console_errors, **context) as page:
        await send(page, "hello")
        await page.locator(FINISHED).wait_for()
        box = page.get_by_label("Your message", exact=True)
        assert "Your message" in await screen_reader_names(page)
        toggle = page.get_by_role("button", name="Conversations", exact=True)
        await toggle.click()
        await expect(toggle).to_have_attribute("aria-expanded", "true")
        close = page.get_by_role("button", name="Close conversations")
        await expect(page.locator("#conversation-list .open")).to_be_focused()

        # Behind the drawer, nothing is left for a screen reader: the prompt box is out of reach.
        reachable = await screen_reader_names(page)
        assert "Your message" not in reachable, reachable
        assert "New chat" not in reachable, reachable
        assert "Skip to message box" not in reachable, reachable  # it leads behind the drawer
        assert {"Conversations", "Close conversations", "hello"} <= reachable, reachable

        # Tab from the drawer's last control goes round to its first, never to the page behind.
        sidebar = page.locator("#sidebar")
        last = page.get_by_role("button", name="Delete hello")
        await last.focus()
        for _ in range(5):
            await page.keyboard.press("Tab")
            await expect(box).not_to_be_focused()
            assert await sidebar.evaluate("drawer => drawer.contains(document.activeElement)")
        await last.focus()
        await page.keyboard.press("Tab")
        await expect(close).to_be_focused()
        await page.keyboard.press("Shift+Tab")
        await expect(last).to_be_focused()

        # Escape closes it, with the keyboard back on the toggle and the page in reach again.
        await page.keyboard.press("Escape")
        await expect(toggle).to_have_attribute("aria-expanded", "false")
        await expect(page.locator("#conversation-list .open")).to_be_hidden()
        await expect(toggle).to_be_focused()
        assert "Your message" in await screen_reader_names(page)
        await box.focus()
        await expect(box).to_be_focused()

        # A conversation deleted in the drawer: its Undo is in the drawer's round, and outlasts
        # Escape (the drawer closed and opened again).
        await toggle.click()
        await page.get_by_role("button", name="Delete hello").click()
        undo = page.get_by_role("button", name="Undo")
        await expect(undo).to_be_visible()
        await undo.focus()
        await page.keyboard.press("Tab")
        await expect(close).to_be_focused()
        await page.keyboard.press("Shift+Tab")
        await expect(undo).to_be_focused()
        await page.keyboard.press("Escape")
        await expect(toggle).to_be_focused()
        await toggle.click()
        await undo.click()
        await expect(page.locator("#conversation-list .open")).to_have_text(["hello"])
        await expect(page.locator("#conversation-list .open")).to_be_focused()
        await expect(page.locator(".turn.user")).to_have_text(["hello"])

        # Picking a conversation closes the drawer with the keyboard on its toggle, not lost on
        # the hidden link (found by the helper that built the above).
        await page.keyboard.press("Enter")
        await expect(toggle).to_have_attribute("aria-expanded", "false")
        await expect(toggle).to_be_focused()


FIRST_TAB_STOP = """() => [...document.querySelectorAll(
        'a[href], button, input, textarea, select, [tabindex]')]
    .find((e) => e.tabIndex >= 0 && !e.disabled && e.getClientRects().length > 0
        && !e.closest('[inert]'))?.textContent.trim()"""


async def test_the_first_tab_stop_skips_to_the_message_box(page: Page) -> None:
    """Probe: the keyboard went through the whole list of conversations to reach the message
    box. The page's first stop is "Skip to message box", in sight while it has the keyboard; it
    leaves the address (which names the conversation on screen) as it was."""
    await send(page, "hello")
    await page.locator(FINISHED).wait_for()
    address = page.url
    skip = page.get_by_role("link", name="Skip to message box")
    await expect(skip).not_to_be_in_viewport()
    # The first in the page's order that Tab stops at (the page puts the keyboard in the message
    # box as it loads, so pressing Tab from the start cannot be done here).
    first = await page.evaluate(FIRST_TAB_STOP)
    assert first == "Skip to message box", first
    await skip.focus()
    await expect(skip).to_be_in_viewport()
    await page.keyboard.press("Enter")
    await expect(page.get_by_label("Your message", exact=True)).to_be_focused()
    await expect(skip).not_to_be_in_viewport()
    assert page.url == address
    await expect(page.locator(".turn.user")).to_have_text(["hello"])


@pytest.mark.parametrize("key", ["Enter", " "])
async def test_a_suggestion_taken_with_the_keyboard_leaves_it_in_the_message_box(
    page: Page, key: str
) -> None:
    """Probe: Enter or Space on a suggestion sent it and took the suggestions away, and the
    keyboard with them: it was on nothing (the page's body), and a screen reader lost its
    place. It goes to the message box, as after sending with Enter."""
    chip = page.get_by_role("button", name="hello", exact=True)
    await expect(chip).to_be_enabled()
    await chip.focus()
    await page.keyboard.press(key)
    await expect(page.locator(".turn.user")).to_have_text(["Hello!"])
    await expect(page.get_by_label("Your message", exact=True)).to_be_focused()
    await page.locator(FINISHED).wait_for()
    await expect(page.get_by_label("Your message", exact=True)).to_be_focused()


RECORD_ANNOUNCEMENTS = """() => { window.said = [];
    new MutationObserver((changes) => { for (const change of changes) for (const node of
        change.addedNodes) window.said.push(node.textContent); })
      .observe(document.getElementById('announcer'), {childList: true}); }"""


async def test_an_answer_shown_again_while_it_arrives_is_not_read_out_again(
    page: Page, edge: Edge
) -> None:
    """Regression (browser probe): back in a conversation whose answer was still arriving, a
    screen reader heard the whole answer again from its start. (A reload shows the answer the
    same way; the stand-in model cannot answer the page's questions after one.)"""
    model = StandInModel(edge)
    await model.install(page)
    await send(page, "first")
    channel = await model.next_channel()
    await model.chunk(channel, "Para one.\n\nPara two.\n\nPara three is gro")
    await expect(page.locator("#announcer")).to_contain_text("Para two.")

    await page.evaluate(RECORD_ANNOUNCEMENTS)
    await page.get_by_role("button", name="New chat").click()
    await page.locator("#conversation-list .open", has_text="first").click()
    await expect(page.locator(".turn.assistant .answer")).to_contain_text("Para three is gro")
    await model.chunk(channel, "wing.\n\nPara four ")
    await expect(page.locator(".turn.assistant .answer")).to_contain_text("Para four")
    await expect(page.locator("#announcer")).to_contain_text("Para three is growing.")
    assert await page.evaluate("window.said") == ["Para three is growing."]


async def test_jump_to_latest_leaves_the_keyboard_on_the_latest_message(
    page: Page, edge: Edge
) -> None:
    """Regression (browser probe): Jump to latest hid itself with the focus on it, so the
    keyboard went back to the page's start."""
    model = StandInModel(edge)
    await model.install(page)
    await send(page, "long")
    paragraphs = [f"Paragraph {n} of a long answer.\n\n" for n in range(40)]
    await model.answer(await model.next_channel(), *paragraphs)
    await page.locator(FINISHED).wait_for()
    await page.locator("#conversation").evaluate("c => c.scrollTo(0, 0)")
    jump = page.get_by_role("button", name="Jump to latest")
    await expect(jump).to_be_visible()
    await jump.focus()
    await page.keyboard.press("Enter")
    await expect(jump).to_be_hidden()
    latest = page.get_by_role("article", name="relaychat")
    await expect(latest).to_be_focused()
    await page.keyboard.press("Tab")  # on to the latest answer's own actions
    await expect(latest.get_by_role("button", name="Copy")).to_be_focused()


async def test_with_the_drawer_open_endings_and_the_status_line_are_still_heard(
    browser: Browser, edge: Edge, console_errors: ConsoleErrors
) -> None:
    """Probe (H1): with the drawer open on a phone, the page behind is inert, and an answer's
    ending ("The answer failed: …") and the status line ("Connection lost …") sat in it: left out
    of the accessibility tree, never heard. They are said by the announcer, outside the page."""
    context = {"base_url": edge.url, "viewport": SIZES["phone"]}
    async with chat_page(browser, console_errors, **context) as page:
        model = StandInModel(edge)
        await model.install(page)
        await send(page, "hello")
        channel = await model.next_channel()
        await model.chunk(channel, "Part of it")
        await expect(page.locator(".turn.assistant .answer")).to_contain_text("Part of it")
        toggle = page.locator("#toggle-sidebar")
        await toggle.click()
        await expect(toggle).to_have_attribute("aria-expanded", "true")
        assert "Your message" not in await screen_reader_names(page)  # the page is inert

        await model.done(channel, reason="timeout")
        await expect(page.locator("#announcer")).to_contain_text("The answer took too long")
        assert any("The answer took too long" in name for name in await screen_reader_names(page))

        await page.context.set_offline(True)
        await expect(page.locator("#announcer")).to_contain_text("Connection lost")
        assert any("Connection lost" in name for name in await screen_reader_names(page))
        await page.context.set_offline(False)
        await expect(page.locator("#announcer")).to_contain_text("Reconnected.", timeout=30_000)
        console_errors.expect("WebSocket")
        console_errors.expect("ERR_INTERNET_DISCONNECTED")
