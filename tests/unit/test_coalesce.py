"""Coalescing: the first token at once, a window's worth together, nothing lost or mixed."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import anyio
import pytest

from backend.core.coalesce import coalesce
from backend.core.types import Chunk, Token

# A script is a list of (seconds to wait before, token).
Script = list[tuple[float, Token]]


async def scripted(script: Script) -> AsyncIterator[Token]:
    for wait, token in script:
        await asyncio.sleep(wait)
        yield token


async def timed(chunks: AsyncIterator[Chunk]) -> list[tuple[float, Chunk]]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    return [(loop.time() - start, chunk) async for chunk in chunks]


def words(*texts: str, phase: str = "answer") -> list[tuple[float, Token]]:
    return [(0.0, Token(t, phase)) for t in texts]  # type: ignore[arg-type]


async def test_first_token_goes_out_at_once_even_with_a_long_window() -> None:
    script = [(0.0, Token("first ")), (0.5, Token("second"))]
    result = await timed(coalesce(scripted(script), window=0.3))
    first_at, first = result[0]
    assert first == Chunk("first ", "answer")
    assert first_at < 0.1


async def test_tokens_within_the_window_become_one_chunk() -> None:
    script = [*words("a ", "b ", "c ", "d "), (0.3, Token("e"))]
    result = await timed(coalesce(scripted(script), window=0.05))
    assert [chunk.text for _, chunk in result] == ["a ", "b c d ", "e"]
    # The late token opened a new window: it went out on arrival, not a window later.
    assert result[2][0] - 0.3 < 0.04


async def test_pending_tokens_are_flushed_at_the_end_without_waiting_out_the_window() -> None:
    script = words("one ", "two ", "three")
    result = await timed(coalesce(scripted(script), window=10))
    assert [chunk.text for _, chunk in result] == ["one ", "two three"]
    assert result[-1][0] < 1


async def test_zero_window_is_one_chunk_per_token() -> None:
    script = words("a", " b", " c")
    chunks = [chunk async for chunk in coalesce(scripted(script), window=0)]
    assert [c.text for c in chunks] == ["a", " b", " c"]


async def test_a_chunk_never_mixes_phases() -> None:
    script = [*words("think ", "more ", phase="thinking"), *words("answer ", "here")]
    chunks = [chunk async for chunk in coalesce(scripted(script), window=0.05)]
    assert [(c.text, c.phase) for c in chunks] == [
        ("think ", "thinking"),
        ("more ", "thinking"),
        ("answer here", "answer"),
    ]


async def test_thinking_and_answer_in_turn_make_one_chunk_of_each_a_window() -> None:
    """Regression: one chunk (one SSE event) a token when the two phases came in turn."""
    script = [(0.0, Token("r0 ", "thinking"))]
    for n in range(1, 4):
        script += [(0.0, Token(f"r{n} ", "thinking")), (0.0, Token(f"a{n} "))]
    chunks = [chunk async for chunk in coalesce(scripted(script), window=10)]
    assert [(c.text, c.phase) for c in chunks] == [
        ("r0 ", "thinking"),
        ("r1 r2 r3 ", "thinking"),
        ("a1 a2 a3 ", "answer"),
    ]


async def test_error_in_the_source_comes_after_what_was_already_produced() -> None:
    async def failing() -> AsyncIterator[Token]:
        yield Token("ok ")
        yield Token("still ok ")
        raise RuntimeError("model broke")

    received: list[str] = []

    async def consume() -> None:
        async for chunk in coalesce(failing(), window=0.02):
            received.append(chunk.text)

    with pytest.raises(RuntimeError, match="model broke"):
        await consume()
    assert "".join(received) == "ok still ok "


@pytest.mark.parametrize("window", [0, 0.02])
async def test_stopping_early_closes_the_source(window: float) -> None:
    closed = asyncio.Event()

    async def endless() -> AsyncIterator[Token]:
        try:
            while True:
                await asyncio.sleep(0.001)
                yield Token("x")
        finally:
            closed.set()

    chunks = coalesce(endless(), window=window)
    await anext(chunks)
    await chunks.aclose()
    await asyncio.wait_for(closed.wait(), 1)


async def test_window_widens_as_the_stream_grows() -> None:
    async def steady() -> AsyncIterator[Token]:
        for _ in range(60):
            await asyncio.sleep(0.005)
            yield Token("t")

    result = await timed(coalesce(steady(), window=0.02, widen_every=2))
    gaps = [later - earlier for (earlier, _), (later, _) in itertools.pairwise(result)]
    assert "".join(chunk.text for _, chunk in result) == "t" * 60
    # Chunks 0-1 use 20 ms, 2-3 use 40 ms, 4-5 use 80 ms: the later gaps are wider.
    assert gaps[4] > gaps[0] * 2.5


async def test_regression_cancel_scope_does_not_interrupt_the_source_closing() -> None:
    """Starlette cancels a streaming response with an anyio cancel scope when the client goes
    away; such a scope re-cancels its task on every await. Awaiting the pump task from there
    passed each cancel on to it and broke off the model's cleanup halfway, leaving the upstream
    HTTP connection open (found with a real OpenAI-compatible server)."""
    cleanup_steps: list[int] = []
    flowing, cleaned = asyncio.Event(), asyncio.Event()

    async def slow_to_close() -> AsyncIterator[Token]:
        try:
            while True:
                await asyncio.sleep(0.005)
                flowing.set()
                yield Token("x")
        finally:
            for step in range(5):  # closing a connection takes a few awaits
                await asyncio.sleep(0.01)
                cleanup_steps.append(step)
            cleaned.set()

    async def consume() -> None:
        async for _ in coalesce(slow_to_close(), window=0.01):
            pass

    async with anyio.create_task_group() as group:
        group.start_soon(consume)
        await flowing.wait()
        group.cancel_scope.cancel()
    await asyncio.wait_for(cleaned.wait(), 1)
    assert cleanup_steps == [0, 1, 2, 3, 4]
