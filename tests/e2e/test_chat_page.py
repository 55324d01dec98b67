"""The chat page in headless Chromium, through nginx, against the real backend and Centrifugo."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import httpx
from playwright.async_api import Page, Request, Route, expect

from backend.llm.simulated import CODE, GREETING, THINKING, answer_for
from tests.browser import SCREENSHOTS, ConsoleErrors, stored_conversations
from tests.e2e.chat import StandInModel
from tests.stack import Edge

ANSWER = ".turn.assistant .answer"
FINISHED = ".turn.assistant[aria-busy=false]"


def plain(markdown: str) -> str:
    """What a reader sees of the simulated model's Markdown: no markers, folded whitespace."""
    text = re.sub(r"\*\*|`", "", markdown)
    return " ".join(text.split())


def folded(text: str | None) -> str:
    return " ".join((text or "").split())


async def send(page: Page, text: str) -> None:
    await page.get_by_label("Your message", exact=True).fill(text)
    await page.get_by_label("Your message", exact=True).press("Enter")


async def watch_answer(page: Page, index: int = 0, seconds: float = 20) -> list[str]:
    """Every distinct text the answer showed while it streamed, until it finished."""
    seen: list[str] = []
    answer = page.locator(ANSWER).nth(index)
    turn = page.locator(".turn.assistant").nth(index)
    await answer.wait_for()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        finished = await turn.get_attribute("aria-busy") == "false"
        text = folded(await answer.text_content())  # read after: final if `finished`
        if not seen or seen[-1] != text:
            seen.append(text)
        if finished:
            return seen
        await asyncio.sleep(0.01)
    raise AssertionError(f"the answer did not finish; last text: {seen[-1:]}")


async def test_hello_streams_in_visible_steps_to_the_full_greeting(page: Page) -> None:
    await send(page, "hello")
    steps = await watch_answer(page)
    assert steps[-1] == plain(GREETING)
    grown = [s for s in steps if s]
    assert len(grown) >= 4, steps  # it grew in front of the reader
    assert all(steps[-1].startswith(step[:20]) for step in grown)
    assert len(grown[0]) < len(steps[-1]) / 2  # the first thing seen was a small part
    await expect(page.locator(".turn.assistant .cursor")).to_have_count(0)


async def test_thinking_block_appears_before_the_answer(page: Page) -> None:
    await page.get_by_label("Show thinking").check()
    await send(page, "hello")
    thinking = page.locator(".turn.assistant details.thinking")
    await thinking.wait_for()
    # Thinking streams first: when its block appears the answer has not started.
    assert folded(await page.locator(ANSWER).text_content()) == ""
    await page.locator(FINISHED).wait_for()
    assert folded(await thinking.locator(".thinking-text").text_content()) == folded(THINKING)
    order = await page.locator(".turn.assistant > *").evaluate_all(
        "nodes => nodes.map(n => n.className)"
    )
    assert order.index("thinking") < order.index("answer markdown")
    # Collapsed once the answer is done, and opens on a click.
    assert await thinking.get_attribute("open") is None
    await thinking.locator("summary").click()
    assert await thinking.get_attribute("open") is not None


async def test_code_renders_a_code_block_with_its_lines(page: Page) -> None:
    await page.get_by_role("button", name="code").click()
    await page.locator(FINISHED).wait_for()
    block = page.locator(f"{ANSWER} pre > code")
    await expect(block).to_have_count(1)
    expected = CODE.split("```javascript\n", 1)[1].split("```", 1)[0]
    assert await block.text_content() == expected
    assert (await block.text_content() or "").count("\n") == expected.count("\n") > 10


async def test_html_in_a_prompt_shows_as_text(page: Page) -> None:
    prompt = '<img src=x onerror="window.__pwned = 1">hi <b>there</b>'
    await send(page, prompt)
    await page.locator(FINISHED).wait_for()
    user_turn = page.locator(".turn.user")
    assert await user_turn.text_content() == prompt
    await expect(page.locator(".turn img, .turn b, .turn script")).to_have_count(0)
    assert await page.evaluate("window.__pwned") is None


