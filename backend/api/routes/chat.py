"""`POST /api/chat` (Server-Sent Events) and `POST /api/chat/sync` (one JSON answer): the model's
answer straight to the caller, for curl, scripts and servers that hold no Centrifugo connection."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator
from typing import Any

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from backend.answer import AnswerFailed, answer_chunks
from backend.api.deps import ModelDep, SettingsDep
from backend.api.limits import check_prompt
from backend.coalesce import Chunk
from backend.config import Settings
from backend.models.base import Model
from backend.schemas import ChatRequest, ChatResponse, ErrorResponse

router = APIRouter()

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorResponse, "description": "Blank or too long prompt or history."}
}


class EventStream(StreamingResponse):
    """A text/event-stream response that closes its generator however the response ends, so a
    client that goes away stops the model at once, not whenever the generator is collected."""

    def __init__(self, events: AsyncGenerator[str, None]) -> None:
        super().__init__(events, media_type="text/event-stream", headers=SSE_HEADERS)
        self._events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._events.aclose()


def _answer(body: ChatRequest, model: Model, settings: Settings) -> AsyncGenerator[Chunk, None]:
    check_prompt(body.prompt, body.history, settings)
    return answer_chunks(
        model,
        body.prompt,
        thinking=body.thinking,
        history=body.history,
        window=settings.coalesce_window_ms / 1000,
        max_seconds=settings.max_stream_seconds,
    )


def _event(data: object) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


async def _events(chunks: AsyncGenerator[Chunk, None]) -> AsyncGenerator[str, None]:
    async with contextlib.aclosing(chunks):
        try:
            async for chunk in chunks:
                event = {"token": chunk.text}
                if chunk.phase == "thinking":
                    event["phase"] = "thinking"
                yield _event(event)
        except AnswerFailed as exc:
            yield _event({"error": exc.message})
    yield "data: [DONE]\n\n"


@router.post(
    "/chat",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **_ERRORS},
)
async def chat(body: ChatRequest, model: ModelDep, settings: SettingsDep) -> EventStream:
    """The answer as Server-Sent Events: `data: {"token": ...}` per chunk (thinking chunks add
    `"phase": "thinking"`), `data: {"error": ...}` on failure, then `data: [DONE]`."""
    return EventStream(_events(_answer(body, model, settings)))


@router.post(
    "/chat/sync",
    responses={
        **_ERRORS,
        502: {"model": ErrorResponse, "description": "The model failed."},
        504: {"model": ErrorResponse, "description": "The answer took too long."},
    },
)
async def chat_sync(body: ChatRequest, model: ModelDep, settings: SettingsDep) -> ChatResponse:
    """The whole answer at once (the thinking phase is left out)."""
    parts: list[str] = []
    chunks = _answer(body, model, settings)
    async with contextlib.aclosing(chunks):
        try:
            parts.extend([chunk.text async for chunk in chunks if chunk.phase == "answer"])
        except AnswerFailed as exc:
            code = status.HTTP_504_GATEWAY_TIMEOUT if exc.reason == "timeout" else 502
            raise HTTPException(code, exc.message) from None
    return ChatResponse(response="".join(parts))
