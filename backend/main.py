"""Builds the FastAPI app: settings, the shared HTTP client, the relay and the routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from backend.api.main import api_router
from backend.config import Settings, get_settings
from backend.errors import BodySizeLimit, install_error_handlers
from backend.models.base import Model
from backend.models.openai_compatible import OpenAICompatibleModel
from backend.models.simulated import SimulatedModel
from backend.publisher import CentrifugoPublisher
from backend.relay import Relay


def build_model(settings: Settings, client: httpx.AsyncClient) -> Model:
    """The model `LLM_PROVIDER` names."""
    if settings.llm_provider == "openai":
        return OpenAICompatibleModel(
            client,
            base_url=settings.openai_base_url,
            model=settings.openai_model,
            api_key=settings.openai_api_key.get_secret_value(),
            system_prompt=settings.system_prompt,
            timeout_seconds=settings.openai_timeout_seconds,
        )
    return SimulatedModel(settings.sim_delay_min_ms, settings.sim_delay_max_ms)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One client for the whole process: its connection pool is what keeps publishing
        # cheap; a client per token would pay a TCP handshake per publication.
        timeout = httpx.Timeout(settings.publish_timeout_seconds)
        # Publishing needs one connection at a time (see publisher.py); each streaming answer
        # from an OpenAI-compatible server holds one for as long as it lasts.
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=100)
        async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
            publisher = CentrifugoPublisher(
                client,
                settings.centrifugo_api_url,
                settings.centrifugo_api_key.get_secret_value(),
                attempts=settings.publish_attempts,
            )
            model = build_model(settings, client)
            relay = Relay(
                model,
                publisher,
                coalesce_window=settings.coalesce_window_ms / 1000,
                max_stream_seconds=settings.max_stream_seconds,
            )
            app.state.publisher = publisher
            app.state.relay = relay
            app.state.model = model
            yield
            await relay.shutdown(settings.shutdown_grace_seconds)
            await publisher.aclose()

    # Room for the longest prompt and history as JSON (a character takes up to 6 bytes as a
    # \uXXXX escape) plus the structure around them: anything larger is refused unread.
    max_body = (settings.max_text_chars + settings.max_history_chars) * 6 + 16 * 1024
    app = FastAPI(
        title="relaychat",
        lifespan=lifespan,
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
    )
    app.add_middleware(BodySizeLimit, max_bytes=max_body)
    app.dependency_overrides[get_settings] = lambda: settings
    install_error_handlers(app)
    app.include_router(api_router)
    return app
