"""Runs each answer in the background: model -> coalesce -> publish, then exactly one `done`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from backend.answer import AnswerFailed, answer_chunks
from backend.models.base import Model
from backend.publisher import Publisher, PublishError
from backend.schemas import (
    ChunkPublication,
    DonePublication,
    StopReason,
    Turn,
    publication_data,
)

logger = logging.getLogger(__name__)

SHUTDOWN_MESSAGE = "the server is stopping; please send the prompt again"


class StreamBusy(Exception):
    """The channel already has an answer streaming into it."""


@dataclass
class _Stream:
    channel: str
    prompt: str
    thinking: bool
    history: Sequence[Turn]
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    published: int = 0
    # Set before the task is cancelled, so that it knows how to end the stream.
    stop: tuple[StopReason, str | None] = ("cancelled", None)
    task: asyncio.Task[None] | None = None

    def next_key(self) -> str:
        """An idempotency key per publication: a retried publish is not published twice."""
        self.published += 1
        return f"{self.id}:{self.published}"


class Relay:
    """Starts, tracks and stops the streams of one process."""

    def __init__(
        self,
        model: Model,
        publisher: Publisher,
        *,
        coalesce_window: float,
        max_stream_seconds: float,
    ) -> None:
        self._model = model
        self._publisher = publisher
        self._window = coalesce_window
        self._max_seconds = max_stream_seconds
        self._streams: dict[str, _Stream] = {}

    @property
    def running(self) -> int:
        return len(self._streams)

    def is_running(self, channel: str) -> bool:
        return channel in self._streams

    def start(
        self, channel: str, prompt: str, *, thinking: bool = False, history: Sequence[Turn] = ()
    ) -> None:
        """Start streaming the answer to `prompt` into `channel`; return at once."""
        if channel in self._streams:
            raise StreamBusy(channel)
        stream = _Stream(channel, prompt, thinking, history)
        self._streams[channel] = stream
        stream.task = asyncio.create_task(self._run(stream), name=f"stream {channel}")
        stream.task.add_done_callback(lambda _: self._forget(stream))

    def _forget(self, stream: _Stream) -> None:
        if self._streams.get(stream.channel) is stream:
            del self._streams[stream.channel]

    def cancel(
        self, channel: str, reason: StopReason = "cancelled", error: str | None = None
    ) -> bool:
        stream = self._streams.get(channel)
        if stream is None or stream.task is None:
            return False
        stream.stop = (reason, error)
        stream.task.cancel()
        return True

    async def shutdown(self, grace_seconds: float) -> None:
        """End every running stream with `done` reason `error`, waiting up to `grace_seconds`."""
        tasks = [s.task for s in self._streams.values() if s.task is not None]
        for channel in list(self._streams):
            self.cancel(channel, "error", SHUTDOWN_MESSAGE)
        if tasks:
            logger.info("stopping %d running stream(s)", len(tasks))
            await asyncio.wait(tasks, timeout=grace_seconds or None)

    async def _run(self, stream: _Stream) -> None:
        reason: StopReason = "complete"
        error: str | None = None
        try:
            await self._relay_answer(stream)
        except AnswerFailed as exc:
            reason, error = exc.reason, exc.message
        except asyncio.CancelledError:
            reason, error = stream.stop
        except PublishError as exc:
            logger.error("stream %s failed: %s", stream.channel, exc)
            reason, error = "error", "the answer could not be delivered"
        await self._publish_done(stream, reason, error)

    async def _relay_answer(self, stream: _Stream) -> None:
        chunks = answer_chunks(
            self._model,
            stream.prompt,
            thinking=stream.thinking,
            history=stream.history,
            window=self._window,
            max_seconds=self._max_seconds,
        )
        # Closed at once when publishing fails, so the model stops and lets go of its upstream.
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                phase = "thinking" if chunk.phase == "thinking" else None
                publication = ChunkPublication(text=chunk.text, phase=phase)
                await self._publisher.publish(
                    stream.channel,
                    publication_data(publication),
                    idempotency_key=stream.next_key(),
                )

    async def _publish_done(self, stream: _Stream, reason: StopReason, error: str | None) -> None:
        done = DonePublication(reason=reason, error=error)
        try:
            await self._publisher.publish(
                stream.channel, publication_data(done), idempotency_key=stream.next_key()
            )
        except PublishError as exc:
            logger.error("could not end stream %s with done/%s: %s", stream.channel, reason, exc)
