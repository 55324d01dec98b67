"""A chat user as the tests see one: a cookie session with the backend and a real
centrifuge-python connection to Centrifugo."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
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


class Follower(SubscriptionEventHandler):
    """A subscriber that follows docs/protocol.md: applies chunks in `seq` order, skips one it
    already has, and resumes from the backend's snapshot when the channel's history cannot fill
    a gap; when nothing arrives for `idle_seconds` it asks the snapshot whether anybody still
    answers. The result is the answer as a reader would see it, and how it ended.

    `position` is where a resubscription asks to recover from: like centrifuge-js, the last
    publication seen (and its epoch); `get_state=from_start` instead replays the channel from
    its start every time, as a page reloaded mid-answer does."""

    def __init__(
        self, snapshot: Callable[[], Awaitable[httpx.Response]], idle_seconds: float = 5
    ) -> None:
        self._snapshot = snapshot
        self._idle_seconds = idle_seconds
        self.text = ""
        self.thinking = ""
        self.seq = 0
        self.dones: list[dict[str, Any]] = []  # how it ended, as the reader learnt it: one
        self.done_publications = 0  # `done` publications received, before or after the end
        self.abandoned = ""  # why the reader was told that nobody answers any more
        self.resumes = 0
        self._held: list[dict[str, Any]] | None = None  # live chunks held while resuming
        self.ended = asyncio.Event()
        self.first = asyncio.Event()
        self._moved = asyncio.Event()
        self.position = StreamPosition(offset=0, epoch="")
        self.states_asked = 0  # times centrifuge-python asked `last_position`

    async def last_position(self, channel: str) -> StreamPosition:
        """A `get_state` for centrifuge-python. It is asked on the first subscribe (read the
        channel from its start), and again only when the server refused to recover from the
        position it was given (error 112: a new epoch, after a Centrifugo restart); then, like
        a page told `recovered: false`, the reader fills what it missed from the snapshot and
        reads the new history from its start (what it already has is skipped by `seq`).
        Handing back the stale position instead is refused again, for ever."""
        self.states_asked += 1
        if self.states_asked > 1:
            await self.resume()
            self.position = StreamPosition(offset=0, epoch="")
        return self.position

    async def on_publication(self, ctx: PublicationContext) -> None:
        self.position = StreamPosition(offset=ctx.pub.offset, epoch=self.position.epoch)
        self._moved.set()
        if self._held is not None:
            self._held.append(ctx.pub.data)
        else:
            await self._apply(ctx.pub.data)

    async def on_subscribed(self, ctx: SubscribedContext) -> None:
        if ctx.stream_position is not None:
            self.position = ctx.stream_position
        if ctx.was_recovering and not ctx.recovered:
            await self.resume()

    async def _apply(self, data: dict[str, Any]) -> None:
        if data.get("done"):
            self.done_publications += 1
            if data.get("seq", 0) > self.seq and self._held is None:
                await self.resume()  # the done names chunks this reader never got
            if not self.dones:  # else the snapshot already told how it ended
                self.dones.append(data)
            self.ended.set()
        elif data["seq"] <= self.seq:
            pass  # already shown (from the snapshot, or published twice)
        elif data["seq"] == self.seq + 1:
            self.seq = data["seq"]
            self.first.set()
            if data.get("phase") == "thinking":
                self.thinking += data["text"]
            else:
                self.text += data["text"]
        else:
            await self.resume()  # a gap the history did not fill

    async def resume(self) -> None:
        if self._held is not None:
            return
        self._held = []
        self.resumes += 1
        try:
            response = await self._snapshot()
        except httpx.TransportError as exc:
            self._abandon(f"the server does not answer ({exc.__class__.__name__})")
            return
        if response.status_code == 503:
            # The registry cannot tell right now (unreachable, or recovering after a Redis
            # restart): keep following and ask again after the next silence, as the protocol
            # says (it was taken as "nobody answers"; a cluster probe).
            held, self._held = self._held, None
            for data in held:
                await self._apply(data)
            return
        if response.status_code != 200:
            self._abandon(response.json()["detail"])
            return
        snapshot = response.json()
        if snapshot["seq"] >= self.seq:
            self.text, self.thinking, self.seq = (
                snapshot["text"],
                snapshot["thinking"],
                snapshot["seq"],
            )
        held, self._held = self._held, None
        for data in held:
            await self._apply(data)
        if snapshot["done"] is not None and not self.dones:
            self.dones.append({"text": "", "done": True, **snapshot["done"]})
            self.ended.set()

    def _abandon(self, why: str) -> None:
        self.abandoned = why
        self._held = None
        self.ended.set()

    async def wait_until_ended(self) -> None:
        """Until the `done`, or until the reader learns that nobody answers any more (bound it
        with `asyncio.timeout`)."""
        while not self.ended.is_set():
            self._moved.clear()
            waiting = [asyncio.ensure_future(e.wait()) for e in (self.ended, self._moved)]
            _, pending = await asyncio.wait(
                waiting, timeout=self._idle_seconds, return_when=asyncio.FIRST_COMPLETED
            )
            for task in pending:
                task.cancel()
            if not self.ended.is_set() and not self._moved.is_set():
                await self.resume()  # silence: does anybody still answer?


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

    async def follow(
        self, channel: str, idle_seconds: float = 5, *, replay_from_start: bool = False
    ) -> Follower:
        """A `Follower` of `channel`, subscribed from the start of its history; resubscribing
        from the last publication it saw, or (`replay_from_start`) from the start again."""
        stream_id = channel.partition(":")[2].partition("#")[0]

        async def snapshot() -> httpx.Response:
            return await self.http.get(f"/api/streams/{stream_id}")

        follower = Follower(snapshot, idle_seconds)
        get_state = from_start if replay_from_start else follower.last_position
        sub = self.client.new_subscription(channel, events=follower, get_state=get_state)
        await sub.subscribe()
        await sub.ready(10)
        return follower

    async def wait_until_released(self, channel: str, seconds: float = 5) -> dict[str, Any]:
        """Until the backend has let go of the stream in `channel` (its snapshot has the `done`:
        the stream's end has been recorded, after its `done` was published); the snapshot."""
        stream_id = channel.partition(":")[2].partition("#")[0]
        async with asyncio.timeout(seconds):
            while True:
                snapshot: dict[str, Any] = (await self.http.get(f"/api/streams/{stream_id}")).json()
                if snapshot.get("done"):
                    return snapshot
                await asyncio.sleep(0.01)  # the release follows the done within milliseconds

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
