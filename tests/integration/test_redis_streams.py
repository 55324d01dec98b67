"""The streams registry on a real Redis, as two backend processes share it: each test has two
`RedisStreams` on one redis-server, standing for two processes."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from backend.cluster.redis_streams import PARTIAL_ERROR, RedisStreams, connect
from backend.core.ports import (
    ChannelUsed,
    StreamBusy,
    StreamsRecovering,
    StreamsUnavailable,
    TooManyFromAddress,
    TooManyStreams,
)
from backend.core.types import Chunk, Done, Snapshot
from tests.cluster import RedisServer

CHANNEL = "stream:abcdefgh#u_1"
OTHER = "stream:ijklmnop#u_1"
GONE = Done("error", "the server answering this stopped")
PARTIAL = Done("error", PARTIAL_ERROR)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def _process(redis_server: RedisServer, lease_seconds: float) -> AsyncIterator[RedisStreams]:
    """One process's registry, with a client of its own (not started: `start` listens and
    renews); closed at the end."""
    client = connect(redis_server.url)
    registry = RedisStreams(client, lease_seconds=lease_seconds)
    try:
        yield registry
    finally:
        await registry.aclose()
        await client.aclose()


@contextlib.asynccontextmanager
async def _two_processes(
    redis_server: RedisServer, lease_seconds: float
) -> AsyncIterator[tuple[RedisStreams, RedisStreams]]:
    async with (
        _process(redis_server, lease_seconds) as first,
        _process(redis_server, lease_seconds) as second,
    ):
        await first.start()
        await second.start()
        yield first, second


@pytest.fixture
async def two(redis_server: RedisServer) -> AsyncIterator[tuple[RedisStreams, RedisStreams]]:
    """Two processes' registries; leases of 0.3 s so that expiry is quick to see. Yielded once
    a new Redis's recovery window (two leases) is over, as for a Redis up for a while."""
    async with _two_processes(redis_server, 0.3) as (first, second):
        assert await _snapshot_once_known(first, "stream:neverrun#u_0") is None
        yield first, second


def nothing(done: Done) -> None:
    pass


async def test_one_stream_per_channel_across_processes(
    two: tuple[RedisStreams, RedisStreams],
) -> None:
    first, second = two
    lease = await first.claim(CHANNEL, nothing, owner="u_1")
    with pytest.raises(StreamBusy):
        await second.claim(CHANNEL, nothing, owner="u_1")
    assert await first.release(CHANNEL, lease, Done("complete"))
    with pytest.raises(ChannelUsed):  # a channel carries one answer
        await second.claim(CHANNEL, nothing, owner="u_1")


async def test_claims_racing_from_two_processes_get_one_lease(
    two: tuple[RedisStreams, RedisStreams],
) -> None:
    results = await asyncio.gather(
        *(registry.claim(CHANNEL, nothing, owner="u_1") for registry in two * 5),
        return_exceptions=True,
    )
    assert sum(isinstance(result, str) for result in results) == 1
    assert sum(isinstance(result, StreamBusy) for result in results) == 9


async def test_the_per_user_cap_holds_across_processes(
    two: tuple[RedisStreams, RedisStreams],
) -> None:
    first, second = two
    await first.claim("stream:aaaaaaaa#u_1", nothing, owner="u_1", max_per_owner=2)
    lease = await second.claim("stream:bbbbbbbb#u_1", nothing, owner="u_1", max_per_owner=2)
    with pytest.raises(TooManyStreams):
        await first.claim("stream:cccccccc#u_1", nothing, owner="u_1", max_per_owner=2)
    await second.claim("stream:dddddddd#u_2", nothing, owner="u_2", max_per_owner=2)  # others
    await second.release("stream:bbbbbbbb#u_1", lease, Done("complete"))
    await first.claim("stream:cccccccc#u_1", nothing, owner="u_1", max_per_owner=2)


async def test_the_per_address_cap_holds_across_processes_and_every_end_frees_its_place(
    two: tuple[RedisStreams, RedisStreams], redis_server: RedisServer
) -> None:
    """Sessions are free: one address's answers are counted whatever their users, across the
    processes; a place comes back when its stream is released, and when a survivor reaps the
    stream of a process that died."""
    first, second = two

    async def from_office(registry: RedisStreams, channel: str) -> str:
        owner = channel.partition("#")[2]  # a user of its own each: sessions are free
        return await registry.claim(
            channel, nothing, owner=owner, address="203.0.113.7", max_per_address=2
        )

    await from_office(first, "stream:aaaaaaaa#u_1")
    lease = await from_office(second, "stream:bbbbbbbb#u_2")
    with pytest.raises(TooManyFromAddress) as refused:
        await from_office(first, "stream:cccccccc#u_3")
    assert refused.value.limit == 2
    assert await first.snapshot("stream:cccccccc#u_3") is None  # nothing claimed
    elsewhere = await first.claim(
        "stream:dddddddd#u_4", nothing, owner="u_4", address="198.51.100.9", max_per_address=2
    )

    await second.release("stream:bbbbbbbb#u_2", lease, Done("complete"))
    dead = await from_office(second, "stream:cccccccc#u_3")
    with pytest.raises(TooManyFromAddress):
        await from_office(first, "stream:eeeeeeee#u_5")

    await second.aclose()  # the second process dies with a stream from the office
    async with _raw(redis_server) as raw:
        await raw.zadd("relaychat:leases", {"stream:cccccccc#u_3": 0})  # its lease ran out
    assert await first.reap_expired(GONE) == [("stream:cccccccc#u_3", 0, dead, GONE)]
    await from_office(first, "stream:eeeeeeee#u_5")
    assert await first.release("stream:dddddddd#u_4", elsewhere, Done("complete"))
    async with _raw(redis_server) as raw:
        assert await raw.smembers("relaychat:addr:203.0.113.7") == {
            "stream:aaaaaaaa#u_1",
            "stream:eeeeeeee#u_5",
        }
        assert await raw.exists("relaychat:addr:198.51.100.9") == 0


