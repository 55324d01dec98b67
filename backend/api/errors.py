"""Every error a client can cause answers as JSON `{"detail": "<readable message>"}`."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.api.schemas import NOT_UNICODE, ErrorResponse
from backend.centrifugo.channels import CHANNEL_HINT, STREAM_ID_HINT
from backend.config import Settings
from backend.core.ports import (
    ServerBusy,
    ServerStopping,
    StreamsRecovering,
    StreamsUnavailable,
    TooManyFromAddress,
    TooManyStreams,
)
from backend.core.unicode import is_carriable, repaired

logger = logging.getLogger(__name__)

# How long a client refused for having too many answers streaming (its user's, its address's, or
# this process's) is told to wait.
RETRY_AFTER_SECONDS = 5
_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds."}}
# The `responses` of routes that act for a user, and of routes that start answers.
NEEDS_SESSION: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "No session: call POST /api/token first."}
}
# The `responses` of routes that change something (CrossSiteRefusal, backend/api/cross_site.py).
CROSS_SITE_DESCRIPTION = "Sent from another site's page (Sec-Fetch-Site: cross-site)."
CROSS_SITE: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorResponse, "description": CROSS_SITE_DESCRIPTION}
}
# The `responses` of routes that take a body (BodyLimits refuses one over the limit, or
# compressed).
TOO_LARGE: dict[int | str, dict[str, Any]] = {
    413: {
        "model": ErrorResponse,
        "description": "The body is over the limit that MAX_TEXT_CHARS and MAX_HISTORY_CHARS "
        "allow for.",
    },
    415: {"model": ErrorResponse, "description": "The body is compressed (Content-Encoding)."},
}
TOO_MANY: dict[int | str, dict[str, Any]] = {
    429: {
        "model": ErrorResponse,
        "description": "The user already has MAX_STREAMS_PER_USER answers streaming, or the "
        "client's address MAX_STREAMS_PER_ADDRESS: nothing was started.",
        "headers": _RETRY_AFTER,
    }
}
# The 503 of a process already running MAX_RUNNING_STREAMS answers (the start of a route's own
# 503 description, which may name other reasons).
BUSY = (
    "This backend process already runs MAX_RUNNING_STREAMS answers, or is stopping (both with "
    "Retry-After): nothing was started."
)


_RETRY_AFTER_WHEN_BUSY = {
    "Retry-After": {
        "schema": {"type": "integer"},
        "description": "Seconds; sent when the process is full (MAX_RUNNING_STREAMS) or stopping "
        "only.",
    }
}


def busy_response(also: str = "") -> dict[int | str, dict[str, Any]]:
    """The `responses` entry of a route that starts answers: 503 when the process is full, and
    for `also`."""
    description = f"{BUSY} {also}".strip()
    headers = _RETRY_AFTER_WHEN_BUSY if also else _RETRY_AFTER
    return {503: {"model": ErrorResponse, "description": description, "headers": headers}}


def _retry_later(detail: str, status_code: int) -> JSONResponse:
    """A refusal of an answer that may be asked again: nothing was started."""
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    return JSONResponse({"detail": detail}, status_code=status_code, headers=headers)


async def _too_many_streams(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TooManyStreams)
    detail = (
        f"you already have {exc.limit} {'answer' if exc.limit == 1 else 'answers'} streaming, "
        "as many as one user may; "
        "wait for one to finish or stop one, then send again"
    )
    return _retry_later(detail, status.HTTP_429_TOO_MANY_REQUESTS)


async def _too_many_from_address(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TooManyFromAddress)
    detail = (
        f"{exc.limit} {'answer is' if exc.limit == 1 else 'answers are'} already streaming "
        "from your network address, as many as one address may (people behind one office "
        "network share it); wait for one to finish, then send again"
    )
    return _retry_later(detail, status.HTTP_429_TOO_MANY_REQUESTS)


# A flood of refusals is logged once this often, not once each.
BUSY_LOG_SECONDS = 10.0
_busy_logged_at = -math.inf


async def _server_busy(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServerBusy)
    global _busy_logged_at
    if time.monotonic() - _busy_logged_at >= BUSY_LOG_SECONDS:
        _busy_logged_at = time.monotonic()
        logger.warning(
            "refusing new answers (503): this process already runs %d (MAX_RUNNING_STREAMS)",
            exc.limit,
        )
    detail = (
        "the server is busy: it is running as many answers as it can right now; nothing was "
        "started, try again shortly"
    )
    return _retry_later(detail, status.HTTP_503_SERVICE_UNAVAILABLE)


async def _server_stopping(request: Request, exc: Exception) -> JSONResponse:
    """An answer asked of a process that is shutting down (letting its running answers finish,
    SHUTDOWN_DRAIN_SECONDS): another process, or this one restarted, takes it."""
    assert isinstance(exc, ServerStopping)
    detail = "the server is stopping; nothing was started, please send the prompt again"
    return _retry_later(detail, status.HTTP_503_SERVICE_UNAVAILABLE)


# The most problems a 422 lists one by one (a body can hold thousands of bad items).
MAX_PROBLEMS_LISTED = 10


def _describe(error: dict[str, object], settings: Settings) -> str:
    location = [str(part) for part in error.get("loc", ()) if part != "body"]  # type: ignore[attr-defined]
    message = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
    if error.get("type") == "too_long" and location == ["history"]:
        turns = error.get("ctx", {}).get("actual_length")  # type: ignore[attr-defined]
        return f"history has {turns} turns; the limit is {settings.max_history_turns}"
    if error.get("type") == "string_pattern_mismatch" and location == ["channel"]:
        message = CHANNEL_HINT
    elif error.get("type") == "string_pattern_mismatch" and location == ["path", "stream_id"]:
        message = STREAM_ID_HINT
    elif error.get("type") == "string_unicode":
        message = NOT_UNICODE
    elif error.get("type") == "json_invalid":
        return _json_fault(error)
    return f"{'.'.join(location) or 'body'}: {message}"


# orjson's reasons (api/json_body.py) that say more in other words.
_JSON_REASONS = {
    "depth limit exceeded": "it is nested too deeply",
    "UTF-8 byte order mark (BOM) is not supported": "it has more than one byte order mark",
}


def _json_reason(reason: str) -> str:
    if "surrogate" in reason:  # no low, an invalid high or an invalid low one: orjson's words
        return f"a string {NOT_UNICODE}"
    return _JSON_REASONS.get(reason, reason)


def _json_fault(error: dict[str, object]) -> str:
    """Why the body is not JSON and where: `NaN`, a trailing comma, a lone surrogate."""
    reason = str(error.get("ctx", {}).get("error", ""))  # type: ignore[attr-defined]
    location = error.get("loc", ())
    at = location[1] if isinstance(location, tuple) and len(location) == 2 else None
    if not reason:
        return "the request body is not valid JSON"
    where = f" at character {at + 1}" if isinstance(at, int) else ""
    return f"the request body is not valid JSON{where}: {_json_reason(reason)}"


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if _not_sent_as_json(request, errors):
        kind = request.headers.get("content-type")
        sent = f"this request's: {kind}" if kind else "this request had none"
        detail = f"body: must be JSON, sent with Content-Type: application/json ({sent})"
    else:
        settings: Settings = request.app.state.settings
        listed = [_describe(error, settings) for error in errors[:MAX_PROBLEMS_LISTED]]
        if len(errors) > MAX_PROBLEMS_LISTED:
            listed.append(f"and {len(errors) - MAX_PROBLEMS_LISTED} more problems")
        detail = "; ".join(listed)
    return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


def _not_sent_as_json(request: Request, errors: Sequence[Any]) -> bool:
    """A body FastAPI did not read as JSON (another or no Content-Type), so that the model saw
    raw bytes: "must be an object" would send the client looking in the wrong place."""
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    json_sent = kind == "application/json" or kind.endswith("+json")
    return not json_sent and any(
        tuple(error.get("loc", ())) == ("body",) and error.get("type") != "missing"
        for error in errors
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    # Answered outside every middleware (Starlette's outermost one): marked here.
    return JSONResponse(
        {"detail": "internal server error"},
        status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
        headers={"Cache-Control": "private, no-store"},
    )


class _BodyTooLarge(HTTPException):
    """An HTTPException, so that FastAPI's body parsing passes it on as the 413 it is."""

    def __init__(self, max_bytes: int) -> None:
        detail = f"the request body is over the {max_bytes}-byte limit"
        super().__init__(status.HTTP_413_CONTENT_TOO_LARGE, detail)