async def test_html_in_an_answer_shows_as_text(page: Page, edge: Edge) -> None:
    """The backend is bypassed: the test publishes a hostile answer into the page's channel
    through Centrifugo, as a compromised or tricked model would."""
    hostile = [
        'Look: <img src=x onerror="window.__pwned = 2"> ',
        "<script>window.__pwned = 3</script> ",
        '<a href="javascript:window.__pwned = 4">link</a> and <b>bold</b>\n\n',
        '<div onclick="window.__pwned = 5">block html</div>\n\n',
        # A tracking pixel, and an image of the page's own origin: links, never loaded.
        "![seen](https://evil.example/track.png?u=1) ![here](/api/health?pixel) ",
        "![](/api/health?unnamed) ",
        "[![badge & co](https://img.example/b.svg)](https://link.example/ci)",
    ]
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))

    async def publish_instead(route: Route) -> None:
        channel = json.loads(route.request.post_data or "{}")["channel"]
        api = f"{edge.stack.centrifugo_url}/api/publish"
        headers = {"X-API-Key": edge.stack.api_key}
        async with httpx.AsyncClient() as client:
            for text in hostile:
                data = {"channel": channel, "data": {"text": text, "done": False}}
                await client.post(api, json=data, headers=headers)
            done = {"channel": channel, "data": {"text": "", "done": True, "reason": "complete"}}
            await client.post(api, json=done, headers=headers)
        await route.fulfill(status=202, json={"channel": channel})

    await page.route("**/api/execute", publish_instead)
    await send(page, "say something nasty")
    await page.locator(FINISHED).wait_for()
    answer = page.locator(ANSWER)
    # The page's own wrappers are divs with a class (`.block` around each rendered block).
    await expect(
        answer.locator("img, script, b, div:not([class]), [onclick], a[href^='javascript']")
    ).to_have_count(0)
    text = folded(await answer.text_content())
    assert '<img src=x onerror="window.__pwned = 2">' in text
    assert "<script>window.__pwned = 3</script>" in text
    assert await page.evaluate("window.__pwned") is None
    links = answer.locator("a")
    # A badge (an image in a link) is that link, named by the image's alt text (a review: a
    # link in a link, and the outer one left empty).
    await expect(links).to_have_text(["seen", "here", "/api/health?unnamed", "badge & co"])
    hrefs = [await link.get_attribute("href") for link in await links.all()]
    images = ["https://evil.example/track.png?u=1", "/api/health?pixel", "/api/health?unnamed"]
    assert hrefs == [*images, "https://link.example/ci"]
    assert await answer.locator("[data-image-href]").count() == 0
    never = [*images, "img.example/b.svg"]
    assert not [url for url in asked if any(image.lstrip("/") in url for image in never)]


async def test_a_long_unbroken_run_wraps_without_freezing_the_page(page: Page, edge: Edge) -> None:
    """An outside-in probe: one long "word" in an answer (a base64 blob, a hash) froze the tab
    ~0.1 ms per character while Chromium looked for where to wrap it (50,000: 4.6 s; 900,000:
    94 s, Stop unusable, the WebSocket dropped). The page now gives such runs places to break
    (<wbr>, no text of their own): shown whole, wrapped within the column, copied as sent.
    Pasted into a prompt too."""
    blob = "".join(f"{i:05d}QUJD" for i in range(5_000))  # 45,000 characters, no space
    answer_text = f"Here it is: {blob} and that is all."

    async def publish_instead(route: Route) -> None:
        channel = json.loads(route.request.post_data or "{}")["channel"]
        api = f"{edge.stack.centrifugo_url}/api/publish"
        headers = {"X-API-Key": edge.stack.api_key}
        async with httpx.AsyncClient() as client:
            for text in (answer_text[:20_000], answer_text[20_000:]):
                data = {"channel": channel, "data": {"text": text, "done": False}}
                await client.post(api, json=data, headers=headers)
            done = {"text": "", "done": True, "reason": "complete"}
            await client.post(api, json={"channel": channel, "data": done}, headers=headers)
        await route.fulfill(status=202, json={"channel": channel})

    await page.route("**/api/execute", publish_instead)
    prompt = "decode " + blob[:7_000]
    await send(page, prompt)
    await page.locator(FINISHED).wait_for(timeout=30_000)
    answer = page.locator(ANSWER)
    assert (await answer.text_content() or "").strip() == answer_text
    assert await page.locator(".turn.user .text").text_content() == prompt
    for shown in (answer, page.locator(".turn.user .text")):
        assert await shown.locator("wbr").count() > 100
        # Wrapped within its column, not pushed past it.
        width, scrolled = await shown.evaluate("node => [node.clientWidth, node.scrollWidth]")
        assert scrolled <= width + 1, (width, scrolled)
    [conversation] = await stored_conversations(page)
    assert conversation["turns"][1]["answer"] == answer_text