async def test_after_redis_lost_its_data_the_renewals_count_each_address_again(
    two: tuple[RedisStreams, RedisStreams], redis_server: RedisServer
) -> None:
    first, second = two
    lease = await first.claim(CHANNEL, nothing, owner="u_1", address="::/64", max_per_address=1)
    await _lose_redis_data_and_wait_for_the_renewal(redis_server)

    with pytest.raises(TooManyFromAddress):
        await second.claim(OTHER, nothing, owner="u_2", address="::/64", max_per_address=1)
    assert await first.release(CHANNEL, lease, Done("complete"))
    await second.claim(OTHER, nothing, owner="u_2", address="::/64", max_per_address=1)


async def test_a_place_left_in_a_set_by_a_stream_that_is_gone_is_taken_back(
    two: tuple[RedisStreams, RedisStreams], redis_server: RedisServer
) -> None:
    """A process of an older version ends streams without taking them out of the address sets
    (it knows none), e.g. a survivor reaping during a rolling upgrade: once the set looks full,
    a claim drops the members whose run is gone, so the office does not lose that place for
    good. The same for an owner's set."""
    first, _ = two
    # Its channel running again since, for another address: not this address's either.
    await first.claim("stream:gone0002#u_8", nothing, owner="u_8", address="198.51.100.9")
    async with _raw(redis_server) as raw:
        await raw.sadd("relaychat:addr:203.0.113.7", "stream:gone0000#u_9")
        await raw.sadd("relaychat:addr:203.0.113.7", "stream:gone0002#u_8")
        await raw.sadd("relaychat:owner:u_1", "stream:gone0001#u_1")

    await first.claim(
        "stream:aaaaaaaa#u_1", nothing, owner="u_1", address="203.0.113.7", max_per_address=2
    )  # two stale: full, as the set counts
    await first.claim(
        "stream:bbbbbbbb#u_2", nothing, owner="u_2", address="203.0.113.7", max_per_address=2
    )
    with pytest.raises(TooManyFromAddress):  # two running now: the cap holds
        await first.claim(
            "stream:cccccccc#u_3", nothing, owner="u_3", address="203.0.113.7", max_per_address=2
        )
    await first.claim("stream:dddddddd#u_1", nothing, owner="u_1", max_per_owner=2)
    with pytest.raises(TooManyStreams):
        await first.claim("stream:eeeeeeee#u_1", nothing, owner="u_1", max_per_owner=2)
    async with _raw(redis_server) as raw:
        assert await raw.smembers("relaychat:addr:203.0.113.7") == {
            "stream:aaaaaaaa#u_1",
            "stream:bbbbbbbb#u_2",
        }
        assert await raw.smembers("relaychat:owner:u_1") == {
            "stream:aaaaaaaa#u_1",
            "stream:dddddddd#u_1",
        }


async def test_any_process_serves_the_snapshot(two: tuple[RedisStreams, RedisStreams]) -> None:
    first, second = two
    lease = await first.claim(CHANNEL, nothing, owner="u_1")
    await first.record([(CHANNEL, lease, Chunk("Let me see. ", "thinking", seq=1))])
    assert await first.record(
        [(CHANNEL, lease, Chunk("Hello ", seq=2)), (CHANNEL, lease, Chunk("wörld 😀", seq=3))]
    ) == [True, True]
    assert await second.snapshot(CHANNEL) == Snapshot("Hello wörld 😀", "Let me see. ", 3)
    await first.release(CHANNEL, lease, Done("timeout", "took too long"))
    assert await second.snapshot(CHANNEL) == Snapshot(
        "Hello wörld 😀", "Let me see. ", 3, Done("timeout", "took too long")
    )
    assert await second.snapshot("stream:unknown1#u_1") is None


async def test_a_stop_reaches_the_process_running_the_stream(
    two: tuple[RedisStreams, RedisStreams],
) -> None:
    first, second = two
    stopped: asyncio.Queue[Done] = asyncio.Queue()
    await first.claim(CHANNEL, stopped.put_nowait, owner="u_1")

    assert await second.stop(CHANNEL, Done("cancelled"))

    assert await asyncio.wait_for(stopped.get(), 2) == Done("cancelled")
    assert not await second.stop("stream:unknown1#u_1", Done("cancelled"))


