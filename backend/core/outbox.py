"""Where this process's relayed answers wait to be published, and the one flusher that
publishes them.

A stream's task adds each token to its stream's pending text (`Outbox.add`: no task, queue,
future or timer per token or per stream); one flusher task per process takes every stream that
is due, numbers its chunks, records them in the streams registry and publishes them all in one
`publish_many` call (one HTTP batch to Centrifugo). Measured against the per-stream coalescer
this replaced, in README "Benchmarks".

When a stream is due (a leading-edge throttle, per stream):
- its first chunk at once, and after a quiet spell (its window has passed) the next token at
  once too: the first token is never held;
- otherwise once per window; tokens that arrive meanwhile go out together. A stream's window
  doubles every `WIDEN_EVERY` chunks, so that even a long answer stays a few hundred
  publications (inside the channel's history and Centrifugo's recovery limit);
- the window adapts to load: with S streams open it is at least S / `max_rate` seconds, so
  publications stay near `max_rate` a second however many streams run, and it narrows back as
  they end. Load never widens it beyond `MAX_WINDOW`;
- a stream has at most one flush in flight: while Centrifugo is slow its tokens gather into
  the next one.

A chunk never mixes phases (a window holds one chunk of each at most), and never ends in the
first half of a UTF-16 surrogate pair while more may follow (see backend/core/unicode.py).
Window 0: one chunk per token, each published as soon as the flusher is free.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import math
from collections.abc import Callable

from backend.core.coalesce import WIDEN_EVERY
from backend.core.endings import ORPHANED, UNEXPECTED
from backend.core.ports import Publication, Publisher, Recording, Streams
from backend.core.types import Chunk, Done, Phase
from backend.core.unicode import repaired

logger = logging.getLogger(__name__)

# Publications a second the adaptive window aims at: Centrifugo alone takes ~97,000 a second in
# batches and delivers ~65,000 on the 2-core machine of README "Benchmarks"; this leaves it (and
# the backend, on the same cores) room.
MAX_RATE = 20_000.0
MAX_WINDOW = 0.25
# A stream due this soon is due now (the loop's clock and timers are this coarse).
_EARLY = 0.001


def _ends_high(text: str) -> bool:
    return bool(text) and "\ud800" <= text[-1] <= "\udbff"


class Outgoing:
    """One stream's place in the outbox: its pending text and what it has published."""

    __slots__ = (
        "answered",
        "channel",
        "chunks",
        "dirty",
        "drained",
        "due_at",
        "failed",
        "final",
        "first_published_at",
        "key_prefix",
        "lease",
        "queued",
        "segments",
        "stop",
        "undelivered",
    )

    def __init__(self, channel: str, lease: str, key_prefix: str, stop: Callable[[Done], None]):
        self.channel = channel
        self.lease = lease
        self.key_prefix = key_prefix
        self.stop = stop  # ends the stream, e.g. when another process ended it meanwhile
        # Pending text by phase: [[phase, [texts]], ...], in order.
        self.segments: list[tuple[Phase, list[str]]] = []
        self.chunks = 0  # chunks taken for publication: the last one's `seq`
        self.due_at = -math.inf  # when it may publish again
        self.final = False  # the model has finished: flush what is left at once
        self.dirty = False  # has pending text the flusher has not seen
        # The flush in flight, if any: `queued` once its chunks are recorded and queued for
        # publication, `answered` once Centrifugo answered for them (or they failed).
        self.queued: asyncio.Future[None] | None = None
        self.answered: asyncio.Future[None] | None = None
        self.drained: asyncio.Future[None] | None = None  # `final`, and all of it answered
        # How the outbox ended the stream (ended elsewhere, or the flusher failed unexpectedly):
        # nothing more of it is published.
        self.failed: Done | None = None
        self.first_published_at: float | None = None
        self.undelivered = 0  # chunks Centrifugo did not take (the registry holds them)

    def take(self, *, final: bool) -> list[Chunk]:
        """The pending text as numbered chunks, one per segment (with a window: one per phase).
        Unless `final`, a trailing high surrogate is kept back for the token that may complete
        it."""
        chunks: list[Chunk] = []
        segments, self.segments = self.segments, []
        for phase, texts in segments:
            text = "".join(texts)
            if not final and _ends_high(text):
                self.segments.append((phase, [text[-1]]))
                text = text[:-1]
            if text:
                self.chunks += 1
                chunks.append(Chunk(repaired(text), phase, self.chunks))
        return chunks


