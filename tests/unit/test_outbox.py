"""The outbox: when a stream's tokens are published, how they are grouped, and that one stream's
failure stays its own."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import pytest

from backend.core.endings import ORPHANED, UNEXPECTED
from backend.core.outbox import MAX_WINDOW, Outbox, Outgoing
from backend.core.ports import Publication, PublishError, Recording
from backend.core.streams import LocalStreams
from backend.core.types import Chunk, Done, Snapshot
from tests.unit.fakes import RecordingPublisher

pytestmark = pytest.mark.unit

A, B = "stream:aaaaaaaa#u_1", "stream:bbbbbbbb#u_1"
LONG = 3600.0  # a window no test waits out


class BatchPublisher(RecordingPublisher):
    """Records each `publish_many` call (a batch) as well as each publication."""

    def __init__(self, fail_channels: frozenset[str] = frozenset()) -> None:
        super().__init__()
        self.batches: list[list[str]] = []
        self.fail_channels = fail_channels
        self.batch_seen = asyncio.Event()

    async def publish_many(self, items: Sequence[Publication]) -> list[PublishError | None]:
        self.batches.append([channel for channel, *_ in items])
        self.batch_seen.set()
        outcomes: list[PublishError | None] = []
        for channel, item, key, stream in items:
            if channel in self.fail_channels:
                outcomes.append(PublishError(channel, "Centrifugo error 102: unknown channel"))
                continue
            await self.publish(channel, item, idempotency_key=key, stream=stream)
            outcomes.append(None)
        return outcomes


class Stops:
    def __init__(self) -> None:
        self.by_channel: dict[str, Done] = {}
        self.seen = asyncio.Event()

    def for_(self, channel: str) -> Callable[[Done], None]:
        def stop(done: Done) -> None:
            self.by_channel[channel] = done
            self.seen.set()

        return stop


async def open_streams(
    outbox: Outbox, streams: LocalStreams, stops: Stops, *channels: str
) -> list[Outgoing]:
    opened = []
    for channel in channels:
        lease = await streams.claim(channel, stops.for_(channel))
        opened.append(outbox.open(channel, lease, channel[-3:], stops.for_(channel)))
    return opened


async def test_the_first_token_goes_out_at_once_and_the_rest_when_the_model_is_done() -> None:
    publisher, streams, stops = RecordingPublisher(), LocalStreams(), Stops()
    outbox = Outbox(publisher, streams, window=LONG)
    (a,) = await open_streams(outbox, streams, stops, A)

    outbox.add(a, "Hello ", "answer")
    await publisher.wait_for_first(A)  # not held for the (hour-long) window
    outbox.add(a, "wor", "answer")
    outbox.add(a, "ld", "answer")
    assert publisher.on(A) == [Chunk("Hello ", seq=1)]  # the window holds the others

    await outbox.finish(a)

    assert publisher.on(A) == [Chunk("Hello ", seq=1), Chunk("world", seq=2)]
    assert a.chunks == 2
    snapshot = await streams.snapshot(A)
    assert snapshot is not None
    assert (snapshot.text, snapshot.seq) == ("Hello world", 2)
    await outbox.close(a)


async def test_a_chunk_never_mixes_phases() -> None:
    publisher, streams, stops = RecordingPublisher(), LocalStreams(), Stops()
    outbox = Outbox(publisher, streams, window=LONG)
    (a,) = await open_streams(outbox, streams, stops, A)
    outbox.add(a, "Hmm", "thinking")
    await publisher.wait_for_first(A)

    for text, phase in [
        (", so", "thinking"),
        (".", "thinking"),
        ("Yes", "answer"),
        ("!", "answer"),
    ]:
        outbox.add(a, text, phase)  # type: ignore[arg-type]
    await outbox.finish(a)

    assert publisher.on(A) == [
        Chunk("Hmm", "thinking", 1),
        Chunk(", so.", "thinking", 2),
        Chunk("Yes!", "answer", 3),
    ]


async def test_thinking_and_answer_in_turn_make_one_chunk_of_each_a_window() -> None:
    """Regression (found by a model-server probe): a model whose every delta carried both
    thinking and answer text made one publication a token, ~11,600 in a minute, far past the
    channel's history."""
    publisher, streams, stops = RecordingPublisher(), LocalStreams(), Stops()
    outbox = Outbox(publisher, streams, window=LONG)
    (a,) = await open_streams(outbox, streams, stops, A)
    outbox.add(a, "r0 ", "thinking")
    await publisher.wait_for_first(A)

    for n in range(1, 4):
        outbox.add(a, f"r{n} ", "thinking")
        outbox.add(a, f"a{n} ", "answer")
    await outbox.finish(a)

    assert publisher.on(A) == [
        Chunk("r0 ", "thinking", 1),
        Chunk("r1 r2 r3 ", "thinking", 2),
        Chunk("a1 a2 a3 ", "answer", 3),
    ]
    snapshot = await streams.snapshot(A)
    assert snapshot is not None
    assert (snapshot.thinking, snapshot.text, snapshot.seq) == ("r0 r1 r2 r3 ", "a1 a2 a3 ", 3)


