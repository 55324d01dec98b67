"""A small OpenAI-compatible Chat Completions server for tests: streams chunks with delays,
records every request, and misbehaves on request (the last user message picks the behaviour)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.processes import free_port

REASONING = ["The user greets me. ", "I'll greet back."]
ANSWER = ["Hi", " from", " the fake", " model.\n\n", "It **streams**", " chunks", " with delays."]
SLOW_CHUNKS = 200
# Characters that str.splitlines() (and so httpx's aiter_lines) takes for line ends, but SSE
# does not: servers that write JSON as UTF-8 send them raw inside strings.
UNICODE_ANSWER = ["Line\u2028separator", " para\u2029graph", " next\u0085line", " \u00e9\U0001f600"]


def _chunk(**delta: Any) -> str:
    return f"data: {json.dumps(_body(delta))}\n\n"


def _body(delta: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"id": "fake", "object": "chat.completion.chunk", "model": "fake"}
    body["choices"] = [{"index": 0, "delta": delta, "finish_reason": None}]
    return body


def _raw_chunk(text: str, *, split: bool = False) -> str:
    """Unescaped UTF-8; with `split`, the JSON spread over two `data:` lines of one event."""
    payload = json.dumps(_body({"content": text}), ensure_ascii=False)
    if split:
        head, _, tail = payload.partition(", ")
        return f"data: {head},\r\ndata: {tail}\r\n\r\n"
    return f"data: {payload}\n\n"


@dataclass
class FakeOpenAI:
    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    slow_sent: int = 0
    slow_stopped: threading.Event = field(default_factory=threading.Event)
    slow_stopped_at: float = 0.0  # time.monotonic() when the slow stream's client went away

    async def completions(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        prompt = body["messages"][-1]["content"]
        if prompt == "fail-401":
            return JSONResponse({"error": {"message": "Incorrect API key provided"}}, 401)
        if prompt == "fail-429":
            return JSONResponse({"error": {"message": "Rate limit reached"}}, 429)
        streams = {
            "slow": self._slow,
            "drop": self._drop,
            "unicode": self._unicode,
            "split-emoji": self._split_emoji,
        }
        stream = streams.get(prompt, self._normal)
        return StreamingResponse(stream(), media_type="text/event-stream")

    async def _normal(self) -> AsyncIterator[str]:
        yield _chunk(role="assistant")
        for text in REASONING:
            await asyncio.sleep(0.01)
            yield _chunk(reasoning_content=text)
        for text in ANSWER:
            await asyncio.sleep(0.01)
            yield _chunk(content=text)
        yield "data: [DONE]\n\n"

    async def _slow(self) -> AsyncIterator[str]:
        self.slow_sent = 0
        self.slow_stopped.clear()
        try:
            for i in range(SLOW_CHUNKS):
                await asyncio.sleep(0.05)
                self.slow_sent += 1
                yield _chunk(content=f"t{i} ")
            yield "data: [DONE]\n\n"
        finally:
            self.slow_stopped_at = time.monotonic()
            self.slow_stopped.set()  # reached by cancellation when the client goes away

    async def _unicode(self) -> AsyncIterator[str]:
        yield _chunk(role="assistant")
        for index, text in enumerate(UNICODE_ANSWER):
            await asyncio.sleep(0.01)
            yield _raw_chunk(text, split=index == 1)
        yield "data: [DONE]\n\n"

    async def _split_emoji(self) -> AsyncIterator[str]:
        """What a gateway in JavaScript sends when it cuts a string between the two UTF-16 halves
        of an emoji: each half alone, escaped, plus one half that never gets its partner."""
        for escaped in ("smile \\ud83d", "\\ude00 and \\udc00 alone"):
            await asyncio.sleep(0.01)
            body = json.dumps(_body({"content": "X"})).replace('"X"', f'"{escaped}"')
            yield f"data: {body}\n\n"
        yield "data: [DONE]\n\n"

    async def _drop(self) -> AsyncIterator[str]:
        yield _chunk(content="This answer ")
        await asyncio.sleep(0.01)
        yield _chunk(content="breaks off")
        raise RuntimeError("connection dropped")  # uvicorn aborts the unfinished response


@contextmanager
def fake_openai_server() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    app = Starlette(routes=[Route("/v1/chat/completions", fake.completions, methods=["POST"])])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the fake OpenAI server did not start")
        time.sleep(0.02)
    fake.url = f"http://127.0.0.1:{port}/v1"
    try:
        yield fake
    finally:
        server.should_exit = True
        thread.join(10)
