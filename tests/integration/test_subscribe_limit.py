"""The subscribe proxy against a flood of fresh channels (probe H1: one connection churning
subscriptions to fresh channels of its own grew Centrifugo by ~210 MB in 30 s), with the
default budgets, on a real Centrifugo and backend."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import websockets

from backend.api.routes.centrifugo_proxy import UNREADABLE_SUBSCRIBE
from backend.llm.simulated import answer_for
from tests.clients import ChatSession, answer_of
from tests.stack import ORIGIN, Stack, running_stack

BURST = 30  # SUBSCRIBE_BURST_PER_USER's default
TOO_MANY_NEW_CHANNELS = 429
TOO_MANY_REFUSED = 4429


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Centrifugo and a backend with the default subscribe budgets (the other tests' stack
    raises them: they subscribe dozens of channels at once as one user)."""
    with running_stack(
        tmp_path_factory.mktemp("limited"),
        SUBSCRIBE_BURST_PER_USER=str(BURST),
        SUBSCRIBE_RATE_PER_USER="1",
        SUBSCRIBE_BURST_PER_ADDRESS="300",
        SUBSCRIBE_RATE_PER_ADDRESS="20",
    ) as stack:
        yield stack


@pytest.fixture
async def session(limited: Stack) -> AsyncIterator[ChatSession]:
    async with ChatSession.open(limited.backend_url, limited.websocket_url, ORIGIN) as chat:
        yield chat


@pytest.fixture
async def other_session(limited: Stack) -> AsyncIterator[ChatSession]:
    async with ChatSession.open(limited.backend_url, limited.websocket_url, ORIGIN) as chat:
        yield chat


async def flood(
    stack: Stack, http: httpx.AsyncClient, user: str, count: int, data: Any = None
) -> tuple[list[Any], int | None]:
    """`count` subscribes to fresh channels of `user`'s, at once on one raw connection, as
    the probe sent them (with recovery from the start, and `data` when given: Centrifugo
    passes it to the subscribe proxy as it is); the replies, in order, until the connection
    closed, and the code it was closed with (None: still open)."""
    token = (await http.post("/api/token")).json()["token"]
    async with websockets.connect(stack.websocket_url, origin=ORIGIN) as ws:  # type: ignore[arg-type]
        await ws.send(json.dumps({"id": 1, "connect": {"token": token}}))
        assert "connect" in json.loads(await ws.recv())
        commands = [
            json.dumps(
                {
                    "id": 2 + n,
                    "subscribe": {
                        "channel": f"stream:{secrets.token_hex(8)}#{user}",
                        "recover": True,
                        "offset": 0,
                        "epoch": "",
                        **({} if data is None else {"data": data}),
                    },
                }
            )
            for n in range(count)
        ]
        await ws.send("\n".join(commands))
        replies: dict[int, Any] = {}
        closed: int | None = None
        async with asyncio.timeout(20):
            while len(replies) < count:
                try:
                    received = str(await ws.recv())
                except websockets.ConnectionClosed as exc:
                    closed = exc.rcvd.code if exc.rcvd else 0
                    break
                for line in received.splitlines():
                    message = json.loads(line)
                    if message == {}:
                        await ws.send("{}")  # a ping
                    elif "id" in message:
                        replies[message["id"]] = message
        return [replies[2 + n] for n in range(count) if 2 + n in replies], closed


async def test_a_flood_of_fresh_channels_is_refused_past_the_budget_not_the_user_s_prompt(
    limited: Stack, session: ChatSession, other_session: ChatSession
) -> None:
    replies, closed = await flood(limited, session.http, session.user, 100)

    allowed = [reply for reply in replies if "subscribe" in reply]
    refused = [reply["error"] for reply in replies if "error" in reply]
    assert BURST <= len(allowed) <= BURST + 3  # a few refilled while the flood went on
    # As many refusals again, then the connection is closed: the rest cost nothing.
    assert BURST <= len(refused) <= BURST + 3
    assert closed == TOO_MANY_REFUSED
    assert {error["code"] for error in refused} == {TOO_MANY_NEW_CHANNELS}
    assert all(
        error["temporary"] and "too many new channels" in error["message"] for error in refused
    )

    # The same user's prompt, subscribed before its execute as the page does: refused at first
    # (or its connection closed: both budgets are spent), subscribed by the SDK's retry once
    # its answer runs: whole.
    channel = session.new_channel()
    _sub, collector = await session.subscribe(channel)
    response = await session.execute(channel, "after the flood")
    assert response.status_code == 202
    publications = await collector.wait_for_done()
    assert answer_of(publications) == answer_for("after the flood")
    assert publications[-1]["done"] is True
    codes = {getattr(error.error, "code", None) for error in collector.errors}
    assert codes <= {TOO_MANY_NEW_CHANNELS}

    # Another user: subscribed at once, never refused.
    channel = other_session.new_channel()
    _sub, collector = await other_session.subscribe(channel)
    await asyncio.wait_for(collector.subscribed.wait(), 5)
    response = await other_session.http.post(
        "/api/execute", json={"text": "unaffected", "channel": channel}
    )
    assert response.status_code == 202
    assert answer_of(await collector.wait_for_done()) == answer_for("unaffected")
    assert collector.errors == []


async def test_subscribe_data_the_backend_would_not_take_as_a_prompt_counts_as_well(
    limited: Stack, other_session: ChatSession
) -> None:
    """Review: request bodies read as strict JSON reached the subscribe proxy too, which
    Centrifugo sends the client's own subscribe `data` in: an unpaired surrogate in it got a
    422 before the budgets were asked (the client saw "internal server error", and a flood of
    them was never refused nor its connection closed). The proxy reads Centrifugo's body as
    it is; its budgets count such a flood like any other."""
    replies, closed = await flood(
        limited, other_session.http, other_session.user, 100, data={"x": "\ud800"}
    )
    allowed = [reply for reply in replies if "subscribe" in reply]
    assert BURST <= len(allowed) <= BURST + 3
    assert closed == TOO_MANY_REFUSED


async def test_subscribe_data_the_backend_cannot_read_closes_the_connection(
    limited: Stack, other_session: ChatSession
) -> None:
    """Review: data nested deeper than Python's JSON reader goes (Centrifugo's takes 10,000)
    got a 422 before the budgets were asked: every such subscribe was "internal server error"
    (120 of 120 on one connection), none counted, the connection never closed. The page never
    sends subscribe data: such a client is disconnected at the first."""
    token = (await other_session.http.post("/api/token")).json()["token"]
    deep = "[" * 1100 + "]" * 1100
    channel = f"stream:{secrets.token_hex(8)}#{other_session.user}"
    async with websockets.connect(limited.websocket_url, origin=ORIGIN) as ws:  # type: ignore[arg-type]
        await ws.send(json.dumps({"id": 1, "connect": {"token": token}}))
        assert "connect" in json.loads(await ws.recv())
        subscribe = {"id": 2, "subscribe": {"channel": channel, "data": "DATA"}}
        await ws.send(json.dumps(subscribe).replace('"DATA"', deep))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await _until_closed(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == UNREADABLE_SUBSCRIBE


async def _until_closed(ws: Any) -> None:
    """Answers pings until the connection closes; a reply to a command fails the test."""
    async with asyncio.timeout(10):
        while True:
            message = json.loads(str(await ws.recv()).splitlines()[0])
            assert "id" not in message, message
            await ws.send("{}")
