"""The relay: every stream ends in exactly one `done`, whatever happens on the way."""

from __future__ import annotations

import asyncio
import gc
import logging
import weakref
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from typing import Any

import pytest

from backend.core.answer import Answerer
from backend.core.events import tell_each
from backend.core.ports import (
    ChannelUsed,
    ModelError,
    Orphan,
    Publication,
    PublishError,
    StopRequest,
    StreamBusy,
)
from backend.core.relay import ORPHANED, SHUTDOWN, UNEXPECTED, Relay, done_key
from backend.core.streams import LocalStreams
from backend.core.types import Chunk, Done, Question, Snapshot, StreamStats, Token
from tests.unit.fakes import RecordingPublisher, ScriptedModel

CHANNEL = "stream:abcdefgh#u_1"
LONG_WINDOW = 3600.0
HI = Question("hi")


def make_relay(
    model: ScriptedModel,
    publisher: RecordingPublisher,
    *,
    max_seconds: float = 10,
    max_chars: int = 1_000_000,
    window: float = 0,
    streams: LocalStreams | None = None,
) -> Relay:
    answerer = Answerer(model, window=window, max_seconds=max_seconds, max_chars=max_chars)
    return Relay(answerer, publisher, LocalStreams() if streams is None else streams, window=window)


def dones(items: list[Chunk | Done]) -> list[Done]:
    return [item for item in items if isinstance(item, Done)]


async def test_complete_stream_is_chunks_then_one_done() -> None:
    publisher = RecordingPublisher()
    relay = make_relay(ScriptedModel([Token("a "), Token("b", "thinking"), Token("c")]), publisher)

    await relay.start(CHANNEL, HI)

    assert await publisher.wait_for_done(CHANNEL) == [
        Chunk("a ", seq=1),
        Chunk("b", "thinking", seq=2),
        Chunk("c", seq=3),
        Done("complete", seq=3),  # the last chunk's seq: a reader with fewer missed some
    ]
    keys = publisher.keys
    assert len(set(keys)) == len(keys) == 4


async def test_second_start_on_a_running_channel_is_refused() -> None:
    relay = make_relay(ScriptedModel(endless=True, delay=0.01), RecordingPublisher())
    await relay.start(CHANNEL, HI)

    with pytest.raises(StreamBusy):
        await relay.start(CHANNEL, Question("again"))
    await relay.start("stream:otherchan#u_1", HI)  # another channel is fine

    assert relay.running == 2
    await relay.shutdown(1)


async def test_a_finished_stream_leaves_its_snapshot_and_its_channel_is_not_reused() -> None:
    """Regression: a reused channel id got a second answer, and its history then held two
    answers and two `done`s (a reader from offset 0 got the old one)."""
    publisher, streams = RecordingPublisher(), LocalStreams()
    relay = make_relay(
        ScriptedModel([Token("a "), Token("b", "thinking")]), publisher, streams=streams
    )
    await relay.start(CHANNEL, HI)
    await publisher.wait_for_done(CHANNEL)
    # Released in the same step as the `done` returns: before this test runs again.
    assert CHANNEL not in streams

    assert await streams.snapshot(CHANNEL) == Snapshot("a ", "b", 2, Done("complete"))
    with pytest.raises(ChannelUsed):
        await relay.start(CHANNEL, Question("again"))


class LeaseRecorder(LocalStreams):
    """The local registry, remembering the leases it gave and reaping what it is told to."""

    def __init__(self, orphans: Sequence[Orphan] = ()) -> None:
        super().__init__()
        self.leases: list[str] = []
        self.orphans = list(orphans)

    async def claim(self, channel: str, stop: StopRequest, **kwargs: Any) -> str:
        lease = await super().claim(channel, stop, **kwargs)
        self.leases.append(lease)
        return lease

    async def reap_expired(self, done: Done, *, limit: int = 1000) -> list[Orphan]:
        orphans, self.orphans = self.orphans, []
        return orphans


class ReleaseRecorder(LocalStreams):
    def __init__(self) -> None:
        super().__init__()
        self.released: list[Done] = []

    async def release(self, channel: str, lease: str, done: Done) -> bool:
        self.released.append(done)
        return await super().release(channel, lease, done)