async def test_one_flush_publishes_every_due_stream_in_one_batch() -> None:
    publisher, streams, stops = BatchPublisher(), LocalStreams(), Stops()
    outbox = Outbox(publisher, streams, window=LONG)
    a, b = await open_streams(outbox, streams, stops, A, B)

    # Both first tokens are added before the flusher runs: one batch carries both.
    outbox.add(a, "a", "answer")
    outbox.add(b, "b", "answer")
    await publisher.wait_for_first(B)

    assert publisher.batches == [[A, B]]
    # Both finish together: one more batch for both.
    outbox.add(a, "a2", "answer")
    outbox.add(b, "b2", "answer")
    await asyncio.gather(outbox.finish(a), outbox.finish(b))
    assert publisher.batches == [[A, B], [A, B]]


async def test_window_zero_is_one_chunk_per_token() -> None:
    publisher, streams, stops = RecordingPublisher(), LocalStreams(), Stops()
    outbox = Outbox(publisher, streams, window=0)
    (a,) = await open_streams(outbox, streams, stops, A)

    for text in ["one ", "two ", "three", " \ud83d", "\ude00"]:
        outbox.add(a, text, "answer")
    await outbox.finish(a)

    assert publisher.on(A) == [
        Chunk("one ", seq=1),
        Chunk("two ", seq=2),
        Chunk("three", seq=3),
        Chunk(" 😀", seq=4),  # only a pair split across two tokens shares a chunk
    ]


@pytest.mark.parametrize("window", [0, LONG])
async def test_a_surrogate_pair_split_across_tokens_is_joined(window: float) -> None:
    publisher, streams, stops = RecordingPublisher(), LocalStreams(), Stops()
    outbox = Outbox(publisher, streams, window=window)
    (a,) = await open_streams(outbox, streams, stops, A)

    outbox.add(a, "smile \ud83d", "answer")  # the high half ends the first token
    await publisher.wait_for_first(A)
    outbox.add(a, "\ude00!", "answer")
    outbox.add(a, " \ud83d", "answer")  # a high half the model never completes
    await outbox.finish(a)

    texts = [item.text for item in publisher.on(A) if isinstance(item, Chunk)]
    assert "".join(texts) == "smile 😀! \ufffd"
    for text in texts:
        text.encode("utf-8")  # every chunk encodes on its own


async def test_the_window_widens_with_open_streams_and_narrows_as_they_end() -> None:
    publisher, streams, stops = RecordingPublisher(), LocalStreams(), Stops()
    outbox = Outbox(publisher, streams, window=0.03, max_rate=100.0)
    assert outbox.window() == 0.03

    opened = await open_streams(outbox, streams, stops, *(f"stream:{i:08d}#u_1" for i in range(10)))
    assert outbox.window() == pytest.approx(0.1)  # 10 streams at 100 publications a second
    more = await open_streams(outbox, streams, stops, *(f"stream:{i:08d}#u_2" for i in range(40)))
    assert outbox.window() == MAX_WINDOW  # never beyond

    for outgoing in opened + more:
        await outbox.close(outgoing)
    assert outbox.window() == 0.03
    assert Outbox(publisher, streams, window=0).window() == 0  # one chunk a token stays so


async def test_a_long_stream_publishes_less_often() -> None:
    publisher, streams, stops = RecordingPublisher(), LocalStreams(), Stops()
    outbox = Outbox(publisher, streams, window=LONG, widen_every=2)
    (a,) = await open_streams(outbox, streams, stops, A)
    loop = asyncio.get_running_loop()

    outbox.add(a, "1", "answer")
    await publisher.wait_for_first(A)
    assert a.due_at - loop.time() == pytest.approx(LONG, abs=1)  # 0 chunks before: 1 window
    a.due_at = -1  # as if the window had passed
    outbox.add(a, "2", "answer")
    await publisher.wait_for(A, 2)
    a.due_at = -1
    outbox.add(a, "3", "answer")
    await publisher.wait_for(A, 3)
    assert a.due_at - loop.time() == pytest.approx(2 * LONG, abs=1)  # 2 chunks before: doubled