async def test_a_stop_its_hung_process_never_acted_on_ends_the_reaped_stream_as_asked(
    two: tuple[RedisStreams, RedisStreams], redis_server: RedisServer
) -> None:
    """A user's Stop reached another process while the stream's own was hung (a probe paused
    one: the answer ended "error" once reaped, not "cancelled"): the reaper ends it as the stop
    asked, snapshot included; a stream nobody asked to stop is still ended as orphaned."""
    first, second = two
    hung = await first.claim(CHANNEL, nothing, owner="u_1")  # its stop listener never acts
    await first.record([(CHANNEL, hung, Chunk("Hel", seq=1))])
    quiet = await first.claim(OTHER, nothing, owner="u_1")
    cancelled = Done("cancelled")
    assert await second.stop(CHANNEL, cancelled)
    await first.aclose()  # then it is gone
    async with _raw(redis_server) as raw:
        await raw.zadd("relaychat:leases", {CHANNEL: 0, OTHER: 0})  # its leases ran out

    orphans = sorted(await second.reap_expired(GONE))

    assert orphans == sorted([(CHANNEL, 1, hung, cancelled), (OTHER, 0, quiet, GONE)])
    assert await second.snapshot(CHANNEL) == Snapshot("Hel", "", 1, cancelled)


async def test_a_stop_its_process_missed_on_pub_sub_is_told_by_its_next_renewal_once(
    two: tuple[RedisStreams, RedisStreams], redis_server: RedisServer
) -> None:
    """A stop is published to every process; one whose listener was reconnecting then missed
    it, and its answer ran on to the end (a review). The stop kept with the run is told by the
    owner's next renewal, once."""
    first, _ = two
    stopped: asyncio.Queue[Done] = asyncio.Queue()
    await first.claim(CHANNEL, stopped.put_nowait, owner="u_1")
    await _renewed(redis_server)  # claimed in Redis: renewed from now on
    async with _raw(redis_server) as raw:  # as `_STOP` keeps it, with no one listening
        await raw.hset(f"relaychat:run:{CHANNEL}", "stop", '{"reason": "cancelled", "error": null}')

    assert await asyncio.wait_for(stopped.get(), 2) == Done("cancelled")
    await _renewed(redis_server)
    await _renewed(redis_server)
    assert stopped.empty()  # told once


async def test_a_stop_while_redis_recovers_is_kept_with_the_run_too(
    two: tuple[RedisStreams, RedisStreams], redis_server: RedisServer
) -> None:
    """While Redis recovers from losing its data, a stop is also left for the owner's renewal;
    kept with the run too, a reaper ends the stream as asked if its process never acts on it."""
    first, second = two
    await first.claim(CHANNEL, nothing, owner="u_1")
    await _lose_redis_data_and_wait_for_the_renewal(redis_server)

    assert await second.stop(CHANNEL, Done("cancelled"))

    async with _raw(redis_server) as raw:
        kept = await raw.hget(f"relaychat:run:{CHANNEL}", "stop")
    assert kept is not None
    assert json.loads(kept)["reason"] == "cancelled"


async def _renewed(redis_server: RedisServer) -> None:
    """Until a renewal of CHANNEL's lease has run (its expiry moves on)."""
    async with _raw(redis_server) as raw, asyncio.timeout(2):
        before = await raw.zscore("relaychat:leases", CHANNEL)
        while await raw.zscore("relaychat:leases", CHANNEL) == before:  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def test_a_renewed_lease_lives_and_a_dead_process_s_streams_are_reaped(
    two: tuple[RedisStreams, RedisStreams],
) -> None:
    first, second = two
    alive = await first.claim("stream:aaaaaaaa#u_1", nothing, owner="u_1")
    await first.record([("stream:aaaaaaaa#u_1", alive, Chunk("a", seq=1))])
    dead = await second.claim("stream:bbbbbbbb#u_1", nothing, owner="u_1")
    await second.record([("stream:bbbbbbbb#u_1", dead, Chunk("b ", seq=1))])
    await second.record([("stream:bbbbbbbb#u_1", dead, Chunk("c", seq=2))])
    await second.aclose()  # the second process stops renewing: as if it were killed

    await asyncio.sleep(0.6)  # two leases' time: the first process renewed its own meanwhile

    # With its lease: the survivor publishes the dead owner's `done` under the owner's key.
    assert await first.reap_expired(GONE) == [("stream:bbbbbbbb#u_1", 2, dead, GONE)]
    assert await first.reap_expired(GONE) == []  # reaped once, by whoever came first
    assert await first.snapshot("stream:bbbbbbbb#u_1") == Snapshot("b c", "", 2, GONE)
    # The dead process's late release finds its lease gone: it must not publish a done.
    assert not await second.release("stream:bbbbbbbb#u_1", dead, Done("complete"))
    assert await first.release("stream:aaaaaaaa#u_1", alive, Done("complete"))


