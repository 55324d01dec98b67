"""The chat page when it cannot start: a session that fails and a connection that cannot be
made are said plainly, nothing looks clickable that does not work, and Retry starts again. A
connection lost later says that the answer will continue only when one is under way."""

from __future__ import annotations

import asyncio

from playwright.async_api import Browser, Page, Route, WebSocketRoute, expect

from tests.browser import SCREENSHOTS, ConsoleErrors, watched_page
from tests.e2e.chat import (
    FINISHED,
    StandInModel,
    last_answer,
    record_executes,
    send,
    violations,
)
from tests.stack import Edge

# The notice of a prompt refused for its session, once the new session is in place.
SESSION_ENDED = (
    "The prompt was not accepted: the session had ended; a new one has started, so send it "
    "again. Retry"
)


async def new_page(browser: Browser, edge: Edge, console_errors: ConsoleErrors) -> Page:
    viewport = {"width": 1280, "height": 800}
    return await watched_page(browser, console_errors, base_url=edge.url, viewport=viewport)


async def mark_retry_presses(page: Page) -> None:
    """From now on a click on the status line's Retry sets `window.retryPressed`, before the
    page's own handler runs (a capture listener): a route that lets only what Retry sends
    through is not raced by the page's own retrying (its backoff), which took the line and its
    Retry away before the test's click landed (CI: "element was detached from the DOM")."""
    await page.evaluate(
        "document.addEventListener('click', (event) => {"
        " if (event.target.closest('#status .retry')) window.retryPressed = true; }, true)"
    )


async def retry_pressed(page: Page) -> bool:
    return bool(await page.evaluate("window.retryPressed === true"))


async def test_a_failed_session_says_so_and_retry_starts_it(
    browser: Browser, edge: Edge, console_errors: ConsoleErrors
) -> None:
    page = await new_page(browser, edge, console_errors)

    async def refuse(route: Route) -> None:
        if await retry_pressed(page):
            await route.continue_()
        else:
            await route.fulfill(status=503, json={"detail": "sessions are being restarted"})

    await page.route("**/api/token", refuse)
    await page.goto("/")
    status = page.locator("#status")
    await expect(status).to_contain_text(
        "Session failed: cannot start a session (sessions are being restarted)."
    )
    await expect(page.locator("#send")).to_be_disabled()
    for chip in await page.locator(".chip").all():
        await expect(chip).to_be_disabled()  # nothing looks clickable that would not work
    await expect(page.get_by_label("Your message", exact=True)).to_be_editable()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / "session-failed.png")
    assert await violations(page) == []
    # Said by the announcer (outside the page), not by the status line itself.
    await expect(page.locator("#announcer")).to_contain_text("Session failed")
    assert await status.get_attribute("role") is None

    # Probe: Retry pressed from the keyboard that failed again dropped the keyboard to <body>.
    retry = status.get_by_role("button", name="Retry")
    await retry.focus()
    async with page.expect_response("**/api/token"):
        await page.keyboard.press("Enter")
    await expect(status).to_contain_text("Session failed")
    await expect(retry).to_be_focused()

    # Only from here: the Enter above was a click on Retry too, and its session had to fail.
    await mark_retry_presses(page)
    await retry.click()
    await expect(status).to_be_hidden()
    await expect(page.locator("#send")).to_be_enabled()
    await expect(page.locator(".chip").first).to_be_enabled()
    await send(page, "hello")
    await page.locator(FINISHED).wait_for()
    await expect(page.locator(".turn.assistant .answer")).to_contain_text("Hello!")
    await page.context.close()
    console_errors.expect("503")
    assert console_errors == []


