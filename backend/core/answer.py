"""One answer as coalesced chunks, bounded in time, with every way it can fail turned into a
readable `AnswerFailed`. Built once per process: the direct SSE and JSON routes stream its
chunks; the relay (Centrifugo) uses its model, time limit and failure messages, and groups the
tokens in its outbox (backend/core/outbox.py). (See docs/architecture.md.)"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator

from backend.core.coalesce import coalesce
from backend.core.events import tell_each
from backend.core.ports import Model, ModelError, StreamEvents
from backend.core.types import Chunk, Question, StopReason, Token
from backend.core.unicode import carriable, repaired

logger = logging.getLogger(__name__)


class AnswerFailed(Exception):
    """The answer stopped early: `reason` is `timeout` or `error`, `message` is for people."""

    def __init__(self, reason: StopReason, message: str) -> None:
        message = repaired(message)  # it goes to people: on a channel, in SSE, in JSON
        super().__init__(message)
        self.reason: StopReason = reason
        self.message = message


class Answerer:
    """The model's answers as chunks: tokens within `window` seconds of the first of a chunk are
    sent together (0 = one chunk per token), and an answer may take `max_seconds` and hold
    `max_chars` characters at most."""

    def __init__(
        self,
        model: Model,
        *,
        window: float,
        max_seconds: float,
        max_chars: int = 1_000_000,
        events: tuple[StreamEvents, ...] = (),
    ) -> None:
        self.model = model
        self.window = window
        self.max_seconds = max_seconds
        self.max_chars = max_chars
        self.events = events

    def _failed(self, kind: str, message: str) -> None:
        tell_each(self.events, lambda events: events.model_failed(kind, message))

    def failure(self, exc: Exception, *, timed_out: bool = False) -> AnswerFailed:
        """What a model's failure (or the deadline, `timed_out`) means for the answer; logged
        and reported."""
        if timed_out:
            message = f"the answer took longer than {self.max_seconds:g} s and was cut off"
            self._failed("time_limit", message)
            return AnswerFailed("timeout", message)
        if isinstance(exc, ModelError):
            detail = f" [{exc.detail}]" if exc.detail else ""
            logger.warning("the model failed (%s): %s%s", exc.kind, exc, detail)
            self._failed(exc.kind, str(exc))
            return AnswerFailed("error", str(exc))
        logger.exception("the model failed", exc_info=exc)
        self._failed("unexpected", repr(exc))
        return AnswerFailed("error", "the model failed while answering")

    def too_long(self) -> AnswerFailed:
        """The answer reached `max_chars`: what it holds up to there is kept, the rest cut off."""
        message = f"the answer was cut off at its size limit of {self.max_chars:,} characters"
        self._failed("size_limit", message)
        return AnswerFailed("error", message)

    async def chunks(self, question: Question) -> AsyncGenerator[Chunk, None]:
        """Yield the answer to `question`; raise `AnswerFailed` if it cannot finish.

        The deadline bounds only the waits for the model, one at a time, never the caller's work
        between two chunks: a timeout scope must not span a `yield`. Closing the generator
        closes the model's stream, and with it any upstream request.
        """
        tokens = _within(carriable(self.model.stream(question)), self.max_chars)
        chunks = coalesce(tokens, self.window)
        deadline = asyncio.get_running_loop().time() + self.max_seconds
        try:
            while True:
                try:
                    async with asyncio.timeout_at(deadline) as scope:
                        chunk = await anext(chunks)
                except StopAsyncIteration:
                    return
                except _TooLong:
                    raise self.too_long() from None
                except Exception as exc:
                    expired = isinstance(exc, TimeoutError) and scope.expired()
                    raise self.failure(exc, timed_out=expired) from exc
                yield chunk
        finally:
            await chunks.aclose()


class _TooLong(Exception):
    """The answer reached its size limit (after the part that fits)."""


async def _within(tokens: AsyncIterator[Token], max_chars: int) -> AsyncIterator[Token]:
    """`tokens` up to `max_chars` characters, then `_TooLong`: checked before coalescing, so a
    fast model cannot pile up more than that within a window either."""
    room = max_chars
    try:
        async for token in tokens:
            room -= len(token.text)
            if room < 0:
                if fits := token.text[:room]:
                    yield Token(fits, token.phase)
                raise _TooLong
            yield token
    finally:
        aclose = getattr(tokens, "aclose", None)
        if aclose is not None:
            await aclose()