async def test_an_unreachable_redis_is_a_readable_error(
    redis_server: RedisServer,
) -> None:
    client = connect(redis_server.url)
    registry = RedisStreams(client)
    redis_server.stop()
    try:
        with pytest.raises(StreamsUnavailable):
            await registry.claim(CHANNEL, nothing, owner="u_1")
        with pytest.raises(StreamsUnavailable):
            await registry.snapshot(CHANNEL)
        with pytest.raises(StreamsUnavailable):
            await registry.stop(CHANNEL, Done("cancelled"))
    finally:
        await client.aclose()


async def test_a_stream_whose_lease_was_reaped_elsewhere_is_stopped_here(
    two: tuple[RedisStreams, RedisStreams], redis_server: RedisServer
) -> None:
    """After an outage longer than a lease, another process may have ended a stream that still
    runs here (and published its done): at its next renewal this process stops it."""
    first, second = two
    stopped: asyncio.Queue[Done] = asyncio.Queue()
    lease = await first.claim(CHANNEL, stopped.put_nowait, owner="u_1")
    async with _raw(redis_server) as raw:
        await raw.zadd("relaychat:leases", {CHANNEL: 0})  # its lease ran out, as in an outage
    assert await second.reap_expired(GONE) == [(CHANNEL, 0, lease, GONE)]

    assert (await asyncio.wait_for(stopped.get(), 2)).reason == "error"
    assert not await first.release(CHANNEL, lease, Done("cancelled"))  # no second done


async def _lose_redis_data_and_wait_for_the_renewal(redis_server: RedisServer) -> None:
    async with _raw(redis_server) as raw:
        await raw.flushall()  # as a restarted in-memory Redis
        async with asyncio.timeout(2):  # the next renewal (every 0.1 s) takes the stream again
            while await raw.zscore("relaychat:leases", CHANNEL) is None:  # noqa: ASYNC110
                await asyncio.sleep(0.05)


async def test_a_redis_that_lost_its_data_does_not_cost_a_running_stream_its_done(
    two: tuple[RedisStreams, RedisStreams], redis_server: RedisServer
) -> None:
    """Regression: after a Redis restart without its data, the renewal took the vanished lease
    for "ended elsewhere" and stopped the stream, whose release then published no done."""
    first, _ = two
    stopped: asyncio.Queue[Done] = asyncio.Queue()
    lease = await first.claim(CHANNEL, stopped.put_nowait, owner="u_1")
    await _lose_redis_data_and_wait_for_the_renewal(redis_server)
    assert await first.record([(CHANNEL, lease, Chunk("a", seq=1))]) == [True]  # still its
    assert stopped.empty()
    assert await first.release(CHANNEL, lease, Done("complete"))  # its done goes out


async def test_a_stream_taken_again_after_redis_lost_its_data_keeps_its_lease(
    two: tuple[RedisStreams, RedisStreams], redis_server: RedisServer
) -> None:
    """Regression (review): the renewal took back the lease's expiry only, not the stream; had
    its process died then, a survivor reaped it with no lease, and published its `done` under
    another key than the owner's (two `done`s if the owner was only cut off)."""
    first, second = two
    lease = await first.claim(CHANNEL, nothing, owner="u_1")
    await _lose_redis_data_and_wait_for_the_renewal(redis_server)
    await first.aclose()  # then the owner dies
    await asyncio.sleep(0.6)  # two leases' time

    assert await second.reap_expired(GONE) == [(CHANNEL, 0, lease, GONE)]


async def test_a_stream_taken_back_after_redis_lost_its_data_has_no_partial_snapshot(
    two: tuple[RedisStreams, RedisStreams], redis_server: RedisServer
) -> None:
    """Regression (cluster probe): taken back, the stream recorded its new chunks' text with
    their seq, and its snapshot said "chunks 1..seq" of text that began mid-answer; readers
    replaced their longer text with it. Now its snapshot stays empty at seq 0, and a survivor
    still ends it with the seq of its last chunk."""
    first, second = two
    lease = await first.claim(CHANNEL, nothing, owner="u_1")
    await first.record([(CHANNEL, lease, Chunk("a ", seq=1)), (CHANNEL, lease, Chunk("b ", seq=2))])
    await _lose_redis_data_and_wait_for_the_renewal(redis_server)
    await first.record([(CHANNEL, lease, Chunk("c", seq=3))])

    assert await second.snapshot(CHANNEL) == Snapshot("", "", 0)
    await first.aclose()  # the owner dies
    await asyncio.sleep(0.6)
    assert await second.reap_expired(GONE) == [(CHANNEL, 3, lease, GONE)]
    assert await second.snapshot(CHANNEL) == Snapshot("", "", 0, PARTIAL)


@pytest.mark.parametrize("renewed_first", [True, False], ids=["renewed", "not-yet-renewed"])
async def test_a_stream_released_after_redis_lost_its_data_is_not_reaped_later(
    two: tuple[RedisStreams, RedisStreams], redis_server: RedisServer, renewed_first: bool
) -> None:
    """Regression (review): released before a renewal took it again, the stream's lease was
    taken again afterwards all the same and reaped later: a second `done` after the owner's."""
    first, second = two
    lease = await first.claim(CHANNEL, nothing, owner="u_1")
    if renewed_first:
        await _lose_redis_data_and_wait_for_the_renewal(redis_server)
    else:
        await _flush(redis_server)

    assert await first.release(CHANNEL, lease, Done("complete"))  # its done goes out
    await asyncio.sleep(0.6)  # two leases' time, several renewals

    assert await second.reap_expired(GONE) == []
    # The channel counts as used; its snapshot cannot give the answer whole, and says so
    # (review of the cluster probe: it said "complete" with none of the text).
    assert await second.snapshot(CHANNEL) == Snapshot("", "", 0, PARTIAL)


