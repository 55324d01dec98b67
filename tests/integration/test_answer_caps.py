"""The caps on running answers through the real edge: nginx (as `make run` renders it, behind a
trusted proxy that names the client in X-Forwarded-For), the backend as a process and a real
Centrifugo. Sessions are free, so the probe minted one per execute from one address; the
address nginx forwards is what the backend counts (uvicorn believes nginx's X-Forwarded-For)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
from centrifuge import Client

from tests.clients import Collector, from_start
from tests.stack import ORIGIN, Edge, nginx_in_front, running_stack

OFFICE = "203.0.113.7"
ELSEWHERE = "198.51.100.9"
FARTHER = "192.0.2.44"


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    """Two answers per address, three per process; answers of ~20 s (40 tokens, 0.5 s each),
    running until the test cancels them."""
    with (
        running_stack(
            tmp_path_factory.mktemp("caps"),
            MAX_STREAMS_PER_ADDRESS="2",
            MAX_RUNNING_STREAMS="3",
            SIM_TOKEN_DELAY_MIN_MS="500",
            SIM_TOKEN_DELAY_MAX_MS="500",
        ) as stack,
        # The test is the operator's proxy in front of nginx (on loopback, as `make run` trusts).
        nginx_in_front(
            stack, stack.backend_url, stack.nginx_ports[0], tmp_path_factory.mktemp("nginx")
        ) as front,
    ):
        yield front


class Visitor:
    """Someone at `address`, reaching the page through the operator's proxy and nginx; each
    `execute` as a new user (a fresh session: anyone can mint one)."""

    def __init__(self, http: httpx.AsyncClient, edge: Edge) -> None:
        self.http = http
        self.edge = edge
        self.user = ""

    async def execute(self, stream_id: str) -> httpx.Response:
        self.http.cookies.clear()
        self.user = (await self.http.post("/api/token")).json()["user"]
        body = {"text": "hi", "channel": self.channel(stream_id)}
        return await self.http.post("/api/execute", json=body)

    def channel(self, stream_id: str) -> str:
        return f"stream:{stream_id}#{self.user}"

    async def cancel_and_wait_for_done(self, stream_id: str) -> list[dict[str, object]]:
        """Cancel the current user's answer in `stream_id`; every publication once its `done`
        is out (read from Centrifugo by a subscription of the user's own)."""

        async def get_token() -> str:
            token: str = (await self.http.post("/api/token")).json()["token"]
            return token

        client = Client(
            self.edge.stack.websocket_url,
            get_token=get_token,
            headers={"Origin": ORIGIN},
            proxy=None,
        )
        await client.connect()
        try:
            collector = Collector()
            sub = client.new_subscription(
                self.channel(stream_id), events=collector, get_state=from_start
            )
            await sub.subscribe()
            await sub.ready(10)
            cancelled = await self.http.post(
                "/api/cancel", json={"channel": self.channel(stream_id)}
            )
            assert cancelled.status_code == 202, cancelled.text
            return await collector.wait_for_done()
        finally:
            await client.disconnect()


@asynccontextmanager
async def visitor(edge: Edge, address: str) -> AsyncIterator[Visitor]:
    headers = {"X-Forwarded-For": address}
    async with httpx.AsyncClient(base_url=edge.url, headers=headers, timeout=10) as http:
        yield Visitor(http, edge)


async def history(edge: Edge, channel: str) -> list[object]:
    async with httpx.AsyncClient(
        base_url=f"{edge.stack.centrifugo_url}/api", headers={"X-API-Key": edge.stack.api_key}
    ) as api:
        reply = (await api.post("/history", json={"channel": channel, "limit": 10})).json()
    publications: list[object] = reply.get("result", {}).get("publications", [])
    return publications


async def test_one_address_and_one_process_run_only_so_many_answers(edge: Edge) -> None:
    async with (
        visitor(edge, OFFICE) as office,
        visitor(edge, OFFICE) as colleague,
        visitor(edge, ELSEWHERE) as elsewhere,
        visitor(edge, FARTHER) as farther,
    ):
        assert (await office.execute("aaaaaaaa")).status_code == 202
        assert (await colleague.execute("bbbbbbbb")).status_code == 202

        # A third user from the office: over the address's cap, whatever its fresh session.
        refused = await colleague.execute("cccccccc")
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "5"
        assert refused.headers["content-type"] == "application/json"
        assert "already streaming from your network address" in refused.json()["detail"]
        assert await history(edge, colleague.channel("cccccccc")) == []  # nothing started

        # Another address is not held up by the office; past it, the process is full.
        assert (await elsewhere.execute("dddddddd")).status_code == 202
        busy = await farther.execute("eeeeeeee")
        assert busy.status_code == 503
        assert busy.headers["retry-after"] == "5"
        assert busy.json()["detail"].startswith("the server is busy")
        assert await history(edge, farther.channel("eeeeeeee")) == []

        # An answer that ends gives both its places back by the time its `done` is out: one
        # more from the office is taken, and the process is full again.
        done = await office.cancel_and_wait_for_done("aaaaaaaa")
        assert done[-1]["done"] is True
        assert done[-1]["reason"] == "cancelled"
        assert (await office.execute("ffffffff")).status_code == 202
        assert (await farther.execute("gggggggg")).status_code == 503
        # The answers still running end when the stack stops (with their `done`).
