"""`POST /centrifugo/subscribe`: Centrifugo's subscribe proxy for the `stream` namespace.

Outside `/api/`, so nginx never routes it: only Centrifugo calls it, from the backend's own
network (centrifugo/config.json `channel.proxy.subscribe`). Not in the OpenAPI schema.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from pydantic import BaseModel, ConfigDict

from backend.api.address import client_address
from backend.api.deps import ServicesDep
from backend.centrifugo.subscriptions import Reply, SubscribeGate, disconnect
from backend.core.ports import StreamsUnavailable

router = APIRouter(prefix="/centrifugo", include_in_schema=False)

# A client whose subscribe request cannot be read is disconnected (4000-4499: the SDKs
# reconnect); the page never sends subscribe data.
UNREADABLE_SUBSCRIBE = 4400


class SubscribeRequest(BaseModel):
    """The fields of Centrifugo's subscribe proxy request this decision needs."""

    model_config = ConfigDict(extra="ignore")

    user: str = ""
    channel: str = ""


async def get_gate(request: Request) -> SubscribeGate:
    gate: SubscribeGate = request.app.state.subscribe_gate
    return gate


async def _read(request: Request) -> SubscribeRequest | None:
    """The fields this decision needs, or None when the body cannot be read. Centrifugo sends
    the client's own subscribe `data` in it as it is: data that Python's JSON reader refuses
    (nested over ~1,000 deep; or, read strictly, an unpaired surrogate) was a 422 before the
    budgets were asked, which the client saw as "internal server error", and a flood of such
    subscribes was never refused nor its connection closed (a review)."""
    try:
        return SubscribeRequest.model_validate(json.loads(await request.body()))
    except (ValueError, RecursionError):  # pydantic's ValidationError is a ValueError
        return None


@router.post("/subscribe")
async def subscribe(
    request: Request,
    services: ServicesDep,
    gate: Annotated[SubscribeGate, Depends(get_gate)],
    x_forwarded_for: Annotated[str | None, Header()] = None,
) -> Reply:
    """Allowed: `{"result": {}}`; refused: `{"error": {"code", "message", "temporary"}}`;
    `{"disconnect": {"code", "reason"}}` for a flood, or a request that cannot be read."""
    body = await _read(request)
    if body is None:
        return disconnect(UNREADABLE_SUBSCRIBE, "the subscribe request could not be read")

    async def known(channel: str) -> bool:
        try:
            return await services.relay.snapshot(channel) is not None
        except StreamsUnavailable:  # counted as a fresh channel rather than refused outright
            return False

    return await gate.decide(body.user, body.channel, client_address(x_forwarded_for), known)