async def test_an_owner_whose_stream_was_ended_elsewhere_learns_it_when_recording(
    two: tuple[RedisStreams, RedisStreams], redis_server: RedisServer
) -> None:
    first, second = two
    lease = await first.claim(CHANNEL, nothing, owner="u_1")
    async with _raw(redis_server) as raw:
        await raw.zadd("relaychat:leases", {CHANNEL: 0})
    await second.reap_expired(GONE)
    assert await first.record([(CHANNEL, lease, Chunk("late", seq=1))]) == [False]


async def test_stop_requests_reach_a_process_again_after_redis_comes_back(
    two: tuple[RedisStreams, RedisStreams], redis_server: RedisServer
) -> None:
    """Regression: the stop listener died with its connection, for good; cancels sent through
    another process were answered 202 and never reached the stream."""
    first, second = two
    await _restart(redis_server)  # same port, no data
    stopped: asyncio.Queue[Done] = asyncio.Queue()
    await first.claim(CHANNEL, stopped.put_nowait, owner="u_1")
    async with asyncio.timeout(5):  # both listen again within a second or so
        while stopped.empty():  # a stop request is a broadcast: sent again until heard
            with contextlib.suppress(StreamsUnavailable):
                await second.stop(CHANNEL, Done("cancelled"))
            await asyncio.sleep(0.2)  # the listener reconnects every 0.5 s
    assert stopped.get_nowait() == Done("cancelled")


async def test_a_claim_cancelled_on_its_way_leaves_nothing_behind_here(
    two: tuple[RedisStreams, RedisStreams], redis_server: RedisServer
) -> None:
    """Regression: a claim cancelled while Redis was being asked stayed in this process's
    table for good: the channel refused here, its lease renewed forever."""
    first, _ = two
    assert redis_server.process is not None
    redis_server.process.send_signal(signal.SIGSTOP)  # Redis hangs: the claim waits for it
    try:
        claiming = asyncio.create_task(first.claim(CHANNEL, nothing, owner="u_1"))
        await asyncio.sleep(0.2)  # the claim is on its way to Redis (its reply timeout: 2 s)
        claiming.cancel()
        with pytest.raises(asyncio.CancelledError):
            await claiming
    finally:
        redis_server.process.send_signal(signal.SIGCONT)

    assert CHANNEL not in first._local


async def _restart(redis_server: RedisServer) -> None:
    """Stopped and started again without its data, the event loop running meanwhile (as it
    does while a real Redis restarts: the closed connections are seen closed)."""
    await asyncio.to_thread(redis_server.stop)
    await asyncio.to_thread(redis_server.start)


async def test_the_first_calls_after_a_redis_restart_do_not_fail(
    two: tuple[RedisStreams, RedisStreams], redis_server: RedisServer
) -> None:
    """Regression (cluster probe): the first call on each pooled connection after a Redis
    restart failed with "Connection closed by server" (a 503), as redis-py's pool, with its
    maintenance notifications on (the default), did not check idle connections."""
    first, second = two
    lease = await first.claim(CHANNEL, nothing, owner="u_1")
    await first.release(CHANNEL, lease, Done("complete"))
    assert await second.snapshot(CHANNEL) is not None  # each has an idle connection now
    await _restart(redis_server)

    await first.claim(OTHER, nothing, owner="u_1")
    assert await second.snapshot(OTHER) == Snapshot("", "", 0)


@pytest.fixture
async def slow(redis_server: RedisServer) -> AsyncIterator[tuple[RedisStreams, RedisStreams]]:
    """Two processes' registries with leases of 3 s: a recovery window (two leases) long
    enough to look into deterministically; renewals every second."""
    async with _two_processes(redis_server, 3) as processes:
        yield processes


async def _snapshot_once_known(registry: RedisStreams, channel: str) -> Snapshot | None:
    async with asyncio.timeout(5):
        while True:
            try:
                return await registry.snapshot(channel)
            except StreamsRecovering:
                await asyncio.sleep(0.05)


async def test_right_after_redis_lost_its_data_a_stream_it_does_not_know_may_be_running(
    slow: tuple[RedisStreams, RedisStreams], redis_server: RedisServer
) -> None:
    """Regression (cluster probe): after a Redis restart without its data, a running stream's
    snapshot was "none" (404) until its owner's next renewal: the page, resuming then, ended
    the answer as "the server that was answering it stopped", and a Stop through another
    process was told nothing runs (404) while the answer went on. For a lease after the loss
    an unknown channel is now "recovering" (503), and a stop reaches the owner."""
    first, second = slow
    stopped: asyncio.Queue[Done] = asyncio.Queue()
    await first.claim(CHANNEL, stopped.put_nowait, owner="u_1")
    await _flush(redis_server)

    with pytest.raises(StreamsRecovering):
        await second.snapshot(OTHER)  # nobody can tell yet whether it runs
    assert await second.stop(CHANNEL, Done("cancelled"))
    async with asyncio.timeout(5):
        assert await stopped.get() == Done("cancelled")
    assert await _snapshot_once_known(second, CHANNEL) == Snapshot("", "", 0)  # renewed