class Outbox:
    """The pending text of every relayed stream of this process, and its flusher."""

    def __init__(
        self,
        publisher: Publisher,
        streams: Streams,
        *,
        window: float,
        max_rate: float = MAX_RATE,
        widen_every: int = WIDEN_EVERY,
    ) -> None:
        self._publisher = publisher
        self._streams = streams
        self._window = window
        self._max_rate = max_rate
        self._widen_every = widen_every
        self._open: set[Outgoing] = set()
        self._dirty: list[Outgoing] = []
        self._wake = asyncio.Event()
        self._next_at = math.inf  # when the flusher, asleep, next looks at the dirty streams
        self._flusher: asyncio.Task[None] | None = None
        self._loop = asyncio.get_running_loop()

    def open(
        self, channel: str, lease: str, key_prefix: str, stop: Callable[[Done], None]
    ) -> Outgoing:
        """A stream's place: its chunks' idempotency keys are `key_prefix:1`, `:2`, ..."""
        outgoing = Outgoing(channel, lease, key_prefix, stop)
        self._open.add(outgoing)
        if self._flusher is None or self._flusher.done():
            # A context of its own: it serves every stream, not the request that started it.
            self._flusher = asyncio.create_task(
                self._flush_forever(), name="relay outbox", context=contextvars.Context()
            )
        return outgoing

    def window(self) -> float:
        """The coalescing window now: the configured one, widened by load."""
        if self._window <= 0:
            return 0.0
        return max(self._window, min(len(self._open) / self._max_rate, MAX_WINDOW))

    def add(self, outgoing: Outgoing, text: str, phase: Phase) -> None:
        """Add a token's text to the stream's pending text. The hot path: keep it cheap."""
        if not text or outgoing.failed is not None:
            return
        segments = outgoing.segments
        if self._window > 0:
            # One segment per phase: a model that sends thinking and answer text in turn (even
            # in one delta) still makes one chunk of each a window, not one a token. Readers
            # keep the two apart, so their order across phases does not matter.
            for pending_phase, texts in segments:
                if pending_phase == phase:
                    texts.append(text)
                    break
            else:
                segments.append((phase, [text]))
        elif segments and segments[-1][0] == phase and _ends_high(segments[-1][1][-1]):
            segments[-1][1].append(text)  # window 0: completes a pair split across tokens
        else:
            segments.append((phase, [text]))
        if not outgoing.dirty:
            outgoing.dirty = True
            self._dirty.append(outgoing)
            if outgoing.due_at < self._next_at:
                self._wake.set()

    async def finish(self, outgoing: Outgoing) -> None:
        """The model is done: publish what is left at once; return once Centrifugo answered
        for all of it. If the outbox ended the stream meanwhile, `failed` says how."""
        outgoing.final = True
        if outgoing.segments and outgoing.failed is None:
            if not outgoing.dirty:
                outgoing.dirty = True
                self._dirty.append(outgoing)
            outgoing.drained = self._loop.create_future()
            self._wake.set()
            await asyncio.shield(outgoing.drained)
        if outgoing.answered is not None:
            await asyncio.shield(outgoing.answered)

    async def settled(self, outgoing: Outgoing) -> None:
        """Until the stream's flush in flight, if any, has its chunks recorded and queued for
        publication: what the stream publishes next goes after them. Shielded: a stream
        stopped while waiting still counts them."""
        if outgoing.queued is not None:
            await asyncio.shield(outgoing.queued)

    async def close(self, outgoing: Outgoing) -> None:
        """The stream has ended: what is pending is dropped; a flush in flight is waited for,
        so that whatever follows (the `done`) comes after it and counts its chunks."""
        outgoing.segments = []
        if outgoing.dirty:
            outgoing.dirty = False
            self._dirty.remove(outgoing)
        self._open.discard(outgoing)
        if not self._open:
            self._wake.set()  # the flusher ends with the last stream
        # The stream's stop request refers to the stream, which refers to this: a cycle that
        # only the (rarely run) cyclic collector would free, prompt and history included.
        outgoing.stop = _ignore
        await self.settled(outgoing)

    def _end(self, outgoing: Outgoing, done: Done) -> None:
        """Stop the stream from here: nothing more of it is published, it ends with `done`."""
        if outgoing.failed is not None:
            return
        outgoing.failed = done
        outgoing.segments = []
        if outgoing.dirty:
            outgoing.dirty = False
            self._dirty.remove(outgoing)
        outgoing.stop(done)

    async def _flush_forever(self) -> None:
        while self._open:
            now = self._loop.time()
            window = self.window()
            # Streams due within a quarter window go now: one batch carries many streams, and
            # the flusher wakes a few times a window at most, however many streams run.
            horizon = now + max(window / 4, _EARLY)
            due = [o for o in self._dirty if o.final or o.due_at <= horizon]
            if not due:
                self._next_at = min((o.due_at for o in self._dirty), default=math.inf)
                self._wake.clear()
                wake_at = None if self._next_at == math.inf else self._next_at
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout_at(wake_at):
                        await self._wake.wait()
                self._next_at = -math.inf  # awake: an add need not wake it
                continue
            for outgoing in due:
                outgoing.dirty = False
            self._dirty = [o for o in self._dirty if o.dirty]
            try:
                await self._flush(due, now, window)
            except Exception:  # a bug must not stop every stream's flusher: these streams end
                logger.exception("flushing %d stream(s) failed unexpectedly", len(due))
                for outgoing in due:
                    self._end(outgoing, Done("error", UNEXPECTED))

    async def _flush(self, due: list[Outgoing], now: float, window: float) -> None:
        taken: list[tuple[Outgoing, Chunk]] = []
        # One pair of futures for the whole flush, not a pair per stream: its streams' chunks
        # are queued together and answered together.
        queued, answered = self._loop.create_future(), self._loop.create_future()
        widen_every = self._widen_every
        for outgoing in due:
            widen = 2 ** (outgoing.chunks // widen_every)  # by the chunks before this flush
            chunks = outgoing.take(final=outgoing.final)
            outgoing.due_at = now + window * widen
            if chunks:
                outgoing.queued, outgoing.answered = queued, answered
                taken.extend((outgoing, chunk) for chunk in chunks)
        try:
            if taken:
                await self._publish(taken, queued)
        finally:
            _resolve(queued)
            _resolve(answered)
            for outgoing in due:
                outgoing.queued = outgoing.answered = None
                if outgoing.final and not outgoing.segments and not outgoing.dirty:
                    _resolve(outgoing.drained)

    async def _publish(
        self, taken: list[tuple[Outgoing, Chunk]], queued: asyncio.Future[None]
    ) -> None:
        """Record the chunks in the registry (a reader who resumes finds them there), then
        publish the ones whose streams are still this process's."""
        recordings: list[Recording] = [(o.channel, o.lease, chunk) for o, chunk in taken]
        recorded = True
        try:
            ours = await self._streams.record(recordings)
        except Exception as exc:  # the registry unreachable: the answer goes on, unrecorded
            logger.warning("could not record %d chunk(s): %s", len(taken), exc)
            ours = [True] * len(taken)
            recorded = False
        publications: list[Publication] = []
        sent: list[Outgoing] = []
        ended: set[Outgoing] = set()
        for (outgoing, chunk), mine in zip(taken, ours, strict=True):
            if not mine:
                if outgoing not in ended:
                    ended.add(outgoing)
                    logger.warning(
                        "stream %s was ended by another process; stopping", outgoing.channel
                    )
                    self._end(outgoing, ORPHANED)
                continue
            key = f"{outgoing.key_prefix}:{chunk.seq}"
            publications.append((outgoing.channel, chunk, key, outgoing.lease))
            sent.append(outgoing)
        # Handed over: `publish_many` queues them all before it first waits, so a stream that
        # ends now (its `done` is published next) need not wait for Centrifugo's answer. The
        # waiters resume after this step, by which time the call below has queued them.
        _resolve(queued)
        if not publications:
            return
        # Should this raise, the flusher ends this flush's streams (`_flush_forever`).
        outcomes = await self._publisher.publish_many(publications)
        published_at = self._loop.time()
        for outgoing, error in zip(sent, outcomes, strict=True):
            if error is None:
                if outgoing.first_published_at is None:
                    outgoing.first_published_at = published_at
            else:
                # Not the stream's end: the chunk is in the registry (recorded above), where a
                # reader who sees the gap gets it, and the stream goes on. Ending it here threw
                # away what the model gave during a Centrifugo outage longer than the publisher
                # waits, the snapshot included.
                outgoing.undelivered += 1
                if outgoing.undelivered == 1:
                    logger.error(
                        "stream %s: a chunk could not be published (%s); it goes on, %s",
                        outgoing.channel,
                        error,
                        "and readers get the chunk from the snapshot"
                        if recorded
                        else "but the chunk is not in the registry either: its record will say "
                        "that part of the answer was lost",
                    )


def _ignore(done: Done) -> None:
    pass


def _resolve(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)
