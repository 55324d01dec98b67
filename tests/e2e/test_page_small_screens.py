"""The chat page on small screens: a tall prompt leaves the conversation a usable share of the
window and Send on screen, on a phone held sideways and at 400 % zoom (320 x 256 CSS px)."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from tests.e2e.chat import FINISHED, send

# The layout once the window is `height` tall (set_viewport_size returns before media queries
# and the composer's size follow).
MEASURE = """(height) => {
    if (window.innerHeight !== height) return null;
    const box = (selector) => document.querySelector(selector).getBoundingClientRect();
    const send = box('#send');
    return {
        conversation: document.getElementById('conversation').clientHeight,
        sendTop: send.top,
        sendBottom: send.bottom,
        prompt: box('#prompt').height,
    };
}"""


@pytest.mark.parametrize(("width", "height"), [(667, 375), (320, 256)])
async def test_a_tall_prompt_leaves_room_for_the_conversation_and_send(
    page: Page, width: int, height: int
) -> None:
    """Probe: the composer grew to 200 px whatever the window: sideways on a phone the
    conversation kept 71 px, and at 400 % zoom none at all, with Send partly off screen."""
    await send(page, "hello")
    await page.locator(FINISHED).wait_for()
    await page.set_viewport_size({"width": width, "height": height})
    await page.get_by_label("Your message", exact=True).fill("line\n" * 30)
    await page.wait_for_function(
        f"(() => {{ const m = ({MEASURE})({height}); return m && m.prompt > 40 && m; }})()"
    )
    layout = await page.evaluate(MEASURE, height)
    assert layout["conversation"] >= 0.4 * height, layout
    assert layout["sendTop"] >= 0, layout
    assert layout["sendBottom"] <= height, layout
    await expect(page.get_by_role("button", name="Send")).to_be_in_viewport()