async def test_a_stop_asked_while_redis_recovers_reaches_an_owner_not_listening_yet(
    two: tuple[RedisStreams, RedisStreams], redis_server: RedisServer
) -> None:
    """The owner's stop listener takes a moment to come back after a restart: the request is
    also left in Redis, where the owner's next renewal finds it. Here the owner only starts
    listening (and renewing) after the stop was published."""
    _, second = two
    stopped: asyncio.Queue[Done] = asyncio.Queue()
    async with _process(redis_server, 0.3) as owner:
        await owner.claim(CHANNEL, stopped.put_nowait, owner="u_1")
        await _flush(redis_server)
        assert await second.stop(CHANNEL, Done("cancelled"))  # nobody can tell yet: 202

        await owner.start()
        async with asyncio.timeout(5):  # its first renewal brings it
            assert await stopped.get() == Done("cancelled")


async def test_a_stop_left_in_redis_does_not_stop_a_later_stream_on_the_channel(
    two: tuple[RedisStreams, RedisStreams], redis_server: RedisServer
) -> None:
    """Regression (review): a stop left while Redis recovered was applied, at every renewal,
    to whatever stream held the channel, a stream claimed after it too."""
    _, second = two
    await _flush(redis_server)
    assert await second.stop(OTHER, Done("cancelled"))  # recovering: left in Redis
    stopped: asyncio.Queue[Done] = asyncio.Queue()
    async with _process(redis_server, 0.3) as owner:  # not listening when the stop was sent
        await owner.claim(OTHER, stopped.put_nowait, owner="u_1")
        await owner.start()
        await _snapshot_once_known(second, "stream:neverrun#u_0")  # the window (6 renewals)

    assert stopped.empty()


async def test_a_stream_that_ended_while_redis_recovers_is_not_stopped_again(
    two: tuple[RedisStreams, RedisStreams], redis_server: RedisServer
) -> None:
    """Regression (review): a cancel of a stream that had ended was answered 202 (and left in
    Redis) during the recovery window, not 404."""
    first, second = two
    lease = await first.claim(CHANNEL, nothing, owner="u_1")
    await _flush(redis_server)
    assert await first.release(CHANNEL, lease, Done("complete"))

    assert not await second.stop(CHANNEL, Done("cancelled"))


async def test_a_process_starting_right_after_redis_lost_its_data_does_not_hide_the_loss(
    two: tuple[RedisStreams, RedisStreams], redis_server: RedisServer
) -> None:
    """Regression (review): a process that started then took the missing `since` for a new
    Redis, so the others' running streams were "none" (404) until renewed."""
    await _flush(redis_server)
    async with _process(redis_server, 0.3) as third:
        await third.start()
        with pytest.raises(StreamsRecovering):
            await third.snapshot(OTHER)


async def test_a_redis_restarted_with_an_older_copy_of_its_data_is_recovering_too(
    two: tuple[RedisStreams, RedisStreams], redis_server: RedisServer
) -> None:
    """Regression (review): a Redis that reloaded a snapshot saved before a stream started
    (or a failover to a replica behind) has `since`, and it was not noticed: the stream was
    "none" (404) until renewed. Its run id differs."""
    first, second = two
    async with _raw(redis_server) as raw:
        await raw.save()  # dump.rdb, loaded at the next start
    await first.claim(CHANNEL, nothing, owner="u_1")
    await _restart(redis_server)

    with pytest.raises(StreamsRecovering):
        await second.snapshot(OTHER)


async def test_a_channel_redis_does_not_know_is_none_again_a_lease_after_the_loss(
    two: tuple[RedisStreams, RedisStreams], redis_server: RedisServer
) -> None:
    _, second = two  # leases of 0.3 s
    await _flush(redis_server)
    assert await _snapshot_once_known(second, OTHER) is None


@contextlib.asynccontextmanager
async def _raw(redis_server: RedisServer) -> AsyncIterator[Redis]:
    """A client of the test's own, straight to Redis."""
    raw = connect(redis_server.url)
    try:
        yield raw
    finally:
        await raw.aclose()


async def _flush(redis_server: RedisServer) -> None:
    """All of Redis's data gone, as after a restart of an in-memory Redis."""
    async with _raw(redis_server) as raw:
        await raw.flushall()


