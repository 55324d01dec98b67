"""How a stream ends when it cannot complete: the time limit, and the server stopping."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from backend.core.relay import SHUTDOWN
from tests.clients import ChatSession
from tests.conftest import ORIGIN, Stack, another_backend

SLOW = {"SIM_TOKEN_DELAY_MIN_MS": "40", "SIM_TOKEN_DELAY_MAX_MS": "40"}


async def wait_for_done(server_api: httpx.AsyncClient, channel: str) -> list[dict[str, Any]]:
    for _ in range(200):
        reply = (await server_api.post("/history", json={"channel": channel, "limit": -1})).json()
        data = [p["data"] for p in reply["result"].get("publications", [])]
        if data and data[-1]["done"]:
            return data
        await asyncio.sleep(0.05)
    raise AssertionError(f"no done on {channel}")


async def test_a_stream_over_the_time_limit_ends_with_done_timeout(
    stack: Stack, server_api: httpx.AsyncClient
) -> None:
    with another_backend(stack, MAX_STREAM_SECONDS="0.5", **SLOW) as url:
        async with ChatSession.open(url, stack.websocket_url, ORIGIN) as chat:
            publications = await chat.ask("code")  # ~150 tokens x 40 ms: far over 0.5 s
    assert publications[-1]["reason"] == "timeout"
    assert "0.5 s" in publications[-1]["error"]
    assert [p["done"] for p in publications].count(True) == 1
    assert len(publications) > 2


async def test_stopping_the_server_ends_running_streams_with_done_error(
    stack: Stack, server_api: httpx.AsyncClient
) -> None:
    with another_backend(stack, **SLOW) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            user = (await http.post("/api/token")).json()["user"]
            channels = [f"stream:stopping{i}#{user}" for i in range(3)]
            for channel in channels:
                body = {"text": "code", "channel": channel}
                assert (await http.post("/api/execute", json=body)).status_code == 202
        await asyncio.sleep(0.3)
        # Leaving the block sends SIGTERM, as Ctrl-C or `docker stop` would.
    for channel in channels:
        publications = await wait_for_done(server_api, channel)
        assert publications[-1] == {
            "text": "",
            "done": True,
            "reason": "error",
            "error": SHUTDOWN.error,
        }
        assert len(publications) > 1
