"""Runs each answer in the background: answer -> publish, then exactly one `done`, whatever
happens. The timelines of a stream (complete, failures, cancel, shutdown) are in
docs/architecture.md."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass, field, replace

from backend.core.answer import Answerer, AnswerFailed
from backend.core.ports import Publisher, PublishError, StreamEvents, Streams
from backend.core.types import Chunk, Done, Question, Snapshot, StreamStats

logger = logging.getLogger(__name__)

CANCELLED = Done("cancelled")
SHUTDOWN = Done("error", "the server is stopping; please send the prompt again")
ORPHANED = Done("error", "the server answering this stopped; please send the prompt again")
UNDELIVERED = "the answer could not be delivered"
UNEXPECTED = "the answer failed unexpectedly"


def done_key(channel: str) -> str:
    """The idempotency key of the one `done` of `channel`."""
    return f"done:{channel}"


@dataclass
class _Stream:
    channel: str
    question: Question
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    lease: str = ""
    published: int = 0  # publications, the done included: numbers the idempotency keys
    chunks: int = 0  # chunks published: the last one's `seq`
    tokens: int = 0  # tokens the model gave
    started_at: float = field(default_factory=time.monotonic)
    first_chunk_at: float | None = None
    # How the stream ends if its task is cancelled: set before the cancel, read after it.
    stop: Done | None = None
    task: asyncio.Task[None] | None = None
    # A task cancelled before its first step never runs a line of its coroutine (no `done`, no
    # release): until it has started, a stop is only recorded, and read when it starts.
    started: bool = False
    # Set once the answer is over: a stop arriving while its `done` is being released and
    # published must not cancel that.
    answered: bool = False

    def next_key(self) -> str:
        """An idempotency key per publication: a retried publish is not published twice."""
        self.published += 1
        return f"{self.id}:{self.published}"

    def count_token(self) -> None:
        self.tokens += 1

    def stats(self) -> StreamStats:
        now = time.monotonic()
        first = self.first_chunk_at
        return StreamStats(
            seconds=now - self.started_at,
            first_chunk_seconds=None if first is None else first - self.started_at,
            chunks=self.chunks,
            tokens=self.tokens,
        )

    def request_stop(self, done: Done) -> None:
        if self.stop is None:
            self.stop = done
        if self.started and not self.answered and self.task is not None:
            self.task.cancel()


class Relay:
    """Starts and stops the streams of this process, through the shared `Streams` registry."""

    def __init__(
        self,
        answerer: Answerer,
        publisher: Publisher,
        streams: Streams,
        *,
        max_per_owner: int = 0,
        events: tuple[StreamEvents, ...] = (),
    ) -> None:
        self._answerer = answerer
        self._publisher = publisher
        self._streams = streams
        self._events = events
        self._max_per_owner = max_per_owner  # running streams one owner may have; 0: no cap
        self._local: dict[str, _Stream] = {}

    @property
    def running(self) -> int:
        """Streams running in this process."""
        return len(self._local)

    async def start(self, channel: str, question: Question, *, owner: str = "") -> None:
        """Start streaming the answer to `question` into `channel` for `owner`; return at once.
        Raises `StreamBusy` when a stream already runs there, `TooManyStreams` when `owner`
        already runs as many as one may."""
        stream = _Stream(channel, question)
        stream.lease = await self._streams.claim(
            channel, stream.request_stop, owner=owner, max_per_owner=self._max_per_owner
        )
        self._local[channel] = stream
        for events in self._events:
            events.stream_started(channel)
        stream.task = asyncio.create_task(self._run(stream), name=f"stream {channel}")

    async def stop(self, channel: str, done: Done = CANCELLED) -> bool:
        """End the stream in `channel` with `done`, wherever it runs; False if none runs."""
        return await self._streams.stop(channel, done)

    async def snapshot(self, channel: str) -> Snapshot | None:
        """The answer in `channel` so far, or finished; None if no stream ran there lately."""
        return await self._streams.snapshot(channel)

    async def end_orphans(self) -> int:
        """End the streams whose process died (a shared registry's expired leases) with
        `done` reason `error`, so that no subscriber waits forever; how many."""
        orphans = await self._streams.reap_expired(ORPHANED)
        for channel, seq in orphans:
            logger.warning("stream %s lost its process; ending it", channel)
            try:
                await self._publisher.publish(
                    channel, replace(ORPHANED, seq=seq), idempotency_key=done_key(channel)
                )
            except PublishError as exc:
                logger.error("could not end orphaned stream %s: %s", channel, exc)
        return len(orphans)

    async def shutdown(self, grace_seconds: float) -> None:
        """End this process's streams with `done` reason `error`, waiting up to `grace_seconds`
        for their `done` to be published (0: not at all)."""
        streams = list(self._local.values())
        for stream in streams:
            stream.request_stop(SHUTDOWN)
        tasks = [stream.task for stream in streams if stream.task is not None]
        if not tasks:
            return
        logger.info("stopping %d running stream(s)", len(tasks))
        if grace_seconds > 0:
            _, late = await asyncio.wait(tasks, timeout=grace_seconds)
        else:
            late = {task for task in tasks if not task.done()}
        if late:
            logger.warning("%d stream(s) could not publish their done in time", len(late))

    async def _run(self, stream: _Stream) -> None:
        done = CANCELLED
        try:
            done = await self._answer(stream)
        finally:
            stream.answered = True
            self._local.pop(stream.channel, None)
            # Released first: if the registry says another process already ended this stream
            # (its lease ran out, e.g. the registry was unreachable), that process published
            # the `done`, and a second one must not follow.
            if await self._release(stream, done):
                await self._publish_done(stream, done)
            stats = stream.stats()
            for events in self._events:
                events.stream_ended(stream.channel, done, stats)

    async def _release(self, stream: _Stream, done: Done) -> bool:
        """Whether the stream was still this process's to end."""
        try:
            return await self._streams.release(stream.channel, stream.lease, done)
        except Exception as exc:  # the registry unreachable: the subscribers still need a done
            logger.error("could not release stream %s: %s", stream.channel, exc)
            return True

    async def _answer(self, stream: _Stream) -> Done:
        """Relay the answer; how it ended. Never raises: every ending gets its `done`."""
        stream.started = True
        if stream.stop is not None:  # stopped before it started
            return stream.stop
        try:
            await self._relay_chunks(stream)
        except asyncio.CancelledError:
            # Stopped on purpose (cancel, shutdown): the `done` must still go out.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            return stream.stop or CANCELLED
        except AnswerFailed as exc:
            return Done(exc.reason, exc.message)
        except PublishError as exc:
            logger.error("stream %s failed: %s", stream.channel, exc)
            return Done("error", UNDELIVERED)
        except Exception:
            logger.exception("stream %s failed unexpectedly", stream.channel)
            return Done("error", UNEXPECTED)
        return Done("complete")

    async def _relay_chunks(self, stream: _Stream) -> None:
        chunks = self._answerer.chunks(stream.question, on_token=stream.count_token)
        # Closed at once when publishing fails, so the model stops and lets go of its upstream.
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                numbered = replace(chunk, seq=stream.chunks + 1)
                try:
                    await self._publish(stream, numbered)
                except asyncio.CancelledError:
                    # Stopped while it was being published: the publication is on its way
                    # regardless (the publisher shields it), so the `done` and the snapshot
                    # count it.
                    stream.chunks = numbered.seq
                    await self._record(stream, numbered)
                    raise
                stream.chunks = numbered.seq
                if stream.first_chunk_at is None:
                    stream.first_chunk_at = time.monotonic()
                await self._record(stream, numbered)

    async def _record(self, stream: _Stream, chunk: Chunk) -> None:
        """Adds the chunk to the stream's snapshot. The chunk is out already: a registry that
        cannot be reached leaves the snapshot behind, not the answer unfinished. A registry
        that says another process ended the stream (and published its done) stops it."""
        try:
            ours = await self._streams.record(stream.channel, stream.lease, chunk)
        except Exception as exc:
            logger.warning("could not record chunk %d of %s: %s", chunk.seq, stream.channel, exc)
            return
        if not ours:
            logger.warning("stream %s was ended by another process; stopping", stream.channel)
            stream.request_stop(ORPHANED)

    async def _publish(self, stream: _Stream, item: Chunk | Done) -> None:
        await self._publisher.publish(stream.channel, item, idempotency_key=stream.next_key())

    async def _publish_done(self, stream: _Stream, done: Done) -> None:
        try:
            # One key per channel for every `done`, whichever process sends it: should two be
            # sent (an owner cut off from the registry, and a survivor that ended its stream),
            # Centrifugo publishes the first only.
            await self._publisher.publish(
                stream.channel,
                replace(done, seq=stream.chunks),
                idempotency_key=done_key(stream.channel),
            )
        except Exception as exc:
            logger.error("could not end stream %s with done/%s: %s", stream.channel, done, exc)