def _compressed(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """The first coding other than `identity` in every Content-Encoding header, every item of
    each (`gzip` then `identity` is gzip); None if there is none."""
    for name, value in headers:
        if name == b"content-encoding":
            for item in value.split(b","):
                coding = item.strip().lower()
                if coding not in (b"", b"identity"):
                    return coding
    return None


class BodyLimits:
    """Refuses a request body over the limit with a JSON 413, declared or streamed, and a
    compressed one with a JSON 415 (it was read as JSON and said to be "not UTF-8")."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"")
        if b"content-encoding" in headers:  # rare: the headers are scanned again only then
            encoding = _compressed(scope["headers"])
            has_body = length not in (b"", b"0") or b"transfer-encoding" in headers
            if encoding is not None and has_body:
                await self._refuse_encoding(scope, receive, send, encoding)
                return
        if length.isdigit() and int(length) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise _BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse_encoding(
        self, scope: Scope, receive: Receive, send: Send, encoding: bytes
    ) -> None:
        named = encoding.decode("latin-1")[:40]
        detail = f"a body with Content-Encoding {named!r} is not taken; send it uncompressed"
        response = JSONResponse(
            {"detail": detail}, status_code=status.HTTP_415_UNSUPPORTED_MEDIA_TYPE
        )
        await response(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = _BodyTooLarge(self.max_bytes)
        response = JSONResponse({"detail": error.detail}, status_code=error.status_code)
        await response(scope, receive, send)


async def _streams_unavailable(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, StreamsRecovering):
        logger.warning("the streams registry is recovering: %s", exc)
        detail = "the streams registry is being rebuilt after a restart; try again in a few seconds"
    else:
        logger.error("the streams registry cannot be reached: %s", exc)
        detail = "the streams registry cannot be reached right now; try again shortly"
    return JSONResponse({"detail": detail}, status_code=status.HTTP_503_SERVICE_UNAVAILABLE)


def _unreadable_body(cause: BaseException) -> str:
    if isinstance(cause, UnicodeDecodeError):
        return "the request body is not valid JSON (it is not UTF-8)"
    return "the request body is not valid JSON"


def _with_head(headers: Mapping[str, str]) -> dict[str, str]:
    """Starlette's 405 names the methods of the first route on the path; HEAD is a route of
    its own wherever GET is one (api/main.py), so `Allow: GET` left it out."""
    allowed = [method.strip() for method in headers.get("Allow", "").split(",") if method.strip()]
    if "GET" in allowed and "HEAD" not in allowed:
        allowed.append("HEAD")
    return {**headers, "Allow": ", ".join(allowed)}


async def _http_error(request: Request, exc: Exception) -> Response:
    """FastAPI answers a body it cannot decode (not UTF-8: api/json_body.py) with 400 "There
    was an error parsing the body", raised from the decoding error:
    here it is a 422 that says why, like every other malformed body. (Found by the schema
    fuzzer, tests/unit/test_fuzz_schema.py.)"""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == status.HTTP_400_BAD_REQUEST and exc.__cause__ is not None:
        detail = _unreadable_body(exc.__cause__)
        return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)
    if exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED and exc.headers:
        exc = StarletteHTTPException(exc.status_code, exc.detail, _with_head(exc.headers))
    if isinstance(exc.detail, str) and not is_carriable(exc.detail):
        # A detail no encoder takes (text from elsewhere in it) was a 500 instead: repaired.
        exc = StarletteHTTPException(exc.status_code, repaired(exc.detail), exc.headers)
    return await http_exception_handler(request, exc)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(TooManyStreams, _too_many_streams)
    app.add_exception_handler(TooManyFromAddress, _too_many_from_address)
    app.add_exception_handler(ServerBusy, _server_busy)
    app.add_exception_handler(ServerStopping, _server_stopping)
    app.add_exception_handler(StreamsUnavailable, _streams_unavailable)
    app.add_exception_handler(Exception, _unexpected_error)
