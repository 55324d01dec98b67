"""`POST /api/chat` (Server-Sent Events) and `POST /api/chat/sync` (one JSON answer): the model's
answer straight to the caller, for curl, scripts and servers that hold no Centrifugo connection.
What happens when a client leaves: docs/architecture.md, "A client leaves /api/chat"."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from backend.api.address import request_address
from backend.api.deps import CurrentUser, ServicesDep, SettingsDep
from backend.api.errors import (
    CROSS_SITE,
    NEEDS_SESSION,
    RETRY_AFTER_SECONDS,
    TOO_LARGE,
    TOO_MANY,
    busy_response,
)
from backend.api.json_body import JSONBodyRoute
from backend.api.limits import check_question
from backend.api.schemas import ChatRequest, ChatResponse, ErrorResponse
from backend.core.answer import AnswerFailed
from backend.core.types import Chunk, Question

router = APIRouter(route_class=JSONBodyRoute)

SSE_HEADERS = {"Cache-Control": "private, no-store", "X-Accel-Buffering": "no"}
KEEPALIVE = ": keep-alive\n\n"
_ERRORS: dict[int | str, dict[str, Any]] = {
    **NEEDS_SESSION,
    **CROSS_SITE,
    **TOO_LARGE,
    422: {"model": ErrorResponse, "description": "Blank or too long prompt or history."},
    **TOO_MANY,
}


class EventStream(StreamingResponse):
    """A text/event-stream response that closes its generator however the response ends, so a
    client that goes away stops the model at once, not whenever the generator is collected.

    (FastAPI's own `EventSourceResponse` sends keep-alives every 15 s, a private constant; here
    the interval is a setting, and the generator's closing is explicit.)"""

    def __init__(
        self, events: AsyncGenerator[str, None], on_close: Callable[[], None] = lambda: None
    ) -> None:
        super().__init__(events, media_type="text/event-stream", headers=SSE_HEADERS)
        self._events = events
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            try:
                await self._events.aclose()
            finally:
                self._on_close()


async def checked_question(body: ChatRequest, settings: SettingsDep) -> Question:
    """The request's question, checked against the limits before any response starts."""
    return check_question(body.question(body.prompt), settings)


CheckedQuestion = Annotated[Question, Depends(checked_question)]


# Valid raw in JSON and in SSE, but clients that split lines like str.splitlines() (as httpx's
# aiter_lines does) would cut an event there: sent escaped, which means the same in JSON.
_LINE_BREAKS_OUTSIDE_SSE = str.maketrans(
    {"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"}
)


def _event(data: object) -> str:
    text = json.dumps(data, ensure_ascii=False).translate(_LINE_BREAKS_OUTSIDE_SSE)
    return f"data: {text}\n\n"


STOPPING = "the server is stopping; please send the prompt again"
# How long a cancelled read of the answer may take to finish (a model client closing its
# HTTP response); a model that takes longer is a bug, and its error is logged.
SETTLE_SECONDS = 5.0


async def _with_keepalives(
    chunks: AsyncIterator[Chunk], every: float, stopping: asyncio.Event
) -> AsyncGenerator[Chunk | None, None]:
    """`chunks`, with a None whenever the model stays silent for `every` seconds. The wait for
    the next chunk is never cancelled by the keep-alive timer (that would end the model). When
    the server starts to stop, the answer fails with a readable message."""
    stop: asyncio.Future[Any] = asyncio.ensure_future(stopping.wait())
    try:
        while True:
            next_chunk: asyncio.Future[Any] = asyncio.ensure_future(anext(chunks))
            try:
                while True:
                    ready, _ = await asyncio.wait(
                        {next_chunk, stop}, timeout=every, return_when=asyncio.FIRST_COMPLETED
                    )
                    if next_chunk in ready:
                        break
                    if stop in ready:
                        raise AnswerFailed("error", STOPPING)
                    yield None
                chunk: Chunk = next_chunk.result()
            except StopAsyncIteration:
                return
            finally:
                if not next_chunk.done():
                    next_chunk.cancel()
                    await _settled(next_chunk)
                if next_chunk.done() and not next_chunk.cancelled():
                    # Read, however it ended: it may have ended (the answer over, or failed)
                    # just as the client left, and an exception never read is logged at ERROR
                    # when the task is collected (a soak probe: one in ~2,500 answers).
                    next_chunk.exception()
            yield chunk
    finally:
        stop.cancel()


async def _settled(task: asyncio.Future[Any]) -> None:
    """Until `task` has finished (at most SETTLE_SECONDS): the answer's stream may be closed
    only once the task reading it is done. Shielded: when a client leaves, Starlette's cancel
    scope cancels the response again on every turn of the loop, and an unshielded wait ended at
    once, leaving the stream "already running" when it was closed (an error for every tab
    closed mid-answer)."""
    with anyio.move_on_after(SETTLE_SECONDS, shield=True):
        await asyncio.wait({task})


async def _events(
    chunks: AsyncGenerator[Chunk, None], keepalive: float, stopping: asyncio.Event
) -> AsyncGenerator[str]:
    # Closed innermost first: the keep-alive wrapper lets go of the answer before it is closed.
    async with (
        contextlib.aclosing(chunks),
        contextlib.aclosing(_with_keepalives(chunks, keepalive, stopping)) as beats,
    ):
        try:
            async for chunk in beats:
                if chunk is None:
                    yield KEEPALIVE
                    continue
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
    responses={200: {"content": {"text/event-stream": {}}}, **_ERRORS, **busy_response()},
)
async def chat(
    request: Request,
    question: CheckedQuestion,
    user: CurrentUser,
    services: ServicesDep,
    settings: SettingsDep,
) -> EventStream:
    """The answer as Server-Sent Events: `data: {"token": ...}` per chunk (thinking chunks add
    `"phase": "thinking"`), `data: {"error": ...}` on failure, then `data: [DONE]`; a
    `: keep-alive` comment while the model is silent."""
    release = services.direct.take(user, request_address(request))
    chunks = services.answerer.chunks(question)
    events = _events(chunks, settings.sse_keepalive_seconds, services.stopping)
    return EventStream(events, on_close=release)


