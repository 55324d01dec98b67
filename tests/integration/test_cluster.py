"""Beyond one process (REDIS_URL set): two Centrifugo nodes on Redis's engine and two backends
sharing their streams registry on Redis (tests/cluster.py), real processes on free ports."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
import redis.asyncio

from backend.core.relay import ORPHANED
from backend.llm.simulated import answer_for
from tests.clients import ChatSession, answer_of
from tests.cluster import Cluster, running_cluster
from tests.stack import ORIGIN, nginx_in_front

# ~20 ms a token: an answer runs 2-4 s, long enough to act on while it streams.
SLOW = {"SIM_TOKEN_DELAY_MIN_MS": "15", "SIM_TOKEN_DELAY_MAX_MS": "25", "COALESCE_WINDOW_MS": "30"}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with running_cluster(tmp_path, **SLOW) as servers:
        yield servers


@pytest.fixture
async def chat(cluster: Cluster) -> AsyncIterator[ChatSession]:
    """A user of backend 1, connected to node 1."""
    first = cluster.stacks[0]
    async with ChatSession.open(first.backend_url, first.websocket_url, ORIGIN) as session:
        yield session


@pytest.fixture
async def same_user_on_backend_2(
    cluster: Cluster, chat: ChatSession
) -> AsyncIterator[httpx.AsyncClient]:
    """The same browser session (cookie) talking to backend 2."""
    url = cluster.stacks[1].backend_url
    async with httpx.AsyncClient(base_url=url, cookies=chat.http.cookies, timeout=10) as http:
        yield http


async def test_a_subscriber_on_node_2_gets_an_answer_published_through_node_1(
    cluster: Cluster,
) -> None:
    first, second = cluster.stacks
    async with ChatSession.open(first.backend_url, second.websocket_url, ORIGIN) as chat:
        publications = await chat.ask("code")
    assert answer_of(publications) == answer_for("code")
    assert [p["done"] for p in publications].count(True) == 1


async def test_one_channel_runs_one_stream_across_backends(
    chat: ChatSession, same_user_on_backend_2: httpx.AsyncClient
) -> None:
    channel = chat.new_channel()
    body = {"text": "code", "channel": channel}
    replies = await asyncio.gather(
        chat.http.post("/api/execute", json=body),
        same_user_on_backend_2.post("/api/execute", json=body),
    )
    assert sorted(reply.status_code for reply in replies) == [202, 409]
    publications = await chat.wait_for_done(channel)
    assert answer_of(publications) == answer_for("code")  # one answer, not two interleaved


async def test_cancel_through_the_other_backend_stops_the_stream(
    chat: ChatSession, same_user_on_backend_2: httpx.AsyncClient
) -> None:
    channel = chat.new_channel()
    _, collector = await chat.subscribe(channel)
    assert (await chat.execute(channel, "code")).status_code == 202  # runs on backend 1
    await asyncio.wait_for(collector.first.wait(), 10)

    asked = time.monotonic()
    response = await same_user_on_backend_2.post("/api/cancel", json={"channel": channel})
    publications = await collector.wait_for_done()
    done_after = time.monotonic() - asked

    assert response.status_code == 202
    assert publications[-1]["reason"] == "cancelled"
    assert answer_of(publications) != answer_for("code")  # it really stopped early
    snapshot = await chat.wait_until_released(channel)
    assert snapshot["done"]["reason"] == "cancelled"
    print(f"cancel across backends: done at the subscriber {done_after * 1000:.1f} ms after")


async def test_an_answer_s_channel_meta_is_not_kept_for_days(
    cluster: Cluster, chat: ChatSession
) -> None:
    """Soak probe: Centrifugo kept each answer's channel meta (epoch, offset) in Redis for its
    default 30 days, one key per answer ever given. Now minutes (centrifugo/config.json)."""
    channel = chat.new_channel()
    _, collector = await chat.subscribe(channel)
    assert (await chat.execute(channel, "hello")).status_code == 202
    await collector.wait_for_done()
    async with redis.asyncio.Redis.from_url(cluster.redis_url) as client:
        metas = [key async for key in client.scan_iter(match=f"*meta*{channel}")]
        assert metas, "no history meta in Redis: the key's name changed?"
        for key in metas:
            assert 0 < await client.ttl(key) <= 300


async def test_a_killed_backend_s_streams_are_ended_by_the_survivor(
    cluster: Cluster, chat: ChatSession
) -> None:
    channels = [chat.new_channel() for _ in range(5)]
    collectors = []
    for channel in channels:
        _, collector = await chat.subscribe(channel)
        assert (await chat.execute(channel, "explain")).status_code == 202
        collectors.append(collector)
    await asyncio.gather(*(asyncio.wait_for(c.first.wait(), 10) for c in collectors))

    killed = time.monotonic()
    cluster.backends[0].signal(signal.SIGKILL)  # backend 1 owned them all

    endings = [await collector.wait_for_done() for collector in collectors]
    print(f"orphans ended by the survivor {time.monotonic() - killed:.1f} s after the kill")
    # Backend 2 serves what was answered before the kill, and knows the ending.
    second = cluster.stacks[1].backend_url
    async with httpx.AsyncClient(base_url=second, cookies=chat.http.cookies) as http:
        for channel, publications in zip(channels, endings, strict=True):
            done = publications[-1]
            assert done["reason"] == "error"
            assert done["error"] == ORPHANED.error
            stream_id = channel.partition(":")[2].partition("#")[0]
            snapshot = (await http.get(f"/api/streams/{stream_id}")).json()
            assert snapshot["done"] == {"reason": "error", "error": ORPHANED.error}
            # The `done` counts the chunks the registry recorded. A flush records its chunks
            # before it publishes them, so the kill may fall between the two: the reader then
            # lacks that flush's chunks (one per phase), and the snapshot has them.
            chunks = len(publications) - 1
            assert snapshot["seq"] == done["seq"]
            assert chunks <= done["seq"] <= chunks + 2
            assert snapshot["text"].startswith(answer_of(publications))
            assert answer_for("explain").startswith(snapshot["text"])


async def test_a_paused_backend_holds_requests_through_nginx_seconds_not_minutes(
    cluster: Cluster, tmp_path: Path
) -> None:
    """A backend that stops answering but keeps its port (hung; here SIGSTOP) held every other
    request through nginx for its 300 s read timeout. Now nginx gives up on it after 8 s: a GET
    goes to the other backend, an execute is answered 504 (not sent again: the paused backend
    could read it later and start a second answer), and the snapshot the page then asks for
    says that nothing runs there (404: "not sent")."""
    first = cluster.stacks[0]
    paused = f"127.0.0.1:{first.backend_url.rpartition(':')[2]}"
    backends = ",".join(stack.backend_url.removeprefix("http://") for stack in cluster.stacks)
    out = tmp_path / "nginx"
    with nginx_in_front(first, backends, first.nginx_ports[0], out) as edge:
        async with ChatSession.open(edge.url, edge.websocket_url, ORIGIN) as chat:
            channels = [chat.new_channel() for _ in range(4)]
            subscribed = [await chat.subscribe(channel) for channel in channels]
            # Live before the pause: node 1 asks backend 1 about each subscribe (the subscribe
            # proxy), and a paused backend 1 holds new subscribes there until it answers again.
            for sub, _ in subscribed:
                await sub.ready(10)
            cluster.backends[0].signal(signal.SIGSTOP)
            # The test's own limit, far below the 300 s that nginx waited before.
            async with httpx.AsyncClient(
                base_url=edge.url, cookies=chat.http.cookies, timeout=30
            ) as http:
                replies = await asyncio.gather(
                    *(http.post("/api/execute", json={"text": "code", "channel": channel})
                      for channel in channels),
                    *(http.get("/api/config") for _ in range(4)),
                )  # fmt: skip
                executes, configs = replies[:4], replies[4:]
                assert [reply.status_code for reply in configs] == [200] * 4
                assert {reply.status_code for reply in executes} <= {202, 504}
                # Two requests in a row from one nginx worker go to both backends (round
                # robin), so at least one of the eight went to the paused one first.
                timed_out = [
                    line
                    for line in (out / "error.log").read_text().splitlines()
                    if "upstream timed out" in line and f'upstream: "http://{paused}' in line
                ]
                assert timed_out
                assert sum('"POST /api/execute' in line for line in timed_out) == sum(
                    reply.status_code == 504 for reply in executes
                )
                for channel, reply in zip(channels, executes, strict=True):
                    if reply.status_code == 504:
                        stream_id = channel.partition(":")[2].partition("#")[0]
                        # 503 while the registry on a new Redis is young (it cannot tell one
                        # from a Redis that lost its streams): asked again, as the page does.
                        async with asyncio.timeout(30):
                            while (  # noqa: ASYNC110  # no event: the server is asked
                                snapshot := await http.get(f"/api/streams/{stream_id}")
                            ).status_code == 503:
                                await asyncio.sleep(0.5)
                        assert snapshot.status_code == 404, snapshot.text
            for (_, collector), reply in zip(subscribed, executes, strict=True):
                if reply.status_code == 202:
                    publications = await collector.wait_for_done()
                    assert answer_of(publications) == answer_for("code")
                    assert [p["done"] for p in publications].count(True) == 1


async def test_a_centrifugo_node_restart_loses_nothing_with_redis_history(
    cluster: Cluster,
) -> None:
    first = cluster.stacks[0]
    async with ChatSession.open(first.backend_url, first.websocket_url, ORIGIN) as chat:
        followers = []
        for prompt in ["code", "explain", "streaming", "hello"] * 3:
            channel = chat.new_channel()
            follower = await chat.follow(channel)
            assert (await chat.execute(channel, prompt)).status_code == 202
            followers.append((prompt, follower))
        await asyncio.gather(*(asyncio.wait_for(f.first.wait(), 10) for _, f in followers))

        cluster.centrifugo[0].stop()  # the node the subscribers and backend 1 use
        await asyncio.sleep(1)  # the outage itself
        cluster.centrifugo[0].start()

        async with asyncio.timeout(60):
            await asyncio.gather(*(f.wait_until_ended() for _, f in followers))
    for prompt, follower in followers:
        assert follower.text == answer_for(prompt)
        assert [done["reason"] for done in follower.dones] == ["complete"]
    # Redis kept the history and its epoch: recovery, not snapshots, filled the outage.
    assert sum(follower.resumes for _, follower in followers) == 0


async def test_500_streams_across_two_nodes_and_two_backends_all_exact(tmp_path: Path) -> None:
    with running_cluster(tmp_path, MAX_STREAMS_PER_USER="100") as cluster:
        sessions = []
        async with AsyncExitStack() as stack:
            for i in range(10):  # 10 users, each on one backend and one node, alternating
                node = cluster.stacks[i % 2]
                backend = cluster.stacks[(i // 2) % 2]
                sessions.append(
                    await stack.enter_async_context(
                        ChatSession.open(backend.backend_url, node.websocket_url, ORIGIN)
                    )
                )
            prompts = ["code", "explain", "streaming", "hello", "anything else"] * 100
            started = time.monotonic()
            answers = await asyncio.gather(
                *(sessions[i % 10].ask(prompt) for i, prompt in enumerate(prompts))
            )
            seconds = time.monotonic() - started
    for prompt, publications in zip(prompts, answers, strict=True):
        assert answer_of(publications) == answer_for(prompt)
        assert [p["done"] for p in publications].count(True) == 1
    print(f"500 streams across 2 nodes + 2 backends: {seconds:.1f} s, all exact")


async def test_a_hung_node_s_backend_goes_on_publishing_through_the_other(
    tmp_path: Path,
) -> None:
    """A cluster probe: each backend published through one node only, so readers on the
    healthy node of a backend whose node hung heard nothing until it came back (15 s), and
    new prompts there got their first token as late. Now the backend's publisher leaves a node
    that fails (here after PUBLISH_TIMEOUT_SECONDS) for the next."""
    with running_cluster(tmp_path, **SLOW, PUBLISH_TIMEOUT_SECONDS="1") as cluster:
        first, second = cluster.stacks
        async with ChatSession.open(first.backend_url, second.websocket_url, ORIGIN) as chat:
            followers = []
            for prompt in ["code", "explain", "streaming"]:
                channel = chat.new_channel()
                follower = await chat.follow(channel)
                assert (await chat.execute(channel, prompt)).status_code == 202
                followers.append((prompt, follower))
            await asyncio.gather(*(asyncio.wait_for(f.first.wait(), 10) for _, f in followers))
            cluster.centrifugo[0].signal(signal.SIGSTOP)  # backend 1's own node hangs
            try:
                hung = time.monotonic()
                async with asyncio.timeout(30):  # it stays hung throughout
                    await asyncio.gather(*(f.wait_until_ended() for _, f in followers))
                    later = chat.new_channel()
                    follower = await chat.follow(later)
                    assert (await chat.execute(later, "hello")).status_code == 202
                    await follower.wait_until_ended()
                    followers.append(("hello", follower))
                print(f"all answers whole {time.monotonic() - hung:.1f} s after the node hung")
            finally:
                cluster.centrifugo[0].signal(signal.SIGCONT)
    for prompt, follower in followers:
        assert follower.text == answer_for(prompt)
        assert [done["reason"] for done in follower.dones] == ["complete"]
    # Live through node 2, not pieced together from snapshots after a silence.
    assert sum(follower.resumes for _, follower in followers) == 0
