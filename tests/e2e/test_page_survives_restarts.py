"""The page through faults (docs/protocol.md, "Resuming"): a Centrifugo restart mid-answer ends
in the whole answer, once; a killed backend ends in a readable notice with Retry, and Retry
asks again; a snapshot or a Stop that cannot reach the server is tried again; Stop through a
hung backend, a backend restart or a stalled Centrifugo ends as stopped; a backend restarted
by SIGTERM lets the answer finish whole (and hears a Stop meanwhile). Each test has a
Centrifugo, a backend and an nginx of its own, to stop, pause and kill."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Browser, Locator, Page, Request, Route, expect

from backend.llm.simulated import answer_for
from tests.browser import (
    ConsoleErrors,
    chat_page,
    stored_conversations,
    stored_turns,
    wait_until_stored,
)
from tests.e2e.chat import StandInModel
from tests.processes import Server, free_port
from tests.stack import (
    Edge,
    backend_server,
    centrifugo_server,
    nginx_in_front,
    stack_for,
)

STATUS = "#status"
# ~60 ms a token: the answer to "code" (about 100 tokens) runs ~6 s, long enough to cut into.
SLOW = {"SIM_TOKEN_DELAY_MIN_MS": "50", "SIM_TOKEN_DELAY_MAX_MS": "70", "COALESCE_WINDOW_MS": "30"}
# The follower asks the backend after 15 s of silence (frontend/src/follower.js); the notice
# must follow soon after.
NOTICE_SECONDS = 25


@dataclass
class Servers:
    edge: Edge
    centrifugo: Server
    backend: Server


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    stack = stack_for(free_port(), free_port(), (free_port(), free_port()), **SLOW)
    centrifugo, backend = centrifugo_server(stack, tmp_path), backend_server(stack)
    try:
        centrifugo.start()
        backend.start()
        with nginx_in_front(
            stack, stack.backend_url, stack.nginx_ports[0], tmp_path / "nginx"
        ) as edge:
            yield Servers(edge, centrifugo, backend)
    finally:
        backend.close()
        centrifugo.close()


@pytest.fixture
async def page(
    browser: Browser, servers: Servers, console_errors: ConsoleErrors
) -> AsyncIterator[Page]:
    async with chat_page(browser, console_errors, base_url=servers.edge.url) as page:
        yield page


def last_answer(page: Page) -> Locator:
    return page.locator(".turn.assistant").last


async def send(page: Page, text: str) -> None:
    await page.get_by_label("Your message", exact=True).fill(text)
    await page.get_by_label("Your message", exact=True).press("Enter")


async def test_a_centrifugo_restart_mid_answer_shows_the_whole_answer_once(
    page: Page, servers: Servers, console_errors: ConsoleErrors
) -> None:
    await send(page, "code")
    answer = last_answer(page).locator(".answer")
    await expect(answer).not_to_be_empty()
    await expect(last_answer(page)).to_have_attribute("aria-busy", "true")

    servers.centrifugo.stop()  # the memory engine's history and epoch go with it
    await expect(page.locator(STATUS)).to_contain_text("Connection lost")
    servers.centrifugo.start()

    await expect(last_answer(page)).to_have_attribute("aria-busy", "false", timeout=30_000)
    await expect(page.locator(STATUS)).to_be_hidden()
    turns = await stored_turns(page)
    assert [turn["role"] for turn in turns] == ["user", "assistant"]
    assert turns[1]["reason"] == "complete"
    assert turns[1]["answer"] == answer_for("code")  # nothing lost, nothing twice
    await expect(last_answer(page).locator("pre > code")).to_have_count(1)
    await expect(last_answer(page).locator(".notice")).to_have_count(0)
    # While Centrifugo was down, nginx refused the WebSocket and Chromium logged it.
    console_errors.expect("WebSocket")


async def test_a_killed_backend_is_told_and_retry_asks_again(
    page: Page, servers: Servers, console_errors: ConsoleErrors
) -> None:
    await send(page, "code")
    await expect(last_answer(page).locator(".answer")).not_to_be_empty()

    servers.backend.signal(signal.SIGKILL)  # a crash, an OOM kill: nobody will send a `done`

    notice = last_answer(page).locator(".notice")
    await expect(notice).to_contain_text(
        "Nobody is answering this any more", timeout=NOTICE_SECONDS * 1000
    )
    retry = notice.get_by_role("button", name="Retry")
    await expect(retry).to_be_visible()
    console_errors.expect("502")  # the page asked the backend, and nginx could not reach it

    servers.backend.stop()  # reaps the killed process
    servers.backend.start()
    await retry.click()

    await expect(page.locator(".turn.assistant")).to_have_count(1)  # replaced, not added
    await expect(last_answer(page)).to_have_attribute("aria-busy", "false", timeout=30_000)
    turns = await stored_turns(page)
    assert [turn["role"] for turn in turns] == ["user", "assistant"]
    assert turns[1]["reason"] == "complete"
    assert turns[1]["answer"] == answer_for("code")
    await expect(page.locator(".turn.user")).to_have_count(1)


async def stored_answer(page: Page) -> dict[str, object]:
    turns = await stored_turns(page)
    assert [turn["role"] for turn in turns] == ["user", "assistant"]
    return turns[1]


async def test_a_snapshot_that_gets_no_answer_keeps_the_answer_and_asks_again(
    page: Page, servers: Servers, console_errors: ConsoleErrors
) -> None:
    """Probe: one snapshot request that failed in the browser (offline, a dead network path)
    ended an answer still running as "Nobody is answering this any more"."""
    model = StandInModel(servers.edge)
    await model.install(page)
    offline = True

    async def snapshot(route: Route) -> None:
        if offline:
            await route.abort("internetdisconnected")
        else:
            await route.continue_()

    await page.route("**/api/streams/**", snapshot)
    await send(page, "hello")
    channel = await model.next_channel()
    await model.chunk(channel, "Hello ")
    await expect(last_answer(page).locator(".answer")).to_have_text("Hello")

    # 15 s of silence: the page asks the backend, and gets no answer at all.
    note = last_answer(page).locator(".note")
    await expect(note).to_have_text(
        "The server is not answering right now (the server cannot be reached); the page keeps"
        " trying, and nothing is lost. You can Stop.",
        timeout=NOTICE_SECONDS * 1000,
    )
    await expect(last_answer(page)).to_have_attribute("aria-busy", "true")
    await expect(last_answer(page).locator(".notice")).to_have_count(0)

    offline = False
    await model.chunk(channel, "again.")
    await expect(note).to_have_count(0)
    # Probe: the note went without a word.
    await expect(page.locator("#announcer")).to_contain_text("The server is answering again.")
    await model.done(channel)
    await expect(last_answer(page)).to_have_attribute("aria-busy", "false")
    await expect(last_answer(page).locator(".notice")).to_have_count(0)
    assert (await stored_answer(page))["answer"] == "Hello again."
    console_errors.expect("ERR_INTERNET_DISCONNECTED")


async def test_stop_that_cannot_reach_the_server_is_sent_again_until_it_does(
    page: Page, servers: Servers, console_errors: ConsoleErrors
) -> None:
    """Probe: Stop while the server could not be reached told it nothing, ever: the page said
    "Stopped" and the server generated the whole answer."""
    refused = 0

    async def offline(route: Route) -> None:
        nonlocal refused
        refused += 1
        await route.abort("internetdisconnected")

    await send(page, "code")
    await expect(last_answer(page).locator(".answer")).not_to_be_empty()
    await page.route("**/api/cancel", offline)
    await page.get_by_role("button", name="Stop").click()
    note = last_answer(page).locator(".note")
    await expect(note).to_have_text(
        "Stopping… the server has not heard yet (the server cannot be reached); the page keeps"
        " telling it."
    )
    await expect(page.locator("#send")).to_be_disabled()
    await expect(last_answer(page)).to_have_attribute("aria-busy", "true")

    await page.unroute("**/api/cancel", offline)  # the network is back
    await expect(last_answer(page).locator(".notice")).to_have_text(
        "Stopped. Retry", timeout=10_000
    )
    await expect(note).to_have_count(0)
    assert refused >= 1
    stored = await stored_answer(page)
    assert stored["reason"] == "cancelled"
    answer = str(stored["answer"])
    assert answer_for("code").startswith(answer)  # stopped there
    assert answer != answer_for("code")
    console_errors.expect("ERR_INTERNET_DISCONNECTED")


async def test_a_stop_the_server_has_not_heard_is_told_again_after_a_reload(
    page: Page, servers: Servers, console_errors: ConsoleErrors
) -> None:
    """Probe: Stop pressed while the server could not be reached, then a reload before it
    heard: the Stop was forgotten (it lived in the tab's memory), and the answer ran to its end
    as complete. It is kept with the answer; the page that opens it tells the server again."""

    async def offline(route: Route) -> None:
        await route.abort("internetdisconnected")

    await send(page, "code")
    await expect(last_answer(page).locator(".answer")).not_to_be_empty()
    await page.route("**/api/cancel", offline)
    await page.get_by_role("button", name="Stop").click()
    stopping = (
        "Stopping… the server has not heard yet (the server cannot be reached); the page keeps"
        " telling it."
    )
    await expect(last_answer(page).locator(".note")).to_have_text(stopping)
    async with asyncio.timeout(10):
        await wait_until_stored(page, "cs => cs.some(c => c.turns.some(t => t.stopPressed))")

    await page.reload()  # the cancel still cannot get through
    await expect(last_answer(page).locator(".note")).to_have_text(stopping, timeout=10_000)
    await page.unroute("**/api/cancel", offline)  # the network is back
    await expect(last_answer(page).locator(".notice")).to_have_text(
        "Stopped. Retry", timeout=15_000
    )
    stored = await stored_answer(page)
    assert stored["reason"] == "cancelled"
    assert answer_for("code").startswith(str(stored["answer"]))
    assert str(stored["answer"]) != answer_for("code")  # the server stopped it
    console_errors.expect("ERR_INTERNET_DISCONNECTED")


async def test_a_prompt_sent_offline_goes_once_the_network_is_back(
    page: Page, console_errors: ConsoleErrors
) -> None:
    """Probe: a prompt sent while offline was said to be unsure at once, then, 14 s after the
    network came back, "not sent", with Retry to press. It is sent again by itself; and it is
    said that the browser is offline (probe83: the notes blamed the server)."""
    await page.context.set_offline(True)
    await send(page, "hello")
    await expect(last_answer(page).locator(".note")).to_have_text(
        "This browser is offline: the prompt is sent once the network is back."
    )
    async with asyncio.timeout(10):
        await wait_until_stored(page, "cs => cs.some(c => c.turns.some(t => t.resend))")
    await page.context.set_offline(False)
    await expect(last_answer(page)).to_have_attribute("aria-busy", "false", timeout=15_000)
    await expect(last_answer(page).locator(".notice")).to_have_count(0)
    stored = await stored_answer(page)
    assert stored["reason"] == "complete"
    assert stored["answer"] == answer_for("hello")
    console_errors.expect("ERR_INTERNET_DISCONNECTED")


async def test_stop_on_a_prompt_that_never_left_the_browser_ends_it_at_once(
    page: Page, console_errors: ConsoleErrors
) -> None:
    """A review: Stop on a prompt sent offline waited for the network to tell the server of an
    answer it never had, with the composer on Stop meanwhile. Nothing to tell: it ends here, and
    nothing is sent once the network is back."""
    cancels: list[str] = []
    executes: list[str] = []

    def record(request: Request) -> None:
        if request.url.endswith("/api/cancel"):
            cancels.append(request.url)
        elif request.url.endswith("/api/execute"):
            executes.append(request.url)

    page.on("request", record)
    await page.context.set_offline(True)
    await send(page, "hello")
    await expect(last_answer(page).locator(".note")).to_have_text(
        "This browser is offline: the prompt is sent once the network is back."
    )
    await page.get_by_role("button", name="Stop").click()
    await expect(last_answer(page).locator(".notice")).to_contain_text("Stopped.")
    await expect(page.get_by_role("button", name="Send")).to_be_visible()
    stored = await stored_answer(page)
    assert stored["reason"] == "cancelled"
    assert "resend" not in stored
    sent_offline = len(executes)
    await page.context.set_offline(False)
    await send(page, "hello")  # the next prompt goes; the stopped one does not
    await expect(page.locator(".turn.assistant")).to_have_count(2)
    await expect(last_answer(page)).to_have_attribute("aria-busy", "false", timeout=15_000)
    assert len(executes) == sent_offline + 1
    assert cancels == []
    console_errors.expect("ERR_INTERNET_DISCONNECTED")


async def test_stop_through_a_backend_that_hangs_gives_up_waiting_and_asks_again(
    page: Page, servers: Servers
) -> None:
    """Probe: with the backend hung (SIGSTOP), Stop stayed disabled 58 s without a word (nginx
    waits 300 s for the backend). Here the first cancel hangs, the next is taken; the model is
    the test's, so that the answer is still running when it is (the simulated model, resumed,
    catches up at once)."""
    model = StandInModel(servers.edge)
    await model.install(page)
    cancels: list[str] = []

    async def cancel(route: Route) -> None:
        cancels.append(route.request.url)
        if len(cancels) == 1:
            await asyncio.sleep(15)  # longer than the page waits
            with contextlib.suppress(Exception):  # the page gave up on it already
                await route.abort()
        else:
            channel = json.loads(route.request.post_data or "{}")["channel"]
            await route.fulfill(status=202, json={"channel": channel})

    await page.route("**/api/cancel", cancel)
    await send(page, "hello")
    channel = await model.next_channel()
    await model.chunk(channel, "Hello ")
    await expect(last_answer(page).locator(".answer")).to_have_text("Hello")

    await page.get_by_role("button", name="Stop").click()
    note = last_answer(page).locator(".note")
    # Probe: 9 s of silence after Stop while the cancel hung. Said at once (and heard).
    await expect(note).to_have_text("Stopping…", timeout=2_000)
    await expect(page.locator("#announcer")).to_contain_text("Stopping…")
    await expect(note).to_have_text(
        "Stopping… the server has not heard yet (the server did not answer within 10 s); the page"
        " keeps telling it.",
        timeout=15_000,
    )
    await expect(page.locator("#send")).to_be_disabled()
    for _ in range(50):
        if len(cancels) == 2:
            break
        await asyncio.sleep(0.1)
    assert len(cancels) == 2  # asked again a second later
    await model.done(channel, "cancelled")  # as the backend does once it is told
    await expect(last_answer(page).locator(".notice")).to_have_text("Stopped. Retry")
    await expect(note).to_have_count(0)
    assert (await stored_answer(page))["reason"] == "cancelled"


def restart_lets_answers_finish(servers: Servers, **settings: str) -> None:
    """The backend restarted as `make run`'s or compose's would be: on SIGTERM it lets its
    running answers finish (the tests' own servers end them at once); `settings` too."""
    servers.backend.env.update(SHUTDOWN_DRAIN_SECONDS="60", **settings)
    servers.backend.stop()
    servers.backend.start()


async def until_stopping(page: Page) -> None:
    """Until the backend says, through nginx, that it is stopping (it heard the signal)."""
    async with asyncio.timeout(10):
        while (await page.request.get("/api/ready")).status != 503:  # noqa: ASYNC110  # asked
            await asyncio.sleep(0.02)


WAITING = (
    "The server is restarting or busy and took nothing yet; the prompt is sent again as soon as "
    "it can take it."
)


async def prompt_while_stopping(page: Page, servers: Servers, token_ms: str) -> None:
    """A long answer to "code" (`token_ms` a token) streaming, the backend told to stop (it lets
    that answer finish), then "hello" asked in a new chat: refused for now, to be sent again."""
    delays = {"SIM_TOKEN_DELAY_MIN_MS": token_ms, "SIM_TOKEN_DELAY_MAX_MS": token_ms}
    restart_lets_answers_finish(servers, **delays)
    await send(page, "code")
    await expect(last_answer(page).locator(".answer")).not_to_be_empty()
    servers.backend.signal(signal.SIGTERM)
    await until_stopping(page)
    await page.get_by_role("button", name="New chat").click()
    await send(page, "hello")
    await expect(last_answer(page).locator(".note")).to_have_text(WAITING)


async def back_once_stopped(servers: Servers) -> None:
    """The backend started again once it has stopped by itself (its answer had finished)."""
    process = servers.backend.process
    assert process is not None
    await asyncio.to_thread(process.wait, 30)
    servers.backend.env.update(SLOW)
    servers.backend.start()


async def test_a_backend_restart_mid_answer_lets_the_answer_finish_whole(
    page: Page, servers: Servers
) -> None:
    """A restart (SIGTERM) mid-answer ended the answer with "the server is stopping; please send
    the prompt again". Now the page gets the whole answer, with no notice, and the restarted
    backend takes the next prompt."""
    restart_lets_answers_finish(servers)
    await send(page, "code")
    await expect(last_answer(page).locator(".answer")).not_to_be_empty()
    await expect(last_answer(page)).to_have_attribute("aria-busy", "true")

    servers.backend.signal(signal.SIGTERM)
    await until_stopping(page)

    await expect(last_answer(page)).to_have_attribute("aria-busy", "false", timeout=30_000)
    await expect(last_answer(page).locator(".notice")).to_have_count(0)
    assert (await stored_answer(page))["answer"] == answer_for("code")
    assert (await stored_answer(page))["reason"] == "complete"
    await back_once_stopped(servers)

    await send(page, "hello")
    await expect(page.locator(".turn.assistant")).to_have_count(2)
    await expect(last_answer(page)).to_have_attribute("aria-busy", "false", timeout=30_000)
    assert (await stored_turns(page))[-1]["answer"] == answer_for("hello")


async def test_a_prompt_sent_while_the_backend_restarts_goes_once_it_is_back(
    page: Page, servers: Servers, console_errors: ConsoleErrors
) -> None:
    """A prompt sent while the backend stops (it lets another answer finish meanwhile) is
    refused for now (503 "the server is stopping", Retry-After): the page says so and sends it
    again by itself, through the restart, until the new backend takes it; no Retry to press.
    The first answer runs ~20 s: a probe found the page's 15 s silence check taking the
    waiting prompt for lost ("could not be sent") while the restart still let answers finish."""
    await prompt_while_stopping(page, servers, token_ms="200")
    await back_once_stopped(servers)

    await expect(last_answer(page)).to_have_attribute("aria-busy", "false", timeout=30_000)
    await expect(last_answer(page).locator(".note")).to_have_count(0)
    await expect(last_answer(page).locator(".notice")).to_have_count(0)
    turns = await stored_turns(page)
    assert [turn["role"] for turn in turns] == ["user", "assistant"]
    assert (turns[1]["reason"], turns[1]["answer"]) == ("complete", answer_for("hello"))
    console_errors.expect("503")  # the refusals, as the browser logs them
    console_errors.expect("502")  # a resend while no backend ran, nginx's


async def test_a_prompt_waiting_to_be_sent_again_is_sent_after_a_reload_too(
    page: Page, servers: Servers, console_errors: ConsoleErrors
) -> None:
    """Probe: a page reloaded while its prompt waited to be sent again (the backend restarting)
    forgot it: the resending lived in the tab, and the restored answer ended "Nobody is
    answering this any more" though nothing had been sent. It is kept with the answer; the
    page that opens it sends it again, and it is answered once."""
    await prompt_while_stopping(page, servers, token_ms="150")
    async with asyncio.timeout(10):
        await wait_until_stored(page, "cs => cs.some(c => c.turns.some(t => t.resend))")

    await page.reload()

    await expect(last_answer(page).locator(".note")).to_have_text(WAITING, timeout=10_000)
    await back_once_stopped(servers)
    await expect(last_answer(page)).to_have_attribute("aria-busy", "false", timeout=30_000)
    await expect(last_answer(page).locator(".notice")).to_have_count(0)
    turns = await stored_turns(page)
    assert [turn["role"] for turn in turns] == ["user", "assistant"]
    assert (turns[1]["reason"], turns[1]["answer"]) == ("complete", answer_for("hello"))
    assert "resend" not in turns[1]
    console_errors.expect("503")
    console_errors.expect("502")


async def test_stop_on_a_prompt_waiting_to_be_sent_again_ends_it_as_stopped(
    page: Page, servers: Servers, console_errors: ConsoleErrors
) -> None:
    """Review: Stop on a prompt refused for now left the answer waiting for good (the page
    kept taking the server's snapshot for "nothing learnt"), Stop stuck, until a reload."""
    await prompt_while_stopping(page, servers, token_ms="150")

    await page.get_by_role("button", name="Stop").click()

    notice = last_answer(page).locator(".notice")
    await expect(notice).to_have_text("Stopped. Retry", timeout=10_000)
    await expect(page.get_by_role("button", name="Send")).to_be_visible()
    stored = await stored_answer(page)
    assert stored["reason"] == "cancelled"
    assert "resend" not in stored
    console_errors.expect("503")
    console_errors.expect("404")  # the cancel: nothing runs there


async def test_stop_while_the_backend_lets_answers_finish_still_stops(
    page: Page, servers: Servers
) -> None:
    """While a stopping backend lets its answers finish, Stop is heard as ever."""
    restart_lets_answers_finish(servers)
    await send(page, "code")
    await expect(last_answer(page).locator(".answer")).not_to_be_empty()
    servers.backend.signal(signal.SIGTERM)
    await until_stopping(page)

    await page.get_by_role("button", name="Stop").click()

    await expect(last_answer(page).locator(".notice")).to_have_text("Stopped. Retry", timeout=5_000)
    stored = await stored_answer(page)
    assert stored["reason"] == "cancelled"
    assert answer_for("code").startswith(str(stored["answer"]))
    assert str(stored["answer"]) != answer_for("code")


async def test_stop_right_after_a_backend_restart_ends_as_stopped_within_seconds(
    page: Page, servers: Servers, console_errors: ConsoleErrors
) -> None:
    """Probe: the new backend answers the cancel with 404 (nothing runs there); the page took it
    for "its done is on its way", kept Stop disabled and 12 s later said nobody was answering.
    Now it waits 2 s for a `done` (the answer may have ended as Stop was pressed), then stops."""
    await send(page, "code")
    await expect(last_answer(page).locator(".answer")).not_to_be_empty()
    servers.backend.signal(signal.SIGKILL)
    servers.backend.stop()  # reaps the killed process
    servers.backend.start()

    await page.get_by_role("button", name="Stop").click()
    await expect(last_answer(page).locator(".notice")).to_have_text("Stopped. Retry", timeout=5_000)
    console_errors.expect("404")  # the cancel: nothing runs there
    await expect(page.get_by_role("button", name="Send")).to_be_visible()
    assert (await stored_answer(page))["reason"] == "cancelled"


async def test_stop_while_centrifugo_stalls_ends_from_the_snapshot(
    page: Page, servers: Servers
) -> None:
    """Probe: the backend stopped at once, but the page waited for a `done` the stalled
    Centrifugo could not deliver, 13 s."""
    await send(page, "code")
    await expect(last_answer(page).locator(".answer")).not_to_be_empty()
    servers.centrifugo.signal(signal.SIGSTOP)
    try:
        await page.get_by_role("button", name="Stop").click()
        await expect(last_answer(page).locator(".notice")).to_have_text(
            "Stopped. Retry", timeout=5_000
        )
        stored = await stored_answer(page)
        assert stored["reason"] == "cancelled"
        assert answer_for("code").startswith(str(stored["answer"]))
    finally:
        servers.centrifugo.signal(signal.SIGCONT)


async def test_an_answer_reopened_after_the_servers_forgot_it_keeps_what_was_shown(
    browser: Browser, servers: Servers, console_errors: ConsoleErrors
) -> None:
    """Probe: a tab closed mid-answer (a laptop asleep) and opened again past the 2 minutes the
    servers keep an answer showed it empty, blaming a server that stopped. Here the servers
    forget it at once: Centrifugo's history goes with a restart, the backend's record with
    another."""
    context = await browser.new_context(base_url=servers.edge.url)
    try:
        page = await context.new_page()
        page.on("console", console_errors.record)
        await page.goto("/")
        await page.locator("#send:not([disabled])").wait_for()
        await send(page, "code")
        await expect(last_answer(page).locator(".answer")).to_contain_text("centrifuge")
        # Kept while it streams (at most a second late), not only once it ends.
        await asyncio.wait_for(
            wait_until_stored(
                page,
                "(all) => all.some((c) => c.turns.some((t) => t.role === 'assistant' "
                "&& t.reason === null && (t.answer || '').includes('centrifuge')))",
            ),
            5,
        )
        address = await page.evaluate("location.hash")
        await page.close()

        servers.backend.signal(signal.SIGKILL)
        servers.backend.stop()
        servers.centrifugo.stop()
        servers.centrifugo.start()
        servers.backend.start()

        page = await context.new_page()
        page.on("console", console_errors.record)
        await page.goto(f"/{address}")
        notice = last_answer(page).locator(".notice")
        await expect(notice).to_contain_text("Nobody is answering this any more", timeout=10_000)
        # Not "the server that was answering it stopped": it may as well have ended and expired.
        await expect(notice).to_contain_text("the server no longer has it")
        shown = await last_answer(page).locator(".answer").inner_text()
        assert "centrifuge" in shown
        stored = await stored_answer(page)
        assert stored["reason"] == "abandoned"
        assert answer_for("code").startswith(str(stored["answer"]))
        assert "centrifuge" in str(stored["answer"])
    finally:
        await context.close()
    console_errors.expect("404")  # the snapshot: nobody has it
    assert console_errors == []


async def answered_and_kept(page: Page, servers: Servers, text: str) -> tuple[StandInModel, str]:
    """A prompt answered by the test (a stand-in model) with one chunk, `text`, once the page
    has kept it (within a second as it arrives); the model and the answer's channel."""
    model = StandInModel(servers.edge)
    await model.install(page)
    await send(page, "hello")
    channel = await model.next_channel()
    await model.chunk(channel, text)
    async with asyncio.timeout(10):
        await wait_until_stored(
            page, f"cs => cs.some(c => c.turns.some(t => t.answer === {json.dumps(text)}))"
        )
    return model, channel


async def test_an_answer_whose_history_went_keeps_the_part_it_had_saved(
    page: Page, servers: Servers, console_errors: ConsoleErrors
) -> None:
    """The part of an answer kept while it arrived stays with it when nothing more can be had:
    here the page closed mid-answer, Centrifugo restarted (its history went with it), and the
    backend has no record of the stream (the test's model answered). The page that opens next
    follows the answer, gets nothing, and ends it with the text kept, not with nothing."""
    await answered_and_kept(page, servers, "The part that was kept")
    context, opened = page.context, page.url  # the conversation's address: /#<id>
    await page.close()
    servers.centrifugo.stop()
    servers.centrifugo.start()

    later = await context.new_page()
    later.on("console", console_errors.record)
    await later.goto(opened)
    notice = last_answer(later).locator(".notice")
    await expect(notice).to_be_visible(timeout=NOTICE_SECONDS * 1000)
    await expect(last_answer(later).locator(".answer")).to_have_text("The part that was kept")
    stored = await stored_answer(later)
    console_errors.expect("404")  # the backend has no record of it
    assert stored["answer"] == "The part that was kept"
    assert stored["reason"] == "abandoned"
    await expect(notice).to_contain_text("Nobody is answering this any more")


READ_PROGRESS = """(channel) => new Promise((resolve, reject) => {
    const opening = indexedDB.open('relaychat');
    opening.onerror = () => reject(opening.error);
    opening.onsuccess = () => {
        const db = opening.result;
        const reading = db.transaction('conversations').objectStore('conversations')
            .get(['progress', channel]);
        reading.onerror = () => reject(reading.error);
        reading.onsuccess = () => { db.close(); resolve(reading.result ?? null); };
    };
})"""


async def test_what_is_on_screen_is_kept_when_the_page_is_left(
    page: Page, servers: Servers, console_errors: ConsoleErrors
) -> None:
    """Probe: the text of an answer still arriving was kept at most a second after it came,
    and not when the page was left: up to ~70 characters shown were never kept (gone for good
    once the servers forget the answer, after 2 minutes). Now leaving keeps it at once."""
    model, channel = await answered_and_kept(page, servers, "The first part.")
    await model.chunk(channel, " Then more.")
    await expect(last_answer(page).locator(".answer")).to_have_text("The first part. Then more.")
    context, origin = page.context, servers.edge.url
    address = await page.evaluate("location.hash")
    servers.centrifugo.signal(signal.SIGSTOP)  # nothing more from it: what the page kept shows
    await page.goto("about:blank")  # left well within the second: the chunk is not kept yet

    reader = await context.new_page()
    await reader.goto(f"{origin}/api/health")  # the page's origin, none of its code
    kept = [
        turn
        for conversation in await stored_conversations(reader)
        for turn in conversation["turns"]
        if turn["role"] == "assistant"
    ]
    assert [turn["answer"] for turn in kept] == ["The first part."]  # as of the last save
    # ... and the rest on its own, nothing else written over (frontend/src/storage.js
    # `keepProgressNow`); the page reads it into the answer while it runs.
    assert await reader.evaluate(READ_PROGRESS, channel) == {
        "answer": "The first part. Then more.",
        "thinking": "",
    }
    opened = await context.new_page()
    opened.on("console", console_errors.record)
    await opened.route("**/api/streams/*", lambda route: route.abort("internetdisconnected"))
    await opened.goto(f"{origin}/{address}")
    await expect(last_answer(opened).locator(".answer")).to_have_text("The first part. Then more.")
    console_errors.expect("ERR_INTERNET_DISCONNECTED")