@router.post(
    "/chat/sync",
    responses={
        **_ERRORS,
        **busy_response("Also when the server starts to stop before the answer is complete."),
        502: {"model": ErrorResponse, "description": "The model failed."},
        504: {"model": ErrorResponse, "description": "The answer took too long."},
    },
)
async def chat_sync(
    question: CheckedQuestion, user: CurrentUser, services: ServicesDep, request: Request
) -> ChatResponse:
    """The whole answer at once (the thinking phase is left out). A client that leaves stops
    the answer and frees its place at once, as on `/api/chat` (it went on to the end, for
    nobody, and the user's retries got 429 meanwhile: an outside-in probe); so does the server
    starting to stop (503), as `/api/chat` ends with an error event then."""
    release = services.direct.take(user, request_address(request))
    chunks = services.answerer.chunks(question)
    try:
        async with contextlib.aclosing(chunks):
            answer = asyncio.ensure_future(_answer_text(chunks))
            gone = asyncio.ensure_future(_until_client_leaves(request.receive))
            stopping = asyncio.ensure_future(services.stopping.wait())
            try:
                await asyncio.wait({answer, gone, stopping}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                left = gone.done()
                gone.cancel()
                stopping.cancel()
                if not answer.done():
                    answer.cancel()
                    await _settled(answer)  # before the answer's stream is closed
            if answer.cancelled():
                if left:
                    raise HTTPException(CLIENT_GONE, "the client went away before the answer")
                # Sent again (the page, a client honouring Retry-After), it goes to another
                # process, or to this one restarted: as the refusal of a new prompt says.
                raise HTTPException(
                    status.HTTP_503_SERVICE_UNAVAILABLE,
                    STOPPING,
                    headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
                )
            try:
                text = answer.result()
            except AnswerFailed as exc:
                code = status.HTTP_504_GATEWAY_TIMEOUT if exc.reason == "timeout" else 502
                raise HTTPException(code, exc.message) from None
    finally:
        release()
    return ChatResponse(response=text)


# nginx's code for a request whose client closed the connection: nobody reads the response
# (uvicorn writes no access line for it; the request metrics count it among the 4xx).
CLIENT_GONE = 499


async def _answer_text(chunks: AsyncIterator[Chunk]) -> str:
    return "".join([chunk.text async for chunk in chunks if chunk.phase == "answer"])


async def _until_client_leaves(receive: Receive) -> None:
    """Returns when the client has closed its connection (the body has been read: what is
    left to receive is the disconnect)."""
    while (await receive())["type"] != "http.disconnect":
        pass
