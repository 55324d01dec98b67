"""`POST /api/execute`: start streaming an answer into the caller's channel; answer 202 at once.
`POST /api/cancel`: stop the answer streaming into the caller's channel."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status

from backend.api.address import request_address
from backend.api.deps import CurrentUser, ServicesDep, SettingsDep
from backend.api.errors import (
    CROSS_SITE_DESCRIPTION,
    NEEDS_SESSION,
    TOO_LARGE,
    TOO_MANY,
    busy_response,
)
from backend.api.json_body import JSONBodyRoute
from backend.api.limits import check_question
from backend.api.schemas import CancelRequest, ChannelResponse, ErrorResponse, ExecuteRequest
from backend.core.ports import ChannelUsed, PublishError, ServerStopping, StreamBusy

logger = logging.getLogger(__name__)
router = APIRouter(route_class=JSONBodyRoute)

# nginx answers the client 504 once a backend has not answered for 8 s (its proxy_read_timeout
# on /api/, nginx/relaychat.conf.template) and closes its connection; the page then takes the
# prompt as not sent if nothing runs. An execute this process reads after that (it was paused,
# or far behind) must not start an answer nobody follows. Whether nginx is still waiting is
# asked of the connection itself, not of the clocks (nginx's X-Request-Start and ours may
# differ, on two hosts); the header only says when it is worth asking: an execute older than
# this. Asking costs a turn of the event loop, so not every time.
LATE_AFTER_SECONDS = 1.0

_NOT_YOURS: dict[int | str, dict[str, Any]] = {
    **NEEDS_SESSION,
    **TOO_LARGE,
    403: {
        "model": ErrorResponse,
        "description": f"The channel belongs to another user; or: {CROSS_SITE_DESCRIPTION}",
    },
}


def _waited(request_start: str) -> float:
    """Seconds since nginx sent the request (`t=<seconds since the epoch>`, its `$msec`); 0
    without the header (the backend reached directly) or with one it cannot read."""
    try:
        sent = float(request_start.removeprefix("t="))
    except ValueError:
        return 0.0
    return time.time() - sent if math.isfinite(sent) else 0.0


async def _client_gone(request: Request) -> bool:
    """Whether the client (nginx) closed its connection before this request was answered. A
    request read after nginx gave up on it comes with that close, which the server hears only
    after the request's task has started: a turn of the loop first."""
    await asyncio.sleep(0)
    return await request.is_disconnected()


def _check_owner(channel_user: str, user: str) -> None:
    if channel_user != user:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this channel belongs to another user")


@router.post(
    "/execute",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        **_NOT_YOURS,
        409: {"model": ErrorResponse, "description": "The channel already has a running stream."},
        422: {"model": ErrorResponse, "description": "Malformed channel, blank or too long text."},
        **TOO_MANY,
        **busy_response(
            "Also when Centrifugo or a shared streams registry cannot be reached, or the request "
            "reached the backend after nginx had given up on it: nothing was started."
        ),
    },
)
async def execute(
    request: Request,
    body: ExecuteRequest,
    user: CurrentUser,
    settings: SettingsDep,
    services: ServicesDep,
) -> ChannelResponse:
    question = check_question(body.question(body.text), settings)
    _check_owner(body.channel_user, user)
    if services.capacity.closed:
        # Said before Centrifugo's state (down too in a whole restart): this refusal comes with
        # Retry-After, and the page sends the prompt again.
        raise ServerStopping()
    try:
        # An answer nobody could receive is refused, not accepted into the void.
        await services.publisher.ready(known=True)
    except PublishError as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"answers cannot be delivered right now ({exc.message}); try again shortly",
        ) from None
    waited = _waited(request.headers.get("x-request-start", ""))
    if waited > LATE_AFTER_SECONDS and await _client_gone(request):
        logger.warning(
            "an execute for %s was read %.1f s after nginx sent it, its client gone: refused",
            body.channel,
            waited,
        )
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "the server was too busy to take the prompt in time; nothing was started, "
            "send it again",
        )
    try:
        await services.relay.start(
            body.channel, question, owner=user, address=request_address(request)
        )
    except ChannelUsed:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "this channel already carried an answer; send the prompt on a new channel id",
        ) from None
    except StreamBusy:
        raise HTTPException(
            status.HTTP_409_CONFLICT, "an answer is already streaming into this channel"
        ) from None
    return ChannelResponse(channel=body.channel)


@router.post(
    "/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        **_NOT_YOURS,
        404: {"model": ErrorResponse, "description": "No answer is streaming there."},
        422: {"model": ErrorResponse, "description": "Malformed channel."},
        503: {
            "model": ErrorResponse,
            "description": "The shared streams registry cannot be reached.",
        },
    },
)
async def cancel(body: CancelRequest, user: CurrentUser, services: ServicesDep) -> ChannelResponse:
    """The answer streaming into `channel` ends with `done` reason `cancelled`; its model
    request is closed. Answers at once, before the `done` is out."""
    _check_owner(body.channel_user, user)
    if not await services.relay.stop(body.channel):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no answer is streaming into this channel")
    return ChannelResponse(channel=body.channel)
