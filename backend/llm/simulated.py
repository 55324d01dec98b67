"""The default model: canned answers about relaychat, streamed word by word, no key, no network."""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable

from backend.core.types import Question, Token

GREETING = (
    "Hello! I'm the simulated model behind relaychat. Every word you see arrives through "
    "Centrifugo, one publication at a time, on a channel only you can read.\n\n"
    "Try asking me to **explain** the relay, how **streaming** works, or for some **code**."
)

EXPLAIN = (
    "Here is how relaychat moves an answer from the model to your screen:\n\n"
    "1. Your browser asks the backend for a connection token (`POST /api/token`) and connects "
    "to Centrifugo over WebSocket.\n"
    "2. It subscribes to a channel of its own, `stream:<id>#<user>`. The `#<user>` part names "
    "its owner: Centrifugo asks the backend, which lets only the connection whose token names "
    "that user subscribe.\n"
    "3. It posts the prompt to `POST /api/execute`. The backend answers `202` at once and "
    "generates the answer in the background.\n"
    "4. The backend publishes the answer through Centrifugo's server API, in order, and ends "
    "with exactly one `done` publication.\n\n"
    "Because the channel keeps its history, a reload or a dropped connection recovers "
    "whatever was missed."
)

STREAMING = (
    "Token streaming means you read the answer while it is still being written.\n\n"
    "A model produces text a token at a time. Instead of waiting for the last one, the "
    "backend forwards tokens as they come. Tokens that arrive within a few milliseconds of "
    "each other are coalesced into one publication, so a long answer stays well inside the "
    "channel's history and every publication is worth sending.\n\n"
    'Each chunk looks like `{"text": "...", "done": false}`; the last one is '
    '`{"text": "", "done": true, "reason": "complete"}`. Join the chunks and you '
    "have the whole answer, every space and newline included."
)

CODE = (
    "Here is how a page subscribes to its stream with centrifuge-js:\n\n"
    "```javascript\n"
    "import { Centrifuge } from 'centrifuge';\n"
    "\n"
    "const getToken = async () => {\n"
    "  const res = await fetch('/api/token', { method: 'POST' });\n"
    "  return (await res.json()).token;\n"
    "};\n"
    "\n"
    "const centrifuge = new Centrifuge('ws://localhost:9000/connection/websocket', { getToken });\n"
    "const sub = centrifuge.newSubscription(channel, { since: { offset: 0, epoch: '' } });\n"
    "\n"
    "sub.on('publication', (ctx) => {\n"
    "  if (ctx.data.done) {\n"
    "    sub.unsubscribe();\n"
    "    centrifuge.removeSubscription(sub);\n"
    "    return;\n"
    "  }\n"
    "  answer.textContent += ctx.data.text;\n"
    "});\n"
    "\n"
    "sub.subscribe();\n"
    "centrifuge.connect();\n"
    "```\n\n"
    "Subscribe first, then `POST /api/execute`: with `since` the subscription replays the "
    "channel from its start, so not even the first token can be missed."
)

DEFAULT = (
    "I'm a simulated model, so I only know a little: ask me to say **hello**, to **explain** "
    "how relaychat relays an answer, how **streaming** works, or to show some **code**. "
    "Point `LLM_PROVIDER` at a real model for real answers."
)

THINKING = (
    "The user wrote a prompt; let me find the topic it asks about. "
    "I'll look for a keyword I know as a whole word. "
    "Then I'll stream the matching answer, keeping every space and newline."
)

# Order decides between several keywords in one prompt: the most specific topic wins.
_TOPICS: tuple[tuple[frozenset[str], str], ...] = (
    (frozenset({"code"}), CODE),
    (frozenset({"streaming"}), STREAMING),
    (frozenset({"explain"}), EXPLAIN),
    (frozenset({"hello", "hi", "hey", "greetings"}), GREETING),
)
_WORD = re.compile(r"[a-z]+")
_TOKEN = re.compile(r"\s+|\S+\s*")


def answer_for(prompt: str) -> str:
    """The whole answer the simulated model gives to `prompt`."""
    words = set(_WORD.findall(prompt.lower()))
    for keywords, answer in _TOPICS:
        if words & keywords:
            return answer
    return DEFAULT


def tokenize(text: str) -> list[str]:
    """Words with the whitespace that follows them; joined they give `text` back exactly."""
    return _TOKEN.findall(text)


class SimulatedModel:
    """The `Model` port with canned answers: no key, no network. It keeps its own pace, as a
    model server does: token i is due at the start plus the sum of i random delays, however
    long its reader takes between tokens (a reader that falls behind gets the tokens that are
    due at once, as from a server whose tokens waited in the connection's buffer)."""

    def __init__(
        self,
        delay_min_ms: float = 30.0,
        delay_max_ms: float = 80.0,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._delay_range = (delay_min_ms / 1000, delay_max_ms / 1000)
        self._sleep = sleep
        self._clock = clock  # None: the running loop's

    async def stream(self, question: Question) -> AsyncIterator[Token]:
        # The history is ignored: the canned answers depend on the prompt alone.
        clock = self._clock or asyncio.get_running_loop().time
        pace = _Pace(clock, self._delay_range, self._sleep)
        if question.thinking:
            for text in tokenize(THINKING):
                await pace.next()
                yield Token(text, "thinking")
        for text in tokenize(answer_for(question.prompt)):
            await pace.next()
            yield Token(text)


class _Pace:
    def __init__(
        self,
        clock: Callable[[], float],
        delay_range: tuple[float, float],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self._clock = clock
        self._low, self._high = delay_range
        self._sleep = sleep
        self._due = clock()

    async def next(self) -> None:
        """Until the next token is due. Even when it is due already (or the delay is zero),
        yield to the loop, so that one stream cannot starve the others."""
        if self._high > 0:
            self._due += random.uniform(self._low, self._high)
        await self._sleep(max(0.0, self._due - self._clock()))
