"""The chat page with LLM_PROVIDER=openai: the answer of an OpenAI-compatible server (a small
one written in the tests) streams into the page through nginx and Centrifugo."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.async_api import Browser, expect

from tests.fake_openai import ANSWER, REASONING, FakeOpenAI, fake_openai_server
from tests.stack import Edge, Stack, another_backend, nginx_in_front


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with fake_openai_server() as server:
        yield server


@pytest.fixture(scope="module")
def openai_edge(
    stack: Stack, fake: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Edge]:
    settings = {"LLM_PROVIDER": "openai", "OPENAI_BASE_URL": fake.url, "OPENAI_MODEL": "fake"}
    with (
        another_backend(stack, **settings) as backend_url,
        nginx_in_front(
            stack, backend_url, stack.nginx_ports[1], tmp_path_factory.mktemp("nginx-openai")
        ) as front,
    ):
        yield front


async def test_the_models_answer_and_reasoning_stream_into_the_page(
    browser: Browser, openai_edge: Edge, fake: FakeOpenAI
) -> None:
    context = await browser.new_context(base_url=openai_edge.url)
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await page.goto("/")
    await page.get_by_label("Show thinking").check()
    await page.locator("#send:not([disabled])").wait_for()

    await page.get_by_label("Your message", exact=True).fill("hello model")
    await page.get_by_label("Your message", exact=True).press("Enter")
    await page.locator(".turn.assistant[aria-busy=false]").wait_for()
    answer = page.locator(".turn.assistant .answer")
    await expect(answer.locator("strong")).to_have_text("streams")  # Markdown rendered
    expected = "".join(ANSWER).replace("**", "")
    assert " ".join((await answer.text_content() or "").split()) == " ".join(expected.split())
    thinking = page.locator(".turn.assistant .thinking-text")
    assert await thinking.text_content() == "".join(REASONING)

    # A second prompt carries the first exchange to the model.
    await page.get_by_label("Your message", exact=True).fill("and again")
    await page.get_by_label("Your message", exact=True).press("Enter")
    await page.locator(".turn.assistant[aria-busy=false]").nth(1).wait_for()
    messages = fake.requests[-1]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1]["content"] == "hello model"
    assert messages[2]["content"] == "".join(ANSWER)

    await context.close()
    assert errors == []
