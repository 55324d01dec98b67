"""`GET /api/streams/{id}`: the caller's answer in `stream:<id>#<user>` so far, to resume from
when the channel's history cannot fill a gap (docs/protocol.md, "Resuming")."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status

from backend.api.deps import CurrentUser, ServicesDep
from backend.api.errors import NEEDS_SESSION
from backend.api.schemas import DoneBody, ErrorResponse, StreamSnapshot
from backend.centrifugo.channels import CHANNEL_ID_PATTERN, stream_channel

router = APIRouter()

StreamId = Annotated[str, Path(pattern=f"^{CHANNEL_ID_PATTERN}$")]


@router.get(
    "/streams/{stream_id}",
    responses={
        **NEEDS_SESSION,
        404: {"model": ErrorResponse, "description": "No answer ran there lately."},
        422: {"model": ErrorResponse, "description": "Malformed id."},
        503: {
            "model": ErrorResponse,
            "description": "The shared streams registry cannot be reached, or is being rebuilt "
            "after a restart: ask again.",
        },
    },
)
async def stream_snapshot(
    stream_id: StreamId, user: CurrentUser, services: ServicesDep
) -> StreamSnapshot:
    """Its chunks 1..`seq` joined by phase, and its `done` once it ended. Only the caller's own
    channel is looked at: another user's id is simply not found."""
    snapshot = await services.relay.snapshot(stream_channel(stream_id, user))
    if snapshot is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            "no answer is known for this stream: it never started here, or it ended more than "
            "2 minutes ago, or the server answering it stopped",
        )
    done = snapshot.done
    return StreamSnapshot(
        text=snapshot.text,
        thinking=snapshot.thinking,
        seq=snapshot.seq,
        done=None if done is None else DoneBody(reason=done.reason, error=done.error),
    )
