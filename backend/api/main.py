"""The `/api` router, assembled from one router per concern."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.routing import APIRoute

from backend.api.routes import chat, config, execute, health, streams, token


def _head_wherever_get(router: APIRouter) -> None:
    """HEAD answers wherever GET does, with the GET's status and headers and no body (RFC 9110
    9.3.2; an uptime check's `curl -I` got 405: an outside-in probe). Not in the schema: the
    same operation."""
    for route in list(router.routes):
        if isinstance(route, APIRoute) and "GET" in (route.methods or ()):
            router.add_api_route(
                route.path,
                route.endpoint,
                methods=["HEAD"],
                response_model=route.response_model,
                status_code=route.status_code,
                include_in_schema=False,
                name=f"{route.name}_head",
            )


api_router = APIRouter(prefix="/api")
for concern in (token, execute, streams, chat, config, health):
    _head_wherever_get(concern.router)
    api_router.include_router(concern.router)