async def test_a_connection_that_cannot_be_made_is_explained_and_retried(
    browser: Browser, edge: Edge, console_errors: ConsoleErrors
) -> None:
    """Only the connection that Retry opens is let through: the page's own reconnecting (its
    backoff) is refused until then."""
    page = await new_page(browser, edge, console_errors)

    async def websocket(ws: WebSocketRoute) -> None:
        if await retry_pressed(page):
            ws.connect_to_server()
        else:
            await ws.close(code=1011, reason="refused by the test")

    await page.route_web_socket("**/connection/websocket", websocket)
    await page.goto("/")
    status = page.locator("#status")
    await expect(status).to_contain_text("Cannot connect")
    retry = status.get_by_role("button", name="Retry")
    await expect(retry).to_be_visible()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / "cannot-connect.png")
    assert await violations(page) == []

    await mark_retry_presses(page)
    await retry.click()
    await expect(status).to_be_hidden()
    await send(page, "hello")
    await page.locator(FINISHED).wait_for()
    await expect(page.locator(".turn.assistant .answer")).to_contain_text("Hello!")
    await page.context.close()
    assert [text for text in console_errors if "WebSocket" not in text] == []


async def test_a_session_that_ended_is_replaced_and_retry_works(
    page: Page, console_errors: ConsoleErrors
) -> None:
    """Regression (browser probe): once the session cookie was gone (cleared, expired, or the
    server's secret changed), every prompt and every Retry failed with a 401 until a reload.
    The other tab of the same browser (same cookie) follows; and a slow `POST /api/token` is
    waited for before Retry is offered (review: Retry went out as the old user)."""
    other = await page.context.new_page()
    other.on("console", console_errors.record)
    await other.goto("/")
    await other.locator("#send:not([disabled])").wait_for()
    await send(page, "hello")
    await page.locator(FINISHED).wait_for()
    executes = record_executes(page)
    other_executes = record_executes(other)
    tokens: list[int] = []

    async def slow_token(route: Route) -> None:
        tokens.append(1)
        await asyncio.sleep(1)  # a slow server: Retry must not go out before the new session
        await route.continue_()

    await page.route("**/api/token", slow_token)
    await page.context.clear_cookies()

    await send(page, "explain")
    notice = page.locator(".turn.assistant .notice").last
    await expect(notice).to_have_text(SESSION_ENDED)
    await notice.get_by_role("button", name="Retry").click()
    await page.locator(FINISHED).nth(1).wait_for()
    await expect(last_answer(page).locator(".notice")).to_have_count(0)
    await expect(last_answer(page).locator(".answer")).to_contain_text("Centrifugo")
    old_user, new_user = (e["channel"].rsplit("#", 1)[1] for e in executes)
    assert old_user != new_user  # refused as the old user, then sent as the new one
    assert len(tokens) == 1  # one new session

    # The other tab heard of it: its prompt goes out as the new user at once.
    await send(other, "hello")
    await other.locator(FINISHED).wait_for()
    await expect(last_answer(other).locator(".notice")).to_have_count(0)
    assert [e["channel"].rsplit("#", 1)[1] for e in other_executes] == [new_user]
    console_errors.expect("401")
    assert console_errors == []


async def test_a_prompt_sent_again_after_the_session_ended_starts_a_new_one(
    page: Page, console_errors: ConsoleErrors
) -> None:
    """A prompt refused for now (a 503 with Retry-After) whose resend found the session gone
    ended with the server's 401 words, and the session stayed as it was, so the next prompt was
    refused too (review80 L4): now it ends as one sent before a new session, and Retry works."""
    executes = record_executes(page)
    refused = asyncio.Event()

    async def refuse_then_forget(route: Route) -> None:
        if refused.is_set():
            await route.continue_()
            return
        refused.set()
        await page.context.clear_cookies()  # the session ends while the prompt waits
        headers = {"Retry-After": "1"}
        detail = {"detail": "the server is stopping; nothing was started, please send it again"}
        await route.fulfill(status=503, json=detail, headers=headers)

    await page.route("**/api/execute", refuse_then_forget)
    await send(page, "hello")
    notice = page.locator(".turn.assistant .notice").last
    await expect(notice).to_have_text(SESSION_ENDED)
    await notice.get_by_role("button", name="Retry").click()
    await page.locator(FINISHED).wait_for()
    await expect(last_answer(page).locator(".notice")).to_have_count(0)
    await expect(last_answer(page).locator(".answer")).to_contain_text("Hello!")
    users = [execute["channel"].rsplit("#", 1)[1] for execute in executes]
    assert len(users) == 3  # refused for now, sent again, sent anew by Retry
    assert users[0] == users[1] != users[2]
    console_errors.expect("401")
    console_errors.expect("503")
    assert console_errors == []


