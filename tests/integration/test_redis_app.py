"""The app with REDIS_URL set, in-process (the model and publisher are the unit tests'
stand-ins), against a real Redis: its registry is the shared one, and it ends the streams of a
process that died."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from backend.__main__ import registry_or_exit
from backend.app import create_app
from backend.cluster.redis_streams import PARTIAL_ERROR, RedisStreams, connect
from backend.core.answer import Answerer
from backend.core.ports import Recording, StreamsUnavailable
from backend.core.relay import ORPHANED, Relay
from backend.core.types import Chunk, Done, Question, Snapshot, Token
from tests.cluster import RedisServer
from tests.processes import free_port
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


class MissesOneRecord(RedisStreams):
    """Redis out of reach for one record: the batch holding chunk `seq`."""

    def __init__(self, *args: object, seq: int, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.seq = seq

    async def record(self, chunks: Sequence[Recording]) -> list[bool]:
        if any(chunk.seq == self.seq for _, _, chunk in chunks):
            raise StreamsUnavailable("the streams registry cannot be reached (ConnectionError)")
        return await super().record(chunks)


@pytest.mark.parametrize("registry_missed_it", [False, True], ids=["recorded", "not recorded"])
async def test_a_chunk_centrifugo_did_not_take_is_in_the_snapshot_or_the_snapshot_says_it_is_lost(
    redis_url: str, registry_missed_it: bool
) -> None:
    """A chunk Centrifugo does not take no longer ends its stream: readers who see the gap get it
    from the snapshot. When the registry missed that chunk as well (Redis unreachable for it),
    the snapshot cannot give the whole answer, and must not pretend to: its `done` says part
    of it was lost, not `complete` with text that has a hole in it."""
    channel = "stream:abcdefgh#u_0123456789abcdef"
    tokens = [Token("one "), Token("two "), Token("three")]
    # Each token its own chunk (window 0), each flushed before the next token comes.
    model = ScriptedModel(tokens, delay=0.05)
    publisher = RecordingPublisher(fail_on={2})  # chunk 2 never reaches Centrifugo
    client = connect(redis_url)
    try:
        streams = MissesOneRecord(client, seq=2) if registry_missed_it else RedisStreams(client)
        relay = Relay(Answerer(model, window=0, max_seconds=10), publisher, streams, window=0)
        await relay.start(channel, Question("hi"), owner="u_0123456789abcdef")
        published = await publisher.wait_for_done(channel)
        snapshot = await streams.snapshot(channel)
    finally:
        await client.aclose()

    assert published == [Chunk("one ", seq=1), Chunk("three", seq=3), Done("complete", seq=3)]
    if registry_missed_it:
        assert snapshot == Snapshot("", "", 0, Done("error", PARTIAL_ERROR))
    else:
        assert snapshot == Snapshot("one two three", "", 3, Done("complete"))


def test_the_backend_starts_only_once_its_redis_answers(
    redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Probe: an unreachable REDIS_URL stopped the backend after 10 s with a traceback ending in
    a bare TimeoutError, naming neither the setting nor why."""
    registry_or_exit(settings(REDIS_URL=redis_url), wait_seconds=0)  # answers: goes on

    nobody = f"redis://:hunter2hunter2@127.0.0.1:{free_port()}/0"
    with pytest.raises(SystemExit) as stopped:
        registry_or_exit(settings(REDIS_URL=nobody), wait_seconds=0)
    assert stopped.value.code == 1
    said = capsys.readouterr().err
    assert said.startswith("the backend cannot start: REDIS_URL (redis://:***@127.0.0.1:")
    assert "Connect call failed" in said or "refused" in said.lower()
    assert "hunter2" not in said
    assert "Traceback" not in said


def test_a_redis_that_refuses_the_backend_is_said_at_once(
    redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Review: a wrong password or database was retried for the whole wait, then reported as
    Redis not answering. Here a database the server does not have (it has 16)."""
    wrong_database = redis_url.rsplit("/", 1)[0] + "/99"
    with pytest.raises(SystemExit):
        registry_or_exit(settings(REDIS_URL=wrong_database), wait_seconds=60)  # not waited
    said = capsys.readouterr().err
    assert said.startswith("the backend cannot start: Redis at REDIS_URL (")
    assert "refused it" in said
    assert "index" in said.lower()  # Redis's own reason: DB index is out of range