async def test_a_stream_restored_from_an_older_copy_of_the_data_has_no_snapshot_with_a_hole(
    two: tuple[RedisStreams, RedisStreams], redis_server: RedisServer
) -> None:
    """Regression (cluster probe): after Redis came back from a copy saved mid-answer, the
    stream's record lacked the chunks recorded after the copy but went on from there, and its
    snapshot gave text with a hole in it as chunks 1..seq; finished, as the complete answer."""
    first, second = two
    lease = await first.claim(CHANNEL, nothing, owner="u_1")
    await first.record([(CHANNEL, lease, Chunk("a ", seq=1))])
    async with _raw(redis_server) as raw:
        await raw.save()  # dump.rdb, loaded at the next start
    await first.record([(CHANNEL, lease, Chunk("b ", seq=2))])  # not in the copy
    await _restart(redis_server)
    await first.record([(CHANNEL, lease, Chunk("c", seq=3))])

    assert await second.snapshot(CHANNEL) == Snapshot("", "", 0)  # not "a c" as chunks 1..3
    assert await first.release(CHANNEL, lease, Done("complete"))
    assert await second.snapshot(CHANNEL) == Snapshot("", "", 0, PARTIAL)


async def test_a_stream_whose_data_came_back_whole_keeps_its_snapshot(
    two: tuple[RedisStreams, RedisStreams], redis_server: RedisServer
) -> None:
    """A restart that kept all of the data (a copy saved after the last chunk) costs nothing."""
    first, second = two
    lease = await first.claim(CHANNEL, nothing, owner="u_1")
    await first.record([(CHANNEL, lease, Chunk("a ", seq=1))])
    async with _raw(redis_server) as raw:
        await raw.save()
    await _restart(redis_server)
    await first.record([(CHANNEL, lease, Chunk("b", seq=2))])

    assert await second.snapshot(CHANNEL) == Snapshot("a b", "", 2)
    assert await first.release(CHANNEL, lease, Done("complete"))
    assert await second.snapshot(CHANNEL) == Snapshot("a b", "", 2, Done("complete"))


async def test_a_chunk_that_was_never_recorded_leaves_no_snapshot_with_a_hole(
    two: tuple[RedisStreams, RedisStreams],
) -> None:
    """Regression (found with the cluster probe's): a chunk published while Redis could not be
    reached is not recorded (the answer goes on); the next one recorded was appended after the
    hole, and the snapshot gave that text as chunks 1..seq."""
    first, second = two
    lease = await first.claim(CHANNEL, nothing, owner="u_1")
    await first.record([(CHANNEL, lease, Chunk("a ", seq=1))])
    await first.record([(CHANNEL, lease, Chunk("c", seq=3))])  # 2 never reached Redis

    assert await second.snapshot(CHANNEL) == Snapshot("", "", 0)
    assert await first.release(CHANNEL, lease, Done("complete"))
    assert await second.snapshot(CHANNEL) == Snapshot("", "", 0, PARTIAL)


async def _release_while_redis_is_down(
    redis_server: RedisServer, registry: RedisStreams, streams: list[tuple[str, str]], done: Done
) -> None:
    """The streams end while Redis is stopped (each release fails), and Redis comes back with
    its data, as with AOF."""
    async with _raw(redis_server) as raw:
        await raw.save()
    await asyncio.to_thread(redis_server.stop)
    for channel, lease in streams:
        with pytest.raises(StreamsUnavailable):
            await registry.release(channel, lease, done)
    await asyncio.to_thread(redis_server.start)


async def test_a_stream_that_ended_while_redis_was_unreachable_is_finished_when_it_is_back(
    two: tuple[RedisStreams, RedisStreams], redis_server: RedisServer
) -> None:
    """Regression: a release that could not reach Redis was forgotten (the relay still publishes
    the `done`); its lease then ran out and a survivor recorded the answer as ended by a dead
    process, so a reader asking the snapshot later was told it broke off."""
    first, second = two
    lease = await first.claim(CHANNEL, nothing, owner="u_1")
    await first.record([(CHANNEL, lease, Chunk("a ", seq=1))])
    await first.record([(CHANNEL, lease, Chunk("b", seq=2))])
    await _release_while_redis_is_down(redis_server, first, [(CHANNEL, lease)], Done("complete"))

    # The renewal runs every 0.1 s. A deadline, not `asyncio.timeout`: on Python 3.11 redis-py
    # can swallow the cancellation that a timeout is (see the cancelled-claim test above).
    deadline = time.monotonic() + 5
    while (snapshot := await _snapshot_once_known(second, CHANNEL)) is None or not snapshot.done:
        assert time.monotonic() < deadline, f"not finished: {snapshot}"
        await asyncio.sleep(0.05)
    assert snapshot == Snapshot("a b", "", 2, Done("complete"))
    await asyncio.sleep(0.6)  # two leases: nothing is left for a survivor to reap
    assert await second.reap_expired(GONE) == []


async def test_a_stream_whose_last_chunks_were_never_recorded_has_no_whole_looking_snapshot(
    two: tuple[RedisStreams, RedisStreams],
) -> None:
    """Found in review: chunks published while Redis could not be reached, at the end of an
    answer, leave no later chunk to reveal the hole; the release says how many went out."""
    first, second = two
    lease = await first.claim(CHANNEL, nothing, owner="u_1")
    await first.record([(CHANNEL, lease, Chunk("a ", seq=1))])
    await first.record([(CHANNEL, lease, Chunk("b ", seq=2))])  # 3 never reached Redis
    assert await first.release(CHANNEL, lease, Done("complete", seq=3))

    assert await second.snapshot(CHANNEL) == Snapshot("", "", 0, PARTIAL)


