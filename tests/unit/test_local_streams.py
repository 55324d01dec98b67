"""The in-memory registry's memory of used channels: it starts empty at every start, so for
its first minutes it asks Centrifugo's history about channels it does not know."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import respx

from backend.app import _in_history
from backend.centrifugo.publisher import CentrifugoPublisher
from backend.core.ports import ChannelUsed, StreamBusy
from backend.core.streams import LocalStreams
from backend.core.types import Chunk, Done

CHANNEL = "stream:abcdefgh#u_1"


def nothing(done: Done) -> None:
    pass


class History:
    """Centrifugo's history as the registry sees it: which channels carried an answer."""

    def __init__(self, *used: str) -> None:
        self.used = set(used)
        self.asked: list[str] = []
        self.gate: asyncio.Event | None = None

    async def __call__(self, channel: str) -> bool:
        self.asked.append(channel)
        if self.gate is not None:
            await self.gate.wait()
        return channel in self.used


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_channel_used_before_the_start_is_refused_while_the_memory_is_young() -> None:
    """Regression: restarted within 2 minutes of an answer, the backend took its channel again
    (202), and the channel's history then held two answers."""
    history = History(CHANNEL)
    streams = LocalStreams(used_before=history, check_for=120, clock=Clock())

    with pytest.raises(ChannelUsed):
        await streams.claim(CHANNEL, nothing)
    assert await streams.claim("stream:newchan1#u_1", nothing)  # a new channel is fine
    assert history.asked == [CHANNEL, "stream:newchan1#u_1"]


async def test_once_the_memory_reaches_back_far_enough_history_is_not_asked() -> None:
    history, clock = History(CHANNEL), Clock()
    streams = LocalStreams(used_before=history, check_for=120, clock=clock)
    clock.now += 120

    assert await streams.claim(CHANNEL, nothing)  # its history is gone by now anyway
    assert history.asked == []


async def test_what_the_registry_knows_itself_is_not_asked() -> None:
    history = History()
    streams = LocalStreams(used_before=history, clock=Clock())
    lease = await streams.claim(CHANNEL, nothing)
    with pytest.raises(StreamBusy):
        await streams.claim(CHANNEL, nothing)
    await streams.release(CHANNEL, lease, Done("complete"))
    with pytest.raises(ChannelUsed):
        await streams.claim(CHANNEL, nothing)

    assert history.asked == [CHANNEL]  # the first claim only


async def test_two_claims_racing_while_history_is_asked_give_one_stream() -> None:
    history = History()
    history.gate = asyncio.Event()
    streams = LocalStreams(used_before=history, clock=Clock())
    first = asyncio.create_task(streams.claim(CHANNEL, nothing))
    second = asyncio.create_task(streams.claim(CHANNEL, nothing))
    await asyncio.sleep(0)
    history.gate.set()

    results = await asyncio.gather(first, second, return_exceptions=True)

    assert sum(isinstance(r, str) for r in results) == 1
    assert sum(isinstance(r, StreamBusy) for r in results) == 1
    assert len(streams) == 1


@respx.mock
async def test_history_that_cannot_be_read_does_not_refuse_the_prompt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The check is at best: Centrifugo failing it is logged, and the channel taken as new (the
    execute's readiness check has just found Centrifugo up)."""
    respx.post("http://centrifugo.test/api/history").respond(503)
    async with httpx.AsyncClient(timeout=1) as client:
        publisher = CentrifugoPublisher(client, "http://centrifugo.test/api", "key")
        streams = LocalStreams(used_before=_in_history(publisher), clock=Clock())

        assert await streams.claim(CHANNEL, nothing)
        await publisher.aclose()
    assert "could not look up" in caplog.text


async def test_a_history_lookup_that_hangs_is_given_up_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Probe: a hung Centrifugo held an execute for the publish timeout (5 s) before its 202, in
    a new process's first minutes. The lookup has a bound of its own (1 s; here shorter)."""
    answered = asyncio.Event()

    class Hung(CentrifugoPublisher):
        async def has_history(self, channel: str) -> bool:
            await answered.wait()  # never, in this test
            return True

    async with httpx.AsyncClient() as client:
        publisher = Hung(client, "http://centrifugo.test/api", "key")
        streams = LocalStreams(used_before=_in_history(publisher, within=0.01), clock=Clock())
        assert await asyncio.wait_for(streams.claim(CHANNEL, nothing), 5)
    assert "could not look up" in caplog.text
    assert "within 0.01 s" in caplog.text


async def _finish(streams: LocalStreams, channel: str, text: str = "") -> None:
    lease = await streams.claim(channel, nothing)
    await streams.record([(channel, lease, Chunk(text, seq=1))])
    await streams.release(channel, lease, Done("complete", ""))


async def test_a_finished_answer_is_kept_its_two_minutes_however_many_others_finish() -> None:
    """An outside-in probe: the memory held 10,000 finished answers, whatever their size: at
    400 answers a second a snapshot was gone (404) and its channel free again (202) within 25 s,
    not 2 minutes."""
    streams = LocalStreams()
    await _finish(streams, CHANNEL, "the first answer")
    for number in range(12_000):
        await _finish(streams, f"stream:other{number:06d}#u_2", "an answer of its own")

    snapshot = await streams.snapshot(CHANNEL)
    assert snapshot is not None
    assert snapshot.text == "the first answer"
    with pytest.raises(ChannelUsed):
        await streams.claim(CHANNEL, nothing)


async def test_past_its_memory_the_oldest_go_and_their_channels_are_asked_about() -> None:
    """Bounded by bytes: the oldest snapshot is dropped, and the history is asked again about
    channels the registry does not know, so a dropped channel is still refused (409)."""
    clock, history = Clock(), History(CHANNEL)
    streams = LocalStreams(finished_max_bytes=3_000, used_before=history, check_for=0, clock=clock)
    clock.now += 1  # its memory reaches back far enough: the history is not asked
    await _finish(streams, CHANNEL, "x" * 1_000)
    await streams.claim("stream:newchan1#u_1", nothing)
    assert history.asked == []

    await _finish(streams, "stream:second01#u_1", "y" * 1_000)  # over 3,000 with the first
    assert await streams.snapshot(CHANNEL) is None
    assert (await streams.snapshot("stream:second01#u_1")) is not None
    with pytest.raises(ChannelUsed):
        await streams.claim(CHANNEL, nothing)
    assert history.asked == [CHANNEL]
    clock.now += 121  # the dropped one would have expired by now: no more asking
    await streams.claim("stream:newchan2#u_1", nothing)
    assert history.asked == [CHANNEL]


async def test_an_answer_over_the_whole_memory_is_not_kept_and_its_channel_asked_about() -> None:
    clock, history = Clock(), History(CHANNEL)
    streams = LocalStreams(finished_max_bytes=1_000, used_before=history, check_for=0, clock=clock)
    clock.now += 1
    await _finish(streams, CHANNEL, "z" * 5_000)
    assert await streams.snapshot(CHANNEL) is None
    with pytest.raises(ChannelUsed):
        await streams.claim(CHANNEL, nothing)
