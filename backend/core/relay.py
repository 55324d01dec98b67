"""Runs each answer in the background: answer -> publish, then exactly one `done`, whatever
happens. The timelines of a stream (complete, failures, cancel, shutdown) are in
docs/architecture.md."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field, replace

from backend.core.answer import Answerer, AnswerFailed
from backend.core.capacity import Capacity
from backend.core.endings import CANCELLED, ORPHANED, SHUTDOWN, UNEXPECTED, done_key
from backend.core.events import tell_each
from backend.core.outbox import MAX_RATE, Outbox, Outgoing
from backend.core.ports import Publisher, PublishError, StreamEvents, Streams
from backend.core.types import Done, Question, Snapshot, StreamStats

logger = logging.getLogger(__name__)

__all__ = ["CANCELLED", "ORPHANED", "SHUTDOWN", "UNEXPECTED", "Relay", "done_key"]


@dataclass
class _Stream:
    channel: str
    question: Question
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    lease: str = ""
    out: Outgoing | None = None  # its place in the outbox, once claimed
    tokens: int = 0  # tokens the model gave
    # On the loop's clock, as the outbox times publications.
    started_at: float = field(default_factory=lambda: asyncio.get_running_loop().time())
    # How the stream ends if its task is cancelled: set before the cancel, read after it.
    stop: Done | None = None
    task: asyncio.Task[None] | None = None
    # A task cancelled before its first step never runs a line of its coroutine (no `done`, no
    # release): until it has started, a stop is only recorded, and read when it starts.
    started: bool = False
    # Set once the answer is over: a stop arriving while its `done` is being released and
    # published must not cancel that.
    answered: bool = False
    # Whether its place in the process (`Capacity`) is free again.
    place_freed: bool = False

    @property
    def chunks(self) -> int:
        """Chunks taken for publication: the last one's `seq`."""
        return 0 if self.out is None else self.out.chunks

    def stats(self) -> StreamStats:
        first = None if self.out is None else self.out.first_published_at
        return StreamStats(
            seconds=asyncio.get_running_loop().time() - self.started_at,
            first_chunk_seconds=None if first is None else first - self.started_at,
            chunks=self.chunks,
            tokens=self.tokens,
        )

    def request_stop(self, done: Done) -> None:
        """Asked once: a stop told again (through pub/sub and again by a renewal, or a shutdown
        after a cancel) is the same stop. Cancelling the task twice would leave it cancelling
        after its one `uncancel`, and the timeouts of its release and `done` would then take
        their expiry for a cancel."""
        if self.stop is not None:
            return
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
        window: float,
        max_per_owner: int = 0,
        max_per_address: int = 0,
        capacity: Capacity | None = None,
        events: tuple[StreamEvents, ...] = (),
        max_rate: float = MAX_RATE,
    ) -> None:
        """`window`: the coalescing window in seconds (0: one chunk per token), widened under
        load so that publications stay near `max_rate` a second (backend/core/outbox.py).
        `max_per_owner`, `max_per_address`: the running streams one owner, one client address,
        may have (0: no cap), counted by the registry; `capacity`: this process's places for
        answers (None: no cap), one taken from `start` to the stream's end."""
        self._answerer = answerer
        self._publisher = publisher
        self._streams = streams
        self._outbox = Outbox(publisher, streams, window=window, max_rate=max_rate)
        self._events = events
        self._max_per_owner = max_per_owner  # running streams one owner may have; 0: no cap
        self._max_per_address = max_per_address
        self._capacity = capacity
        self._local: dict[str, _Stream] = {}
        # Every stream task of this process until it is over: a stream leaves `_local` when its
        # answer ends, before its `done` is out, which a shutdown must wait for too.
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def running(self) -> int:
        """Streams running in this process."""
        return len(self._local)

    async def start(
        self, channel: str, question: Question, *, owner: str = "", address: str = ""
    ) -> None:
        """Start streaming the answer to `question` into `channel` for `owner`, asked from the
        client `address`; return at once. Raises `ServerBusy` when this process runs as many
        streams as it may, `StreamBusy` when a stream already runs there, `TooManyStreams` when
        `owner` already runs as many as one may, `TooManyFromAddress` when `address` does.
        Refused, nothing was started."""
        if self._capacity is not None:
            self._capacity.take()  # before the claim: a busy process asks the registry nothing
        try:
            await self._claim_and_run(channel, question, owner, address)
        except BaseException:
            if self._capacity is not None:
                self._capacity.give_back()
            raise

    async def _claim_and_run(
        self, channel: str, question: Question, owner: str, address: str
    ) -> None:
        stream = _Stream(channel, question)
        stream.lease = await self._streams.claim(
            channel,
            stream.request_stop,
            owner=owner,
            max_per_owner=self._max_per_owner,
            address=address,
            max_per_address=self._max_per_address,
        )
        stream.out = self._outbox.open(channel, stream.lease, stream.id, stream.request_stop)
        self._local[channel] = stream
        tell_each(self._events, lambda events: events.stream_started(channel))
        stream.task = asyncio.create_task(self._run(stream), name=f"stream {channel}")
        self._tasks.add(stream.task)
        stream.task.add_done_callback(self._tasks.discard)

    async def stop(self, channel: str, done: Done = CANCELLED) -> bool:
        """End the stream in `channel` with `done`, wherever it runs; False if none runs."""
        return await self._streams.stop(channel, done)

    async def snapshot(self, channel: str) -> Snapshot | None:
        """The answer in `channel` so far, or finished; None if no stream ran there lately."""
        return await self._streams.snapshot(channel)

    async def end_orphans(self) -> int:
        """End the streams whose process died (a shared registry's expired leases) with
        `done` reason `error`, so that no subscriber waits forever, or as a stop asked of them
        before said (a user's Stop that their hung process never acted on: `cancelled`); how
        many."""
        orphans = await self._streams.reap_expired(ORPHANED)
        for channel, seq, lease, done in orphans:
            logger.warning("stream %s lost its process; ending it", channel)
            try:
                await self._publisher.publish(
                    channel,
                    replace(done, seq=seq),
                    idempotency_key=done_key(channel, lease),
                    stream=lease,
                )
            except PublishError as exc:
                logger.error("could not end orphaned stream %s: %s", channel, exc)
        return len(orphans)

    async def shutdown(self, grace_seconds: float) -> None:
        """End this process's streams with `done` reason `error`, waiting up to `grace_seconds`
        for their `done` to be published (0: not at all), and for those of the streams that had
        ended just before."""
        streams = list(self._local.values())
        for stream in streams:
            stream.request_stop(SHUTDOWN)
        tasks = set(self._tasks)
        if not tasks:
            return
        if streams:  # not those that only have their `done` to publish
            logger.info("stopping %d running stream(s)", len(streams))
        if grace_seconds > 0:
            _, late = await asyncio.wait(tasks, timeout=grace_seconds)
        else:
            late = {task for task in tasks if not task.done()}
        if late:
            # Not that they failed: they may still get it out while the process stops.
            logger.warning(
                "%d stream(s) had not published their done within the %g s grace; not waiting",
                len(late),
                grace_seconds,
            )

    async def _run(self, stream: _Stream) -> None:
        try:
            await self._run_to_the_end(stream)
        finally:
            self._free_place(stream)  # however it ended (normally freed before its `done`)

    def _free_place(self, stream: _Stream) -> None:
        if not stream.place_freed:
            stream.place_freed = True
            if self._capacity is not None:
                self._capacity.give_back()

    async def _run_to_the_end(self, stream: _Stream) -> None:
        done = CANCELLED
        try:
            done = await self._answer(stream)
        finally:
            stream.answered = True
            self._local.pop(stream.channel, None)
            if stream.out is not None:
                # Waits for a flush in flight: the `done` goes after its chunks and counts them.
                await self._outbox.close(stream.out)
            # Released first. If the registry says another process already ended this stream
            # (its lease ran out, e.g. the registry was unreachable), that process was to
            # publish the `done`; but it may never have: a reap Redis ran late, after a pause
            # longer than the client waited, ended the streams with no one left to read the
            # reply (a cluster probe: every running answer of both backends, no `done` at all).
            # So it is published here too, under the stream's one `done` key: Centrifugo takes
            # the first of the two. Both carry the chunks published: a reader or a record
            # holding fewer is not whole.
            ended = replace(done, seq=stream.chunks)
            if not await self._release(stream, ended):
                ended = replace(await self._ended_elsewhere(stream), seq=stream.chunks)
            # Freed with its place in the registry, before the `done` goes out: a client that
            # sends its next prompt on the `done` finds both free.
            self._free_place(stream)
            await self._publish_done(stream, ended)
            stats = stream.stats()
            tell_each(self._events, lambda events: events.stream_ended(stream.channel, done, stats))

    async def _release(self, stream: _Stream, done: Done) -> bool:
        """Whether the stream was still this process's to end."""
        try:
            return await self._streams.release(stream.channel, stream.lease, done)
        except Exception as exc:  # the registry unreachable: the subscribers still need a done
            logger.error("could not release stream %s: %s", stream.channel, exc)
            return True

    async def _ended_elsewhere(self, stream: _Stream) -> Done:
        """How the process that ended `stream` ended it, as the registry keeps it (a reaper
        ends a stream `cancelled` when a stop was asked of it: the owner must not say
        orphaned over that); orphaned when the registry cannot say."""
        try:
            snapshot = await self._streams.snapshot(stream.channel)
        except Exception as exc:  # the registry unreachable (or recovering): said as a reaper says
            logger.warning("could not ask how stream %s ended: %s", stream.channel, exc)
            return ORPHANED
        if snapshot is None or snapshot.done is None:
            return ORPHANED
        return snapshot.done

    async def _answer(self, stream: _Stream) -> Done:
        """Relay the answer; how it ended. Never raises: every ending gets its `done`."""
        stream.started = True
        if stream.stop is not None:  # stopped before it started
            return stream.stop
        try:
            await self._relay_tokens(stream)
        except asyncio.CancelledError:
            # Stopped on purpose (cancel, shutdown, ended by another process): the
            # `done` must still go out.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            return stream.stop or CANCELLED
        except AnswerFailed as exc:
            return Done(exc.reason, exc.message)
        except Exception:
            logger.exception("stream %s failed unexpectedly", stream.channel)
            return Done("error", UNEXPECTED)
        # Ended from the outbox (by another process, or an unexpected failure of the flusher),
        # however late.
        return stream.out.failed if stream.out and stream.out.failed else Done("complete")

    async def _relay_tokens(self, stream: _Stream) -> None:
        """The model's tokens into the outbox, then the rest published. The deadline bounds the
        model only; one timeout scope for the whole answer, no task or timer per token. An
        answer reaches at most `max_chars` characters."""
        assert stream.out is not None
        out, add = stream.out, self._outbox.add
        tokens = self._answerer.model.stream(stream.question)
        deadline = asyncio.get_running_loop().time() + self._answerer.max_seconds
        failure: AnswerFailed | None = None
        room = self._answerer.max_chars
        try:
            async with asyncio.timeout_at(deadline) as scope:
                async for token in tokens:
                    stream.tokens += 1
                    room -= len(token.text)
                    if room < 0:  # what fits goes out, the rest is cut off
                        add(out, token.text[:room], token.phase)
                        failure = self._answerer.too_long()
                        break
                    add(out, token.text, token.phase)
        except Exception as exc:
            expired = isinstance(exc, TimeoutError) and scope.expired()
            failure = self._answerer.failure(exc, timed_out=expired)
        finally:
            # Closing the model's stream closes any upstream request, whatever ended it.
            aclose = getattr(tokens, "aclose", None)
            if aclose is not None:
                await aclose()
        # What the model gave before it failed goes out too, then the `done` says why it ended.
        await self._outbox.finish(out)
        if failure is not None:
            raise failure

    async def _publish_done(self, stream: _Stream, done: Done) -> None:
        try:
            # One key per stream for its `done`, whichever process sends it: should two be
            # sent (an owner cut off from the registry, and a survivor that ended its stream),
            # Centrifugo publishes the first only.
            await self._publisher.publish(
                stream.channel,
                done,
                idempotency_key=done_key(stream.channel, stream.lease),
                stream=stream.lease,
            )
        except Exception as exc:
            logger.error("could not end stream %s with done/%s: %s", stream.channel, done, exc)
