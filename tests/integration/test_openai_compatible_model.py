"""A real backend with LLM_PROVIDER=openai in front of a small OpenAI-compatible server, and the
real Centrifugo: the answer arrives exact on the channel and on /api/chat."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from httpx_sse import EventSource

from tests.clients import ChatSession, answer_of
from tests.fake_openai import (
    ANSWER,
    REASONING,
    SLOW_CHUNKS,
    UNICODE_ANSWER,
    FakeOpenAI,
    fake_openai_server,
)
from tests.stack import ORIGIN, Stack, another_backend

API_KEY = "sk-integration-0123456789"
SYSTEM_PROMPT = "You are a test."


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with fake_openai_server() as server:
        yield server


@pytest.fixture(scope="module")
def backend_url(stack: Stack, fake: FakeOpenAI) -> Iterator[str]:
    settings = {
        "LLM_PROVIDER": "openai",
        "OPENAI_BASE_URL": fake.url,
        "OPENAI_API_KEY": API_KEY,
        "OPENAI_MODEL": "fake-model",
        "SYSTEM_PROMPT": SYSTEM_PROMPT,
    }
    with another_backend(stack, **settings) as url:
        yield url


@pytest.fixture
async def http(backend_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=backend_url, timeout=15) as client:
        await client.post("/api/token")  # a session: every route that answers needs one
        yield client


async def sse_lines(http: httpx.AsyncClient, body: dict[str, Any]) -> list[str]:
    async with http.stream("POST", "/api/chat", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return [line async for line in response.aiter_lines()]


def parse(lines: list[str]) -> list[Any]:
    """Strict SSE framing: every line is empty or `data: `; `[DONE]` is the last event."""
    events: list[Any] = []
    for line in lines:
        assert line == "" or line.startswith("data: "), f"not SSE: {line!r}"
        if line:
            payload = line.removeprefix("data: ")
            events.append(payload if payload == "[DONE]" else json.loads(payload))
    assert events[-1] == "[DONE]"
    assert events.count("[DONE]") == 1
    return events


async def test_answer_arrives_exact_on_the_channel(
    stack: Stack, backend_url: str, fake: FakeOpenAI
) -> None:
    async with ChatSession.open(backend_url, stack.websocket_url, ORIGIN) as chat:
        publications = await chat.ask("hello there", thinking=True)
    assert answer_of(publications) == "".join(ANSWER)
    thinking = "".join(p["text"] for p in publications if p.get("phase") == "thinking")
    assert thinking == "".join(REASONING)
    assert publications[-1] == {
        "text": "",
        "done": True,
        "reason": "complete",
        "seq": len(publications) - 1,
    }
    request = fake.requests[-1]
    assert request["model"] == "fake-model"
    assert request["stream"] is True
    assert request["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT}


async def test_answer_arrives_exact_on_sse_with_strict_framing(http: httpx.AsyncClient) -> None:
    events = parse(await sse_lines(http, {"prompt": "hello", "thinking": True}))
    tokens = [e for e in events[:-1] if "phase" not in e]
    thoughts = [e for e in events[:-1] if e.get("phase") == "thinking"]
    assert "".join(e["token"] for e in tokens) == "".join(ANSWER)
    assert "".join(e["token"] for e in thoughts) == "".join(REASONING)
    assert events.index(thoughts[-1]) < events.index(tokens[0])


async def test_sync_gives_the_whole_answer(http: httpx.AsyncClient) -> None:
    response = await http.post("/api/chat/sync", json={"prompt": "hello"})
    assert response.status_code == 200
    assert response.json() == {"response": "".join(ANSWER)}


async def test_history_is_sent_to_the_model_in_order(
    http: httpx.AsyncClient, fake: FakeOpenAI
) -> None:
    history = [
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Nice to meet you, Ada."},
    ]
    await http.post("/api/chat/sync", json={"prompt": "What is my name?", "history": history})
    assert fake.requests[-1]["messages"] == [
        {"role": "system", "content": SYSTEM_PROMPT},
        *history,
        {"role": "user", "content": "What is my name?"},
    ]
    assert fake.headers[-1]["authorization"] == f"Bearer {API_KEY}"


@pytest.mark.parametrize(
    ("prompt", "message"),
    [("fail-401", "refused the API key"), ("fail-429", "rate limiting"), ("drop", "failed")],
)
async def test_provider_failures_end_the_stream_readably(
    stack: Stack, backend_url: str, http: httpx.AsyncClient, prompt: str, message: str
) -> None:
    events = parse(await sse_lines(http, {"prompt": prompt}))
    assert message in events[-2]["error"]
    assert API_KEY not in json.dumps(events)

    async with ChatSession.open(backend_url, stack.websocket_url, ORIGIN) as chat:
        publications = await chat.ask(prompt)
    done = publications[-1]
    assert done["reason"] == "error"
    assert message in done["error"]
    assert API_KEY not in done["error"]


async def test_a_client_that_goes_away_stops_the_generation(
    http: httpx.AsyncClient, fake: FakeOpenAI
) -> None:
    async with http.stream("POST", "/api/chat", json={"prompt": "slow"}) as response:
        lines = response.aiter_lines()
        events = 0
        async for line in lines:
            events += bool(line)
            if events == 3:
                break
    # The backend noticed, stopped the model and closed its upstream request: the fake server
    # saw its client go away long before its 200 chunks (10 s) were out.
    stopped = await asyncio.to_thread(fake.slow_stopped.wait, 5)
    assert stopped
    assert fake.slow_sent < SLOW_CHUNKS / 2


async def test_unicode_line_separators_arrive_exact_everywhere(
    stack: Stack, backend_url: str, http: httpx.AsyncClient
) -> None:
    """The stand-in server writes U+2028, U+2029 and U+0085 raw, and one chunk's JSON over two
    `data:` lines (CRLF): the answer must come through whole on every route."""
    expected = "".join(UNICODE_ANSWER)
    async with ChatSession.open(backend_url, stack.websocket_url, ORIGIN) as chat:
        assert answer_of(await chat.ask("unicode")) == expected

    sync = await http.post("/api/chat/sync", json={"prompt": "unicode"})
    assert sync.json() == {"response": expected}

    async with http.stream("POST", "/api/chat", json={"prompt": "unicode"}) as response:
        events = [event.data async for event in EventSource(response).aiter_sse()]
    assert events[-1] == "[DONE]"
    assert "".join(json.loads(data)["token"] for data in events[:-1]) == expected


async def test_cancel_ends_the_stream_and_closes_the_upstream_request(
    stack: Stack, backend_url: str, fake: FakeOpenAI
) -> None:
    async with ChatSession.open(backend_url, stack.websocket_url, ORIGIN) as chat:
        channel = chat.new_channel()
        sub, collector = await chat.subscribe(channel)
        await sub.ready(10)
        fake.slow_stopped.clear()
        assert (await chat.execute(channel, "slow")).status_code == 202
        await asyncio.wait_for(collector.first.wait(), 10)

        asked = time.monotonic()
        response = await chat.cancel(channel)
        answered = time.monotonic()
        publications = await collector.wait_for_done()
        done_at = time.monotonic()

    assert response.status_code == 202
    assert publications[-1] == {
        "text": "",
        "done": True,
        "reason": "cancelled",
        "seq": len(publications) - 1,
    }
    assert [p["done"] for p in publications].count(True) == 1
    assert await asyncio.to_thread(fake.slow_stopped.wait, 5)
    assert fake.slow_sent < SLOW_CHUNKS
    print(  # the figures for the record (bench/cancel_latency.py measures many)
        f"cancel: 202 after {(answered - asked) * 1000:.1f} ms, done at the subscriber after "
        f"{(done_at - asked) * 1000:.1f} ms, upstream closed after "
        f"{(fake.slow_stopped_at - asked) * 1000:.1f} ms"
    )


async def test_poisoned_model_text_touches_no_other_stream(stack: Stack, backend_url: str) -> None:
    """Regression: a lone surrogate from a model failed the whole publishing batch, and 79 of
    120 unrelated streams ended with "the answer could not be delivered"."""
    async with ChatSession.open(backend_url, stack.websocket_url, ORIGIN) as chat:
        prompts = ["split-emoji", "hello"] * 30
        answers = await asyncio.gather(*(chat.ask(prompt) for prompt in prompts))

    for prompt, publications in zip(prompts, answers, strict=True):
        assert publications[-1] == {
            "text": "",
            "done": True,
            "reason": "complete",
            "seq": len(publications) - 1,
        }
        expected = "".join(ANSWER) if prompt == "hello" else "smile \U0001f600 and \ufffd alone"
        assert answer_of(publications) == expected
