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
from backend.core.types import Done

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
