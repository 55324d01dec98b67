"""The SSE route's keep-alive wrapper around an answer's chunks (backend/api/routes/chat.py)."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from backend.api.routes.chat import _with_keepalives
from backend.core.types import Chunk

pytestmark = pytest.mark.unit


class EndsWhenLetGo:
    """An answer that ends (StopAsyncIteration) once `gate` is set."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()

    def __aiter__(self) -> EndsWhenLetGo:
        return self

    async def __anext__(self) -> Chunk:
        await self.gate.wait()
        raise StopAsyncIteration


async def test_an_answer_ending_as_its_client_leaves_logs_no_unretrieved_exception() -> None:
    """A soak probe: "Task exception was never retrieved ... StopAsyncIteration()" at ERROR,
    once in ~2,500 SSE answers: the task reading the next chunk ended just as the client left,
    and the wrapper, closing, never read how it ended."""
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: reported.append(context))
    try:
        source = EndsWhenLetGo()
        beats = _with_keepalives(source, 10.0, asyncio.Event())
        reader = asyncio.ensure_future(anext(beats))
        for _ in range(3):  # the wrapper waits for the next chunk
            await asyncio.sleep(0)
        source.gate.set()
        await asyncio.sleep(0)  # the chunk's task ends now; the wrapper has not seen it yet
        reader.cancel()  # the client leaves
        with pytest.raises(asyncio.CancelledError):
            await reader
        await beats.aclose()
        del reader, beats
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)

    assert [context.get("message") for context in reported] == []
