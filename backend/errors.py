"""Every error a client can cause answers as JSON `{"detail": "<readable message>"}`."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger(__name__)


def _describe(error: dict[str, object]) -> str:
    location = [str(part) for part in error.get("loc", ()) if part != "body"]  # type: ignore[attr-defined]
    message = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
    if error.get("type") == "string_pattern_mismatch" and location == ["channel"]:
        message = "must look like stream:<id>#<user>, <id> being 8-64 of A-Z a-z 0-9 _ -"
    elif error.get("type") == "json_invalid":
        return "the request body is not valid JSON"
    return f"{'.'.join(location) or 'body'}: {message}"


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    detail = "; ".join(_describe(error) for error in exc.errors())
    return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(
        {"detail": "internal server error"}, status_code=status.HTTP_500_INTERNAL_SERVER_ERROR
    )


class BodySizeLimit:
    """Refuses a request whose declared body is over the limit, as JSON, before reading it.

    FastAPI's own `max_body_size` still guards bodies sent without a Content-Length.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            length = dict(scope["headers"]).get(b"content-length", b"")
            if length.isdigit() and int(length) > self.max_bytes:
                response = JSONResponse(
                    {"detail": f"the request body is over the {self.max_bytes}-byte limit"},
                    status_code=status.HTTP_413_CONTENT_TOO_LARGE,
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
