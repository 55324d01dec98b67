"""One answer as coalesced chunks, bounded in time, with every way it can fail turned into a
readable `AnswerFailed`. Shared by the Centrifugo relay and the direct SSE endpoints."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Sequence

from backend.coalesce import Chunk, coalesce
from backend.models.base import Model, ModelError
from backend.schemas import StopReason, Turn

logger = logging.getLogger(__name__)


class AnswerFailed(Exception):
    """The answer stopped early: `reason` is `timeout` or `error`, `message` is for people."""

    def __init__(self, reason: StopReason, message: str) -> None:
        super().__init__(message)
        self.reason: StopReason = reason
        self.message = message


async def answer_chunks(
    model: Model,
    prompt: str,
    *,
    thinking: bool,
    history: Sequence[Turn],
    window: float,
    max_seconds: float,
) -> AsyncGenerator[Chunk, None]:
    """Yield the model's answer to `prompt` as chunks; raise `AnswerFailed` if it cannot finish.

    The deadline bounds only the waits for the model, one at a time, never the caller's work
    between two chunks: a timeout scope must not span a `yield`.
    """
    chunks = coalesce(model.stream(prompt, thinking=thinking, history=history), window)
    deadline = asyncio.get_running_loop().time() + max_seconds
    try:
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    chunk = await anext(chunks)
            except StopAsyncIteration:
                return
            except TimeoutError as exc:
                message = f"the answer took longer than {max_seconds:g} s and was cut off"
                raise AnswerFailed("timeout", message) from exc
            except ModelError as exc:
                raise AnswerFailed("error", str(exc)) from exc
            except Exception as exc:
                logger.exception("the model failed")
                raise AnswerFailed("error", "the model failed while answering") from exc
            yield chunk
    finally:
        await chunks.aclose()
