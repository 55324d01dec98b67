"""Nobody reads or writes another user's stream; forged tokens and clients' publishes fail."""

from __future__ import annotations

import asyncio
import time

import httpx
import jwt
import pytest
from centrifuge import (
    Client,
    ClientEventHandler,
    ConnectedContext,
    DisconnectedContext,
    ErrorContext,
    ReplyError,
)

from backend.llm.simulated import answer_for
from tests.clients import ChatSession, answer_of
from tests.stack import ORIGIN, Stack

PERMISSION_DENIED = 103


async def history(server_api: httpx.AsyncClient, channel: str) -> list[object]:
    reply = (await server_api.post("/history", json={"channel": channel, "limit": -1})).json()
    publications: list[object] = reply.get("result", {}).get("publications", [])
    return publications


async def refused(session: ChatSession, channel: str) -> int:
    """Subscribe to `channel`; return the code Centrifugo refused it with."""
    sub, collector = await session.subscribe(channel)
    await asyncio.wait_for(collector.ended.wait(), 10)
    assert not collector.subscribed.is_set()
    assert collector.publications == []
    assert collector.unsubscribed is not None
    session.client.remove_subscription(sub)
    return collector.unsubscribed.code


async def test_another_users_channel_cannot_be_subscribed(
    session: ChatSession, other_session: ChatSession
) -> None:
    channel = other_session.new_channel()
    assert await refused(session, channel) == PERMISSION_DENIED


@pytest.mark.parametrize("channel", ["stream:abcdefgh", "stream:abcdefgh#", "chat:abcdefgh"])
async def test_channels_without_the_callers_user_cannot_be_subscribed(
    session: ChatSession, channel: str
) -> None:
    assert await refused(session, channel) in {PERMISSION_DENIED, 102}


async def test_execute_on_another_users_channel_is_403_and_publishes_nothing(
    session: ChatSession, other_session: ChatSession, server_api: httpx.AsyncClient
) -> None:
    channel = other_session.new_channel()
    sub, collector = await other_session.subscribe(channel)
    await sub.ready(10)

    response = await session.execute(channel, "hello")
    assert response.status_code == 403
    assert "another user" in response.json()["detail"]

    # The owner's own answer then comes through alone: publications keep their order, so a
    # stray one from the refused request would have arrived before this `done`.
    assert (await other_session.execute(channel, "code")).status_code == 202
    publications = await collector.wait_for_done()
    assert answer_of(publications) == answer_for("code")
    assert len(await history(server_api, channel)) == len(publications)


async def test_a_client_cannot_publish_even_to_its_own_channel(
    session: ChatSession, server_api: httpx.AsyncClient
) -> None:
    channel = session.new_channel()
    sub, _ = await session.subscribe(channel)
    await sub.ready(10)
    with pytest.raises(ReplyError) as caught:
        await sub.publish({"text": "injected", "done": True, "reason": "complete"})
    assert caught.value.code == PERMISSION_DENIED
    assert await history(server_api, channel) == []


class ConnectionRecorder(ClientEventHandler):
    def __init__(self) -> None:
        self.connected = asyncio.Event()
        self.disconnected: DisconnectedContext | None = None
        self.errors: list[ErrorContext] = []
        self.settled = asyncio.Event()  # connected, refused for good, or failed to open

    async def on_connected(self, ctx: ConnectedContext) -> None:
        self.connected.set()
        self.settled.set()

    async def on_disconnected(self, ctx: DisconnectedContext) -> None:
        self.disconnected = ctx
        self.settled.set()

    async def on_error(self, ctx: ErrorContext) -> None:
        self.errors.append(ctx)
        self.settled.set()


async def connect_with(stack: Stack, token: str, origin: str = ORIGIN) -> ConnectionRecorder:
    recorder = ConnectionRecorder()
    client = Client(
        stack.websocket_url, events=recorder, token=token, headers={"Origin": origin}, proxy=None
    )
    await client.connect()
    try:
        await asyncio.wait_for(recorder.settled.wait(), 10)
    finally:
        await client.disconnect()
    return recorder


async def test_a_forged_connection_token_is_refused(stack: Stack, session: ChatSession) -> None:
    now = int(time.time())
    forged = jwt.encode(
        {"sub": session.user, "iat": now, "exp": now + 600},
        "a-secret-that-is-not-the-servers-one-" * 2,
        algorithm="HS256",
    )
    recorder = await connect_with(stack, forged)
    assert recorder.disconnected is not None
    assert recorder.disconnected.code == 3500  # invalid token
    assert "invalid token" in recorder.disconnected.reason


async def test_a_page_from_another_origin_cannot_connect(
    stack: Stack, session: ChatSession
) -> None:
    token = (await session.http.post("/api/token")).json()["token"]
    refused = await connect_with(stack, token, origin="http://evil.example")
    assert not refused.connected.is_set()
    assert refused.errors  # the WebSocket handshake itself was refused
    allowed = await connect_with(stack, token)
    assert allowed.connected.is_set()