class EndedByAnother(LeaseRecorder):
    """A shared registry in which another process ended the stream meanwhile (a reap Redis ran
    late), with `ended_with`: `release` says the stream was not this process's to end any
    more, and the snapshot says how the other process ended it."""

    def __init__(self, ended_with: Done = ORPHANED) -> None:
        super().__init__()
        self.ended_with = ended_with

    async def release(self, channel: str, lease: str, done: Done) -> bool:
        await super().release(channel, lease, replace(self.ended_with, seq=done.seq))
        return False


async def test_a_stream_another_process_ended_still_gets_its_done_under_its_one_key() -> None:
    """Cluster probe: with Redis paused ~10 s, a reap sent before the pause ran after it, ended
    every running stream of both backends, and its reply was never read: no process published
    their `done`, as each owner took it that the other had. The owner publishes it too, under
    the stream's one key (Centrifugo takes the first)."""
    publisher, streams = RecordingPublisher(), EndedByAnother()
    relay = make_relay(ScriptedModel([Token("a "), Token("b")]), publisher, streams=streams)
    await relay.start(CHANNEL, HI)
    published = await publisher.wait_for_done(CHANNEL)
    (lease,) = streams.leases
    assert published[-1] == Done(ORPHANED.reason, ORPHANED.error, seq=2)
    assert publisher.keys[-1] == done_key(CHANNEL, lease)
    assert len(dones(published)) == 1


async def test_the_registry_is_told_how_many_chunks_went_out() -> None:
    """So that a record missing the last ones (they went out while a shared registry could not
    be reached) is not kept as the whole answer (found in review)."""
    publisher, streams = RecordingPublisher(), ReleaseRecorder()
    relay = make_relay(ScriptedModel([Token("a "), Token("b")]), publisher, streams=streams)
    await relay.start(CHANNEL, HI)
    await publisher.wait_for_done(CHANNEL)  # released before the done is published
    assert streams.released == [Done("complete", seq=2)]
    assert await streams.snapshot(CHANNEL) == Snapshot("a b", "", 2, Done("complete"))


async def test_each_stream_s_done_has_a_key_of_its_own_even_on_a_channel_used_before() -> None:
    """Regression: every `done` of a channel had the key `done:<channel>`; Centrifugo keeps keys
    for minutes, longer than a channel is kept from reuse (2 minutes, and nothing across a
    restart without Redis), so a second answer there was accepted and its `done` was dropped as
    a duplicate: its subscribers waited forever."""
    publisher = RecordingPublisher()
    for _ in range(2):  # as after a restart: a registry that never saw the first stream
        streams = LeaseRecorder()
        relay = make_relay(ScriptedModel([Token("a")]), publisher, streams=streams)
        publisher.rearm(CHANNEL)
        await relay.start(CHANNEL, HI)
        await publisher.wait_for_done(CHANNEL)
        (lease,) = streams.leases
        assert publisher.keys[-1] == done_key(CHANNEL, lease)

    done_keys = [
        k
        for k, (_, item) in zip(publisher.keys, publisher.published, strict=True)
        if isinstance(item, Done)
    ]
    assert len(done_keys) == len(set(done_keys)) == 2


async def test_an_orphan_s_done_has_the_key_its_owner_would_have_used() -> None:
    """A survivor ending a dead process's stream uses the dead owner's `done` key, so that if
    the owner was only cut off and sends its own too, Centrifugo publishes one."""
    publisher = RecordingPublisher()
    streams = LeaseRecorder([Orphan(CHANNEL, 7, "lease-of-the-owner", ORPHANED)])
    relay = make_relay(ScriptedModel(), publisher, streams=streams)

    assert await relay.end_orphans() == 1

    assert publisher.published == [(CHANNEL, Done("error", ORPHANED.error, seq=7))]
    assert publisher.keys == [done_key(CHANNEL, "lease-of-the-owner")]


async def test_an_orphan_a_stop_was_asked_of_ends_as_the_stop_said() -> None:
    """The registry knows a Stop its hung process never acted on: the survivor's `done` says
    `cancelled`, with the owner's key, not that the process was lost."""
    publisher = RecordingPublisher()
    orphan = Orphan(CHANNEL, 3, "lease-of-the-owner", Done("cancelled"))
    relay = make_relay(ScriptedModel(), publisher, streams=LeaseRecorder([orphan]))

    assert await relay.end_orphans() == 1

    assert publisher.published == [(CHANNEL, Done("cancelled", seq=3))]
    assert publisher.keys == [done_key(CHANNEL, "lease-of-the-owner")]


