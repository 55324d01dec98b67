"""One answer as coalesced chunks, bounded in time, with every way it can fail turned into a
readable `AnswerFailed`. Built once per process and shared by the relay (Centrifugo) and the
direct SSE and JSON routes, so both stream the same way. (See docs/architecture.md.)"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator

from backend.core.coalesce import coalesce
from backend.core.ports import Model, ModelError
from backend.core.types import Chunk, Question, StopReason
from backend.core.unicode import carriable

logger = logging.getLogger(__name__)


class AnswerFailed(Exception):
    """The answer stopped early: `reason` is `timeout` or `error`, `message` is for people."""

    def __init__(self, reason: StopReason, message: str) -> None:
        super().__init__(message)
        self.reason: StopReason = reason
        self.message = message


class Answerer:
    """The model's answers as chunks: tokens within `window` seconds of the first of a chunk are
    sent together (0 = one chunk per token), and an answer may take `max_seconds` at most."""

    def __init__(self, model: Model, *, window: float, max_seconds: float) -> None:
        self.model = model
        self.window = window
        self.max_seconds = max_seconds

    async def chunks(self, question: Question) -> AsyncGenerator[Chunk, None]:
        """Yield the answer to `question`; raise `AnswerFailed` if it cannot finish.

        The deadline bounds only the waits for the model, one at a time, never the caller's work
        between two chunks: a timeout scope must not span a `yield`. Closing the generator
        closes the model's stream, and with it any upstream request.
        """
        chunks = coalesce(carriable(self.model.stream(question)), self.window)
        deadline = asyncio.get_running_loop().time() + self.max_seconds
        try:
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        chunk = await anext(chunks)
                except StopAsyncIteration:
                    return
                except TimeoutError as exc:
                    message = f"the answer took longer than {self.max_seconds:g} s and was cut off"
                    raise AnswerFailed("timeout", message) from exc
                except ModelError as exc:
                    raise AnswerFailed("error", str(exc)) from exc
                except Exception as exc:
                    logger.exception("the model failed")
                    raise AnswerFailed("error", "the model failed while answering") from exc
                yield chunk
        finally:
            await chunks.aclose()
