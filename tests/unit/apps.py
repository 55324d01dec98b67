"""The app as unit tests run it: real settings, routes and core, with the model and publisher
replaced through `create_app`, served in-process over httpx."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from fastapi import FastAPI

from backend.app import create_app
from backend.config import Settings
from backend.core.streams import LocalStreams
from tests.unit.fakes import RecordingPublisher, ScriptedModel

TOKEN_SECRET = "token-secret-0123456789abcdefghijklmnop"
SESSION_SECRET = "session-secret-0123456789abcdefghijklmn"


def settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "ENVIRONMENT": "production",
        "CENTRIFUGO_HTTP_API_KEY": "api-key-0123456789abcdefghijklmnopqrstu",
        "CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY": TOKEN_SECRET,
        "SESSION_SECRET": SESSION_SECRET,
        "MAX_TEXT_CHARS": 100,
        "COALESCE_WINDOW_MS": 0,
        # Answers a test leaves running end at once when its app stops (the tests of the
        # shutdown's wait for them set it).
        "SHUTDOWN_DRAIN_SECONDS": 0,
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


@dataclass
class Api:
    app: FastAPI
    client: httpx.AsyncClient
    publisher: RecordingPublisher
    model: ScriptedModel
    streams: LocalStreams

    async def user(self) -> str:
        response = await self.client.post("/api/token")
        user: str = response.json()["user"]
        return user


@asynccontextmanager
async def running_app(
    model: ScriptedModel,
    streams: LocalStreams | None = None,
    publisher: RecordingPublisher | None = None,
    /,
    **overrides: object,
) -> AsyncIterator[Api]:
    """The app started (and, at the end, shut down) with `model`, `publisher` (a new recording
    one by default) and `streams` (a new `LocalStreams` by default); its client holds a session
    (`POST /api/token`)."""
    publisher = RecordingPublisher() if publisher is None else publisher
    streams = LocalStreams() if streams is None else streams
    app = create_app(settings(**overrides), model=model, publisher=publisher, streams=streams)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            await client.post("/api/token")  # a session, as the page starts one
            yield Api(app, client, publisher, model, streams)