async def test_the_snapshot_follows_a_running_stream() -> None:
    publisher, streams = RecordingPublisher(), LocalStreams()
    model = ScriptedModel([Token("x")], endless=True, delay=0.01)
    relay = make_relay(model, publisher, streams=streams)
    await relay.start(CHANNEL, HI)
    await publisher.wait_for_first(CHANNEL)

    snapshot = await streams.snapshot(CHANNEL)
    assert snapshot is not None
    assert snapshot.done is None
    assert snapshot.text == "x" * snapshot.seq
    await relay.stop(CHANNEL)
    published = await publisher.wait_for_done(CHANNEL)
    final = await streams.snapshot(CHANNEL)
    assert final == Snapshot("x" * (len(published) - 1), "", len(published) - 1, Done("cancelled"))


async def test_a_chunk_that_could_not_be_published_does_not_end_the_stream(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The chunk is in the registry (recorded before it is published), where a reader who sees
    the gap gets it; the answer goes on, and ends as the model ended it. It ended in `error`,
    and the rest of the answer was lost, the snapshot's copy too."""
    publisher, streams = RecordingPublisher(fail_on={2}), LocalStreams()
    model = ScriptedModel([Token("a ")] * 5)
    relay = make_relay(model, publisher, streams=streams)

    await relay.start(CHANNEL, HI)

    published = await publisher.wait_for_done(CHANNEL)
    assert published == [Chunk("a ", seq=n) for n in (1, 3, 4, 5)] + [Done("complete", seq=5)]
    assert await streams.snapshot(CHANNEL) == Snapshot("a " * 5, "", 5, Done("complete"))
    assert "a chunk could not be published" in caplog.text


async def test_model_failure_ends_with_done_error() -> None:
    publisher = RecordingPublisher()
    relay = make_relay(ScriptedModel([Token("x ")] * 3, fail_after=2), publisher)

    await relay.start(CHANNEL, HI)

    assert await publisher.wait_for_done(CHANNEL) == [
        Chunk("x ", seq=1),
        Chunk("x ", seq=2),
        Done("error", "the model failed while answering", seq=2),
    ]


async def test_max_duration_ends_with_done_timeout() -> None:
    publisher = RecordingPublisher()
    model = ScriptedModel(endless=True, delay=0.01)
    relay = make_relay(model, publisher, max_seconds=0.1)

    await relay.start(CHANNEL, HI)

    published = await publisher.wait_for_done(CHANNEL)
    done = published[-1]
    assert isinstance(done, Done)
    assert done.reason == "timeout"
    assert "0.1 s" in (done.error or "")
    assert model.closed.is_set()
    assert len(dones(published)) == 1


@pytest.mark.parametrize("window", [0, LONG_WINDOW])
async def test_an_answer_past_its_size_limit_is_cut_there_with_done_error(window: float) -> None:
    """An outside-in probe: nothing bounded one answer's size (a model server that sent 100 MiB
    took Centrifugo from 104 to 435 MB)."""
    publisher = RecordingPublisher()
    model = ScriptedModel([Token("abc"), Token("d", "thinking")], endless=True)
    relay = make_relay(model, publisher, max_chars=10, window=window)

    await relay.start(CHANNEL, HI)

    published = await publisher.wait_for_done(CHANNEL)
    chunks = [item for item in published if isinstance(item, Chunk)]
    assert "".join(chunk.text for chunk in chunks if chunk.phase == "answer") == "abcabcab"
    assert "".join(chunk.text for chunk in chunks if chunk.phase == "thinking") == "dd"
    assert dones(published) == [
        Done("error", "the answer was cut off at its size limit of 10 characters", seq=len(chunks))
    ]
    assert model.closed.is_set()


async def test_an_answer_of_exactly_its_size_limit_is_complete() -> None:
    publisher = RecordingPublisher()
    relay = make_relay(ScriptedModel([Token("ab"), Token("cd")]), publisher, max_chars=4)

    await relay.start(CHANNEL, HI)

    assert await publisher.wait_for_done(CHANNEL) == [
        Chunk("ab", seq=1),
        Chunk("cd", seq=2),
        Done("complete", seq=2),
    ]


async def test_shutdown_ends_running_streams_with_done_error() -> None:
    publisher = RecordingPublisher()
    relay = make_relay(ScriptedModel(endless=True, delay=0.01), publisher, window=0.02)
    channels = [f"stream:chan000{i}#u_1" for i in range(3)]
    for channel in channels:
        await relay.start(channel, HI)

    await relay.shutdown(2)

    assert relay.running == 0
    for channel in channels:
        assert publisher.on(channel)[-1] == SHUTDOWN


async def test_cancel_ends_with_done_cancelled() -> None:
    publisher = RecordingPublisher()
    model = ScriptedModel(endless=True, delay=0.01)
    relay = make_relay(model, publisher)
    await relay.start(CHANNEL, HI)
    await model.started.wait()

    assert await relay.stop(CHANNEL)

    assert (await publisher.wait_for_done(CHANNEL))[-1] == Done("cancelled")
    assert model.closed.is_set()


class CancellingSeen(RecordingPublisher):
    """Records whether the task publishing each `done` was still being cancelled (then its
    timeouts take their expiry for a cancel)."""

    def __init__(self) -> None:
        super().__init__()
        self.cancelling: list[int] = []

    async def publish(self, channel: str, item: Chunk | Done, **kwargs: Any) -> None:
        if isinstance(item, Done):
            task = asyncio.current_task()
            self.cancelling.append(task.cancelling() if task is not None else -1)
        await super().publish(channel, item, **kwargs)


async def test_a_stop_told_twice_is_one_stop() -> None:
    """A shared registry may tell a stop twice (pub/sub, then the owner's renewal, which tells
    the stops kept with runs): the task is cancelled once, and is not left cancelling."""
    publisher = CancellingSeen()
    model = ScriptedModel(endless=True, delay=0.01)
    relay = make_relay(model, publisher)
    await relay.start(CHANNEL, HI)
    await model.started.wait()

    assert await relay.stop(CHANNEL)
    assert await relay.stop(CHANNEL)

    assert (await publisher.wait_for_done(CHANNEL))[-1] == Done("cancelled")
    assert publisher.cancelling == [0]


async def test_the_owner_of_a_stream_ended_elsewhere_says_what_the_registry_says() -> None:
    """The owner publishes the `done` of a stream another process ended too (its own may never
    have gone out): as that process ended it, `cancelled` here, not orphaned (a review)."""
    publisher, streams = RecordingPublisher(), EndedByAnother(Done("cancelled"))
    relay = make_relay(ScriptedModel([Token("a "), Token("b")]), publisher, streams=streams)
    await relay.start(CHANNEL, HI)

    published = await publisher.wait_for_done(CHANNEL)

    assert published[-1] == Done("cancelled", seq=2)


async def test_stop_where_nothing_runs_is_false() -> None:
    relay = make_relay(ScriptedModel(), RecordingPublisher())

    assert not await relay.stop(CHANNEL)


async def test_zero_shutdown_grace_does_not_wait(caplog: pytest.LogCaptureFixture) -> None:
    """Regression: SHUTDOWN_GRACE_SECONDS=0 meant "wait without bound" (`timeout=0 or None`).
    Its warning says it did not wait, not that the `done` failed (a probe: it then arrived)."""
    stuck = asyncio.Event()

    class StuckPublisher(RecordingPublisher):
        async def publish(self, channel: str, item: Chunk | Done, **kwargs: object) -> None:
            if isinstance(item, Done):
                await stuck.wait()  # Centrifugo never answers the done
            await super().publish(channel, item)

    publisher = StuckPublisher()
    model = ScriptedModel(endless=True, delay=0.01)
    relay = make_relay(model, publisher)
    await relay.start(CHANNEL, HI)
    await model.started.wait()

    await asyncio.wait_for(relay.shutdown(0), 1)  # returns at once, not never
    assert "1 stream(s) had not published their done within the 0 s grace; not waiting" in (
        caplog.text
    )

    stuck.set()
    assert (await publisher.wait_for_done(CHANNEL))[-1] == SHUTDOWN


@pytest.mark.parametrize(
    "failure", [KeyError("surprise"), UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogate")]
)
async def test_an_unexpected_publish_failure_still_ends_with_exactly_one_done(
    failure: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: only a closed list of exceptions got their `done`; anything else left the
    subscriber waiting forever."""
    publisher = RecordingPublisher(fail_on={1}, failure=failure)
    model = ScriptedModel([Token("a ")] * 3)
    relay = make_relay(model, publisher)

    await relay.start(CHANNEL, HI)

    # The chunk is counted: the snapshot, recorded before publishing, holds it.
    assert await publisher.wait_for_done(CHANNEL) == [Done("error", UNEXPECTED, seq=1)]
    assert model.closed.is_set()
    assert "failed unexpectedly" in caplog.text


async def test_a_stream_stopped_before_its_task_ran_still_gets_its_done_and_frees_the_channel() -> (
    None
):
    """Regression: a task cancelled before its first step never runs its coroutine, so the
    stream got no `done` and its channel stayed claimed forever."""
    publisher, streams = RecordingPublisher(), LocalStreams()
    model = ScriptedModel(endless=True, delay=0.01)
    relay = make_relay(model, publisher, streams=streams)
    await relay.start(CHANNEL, HI)

    assert await relay.stop(CHANNEL)  # before the loop ran the stream's task at all

    assert await publisher.wait_for_done(CHANNEL) == [Done("cancelled")]
    assert CHANNEL not in streams
    assert model.questions == []  # the model was never asked


class StallingPublisher(RecordingPublisher):
    """Takes chunks (they count as published, as the real publisher's shielded sends do) but
    does not confirm them until `go` is set; `done`s go through at once."""

    def __init__(self) -> None:
        super().__init__()
        self.go = asyncio.Event()
        self.stalled = asyncio.Event()

    async def publish(
        self,
        channel: str,
        item: Chunk | Done,
        *,
        idempotency_key: str | None = None,
        stream: str = "",
    ) -> None:
        await super().publish(channel, item, idempotency_key=idempotency_key, stream=stream)
        if isinstance(item, Chunk):
            self.stalled.set()
            await self.go.wait()


async def test_a_chunk_stopped_mid_publication_is_counted_by_the_done() -> None:
    """Regression: a stream stopped while its chunk was being published (on its way regardless)
    ended with a `done` whose `seq` left that chunk out, one short of what readers received."""
    publisher = StallingPublisher()
    streams = LocalStreams()
    relay = make_relay(ScriptedModel([Token("a ")] * 5), publisher, streams=streams)
    await relay.start(CHANNEL, HI)
    await asyncio.wait_for(publisher.stalled.wait(), 5)

    assert await relay.stop(CHANNEL)

    assert await publisher.wait_for_done(CHANNEL) == [Chunk("a ", seq=1), Done("cancelled", seq=1)]
    # The snapshot a reader resumes from holds it too.
    assert await streams.snapshot(CHANNEL) == Snapshot("a ", "", 1, Done("cancelled"))


class LateRefusal(RecordingPublisher):
    """Takes chunks (`taken` is set), then refuses them once `go` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.taken, self.go = asyncio.Event(), asyncio.Event()

    async def publish_many(self, items: Sequence[Publication]) -> list[PublishError | None]:
        if any(isinstance(item, Chunk) for _, item, *_ in items):
            self.taken.set()
            await self.go.wait()
            return [PublishError(channel, "Centrifugo error 102") for channel, *_ in items]
        return await super().publish_many(items)


class OneTokenThenWait:
    """A model that gives one token, then ends when told to."""

    def __init__(self) -> None:
        self.end, self.closed = asyncio.Event(), asyncio.Event()

    async def stream(self, question: Question) -> AsyncIterator[Token]:
        try:
            yield Token("only ")
            await self.end.wait()
        finally:
            self.closed.set()


async def test_a_last_chunk_refused_after_the_model_finished_is_counted_by_its_done() -> None:
    """With its last chunk on its way when the model finished, the `done` waits for Centrifugo's
    answer about it, comes after it and counts it; refused, the chunk is in the snapshot."""
    publisher, model = LateRefusal(), OneTokenThenWait()
    streams = LocalStreams()
    relay = Relay(Answerer(model, window=0, max_seconds=10), publisher, streams, window=0)
    await relay.start(CHANNEL, HI)
    await asyncio.wait_for(publisher.taken.wait(), 5)  # chunk 1 on its way
    model.end.set()  # the model is done; nothing else pending
    await asyncio.sleep(0.05)
    assert publisher.published == []  # the done waits for the chunk's answer

    publisher.go.set()

    assert await publisher.wait_for_done(CHANNEL) == [Done("complete", seq=1)]
    assert await streams.snapshot(CHANNEL) == Snapshot("only ", "", 1, Done("complete"))


async def test_a_finished_stream_is_freed_without_the_cyclic_collector() -> None:
    """Regression: the stream and its outbox place referred to each other, so every finished
    stream (prompt and history included) waited for the rarely run cyclic collector."""
    publisher = RecordingPublisher()
    relay = make_relay(ScriptedModel([Token("a "), Token("b")]), publisher, window=LONG_WINDOW)
    await relay.start(CHANNEL, HI)
    task = relay._local[CHANNEL].task
    assert task is not None
    stream = weakref.ref(relay._local[CHANNEL])
    gc.disable()
    try:
        await asyncio.wait_for(task, 5)
        assert stream() is None
    finally:
        gc.enable()


class FailingEvents:
    """Logs or metrics that raise at every event (a broken exporter, say)."""

    def stream_started(self, channel: str) -> None:
        raise RuntimeError("exporter down")

    def stream_ended(self, channel: str, done: Done, stats: StreamStats) -> None:
        raise RuntimeError("exporter down")

    def model_failed(self, kind: str, message: str) -> None:
        raise RuntimeError("exporter down")


def test_a_hook_that_keeps_failing_is_logged_now_and_then(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Review: a hook that keeps failing logged a traceback for every event of every stream.
    Its first failure comes with the traceback, then one line at the 10th, 100th, ..."""
    hook, other = FailingEvents(), FailingEvents()
    with caplog.at_level(logging.ERROR, logger="backend.core.events"):
        for _ in range(120):
            tell_each((hook,), lambda events: events.stream_started(CHANNEL))
        tell_each((other,), lambda events: events.stream_started(CHANNEL))
    lines = [(r.getMessage(), r.exc_info is not None) for r in caplog.records]
    assert lines == [
        ("FailingEvents failed to take a stream event", True),
        (
            "FailingEvents failed to take a stream event 10 times now (the first failure's "
            "traceback was logged)",
            False,
        ),
        (
            "FailingEvents failed to take a stream event 100 times now (the first failure's "
            "traceback was logged)",
            False,
        ),
        # Counted for each hook on its own.
        ("FailingEvents failed to take a stream event", True),
    ]


class ToldEvents:
    def __init__(self) -> None:
        self.told: list[str] = []

    def stream_started(self, channel: str) -> None:
        self.told.append("started")

    def stream_ended(self, channel: str, done: Done, stats: StreamStats) -> None:
        self.told.append(f"ended {done.reason}")

    def model_failed(self, kind: str, message: str) -> None:
        self.told.append(f"model failed {kind}")


@pytest.mark.parametrize(
    ("model", "ending"),
    [
        (ScriptedModel([Token("a")]), Done("complete", seq=1)),
        (
            ScriptedModel(
                [Token("a"), Token("b")], fail_after=1, failure=ModelError("busy", kind="status")
            ),
            Done("error", "busy", seq=1),
        ),
    ],
)
async def test_an_event_hook_that_raises_spoils_no_stream(
    model: ScriptedModel, ending: Done, caplog: pytest.LogCaptureFixture
) -> None:
    """Review: a hook raising at `stream_started` (after the claim) left the owner's place taken
    and nothing running; at `model_failed`, the model's own error became `unexpected`; at
    `stream_ended`, the hooks after it were never told. Each is told now, and the stream runs
    and ends as it would without them."""
    publisher = RecordingPublisher()
    told = ToldEvents()
    events = (FailingEvents(), told)
    answerer = Answerer(model, window=0, max_seconds=10, events=events)
    streams = LocalStreams()
    relay = Relay(answerer, publisher, streams, window=0, max_per_owner=1, events=events)

    await relay.start(CHANNEL, HI, owner="u_1")

    assert (await publisher.wait_for_done(CHANNEL))[-1] == ending
    await relay.shutdown(grace_seconds=5)  # until the stream's task has told its end
    expected = ["started", f"ended {ending.reason}"]
    if ending.reason == "error":
        expected.insert(1, "model failed status")
    assert told.told == expected
    assert "FailingEvents failed to take a stream event" in caplog.text
    # The owner's one place is free again (else TooManyStreams), and the next answer as whole.
    await relay.start("stream:ijklmnop#u_1", HI, owner="u_1")
    assert dones(await publisher.wait_for_done("stream:ijklmnop#u_1")) == [ending]