async def test_an_answer_of_an_earlier_session_is_said_to_be_lost_after_a_reload(
    page: Page, console_errors: ConsoleErrors
) -> None:
    """Review: an answer still arriving when the session ended can no longer be followed (its
    channel is the old user's); after a reload the page tried and showed "permission denied"."""
    await send(page, "code")
    await expect(page.locator(".turn.assistant .answer")).to_contain_text("centrifuge-js")
    await page.context.clear_cookies()
    await page.reload()

    await expect(page.locator(".turn.assistant .notice")).to_have_text(
        "This answer could not be recovered: it was asked in an earlier session, which has ended."
        " Retry"
    )
    assert console_errors == []


async def test_a_prompt_the_gateway_could_not_pass_on_is_said_at_once_and_ends_as_not_sent(
    page: Page, console_errors: ConsoleErrors
) -> None:
    """Probe: with the backend down (nginx answers 502), the page showed 15 s of a blinking
    cursor, then "the server no longer has it", though it never had the prompt."""

    async def backend_down(route: Route) -> None:
        detail = "the server cannot be reached right now (it may be restarting); try again shortly"
        await route.fulfill(status=502, json={"detail": detail})

    await page.route("**/api/execute", backend_down)
    await send(page, "hello")
    answer = last_answer(page)
    # At once (nginx may have passed it on all the same: the page keeps following it).
    await expect(answer.locator(".note")).to_have_text(
        "The server could not be reached, so the prompt may not have got through; waiting in"
        " case it did.",
        timeout=3_000,
    )
    await expect(answer).to_have_attribute("aria-busy", "true")
    # Nothing came, and the backend does not have it: not sent (not "no longer has it").
    notice = answer.locator(".notice")
    await expect(notice).to_have_text(
        "The answer failed: the prompt could not be sent, as the server could not be reached."
        " Retry",
        timeout=25_000,
    )
    await page.unroute("**/api/execute", backend_down)
    await notice.get_by_role("button", name="Retry").click()
    await page.locator(FINISHED).wait_for()
    await expect(last_answer(page).locator(".answer")).to_contain_text("Hello!")
    console_errors.expect("502")
    console_errors.expect("404")  # the snapshot asked: the backend has no such answer


async def test_an_answer_is_shown_though_the_live_connection_is_blocked(
    browser: Browser, edge: Edge, console_errors: ConsoleErrors
) -> None:
    """Probe: with WebSockets dropped on the way (a proxy) the status line named an operator's
    setting, and the answer, which the backend had whole, never showed: the silence that asks
    the backend for it stopped counting while the subscription was connecting."""
    page = await new_page(browser, edge, console_errors)
    warnings: list[str] = []
    page.on("console", lambda m: warnings.append(m.text) if m.type == "warning" else None)

    async def blocked(ws: WebSocketRoute) -> None:
        await ws.close(code=1011, reason="blocked on the way")

    await page.route_web_socket("**/connection/websocket", blocked)
    await page.goto("/")
    status = page.locator("#status")
    await expect(status).to_contain_text("Cannot connect to the server for live answers")
    await expect(status).not_to_contain_text("CENTRIFUGO")  # the operator's words: the console's
    assert any("CENTRIFUGO_CLIENT_ALLOWED_ORIGINS" in text for text in warnings), warnings

    await send(page, "hello")
    # Asked of the backend after the silence (15 s), as an answer whose channel says nothing.
    await page.locator(FINISHED).wait_for(timeout=40_000)
    await expect(last_answer(page).locator(".answer")).to_contain_text("Hello!")
    await expect(last_answer(page).locator(".notice")).to_have_count(0)
    await page.context.close()
    assert [text for text in console_errors if "WebSocket" not in text] == []