async def test_two_prompts_in_a_row_both_stay_visible(page: Page) -> None:
    executed: list[Any] = []

    def record(request: Request) -> None:
        if request.url.endswith("/api/execute"):
            executed.append(request.post_data_json)

    page.on("request", record)
    await send(page, "hello")
    await page.locator(FINISHED).nth(0).wait_for()
    await send(page, "explain")
    await page.locator(FINISHED).nth(1).wait_for()
    await expect(page.locator(".turn.user")).to_have_text(["hello", "explain"])
    answers = [folded(t) for t in await page.locator(ANSWER).all_text_contents()]
    assert answers[0] == plain(GREETING)
    assert answers[1].startswith("Here is how relaychat moves an answer")
    assert answers[1].endswith(plain(answer_for("explain")).rsplit(" ", 3)[-1])
    for turn in await page.locator(".turn").all():
        await expect(turn).to_be_visible()
    # The second prompt took the first exchange along, for models that use it.
    assert executed[0]["history"] == []
    assert executed[1]["history"] == [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": GREETING},
    ]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / "conversation.png")


async def test_enter_sends_and_shift_enter_makes_a_new_line(page: Page) -> None:
    box = page.get_by_label("Your message", exact=True)
    await box.fill("first line")
    await box.press("Shift+Enter")
    await box.type("second line")
    assert await box.input_value() == "first line\nsecond line"
    await expect(page.locator(".turn.user")).to_have_count(0)
    await box.press("Enter")
    await expect(page.locator(".turn.user")).to_have_text(["first line\nsecond line"])
    # While the answer streams Send is Stop and the box stays open for the next prompt
    # (tests/e2e/test_page_actions.py types into it).
    await expect(page.locator("#send")).to_have_accessible_name("Stop")
    # Not busy itself (probe): a busy control is one a screen reader holds off presenting.
    assert await page.locator("#send").get_attribute("aria-busy") is None
    await expect(box).to_be_enabled()
    await expect(box).to_have_value("")
    await page.locator(FINISHED).wait_for()
    await expect(page.locator("#send")).to_have_accessible_name("Send")


async def test_a_refused_prompt_is_explained(page: Page, console_errors: ConsoleErrors) -> None:
    async def refuse(route: Route) -> None:
        body = {"detail": "an answer is already streaming into this channel"}
        await route.fulfill(status=409, json=body)

    await page.route("**/api/execute", refuse)
    await send(page, "hello")
    notice = page.locator(".turn.assistant .notice")
    await expect(notice).to_contain_text(
        "The prompt was not accepted: an answer is already streaming into this channel."
    )
    await expect(page.get_by_label("Your message", exact=True)).to_be_enabled()
    console_errors.expect("status of 409 (Conflict)")

    # Retry sends the same prompt again, in place of the refused answer.
    await page.unroute("**/api/execute", refuse)
    await notice.get_by_role("button", name="Retry").click()
    await expect(page.locator(".turn.assistant")).to_have_count(1)
    await page.locator(FINISHED).wait_for()
    assert folded(await page.locator(ANSWER).text_content()) == plain(GREETING)
    await expect(page.locator(".turn.user")).to_have_text(["hello"])


async def test_a_prompt_refused_as_it_is_goes_back_to_be_edited(
    page: Page, console_errors: ConsoleErrors
) -> None:
    """A 422 (the prompt too long, blank once trimmed, a history the server does not take) would
    only be refused again by Retry or Regenerate: neither is offered; the prompt goes back to the
    message box, and Edit prompt edits it where it is when the box holds something else."""
    detail = "text: the prompt is too long"

    async def refuse(route: Route) -> None:
        await route.fulfill(status=422, json={"detail": detail})

    async def lowered(
        route: Route,
    ) -> None:  # the server's limits, lowered since the page read them
        response = await route.fetch()
        await route.fulfill(response=response, json={**await response.json(), "max_text_chars": 8})

    await page.route("**/api/execute", refuse)
    await page.route("**/api/config", lowered)
    await send(page, "hello there")
    notice = page.locator(".turn.assistant .notice")
    await expect(notice).to_contain_text(f"The prompt was not accepted: {detail}.")
    # The limits are read again: the prompt back in the box is said to be over the new one.
    await expect(page.locator("#prompt-length")).to_have_text(
        "11 of 8 characters: shorten the prompt to send it."
    )
    await page.unroute("**/api/config", lowered)
    await expect(notice.get_by_role("button", name="Edit prompt")).to_be_visible()
    await expect(page.get_by_role("button", name="Retry")).to_have_count(0)
    await expect(page.get_by_role("button", name="Regenerate")).to_have_count(0)
    box = page.get_by_label("Your message", exact=True)
    await expect(box).to_have_value("hello there")
    await expect(box).to_be_focused()
    console_errors.expect("status of 422")

    # What the reader typed in the box since is not overwritten: the prompt is edited in place.
    await box.fill("a draft of mine")
    await notice.get_by_role("button", name="Edit prompt").click()
    editor = page.get_by_role("textbox", name="Edit your message")
    await expect(editor).to_have_value("hello there")
    await expect(box).to_have_value("a draft of mine")

    # Sent from there once the server takes it, its answer replaces the refused one.
    await page.unroute("**/api/execute", refuse)
    await editor.fill("hello")
    await editor.press("Enter")
    await page.locator(FINISHED).wait_for()
    await expect(page.locator(".turn.assistant")).to_have_count(1)
    assert folded(await page.locator(ANSWER).text_content()) == plain(GREETING)
    await expect(page.locator(".turn.user")).to_have_text(["hello"])
    await expect(box).to_have_value("a draft of mine")


