"""The `/api` router, assembled from one router per concern."""

from __future__ import annotations

from fastapi import APIRouter

from backend.api.routes import chat, config, execute, health, streams, token

api_router = APIRouter(prefix="/api")
api_router.include_router(token.router)
api_router.include_router(execute.router)
api_router.include_router(streams.router)
api_router.include_router(chat.router)
api_router.include_router(config.router)
api_router.include_router(health.router)
