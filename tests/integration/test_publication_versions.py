"""What the real Centrifugo does with the versions the publisher gives a stream's publications:
nothing lands after a `done`, and a chunk sent again under another idempotency key lands once;
on its memory engine and on Redis (v6; v5.4 has no publication versions and takes them all, as
docs/scaling.md says)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.centrifugo.publisher import CentrifugoPublisher
from backend.core.types import Chunk, Done
from tests.cluster import RedisServer, centrifugo_on_redis
from tests.processes import free_port
from tests.stack import Stack, stack_for


@pytest.fixture
def on_redis(tmp_path: Path) -> Iterator[Stack]:
    """A Centrifugo on the Redis engine, as in the cluster."""
    redis_server = RedisServer(tmp_path)
    redis_server.start()
    stack = stack_for(free_port(), free_port(), (free_port(), free_port()))
    centrifugo = centrifugo_on_redis(stack, tmp_path, redis_server.url)
    try:
        centrifugo.start()
        yield stack
    finally:
        centrifugo.close()
        redis_server.stop()


@pytest.fixture(params=["memory", "redis"])
async def centrifugo(
    request: pytest.FixtureRequest, stack: Stack, tmp_path: Path
) -> AsyncIterator[tuple[Stack, httpx.AsyncClient]]:
    chosen = stack if request.param == "memory" else request.getfixturevalue("on_redis")
    api = f"{chosen.centrifugo_url}/api"
    async with httpx.AsyncClient(base_url=api, headers={"X-API-Key": chosen.api_key}) as client:
        yield chosen, client


async def _major_version(server_api: httpx.AsyncClient) -> int:
    info = (await server_api.post("/info", json={})).json()
    (node,) = info["result"]["nodes"]
    return int(node["version"].lstrip("v").split(".")[0])


@pytest.mark.parametrize("asked", [False, True], ids=["keys", "versions-known"])
async def test_nothing_lands_after_a_done_and_a_resent_chunk_lands_once(
    centrifugo: tuple[Stack, httpx.AsyncClient], asked: bool
) -> None:
    """`asked`: the publisher knows the versions (`ready()`, as on the first execute): on v6 its
    chunks then go without idempotency keys."""
    stack, server_api = centrifugo
    channel = f"stream:{secrets.token_hex(4)}#u_{secrets.token_hex(8)}"
    async with httpx.AsyncClient() as client:
        publisher = CentrifugoPublisher(client, f"{stack.centrifugo_url}/api", stack.api_key)
        try:
            if asked:
                await publisher.ready()
            one = {"stream": "lease-1"}
            await publisher.publish(channel, Chunk("a", seq=1), idempotency_key="c1", **one)
            # Chunk 1 again, its idempotency record gone (Redis restarted, or expired).
            await publisher.publish(channel, Chunk("a", seq=1), idempotency_key="c1-b", **one)
            await publisher.publish(channel, Chunk("b", seq=2), idempotency_key="c2", **one)
            # A survivor ended the stream: its `done`, with the seq the registry recorded.
            ended = Done("error", "ended", seq=3)
            await publisher.publish(channel, ended, idempotency_key="d", **one)
            # The paused owner resumes and publishes chunk 3, recorded before the pause.
            await publisher.publish(channel, Chunk("c", seq=3), idempotency_key="c3", **one)
            # Its own `done` after the survivor's: the one `done` key takes care of it.
            await publisher.publish(channel, ended, idempotency_key="d", **one)
            # The channel reused by another stream, its meta still there (a review: the first
            # stream's `done` version dropped the whole second answer).
            two = {"stream": "lease-2"}
            await publisher.publish(channel, Chunk("x", seq=1), idempotency_key="x1", **two)
            await publisher.publish(channel, Done("complete", seq=1), idempotency_key="e", **two)
        finally:
            await publisher.aclose()
    reply = await server_api.post("/history", json={"channel": channel, "limit": 100})
    data: list[dict[str, Any]] = [p["data"] for p in reply.json()["result"]["publications"]]
    a, b, c = ({"text": text, "done": False, "seq": seq} for seq, text in enumerate("abc", start=1))
    done = {"text": "", "done": True, "reason": "error", "error": "ended", "seq": 3}
    again = [
        {"text": "x", "done": False, "seq": 1},
        {"text": "", "done": True, "reason": "complete", "seq": 1},
    ]
    if await _major_version(server_api) >= 6:
        assert data == [a, b, done, *again]
    else:  # no versions: what v5.4 does, documented
        assert data == [a, a, b, done, c, *again]