async def refuse_as_too_long(route: Route) -> None:
    await route.fulfill(status=422, json={"detail": "text: the prompt is too long"})


async def wait_in_view(page: Page, selector: str) -> None:
    """Until the last element `selector` matches is wholly in the conversation's pane."""
    await page.wait_for_function(
        """selector => {
            const node = [...document.querySelectorAll(selector)].at(-1);
            if (!node) return false;
            const pane = document.getElementById('conversation').getBoundingClientRect();
            const box = node.getBoundingClientRect();
            return box.top >= pane.top - 1 && box.bottom <= pane.bottom + 1;
        }""",
        arg=selector,
        timeout=5_000,
    )


async def test_a_refused_prompt_back_in_the_message_box_leaves_the_refusal_in_view(
    page: Page, edge: Edge, console_errors: ConsoleErrors
) -> None:
    """Probe: back in the message box, the prompt made it grow, and the page took the shorter
    pane for the reader scrolling up: the notice with Edit prompt was below the pane, with Jump
    to latest over the prompt."""
    model = StandInModel(edge)
    await model.install(page)
    await send(page, "first")
    paragraphs = [f"Paragraph {n} of an answer longer than the pane.\n\n" for n in range(30)]
    await model.answer(await model.next_channel(), *paragraphs)
    await page.locator(FINISHED).wait_for()
    await page.unroute("**/api/execute")

    await page.route("**/api/execute", refuse_as_too_long)
    await send(page, "Refused: " + "too long " * 70)
    notice = page.locator(".turn.assistant .notice")
    await expect(notice.get_by_role("button", name="Edit prompt")).to_have_count(1)
    box = page.get_by_label("Your message", exact=True)
    await expect(box).not_to_have_value("")
    assert await box.evaluate("box => box.offsetHeight") > 100  # it grew (one line: 40 px)
    await wait_in_view(page, ".turn.assistant .notice")
    await expect(page.locator("#jump")).to_be_hidden()
    console_errors.expect("status of 422")


async def test_lines_pasted_while_an_answer_streams_leave_it_followed(
    page: Page, edge: Edge
) -> None:
    """Probe: 8 lines pasted into the message box while an answer streamed grew it at once,
    which the page took for the reader scrolling up: the rest of the answer arrived out of
    sight, under Jump to latest."""
    model = StandInModel(edge)
    await model.install(page)
    await send(page, "first")
    paragraphs = [f"Paragraph {n} of the first answer.\n\n" for n in range(30)]
    await model.answer(await model.next_channel(), *paragraphs)
    await page.locator(FINISHED).wait_for()

    await send(page, "second")
    channel = await model.next_channel()
    await model.chunk(channel, "The second answer begins.\n\n")
    await expect(page.locator(ANSWER).last).to_contain_text("begins")
    lines = "\n".join(f"Line {n} of my next question" for n in range(8))
    await page.get_by_label("Your message", exact=True).fill(lines)  # as a paste
    for n in range(20):
        await model.chunk(channel, f"Paragraph {n} of the second answer.\n\n")
    await expect(page.locator(ANSWER).last).to_contain_text("Paragraph 19 of the second")
    await wait_in_view(page, ".turn.assistant .answer .block")  # its last paragraph
    await expect(page.locator("#jump")).to_be_hidden()
    await model.done(channel)
    await page.locator(FINISHED).nth(1).wait_for()
    await wait_in_view(page, ".message.from-assistant .actions")  # its end, with Copy


