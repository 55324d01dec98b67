"""Stand-ins for the ports (model, publisher), for unit tests of what sits between them."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence

from backend.core.ports import Publication, PublishError
from backend.core.types import Chunk, Done, Question, Token

WAIT_SECONDS = 5.0


class RecordingPublisher:
    """Keeps what would have been published; can fail chosen publications."""

    def __init__(
        self, fail_on: set[int] | None = None, *, failure: Exception | None = None
    ) -> None:
        self.published: list[tuple[str, Chunk | Done]] = []
        self.keys: list[str | None] = []
        self.fail_on = fail_on or set()
        self.failure = failure or PublishError("", "Centrifugo answered HTTP 500")
        self.is_ready = True
        self.calls = 0
        self._done: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self._first: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self._any = asyncio.Event()

    async def publish(
        self,
        channel: str,
        item: Chunk | Done,
        *,
        idempotency_key: str | None = None,
        stream: str = "",
    ) -> None:
        self.calls += 1
        if self.calls in self.fail_on:
            raise self.failure
        self.published.append((channel, item))
        self.keys.append(idempotency_key)
        self._first[channel].set()
        self._any.set()
        if isinstance(item, Done):
            self._done[channel].set()

    async def publish_many(self, items: Sequence[Publication]) -> list[PublishError | None]:
        """Each through `publish` in turn (so subclasses that stall or fail one see it)."""
        outcomes: list[PublishError | None] = []
        for channel, item, key, stream in items:
            try:
                await self.publish(channel, item, idempotency_key=key, stream=stream)
            except PublishError as exc:
                outcomes.append(exc)
            else:
                outcomes.append(None)
        return outcomes

    async def ready(self, *, known: bool = False) -> None:
        if not self.is_ready:
            raise PublishError("", "cannot reach Centrifugo (ConnectError)")

    def on(self, channel: str) -> list[Chunk | Done]:
        return [item for ch, item in self.published if ch == channel]

    async def wait_for_first(self, channel: str) -> None:
        await asyncio.wait_for(self._first[channel].wait(), WAIT_SECONDS)

    async def wait_for(self, channel: str, count: int) -> None:
        """Until `count` items have been published to `channel`."""
        async with asyncio.timeout(WAIT_SECONDS):
            while len(self.on(channel)) < count:
                self._any.clear()
                await self._any.wait()

    def rearm(self, channel: str) -> None:
        """The next `wait_for_done(channel)` waits for a `done` published after this."""
        self._done[channel].clear()

    async def wait_for_done(self, channel: str) -> list[Chunk | Done]:
        """Everything published to `channel`, once its `done` is out."""
        await asyncio.wait_for(self._done[channel].wait(), WAIT_SECONDS)
        return self.on(channel)


class ScriptedModel:
    """Yields fixed tokens with a delay; can fail after some tokens or never end."""

    def __init__(
        self,
        tokens: list[Token] | None = None,
        *,
        delay: float = 0.0,
        fail_after: int | None = None,
        endless: bool = False,
        failure: BaseException | None = None,
    ) -> None:
        self.failure = failure or RuntimeError("model crashed")
        self.tokens = tokens or [Token("Hello "), Token("world")]
        self.delay = delay
        self.fail_after = fail_after
        self.endless = endless
        self.started = asyncio.Event()
        self.closed = asyncio.Event()
        self.questions: list[Question] = []
        self._asked = asyncio.Event()

    async def wait_until_asked(self, times: int) -> None:
        """Until `times` questions have reached the model."""
        while len(self.questions) < times:
            self._asked.clear()
            await asyncio.wait_for(self._asked.wait(), WAIT_SECONDS)

    async def stream(self, question: Question) -> AsyncIterator[Token]:
        self.questions.append(question)
        self.started.set()
        self._asked.set()
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


class HeldModel(ScriptedModel):
    """Gives its first token, then the rest once `release` is set."""

    def __init__(self, tokens: list[Token]) -> None:
        super().__init__(tokens)
        self.release = asyncio.Event()

    async def stream(self, question: Question) -> AsyncIterator[Token]:
        self.questions.append(question)
        self.started.set()
        self._asked.set()
        yield self.tokens[0]
        await self.release.wait()
        for token in self.tokens[1:]:
            yield token
