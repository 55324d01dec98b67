"""`GET /api/health` (the process is alive) and `GET /api/ready` (it takes prompts: Centrifugo
answers, and the process is not stopping)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from backend.api.deps import ServicesDep
from backend.api.schemas import ErrorResponse, HealthResponse, ReadyResponse
from backend.core.ports import PublishError

router = APIRouter()


@router.get("/health")
async def health() -> HealthResponse:
    return HealthResponse()


@router.get(
    "/ready",
    responses={
        503: {
            "model": ErrorResponse,
            "description": "Centrifugo does not answer, or the process is stopping (it lets its "
            "running answers finish, and takes no new ones).",
        }
    },
)
async def ready(services: ServicesDep) -> ReadyResponse:
    if services.capacity.closed:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "the server is stopping and takes no new prompts"
        )
    try:
        await services.publisher.ready()
    except PublishError as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, f"Centrifugo is not ready: {exc.message}"
        ) from None
    return ReadyResponse()