async def test_a_refused_prompt_fixed_where_it_is_takes_its_copy_in_the_box_along(
    page: Page, console_errors: ConsoleErrors
) -> None:
    """Probe: fixed through its own Edit rather than Edit prompt, the refused prompt was sent
    and answered, and its copy stayed in the message box, said to be over the limit."""

    # The server's limits, lowered since the page read them.
    async def lowered(route: Route) -> None:
        response = await route.fetch()
        await route.fulfill(response=response, json={**await response.json(), "max_text_chars": 8})

    await page.route("**/api/execute", refuse_as_too_long)
    await page.route("**/api/config", lowered)
    box = page.get_by_label("Your message", exact=True)
    length = page.locator("#prompt-length")
    await send(page, "hello there")
    await expect(box).to_have_value("hello there")
    await expect(length).to_have_text("11 of 8 characters: shorten the prompt to send it.")
    await page.unroute("**/api/execute", refuse_as_too_long)

    await page.locator(".message.from-user").get_by_role("button", name="Edit", exact=True).click()
    editor = page.get_by_role("textbox", name="Edit your message")
    await editor.fill("hello")
    await editor.press("Enter")
    await expect(page.locator(ANSWER)).to_contain_text("Hello!")
    await page.locator(FINISHED).wait_for()
    await expect(page.locator(".turn.user")).to_have_text(["hello"])
    await expect(box).to_have_value("")
    await expect(length).to_be_hidden()
    await expect(box).to_have_attribute("aria-invalid", "false")

    # Anything else in the box stays: only the copy of the refused prompt goes.
    await page.route("**/api/execute", refuse_as_too_long)
    await send(page, "hey you")  # within the page's limit (8 now): the server refuses it
    await expect(box).to_have_value("hey you")
    await page.unroute("**/api/execute", refuse_as_too_long)
    await box.fill("a draft of mine")
    last_prompt = page.locator(".message.from-user").last
    await last_prompt.get_by_role("button", name="Edit", exact=True).click()
    await editor.fill("hello")
    await editor.press("Enter")
    await page.locator(FINISHED).nth(1).wait_for()
    await expect(page.locator(".turn.user")).to_have_text(["hello", "hello"])
    await expect(box).to_have_value("a draft of mine")
    await page.unroute("**/api/config", lowered)
    console_errors.expect("status of 422")


async def test_too_many_answers_at_once_is_explained(
    page: Page, console_errors: ConsoleErrors
) -> None:
    """The backend of these tests lets a user run two answers at once (tests/conftest.py); two
    started in the same session from another tab leave none for the page."""
    user = (await (await page.request.post("/api/token")).json())["user"]
    for stream_id in ("othertab1", "othertab2"):
        body = {"text": "code", "channel": f"stream:{stream_id}#{user}"}
        assert (await page.request.post("/api/execute", data=body)).status == 202

    await send(page, "hello")

    notice = page.locator(".turn.assistant .notice")
    await expect(notice).to_contain_text(
        "The prompt was not accepted: you already have 2 answers streaming"
    )
    await expect(notice.get_by_role("button", name="Retry")).to_be_visible()
    console_errors.expect("status of 429")


async def test_a_lost_reply_to_execute_does_not_lose_the_answer(
    page: Page, console_errors: ConsoleErrors
) -> None:
    """The backend accepts the prompt but its 202 never reaches the page (a connection reset
    on the way back): the page keeps following the channel and shows the answer."""
    accepted: list[int] = []

    async def lose_the_reply(route: Route) -> None:
        response = await route.fetch()  # the backend gets the prompt and answers
        accepted.append(response.status)
        await route.abort("connectionreset")

    await page.route("**/api/execute", lose_the_reply)
    await send(page, "hello")
    await page.locator(FINISHED).wait_for()
    assert accepted == [202]
    assert folded(await page.locator(ANSWER).text_content()) == plain(GREETING)
    await expect(page.locator(".turn.assistant .notice")).to_have_count(0)
    console_errors.expect("ERR_CONNECTION_RESET")


async def test_a_reload_mid_answer_still_shows_the_whole_answer(page: Page) -> None:
    await send(page, "code")
    await expect(page.locator(ANSWER)).to_contain_text("centrifuge-js")
    await page.reload()
    await page.locator(FINISHED).wait_for()
    block = page.locator(f"{ANSWER} pre > code")
    assert await block.text_content() == CODE.split("```javascript\n", 1)[1].split("```", 1)[0]
    await expect(page.locator(".turn.user")).to_have_text(["code"])
    await expect(page.locator(".turn.assistant")).to_have_count(1)


async def test_phone_width_keeps_everything_usable(page: Page) -> None:
    await page.set_viewport_size({"width": 375, "height": 740})
    await send(page, "code")
    await page.locator(FINISHED).wait_for()
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375  # nothing forces sideways scrolling; code scrolls inside its block
    await expect(page.get_by_role("button", name="Send")).to_be_visible()
    await expect(page.get_by_label("Show thinking")).to_be_visible()
