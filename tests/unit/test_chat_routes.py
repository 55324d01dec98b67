"""`/api/chat` (SSE) and `/api/chat/sync` with the model replaced; history and limits on every
prompt endpoint."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from backend.main import create_app
from backend.models.base import ModelError, Token
from backend.relay import Relay
from backend.schemas import Turn
from tests.unit.fakes import RecordingPublisher, ScriptedModel
from tests.unit.test_routes import settings

TOKENS = [Token("Let me ", "thinking"), Token("think. ", "thinking"), Token("Hello "), Token("you")]


@pytest.fixture
async def app() -> AsyncIterator[FastAPI]:
    limits = {"MAX_TEXT_CHARS": 100, "MAX_HISTORY_TURNS": 3, "MAX_HISTORY_CHARS": 50}
    app = create_app(settings(COALESCE_WINDOW_MS=0, **limits))
    async with app.router.lifespan_context(app):
        use_model(app, ScriptedModel(TOKENS))
        yield app
        await app.state.relay.shutdown(1)


def use_model(app: FastAPI, model: ScriptedModel) -> ScriptedModel:
    app.state.model = model
    app.state.relay = Relay(model, RecordingPublisher(), coalesce_window=0, max_stream_seconds=5)
    return model


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


def events(body: str) -> list[Any]:
    """Parse an SSE body strictly: every line is empty or `data: `."""
    parsed: list[Any] = []
    for line in body.split("\n"):
        assert line == "" or line.startswith("data: "), f"not SSE: {line!r}"
        if line:
            payload = line.removeprefix("data: ")
            parsed.append(payload if payload == "[DONE]" else json.loads(payload))
    return parsed


async def test_chat_streams_tokens_then_done(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/chat", json={"prompt": "hi", "thinking": True})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert response.text.endswith("data: [DONE]\n\n")
    assert events(response.text) == [
        {"token": "Let me ", "phase": "thinking"},
        {"token": "think. ", "phase": "thinking"},
        {"token": "Hello "},
        {"token": "you"},
        "[DONE]",
    ]


async def test_chat_failure_is_an_error_event_before_done(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    failure = ModelError("the model server is rate limiting (HTTP 429)")
    use_model(app, ScriptedModel(TOKENS, fail_after=3, failure=failure))
    response = await client.post("/api/chat", json={"prompt": "hi"})
    assert response.status_code == 200
    assert events(response.text)[-2:] == [
        {"error": "the model server is rate limiting (HTTP 429)"},
        "[DONE]",
    ]


async def test_sync_gives_the_whole_answer_without_thinking(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/chat/sync", json={"prompt": "hi", "thinking": True})
    assert response.status_code == 200
    assert response.json() == {"response": "Hello you"}


async def test_sync_failure_is_502_with_the_message(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    use_model(app, ScriptedModel(TOKENS, fail_after=1, failure=ModelError("upstream broke")))
    response = await client.post("/api/chat/sync", json={"prompt": "hi"})
    assert response.status_code == 502
    assert response.json() == {"detail": "upstream broke"}


HISTORY = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]


async def test_history_reaches_the_model_in_order(app: FastAPI, client: httpx.AsyncClient) -> None:
    model = use_model(app, ScriptedModel(TOKENS))
    await client.post("/api/chat/sync", json={"prompt": "and now?", "history": HISTORY})
    user = (await client.post("/api/token")).json()["user"]
    body = {"text": "again?", "channel": f"stream:abcdefgh#{user}", "history": HISTORY}
    assert (await client.post("/api/execute", json=body)).status_code == 202
    await asyncio.sleep(0.05)
    turns = [Turn(role="user", content="Hi"), Turn(role="assistant", content="Hello!")]
    assert model.calls == [("and now?", False, turns), ("again?", False, turns)]


LIMITS = [
    ({"prompt": " "}, "prompt: is blank"),
    ({"prompt": "x" * 101}, "the limit is 100"),
    (
        {"prompt": "hi", "history": [{"role": "user", "content": "a"}] * 4},
        "4 turns; the limit is 3",
    ),
    ({"prompt": "hi", "history": [{"role": "user", "content": "a" * 51}]}, "the limit is 50"),
    ({"prompt": "hi", "history": [{"role": "system", "content": "a"}]}, "history.0.role"),
    ({"prompt": "hi", "history": "nope"}, "history:"),
    ({}, "prompt: Field required"),
]


@pytest.mark.parametrize("path", ["/api/chat", "/api/chat/sync", "/api/execute"])
@pytest.mark.parametrize(("body", "message"), LIMITS)
async def test_every_prompt_endpoint_applies_the_same_limits(
    app: FastAPI, client: httpx.AsyncClient, path: str, body: dict[str, Any], message: str
) -> None:
    model = use_model(app, ScriptedModel(TOKENS))
    if path == "/api/execute":
        user = (await client.post("/api/token")).json()["user"]
        body = {"channel": f"stream:abcdefgh#{user}", **body}
        if "prompt" in body:
            body["text"] = body.pop("prompt")
        message = message.replace("prompt:", "text:")
    response = await client.post(path, json=body)
    assert response.status_code == 422
    assert message in response.json()["detail"]
    assert model.calls == []


async def test_client_going_away_stops_the_model(app: FastAPI) -> None:
    """Raw ASGI, as uvicorn drives it: the client disconnects after the first event."""
    model = use_model(app, ScriptedModel(TOKENS, endless=True, delay=0.01))
    body = json.dumps({"prompt": "hi"}).encode()
    first_event = asyncio.Event()
    sent: list[MutableMapping[str, Any]] = []
    requests = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if requests:
            return requests.pop()
        await first_event.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and message.get("body"):
            first_event.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/chat",
        "raw_path": b"/api/chat",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"host", b"test")],
        "client": ("127.0.0.1", 1),
        "server": ("test", 80),
        "state": {},
    }
    await asyncio.wait_for(app(scope, receive, send), 5)
    await asyncio.wait_for(model.closed.wait(), 1)
    bodies = [m for m in sent if m["type"] == "http.response.body" and m.get("body")]
    assert 1 <= len(bodies) < 50  # it stopped long before an endless model would
