"""No answer lost, repeated or left hanging when Centrifugo restarts or stalls mid-answer, or
the backend is killed: 20 streams at once, each read by a subscriber that follows
docs/protocol.md (seq order, snapshot when the history cannot fill a gap)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from backend.llm.simulated import answer_for
from tests.clients import ChatSession, Follower
from tests.processes import Server, free_port
from tests.stack import ORIGIN, Stack, backend_server, centrifugo_server, stack_for

# ~20 ms a token: the answers run 2-4 s, long enough to be cut in the middle.
SPEED = {"SIM_TOKEN_DELAY_MIN_MS": "15", "SIM_TOKEN_DELAY_MAX_MS": "25", "COALESCE_WINDOW_MS": "30"}
PROMPTS = ["code", "explain", "streaming", "hello", "anything else"] * 4
ENDED_SECONDS = 60


@dataclass
class Faulty:
    stack: Stack
    centrifugo: Server
    backend: Server


@pytest.fixture
def faulty(tmp_path: Path) -> Iterator[Faulty]:
    """A Centrifugo and a backend of this test's own, to stop, pause and kill."""
    with _faulty(tmp_path) as servers:
        yield servers


@pytest.fixture
def impatient(tmp_path: Path) -> Iterator[Faulty]:
    """As `faulty`, with a publisher that gives a chunk up after 2 s of Centrifugo outage."""
    with _faulty(tmp_path, PUBLISH_OUTAGE_SECONDS="2", PUBLISH_TIMEOUT_SECONDS="1") as servers:
        yield servers


@contextmanager
def _faulty(tmp_path: Path, **settings: str) -> Iterator[Faulty]:
    nginx_ports = free_port(), free_port()
    stack = stack_for(free_port(), free_port(), nginx_ports, **SPEED, **settings)
    servers = Faulty(stack, centrifugo_server(stack, tmp_path), backend_server(stack))
    try:
        servers.centrifugo.start()
        servers.backend.start()
        yield servers
    finally:
        servers.backend.close()
        servers.centrifugo.close()


async def streaming(
    chat: ChatSession, idle_seconds: float = 5, *, replay_from_start: bool = False
) -> list[tuple[str, Follower]]:
    """The 20 answers, each followed from before its execute, all under way."""
    followers = []
    for prompt in PROMPTS:
        channel = chat.new_channel()
        follower = await chat.follow(channel, idle_seconds, replay_from_start=replay_from_start)
        assert (await chat.execute(channel, prompt)).status_code == 202
        followers.append((prompt, follower))
    for _, follower in followers:
        await asyncio.wait_for(follower.first.wait(), 10)
    return followers


async def assert_exact(followers: list[tuple[str, Follower]]) -> None:
    async with asyncio.timeout(ENDED_SECONDS):
        await asyncio.gather(*(follower.wait_until_ended() for _, follower in followers))
    for prompt, follower in followers:
        assert follower.abandoned == ""
        assert follower.text == answer_for(prompt)
        assert [done["reason"] for done in follower.dones] == ["complete"]
        assert follower.done_publications <= 1


@pytest.mark.parametrize("outage_seconds", [1, 4])
async def test_a_centrifugo_restart_mid_answer_loses_and_repeats_nothing(
    faulty: Faulty, outage_seconds: float
) -> None:
    """Readers recover from their last position, as centrifuge-js does: the new epoch fails the
    recovery and the snapshot fills the gap."""
    async with ChatSession.open(
        faulty.stack.backend_url, faulty.stack.websocket_url, ORIGIN
    ) as chat:
        followers = await streaming(chat)

        faulty.centrifugo.stop()  # SIGTERM: the memory engine's history and epoch are gone
        await asyncio.sleep(outage_seconds)  # the outage itself
        faulty.centrifugo.start()

        await assert_exact(followers)
        assert sum(follower.resumes for _, follower in followers) > 0  # the snapshot was needed
        # and each reader is subscribed again: refused its old position once at most (v6 tells
        # it so, error 112; v5 answers recovered: false), not again and again
        assert max(follower.states_asked for _, follower in followers) <= 2


async def test_readers_arriving_after_a_restart_lose_nothing(faulty: Faulty) -> None:
    """Readers that come after a restart mid-answer and read the channel from its start (a page
    reloaded meanwhile): the new history lacks the chunks from before the restart, which the
    first chunk's `seq` (or the `done`'s) reveals, and the snapshot fills."""
    async with ChatSession.open(
        faulty.stack.backend_url, faulty.stack.websocket_url, ORIGIN
    ) as chat:
        channels = []
        for prompt in PROMPTS:
            channel = chat.new_channel()
            assert (await chat.execute(channel, prompt)).status_code == 202
            channels.append((prompt, channel))
        sub, collector = await chat.subscribe(channels[-1][1])
        await asyncio.wait_for(collector.first.wait(), 10)  # all 20 under way
        await sub.unsubscribe()
        chat.client.remove_subscription(sub)

        faulty.centrifugo.stop()
        await asyncio.sleep(1)
        faulty.centrifugo.start()
        await chat.client.ready(10)

        late = [(prompt, await chat.follow(channel)) for prompt, channel in channels]
        await assert_exact(late)
        assert sum(follower.resumes for _, follower in late) > 0


@pytest.mark.parametrize("stall_seconds", [2, 20])
async def test_a_stalled_centrifugo_loses_and_repeats_nothing(
    faulty: Faulty, stall_seconds: float
) -> None:
    async with ChatSession.open(
        faulty.stack.backend_url, faulty.stack.websocket_url, ORIGIN
    ) as chat:
        followers = await streaming(chat, idle_seconds=60)

        faulty.centrifugo.signal(signal.SIGSTOP)
        await asyncio.sleep(stall_seconds)  # the stall itself
        faulty.centrifugo.signal(signal.SIGCONT)

        await assert_exact(followers)


async def test_a_stall_longer_than_the_publisher_waits_loses_nothing(impatient: Faulty) -> None:
    """The chunks Centrifugo could not take are in the registry: the streams go on, and the
    readers fill the gaps from the snapshot. Every stream ended in `error` and what its model
    gave during the stall was lost, the snapshot's copy too (found by an outside-in probe)."""
    async with ChatSession.open(
        impatient.stack.backend_url, impatient.stack.websocket_url, ORIGIN
    ) as chat:
        followers = await streaming(chat, idle_seconds=60)

        impatient.centrifugo.signal(signal.SIGSTOP)
        await asyncio.sleep(5)  # the stall itself: longer than PUBLISH_OUTAGE_SECONDS
        impatient.centrifugo.signal(signal.SIGCONT)

        await assert_exact(followers)
    # Gaps, if any, were filled from snapshots. Whether there are any depends on what the
    # stalled Centrifugo does with the requests the publisher gave up on: they wait in its
    # sockets and may still be taken when it resumes (a fresh-clone CI run: no gap at all).
    print(f"resumed from snapshots: {sum(follower.resumes for _, follower in followers)}")


async def test_a_killed_backend_is_noticed_by_every_reader_within_seconds(faulty: Faulty) -> None:
    async with ChatSession.open(
        faulty.stack.backend_url, faulty.stack.websocket_url, ORIGIN
    ) as chat:
        followers = await streaming(chat, idle_seconds=2)

        faulty.backend.signal(signal.SIGKILL)  # a crash, an OOM kill: no `done` for anyone

        async with asyncio.timeout(15):
            await asyncio.gather(*(follower.wait_until_ended() for _, follower in followers))
    for _, follower in followers:
        assert follower.dones == []
        assert "does not answer" in follower.abandoned
