"""The page in front of Centrifugo and the backend on Redis (docs/scaling.md): a Redis restart
mid-answer. Redis, a Centrifugo node on its engine, a backend on its streams registry and an
nginx of the test's own, to kill Redis under them."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from backend.llm.simulated import answer_for
from tests.browser import ConsoleErrors, chat_page, stored_turns
from tests.cluster import RedisServer, backend_on_redis, centrifugo_on_redis
from tests.e2e.chat import last_answer, send
from tests.processes import free_port
from tests.stack import Edge, nginx_in_front, stack_for

# ~60 ms a token: the answer to "code" runs ~6 s, long enough to cut into.
SLOW = {"SIM_TOKEN_DELAY_MIN_MS": "50", "SIM_TOKEN_DELAY_MAX_MS": "70", "COALESCE_WINDOW_MS": "30"}


@dataclass
class OnRedis:
    edge: Edge
    redis: RedisServer


@pytest.fixture
def on_redis(tmp_path: Path) -> Iterator[OnRedis]:
    redis_server = RedisServer(tmp_path)
    redis_server.start()
    stack = stack_for(
        free_port(), free_port(), (free_port(), free_port()), REDIS_URL=redis_server.url, **SLOW
    )
    (tmp_path / "centrifugo").mkdir()
    centrifugo = centrifugo_on_redis(stack, tmp_path / "centrifugo", redis_server.url)
    backend = backend_on_redis(stack)
    try:
        centrifugo.start()
        backend.start()
        with nginx_in_front(
            stack, stack.backend_url, stack.nginx_ports[0], tmp_path / "nginx"
        ) as edge:
            yield OnRedis(edge, redis_server)
    finally:
        backend.close()
        centrifugo.close()
        redis_server.stop()


@pytest.fixture
async def page(
    browser: Browser, on_redis: OnRedis, console_errors: ConsoleErrors
) -> AsyncIterator[Page]:
    async with chat_page(browser, console_errors, base_url=on_redis.edge.url) as page:
        yield page


async def test_a_redis_restart_mid_answer_shows_the_whole_answer(
    page: Page, on_redis: OnRedis, console_errors: ConsoleErrors
) -> None:
    """Probe: Centrifugo unsubscribed the page with "insufficient state" and took it back at
    the top of Redis's new epoch; the chunks published there meanwhile were never read, every
    later one was held behind the gap, and the answer ended as lost."""
    await send(page, "code")
    await expect(last_answer(page).locator(".answer")).to_contain_text("centrifuge")
    await asyncio.sleep(1)
    assert on_redis.redis.process is not None
    on_redis.redis.process.send_signal(signal.SIGKILL)  # its data goes with it
    on_redis.redis.process.wait(10)
    on_redis.redis.start()  # at once, on the same port, empty

    await expect(last_answer(page)).to_have_attribute("aria-busy", "false", timeout=40_000)
    await expect(last_answer(page).locator(".notice")).to_have_count(0)
    turns = await stored_turns(page)
    assert [turn["role"] for turn in turns] == ["user", "assistant"]
    assert turns[1]["reason"] == "complete"
    assert turns[1]["answer"] == answer_for("code")  # nothing lost, nothing twice
    # The snapshot asked meanwhile may find the streams registry still being rebuilt.
    console_errors.expect("503")