async def test_a_refused_chunk_stops_neither_its_stream_nor_the_other(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A chunk Centrifugo does not take (refused, or an outage longer than the publisher waits)
    is in the registry, where a reader who sees the gap gets it: its stream goes on. It was
    stopped, and what the model gave meanwhile was lost, the snapshot's copy too (found by an
    outside-in probe: 99 of 731 characters left after a 40 s Centrifugo stall)."""
    publisher, streams, stops = BatchPublisher(frozenset({A})), LocalStreams(), Stops()
    outbox = Outbox(publisher, streams, window=LONG)
    a, b = await open_streams(outbox, streams, stops, A, B)

    outbox.add(a, "a", "answer")
    outbox.add(b, "b", "answer")
    await asyncio.wait_for(publisher.batch_seen.wait(), 5)
    outbox.add(a, "c", "answer")
    outbox.add(b, "d", "answer")
    await outbox.finish(a)
    await outbox.finish(b)

    assert stops.by_channel == {}
    assert a.failed is None
    assert publisher.on(B) == [Chunk("b", seq=1), Chunk("d", seq=2)]
    assert await streams.snapshot(A) == Snapshot("ac", "", 2, None)  # both refused, both kept
    assert a.undelivered == 2
    assert caplog.text.count("could not be published") == 1  # once a stream


class EndedElsewhere(LocalStreams):
    """A registry in which another process has ended stream A."""

    async def record(self, chunks: Sequence[Recording]) -> list[bool]:
        await super().record(chunks)
        return [channel != A for channel, _, _ in chunks]


async def test_a_stream_ended_elsewhere_is_stopped_and_its_chunk_not_published() -> None:
    publisher, streams, stops = RecordingPublisher(), EndedElsewhere(), Stops()
    outbox = Outbox(publisher, streams, window=LONG)
    a, b = await open_streams(outbox, streams, stops, A, B)

    outbox.add(a, "late", "answer")
    outbox.add(b, "fine", "answer")
    await publisher.wait_for_first(B)

    assert stops.by_channel == {A: ORPHANED}
    assert publisher.on(A) == []


async def test_closing_drops_what_is_pending_and_the_flusher_ends_with_the_last_stream() -> None:
    publisher, streams, stops = RecordingPublisher(), LocalStreams(), Stops()
    outbox = Outbox(publisher, streams, window=LONG)
    (a,) = await open_streams(outbox, streams, stops, A)
    outbox.add(a, "sent", "answer")
    await publisher.wait_for_first(A)
    outbox.add(a, "dropped", "answer")  # a cancelled stream: not published

    await outbox.close(a)

    flusher = outbox._flusher
    assert flusher is not None
    await asyncio.wait_for(flusher, 5)  # no task left behind
    assert publisher.on(A) == [Chunk("sent", seq=1)]


class BuggyPublisher(RecordingPublisher):
    """A publisher with a bug, once: it answers with fewer outcomes than publications."""

    def __init__(self) -> None:
        super().__init__()
        self.buggy = True

    async def publish_many(self, items: Sequence[Publication]) -> list[PublishError | None]:
        outcomes = await super().publish_many(items)
        if self.buggy:
            self.buggy = False
            return outcomes[:-1]
        return outcomes


async def test_a_bug_in_one_flush_ends_its_streams_and_the_flusher_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    publisher, streams, stops = BuggyPublisher(), LocalStreams(), Stops()
    outbox = Outbox(publisher, streams, window=LONG)
    (a,) = await open_streams(outbox, streams, stops, A)
    outbox.add(a, "lost", "answer")
    await asyncio.wait_for(stops.seen.wait(), 5)
    assert stops.by_channel == {A: Done("error", UNEXPECTED)}

    (b,) = await open_streams(outbox, streams, stops, B)
    outbox.add(b, "fine", "answer")
    await publisher.wait_for_first(B)
    assert publisher.on(B) == [Chunk("fine", seq=1)]
    assert "flushing 1 stream(s) failed unexpectedly" in caplog.text


async def test_a_stream_whose_chunk_was_refused_publishes_its_next_ones() -> None:
    """Each chunk is offered to Centrifugo: one that could not be published (its outage may be
    over) does not keep the next ones from readers."""
    publisher, streams, stops = BatchPublisher(frozenset({A})), LocalStreams(), Stops()
    outbox = Outbox(publisher, streams, window=0)
    (a,) = await open_streams(outbox, streams, stops, A)
    outbox.add(a, "refused", "answer")
    await asyncio.wait_for(publisher.batch_seen.wait(), 5)
    publisher.fail_channels = frozenset()  # Centrifugo takes them again

    outbox.add(a, "more", "answer")
    await outbox.finish(a)

    assert publisher.batches == [[A], [A]]
    assert publisher.on(A) == [Chunk("more", seq=2)]
    assert a.failed is None
