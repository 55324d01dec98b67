"""The page through faults (docs/protocol.md, "Resuming"): a Centrifugo restart mid-answer ends
in the whole answer, once; a killed backend ends in a readable notice with Retry, and Retry
asks again. Each test has a Centrifugo, a backend and an nginx of its own, to stop and kill."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Browser, Locator, Page, expect

from backend.llm.simulated import answer_for
from tests.browser import ConsoleErrors, chat_page, stored_turns
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
    await page.get_by_label("Your message").fill(text)
    await page.get_by_label("Your message").press("Enter")


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
