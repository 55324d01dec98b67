"""Stand-ins for the edges, for unit tests of what sits between them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from backend.models.base import Token
from backend.publisher import PublishError
from backend.schemas import Turn


class RecordingPublisher:
    """Keeps what would have been published; can fail chosen publications or stall."""

    def __init__(self, fail_on: set[int] | None = None, ready: bool = True) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []
        self.keys: list[str | None] = []
        self.fail_on = fail_on or set()
        self.ready = ready
        self.calls = 0

    async def publish(
        self, channel: str, data: dict[str, Any], *, idempotency_key: str | None = None
    ) -> None:
        self.calls += 1
        if self.calls in self.fail_on:
            raise PublishError(channel, "Centrifugo answered HTTP 500")
        self.published.append((channel, data))
        self.keys.append(idempotency_key)

    async def info(self) -> dict[str, Any]:
        if not self.ready:
            raise PublishError("", "cannot reach Centrifugo (ConnectError)")
        return {"nodes": []}

    def on(self, channel: str) -> list[dict[str, Any]]:
        return [data for ch, data in self.published if ch == channel]


class ScriptedModel:
    """Yields fixed tokens with a delay; can fail after some tokens or never end."""

    def __init__(
        self,
        tokens: list[Token] | None = None,
        *,
        delay: float = 0.0,
        fail_after: int | None = None,
        endless: bool = False,
        failure: Exception | None = None,
    ) -> None:
        self.failure = failure or RuntimeError("model crashed")
        self.tokens = tokens or [Token("Hello "), Token("world")]
        self.delay = delay
        self.fail_after = fail_after
        self.endless = endless
        self.closed = asyncio.Event()
        self.calls: list[tuple[str, bool, list[Turn]]] = []

    async def stream(
        self, prompt: str, *, thinking: bool = False, history: Sequence[Turn] = ()
    ) -> AsyncIterator[Token]:
        self.calls.append((prompt, thinking, list(history)))
        try:
            index = 0
            while self.endless or index < len(self.tokens):
                if self.fail_after is not None and index == self.fail_after:
                    raise self.failure
                await asyncio.sleep(self.delay)
                yield self.tokens[index % len(self.tokens)]
                index += 1
        finally:
            self.closed.set()
