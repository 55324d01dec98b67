"""`POST /api/execute`: start streaming an answer into the caller's channel; answer 202 at once."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from backend.api.deps import CurrentUser, RelayDep, SettingsDep
from backend.api.limits import check_prompt
from backend.relay import StreamBusy
from backend.schemas import ErrorResponse, ExecuteRequest, ExecuteResponse

router = APIRouter()


@router.post(
    "/execute",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        403: {"model": ErrorResponse, "description": "The channel belongs to another user."},
        409: {"model": ErrorResponse, "description": "The channel already has a running stream."},
        422: {"model": ErrorResponse, "description": "Malformed channel, blank or too long text."},
    },
)
async def execute(
    body: ExecuteRequest, user: CurrentUser, settings: SettingsDep, relay: RelayDep
) -> ExecuteResponse:
    check_prompt(body.text, body.history, settings)
    if body.channel_user != user:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this channel belongs to another user")
    try:
        relay.start(body.channel, body.text, thinking=body.thinking, history=body.history)
    except StreamBusy:
        raise HTTPException(
            status.HTTP_409_CONFLICT, "an answer is already streaming into this channel"
        ) from None
    return ExecuteResponse(channel=body.channel)