async def test_a_lost_connection_promises_an_answer_only_when_one_is_under_way(
    page: Page, edge: Edge, console_errors: ConsoleErrors
) -> None:
    """Probe: offline on an idle page (the welcome screen, even), the status line said "the
    answer will continue where it stopped"."""
    status = page.locator("#status")
    model = StandInModel(edge)
    await model.install(page)
    await send(page, "hello")
    channel = await model.next_channel()
    await model.chunk(channel, "Part of it")  # connected (offline before that: "Cannot connect")
    await expect(last_answer(page).locator(".answer")).to_contain_text("Part of it")
    await page.context.set_offline(True)
    await expect(status).to_contain_text("Reconnecting; the answer will continue where it stopped.")
    await page.context.set_offline(False)
    await expect(status).to_be_hidden(timeout=30_000)
    # Probe: the recovery was silent (the line went without a word).
    await expect(page.locator("#announcer")).to_contain_text("Reconnected.")
    await model.done(channel)
    await page.locator(FINISHED).wait_for()

    await page.context.set_offline(True)  # no answer under way now
    await expect(status).to_contain_text("Connection lost")
    await expect(status).to_contain_text("Reconnecting.")
    await expect(status).not_to_contain_text("answer")
    await page.context.set_offline(False)
    await expect(status).to_be_hidden(timeout=30_000)
    console_errors.expect("WebSocket")
    console_errors.expect("ERR_INTERNET_DISCONNECTED")


async def test_a_slow_session_says_connecting_keeps_what_is_typed_and_is_retried_by_itself(
    browser: Browser, edge: Edge, console_errors: ConsoleErrors
) -> None:
    """Probe: with a slow backend at load the page showed 8 s of disabled controls with no word,
    Enter in the message box did nothing without a word, and after a failure the page waited
    for the reader to find Retry."""
    page = await new_page(browser, edge, console_errors)
    release = asyncio.Event()
    tokens: list[int] = []

    async def slow_then_refused_then_fine(route: Route) -> None:
        tokens.append(1)
        if len(tokens) == 1:
            await release.wait()  # slow...
            await route.fulfill(
                status=504,
                json={"detail": "the server took too long to answer; try again shortly"},
            )
        else:
            await route.continue_()

    await page.route("**/api/token", slow_then_refused_then_fine)
    await page.goto("/")
    status = page.locator("#status")
    await expect(status).to_have_text("Connecting…")
    await expect(page.locator("#announcer")).to_contain_text("Connecting…")

    box = page.get_by_label("Your message", exact=True)
    await box.fill("hello")
    await box.press("Enter")
    await expect(page.locator("#prompt-waits")).to_contain_text("Not connected yet")
    await expect(page.locator("#announcer")).to_contain_text("Not connected yet")
    await expect(box).to_have_value("hello")

    release.set()  # ... then refused: said without the gateway's "try again shortly"
    await expect(status).to_contain_text("The page keeps trying; Retry tries now.")
    await expect(status).not_to_contain_text("try again shortly")
    await expect(status.get_by_role("button", name="Retry")).to_be_visible()
    # Tried again by itself, nobody pressing Retry.
    await expect(status).to_be_hidden(timeout=10_000)
    await expect(page.locator("#send")).to_be_enabled()
    await expect(page.locator("#prompt-waits")).to_be_hidden()
    await expect(box).to_have_value("hello")
    await box.press("Enter")
    await page.locator(FINISHED).wait_for()
    await expect(page.locator(".turn.assistant .answer")).to_contain_text("Hello!")
    assert len(tokens) == 2
    await page.context.close()
    console_errors.expect("504")
    assert console_errors == []