async def test_a_whole_record_keeps_its_ending(two: tuple[RedisStreams, RedisStreams]) -> None:
    first, second = two
    lease = await first.claim(CHANNEL, nothing, owner="u_1")
    await first.record([(CHANNEL, lease, Chunk("a ", seq=1))])
    await first.record([(CHANNEL, lease, Chunk("b", seq=2))])
    assert await first.release(CHANNEL, lease, Done("complete", seq=2))

    assert await second.snapshot(CHANNEL) == Snapshot("a b", "", 2, Done("complete"))


async def test_a_process_closing_records_the_streams_that_ended_while_redis_was_unreachable(
    slow: tuple[RedisStreams, RedisStreams], redis_server: RedisServer
) -> None:
    """Found in review: closing (a shutdown) dropped them, to be reaped as broken off."""
    first, second = slow  # renewals every second: the close comes first
    channels = [f"stream:{n:08d}#u_1" for n in range(150)]  # more than a renewal round takes
    leases = [await first.claim(channel, nothing) for channel in channels]
    pairs = list(zip(channels, leases, strict=True))
    await first.record([(channel, lease, Chunk("a", seq=1)) for channel, lease in pairs])
    await _release_while_redis_is_down(redis_server, first, pairs, Done("complete", seq=1))

    await first.aclose()

    for channel in channels:
        assert await second.snapshot(channel) == Snapshot("a", "", 1, Done("complete"))


async def test_a_record_that_timed_out_gives_its_connection_back(
    two: tuple[RedisStreams, RedisStreams],
    redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Regression: a record whose Redis did not answer in time kept its pipeline's connection
    until the garbage collector found it ("Unclosed Pipeline client" and a traceback in the
    log, a connection out of the pool meanwhile). And a Redis that does not answer is one line
    in the log each time, not a traceback."""
    first, _ = two
    lease = await first.claim(CHANNEL, nothing, owner="u_1")
    renewal_failed = asyncio.Event()
    handler = _When("could not renew", renewal_failed)
    logging.getLogger("backend.cluster.redis_streams").addHandler(handler)
    reported: list[dict[str, object]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: reported.append(context))
    assert redis_server.process is not None
    redis_server.process.send_signal(signal.SIGSTOP)  # Redis hangs: the reply times out (2 s)
    try:
        with pytest.raises(StreamsUnavailable):
            await first.record([(CHANNEL, lease, Chunk("Hello", "answer", 1))])
        async with asyncio.timeout(5):  # the renewal in flight times out too
            await renewal_failed.wait()
    finally:
        logging.getLogger("backend.cluster.redis_streams").removeHandler(handler)
        redis_server.process.send_signal(signal.SIGCONT)
        gc.collect()
        loop.set_exception_handler(None)
    assert [context["message"] for context in reported] == []
    renewals = _renewals_failed(caplog)
    assert renewals
    assert not any(r.exc_info for r in renewals)  # one line each, no traceback
    assert "Timeout reading" in renewals[0].getMessage()


def _renewals_failed(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith("could not renew")]


class _When(logging.Handler):
    """Sets `event` when a record's message starts with `start`."""

    def __init__(self, start: str, event: asyncio.Event) -> None:
        super().__init__()
        self.start, self.event = start, event

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith(self.start):
            self.event.set()


async def test_after_redis_itself_stalled_nothing_is_reaped_for_a_lease(
    redis_server: RedisServer,
) -> None:
    """Cluster probe: with Redis paused ~10 s, a reap sent just before the pause ran after it,
    when every lease had run out because nobody could renew: it ended every running stream of
    both backends. When no renewal reached Redis for half a lease, it was Redis that stalled,
    not an owner: nothing is reaped until a lease has passed, for the owners to renew."""
    async with (
        _process(redis_server, 0.3) as owner,
        _process(redis_server, 0.3) as reaper,
        _raw(redis_server) as raw,
    ):

        async def renewals_go_on() -> None:  # as the reaper's own renewal rounds do
            seconds, micros = await raw.time()
            await raw.set("relaychat:renewed", seconds * 1000 + micros // 1000)

        lease = await owner.claim(CHANNEL, nothing, owner="u_1")
        seconds, micros = await raw.time()
        stalled_since = seconds * 1000 + micros // 1000 - 10_000
        await raw.set("relaychat:renewed", stalled_since)  # the last renewal, before a stall
        await raw.zadd("relaychat:leases", {CHANNEL: 0})  # its lease ran out meanwhile

        assert await reaper.reap_expired(GONE) == []  # Redis stalled: the owner may be alive
        await renewals_go_on()
        assert await reaper.reap_expired(GONE) == []  # still the owners' lease to renew in

        # A lease later an owner that did not renew is gone after all: its stream is reaped.
        async with asyncio.timeout(3):
            while True:
                await renewals_go_on()
                if orphans := await reaper.reap_expired(GONE):
                    break
                await asyncio.sleep(0.05)
        assert orphans == [(CHANNEL, 0, lease, GONE)]
