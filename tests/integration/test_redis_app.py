"""The app with REDIS_URL set, in-process (the model and publisher are the unit tests'
stand-ins), against a real Redis: its registry is the shared one, and it ends the streams of a
process that died."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from backend.app import create_app
from backend.cluster.redis_streams import RedisStreams, connect
from backend.core.relay import ORPHANED
from backend.core.types import Chunk, Done, Token
from tests.cluster import RedisServer
from tests.unit.apps import settings
from tests.unit.fakes import RecordingPublisher, ScriptedModel


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
async def app(redis_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, RecordingPublisher]]:
    publisher = RecordingPublisher()
    model = ScriptedModel([Token("Hello "), Token("there")])
    app = create_app(settings(REDIS_URL=redis_url), model=model, publisher=publisher)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            await client.post("/api/token")
            yield client, publisher


async def test_streams_go_through_the_shared_registry(
    app: tuple[httpx.AsyncClient, RecordingPublisher], redis_url: str
) -> None:
    client, publisher = app
    user = (await client.post("/api/token")).json()["user"]
    channel = f"stream:abcdefgh#{user}"
    assert (await client.post("/api/execute", json={"text": "hi", "channel": channel})).is_success
    assert (await publisher.wait_for_done(channel))[-1] == Done("complete", seq=2)

    # Another process sees the finished stream, and the channel is used up for all.
    other = connect(redis_url)
    try:
        snapshot = await RedisStreams(other).snapshot(channel)
    finally:
        await other.aclose()
    assert snapshot is not None
    assert (snapshot.text, snapshot.seq, snapshot.done) == ("Hello there", 2, Done("complete"))
    again = await client.post("/api/execute", json={"text": "hi", "channel": channel})
    assert again.status_code == 409


async def test_the_app_ends_the_streams_of_a_process_that_died(
    app: tuple[httpx.AsyncClient, RecordingPublisher], redis_url: str
) -> None:
    _, publisher = app
    channel = "stream:deadbeef#u_0123456789abcdef"
    other = connect(redis_url)
    try:
        dead = RedisStreams(other, lease_seconds=0.2)  # never started: never renews its lease
        lease = await dead.claim(channel, lambda done: None, owner="u_0123456789abcdef")
        await dead.record([(channel, lease, Chunk("partial ", seq=1))])
    finally:
        await other.aclose()

    # The app checks every second; the lease is long gone by then.
    assert await publisher.wait_for_done(channel) == [Done(ORPHANED.reason, ORPHANED.error, 1)]
