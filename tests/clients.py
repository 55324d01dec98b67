"""A chat user as the tests see one: a cookie session with the backend and a real
centrifuge-python connection to Centrifugo."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from centrifuge import (
    Client,
    PublicationContext,
    StreamPosition,
    SubscribedContext,
    Subscription,
    SubscriptionErrorContext,
    SubscriptionEventHandler,
    UnsubscribedContext,
)

DONE_TIMEOUT_SECONDS = 15


async def from_start(channel: str) -> StreamPosition:
    """Like centrifuge-js `since: {offset: 0, epoch: ''}`: replay the channel's whole history."""
    return StreamPosition(offset=0, epoch="")


class Collector(SubscriptionEventHandler):
    """Gathers a subscription's publications until the `done` one."""

    def __init__(self) -> None:
        self.publications: list[dict[str, Any]] = []
        self.offsets: list[int] = []
        self.first = asyncio.Event()
        self.done = asyncio.Event()
        self.subscribed = asyncio.Event()
        self.unsubscribed: UnsubscribedContext | None = None
        self.errors: list[SubscriptionErrorContext] = []
        self.ended = asyncio.Event()  # done, or the subscription was refused

    async def on_publication(self, ctx: PublicationContext) -> None:
        self.publications.append(ctx.pub.data)
        self.offsets.append(ctx.pub.offset)
        self.first.set()
        if ctx.pub.data.get("done"):
            self.done.set()
            self.ended.set()

    async def on_subscribed(self, ctx: SubscribedContext) -> None:
        self.subscribed.set()

    async def on_unsubscribed(self, ctx: UnsubscribedContext) -> None:
        self.unsubscribed = ctx
        self.ended.set()

    async def on_error(self, ctx: SubscriptionErrorContext) -> None:
        self.errors.append(ctx)

    async def wait_for_done(self) -> list[dict[str, Any]]:
        await asyncio.wait_for(self.done.wait(), DONE_TIMEOUT_SECONDS)
        return self.publications


class ChatSession:
    def __init__(self, http: httpx.AsyncClient, client: Client, user: str) -> None:
        self.http = http
        self.client = client
        self.user = user

    @classmethod
    @asynccontextmanager
    async def open(cls, backend_url: str, ws_url: str, origin: str) -> AsyncIterator[ChatSession]:
        async with httpx.AsyncClient(base_url=backend_url, timeout=10) as http:
            user = (await http.post("/api/token")).json()["user"]

            async def get_token() -> str:
                token: str = (await http.post("/api/token")).json()["token"]
                return token

            client = Client(ws_url, get_token=get_token, headers={"Origin": origin}, proxy=None)
            await client.connect()
            await client.ready(10)
            try:
                yield cls(http, client, user)
            finally:
                await client.disconnect()

    def new_channel(self, user: str | None = None) -> str:
        return f"stream:{secrets.token_hex(8)}#{user or self.user}"

    async def subscribe(self, channel: str) -> tuple[Subscription, Collector]:
        collector = Collector()
        sub = self.client.new_subscription(channel, events=collector, get_state=from_start)
        await sub.subscribe()
        return sub, collector

    async def execute(self, channel: str, text: str, *, thinking: bool = False) -> httpx.Response:
        body = {"text": text, "channel": channel, "thinking": thinking}
        return await self.http.post("/api/execute", json=body)

    async def cancel(self, channel: str) -> httpx.Response:
        return await self.http.post("/api/cancel", json={"channel": channel})

    async def wait_for_done(self, channel: str) -> list[dict[str, Any]]:
        """Everything `channel` holds, once its `done` is out: read from the start of its
        history by a subscription of its own, so it works before, during or after the stream."""
        sub, collector = await self.subscribe(channel)
        try:
            return await collector.wait_for_done()
        finally:
            await sub.unsubscribe()
            self.client.remove_subscription(sub)

    async def ask(self, text: str, *, thinking: bool = False) -> list[dict[str, Any]]:
        """Subscribe first, then execute, as the chat page does; return every publication."""
        channel = self.new_channel()
        sub, collector = await self.subscribe(channel)
        await sub.ready(10)
        response = await self.execute(channel, text, thinking=thinking)
        assert response.status_code == 202, response.text
        publications = await collector.wait_for_done()
        await sub.unsubscribe()
        self.client.remove_subscription(sub)
        return publications


def answer_of(publications: list[dict[str, Any]]) -> str:
    return "".join(p["text"] for p in publications if not p["done"] and "phase" not in p)
