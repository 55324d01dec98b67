"""`POST /centrifugo/subscribe`: Centrifugo's subscribe proxy for the `stream` namespace.

Outside `/api/`, so nginx never routes it: only Centrifugo calls it, from the backend's own
network (centrifugo/config.json `channel.proxy.subscribe`). Not in the OpenAPI schema.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from pydantic import BaseModel, ConfigDict

from backend.api.address import client_address
from backend.api.deps import ServicesDep
from backend.centrifugo.subscriptions import Reply, SubscribeGate
from backend.core.ports import StreamsUnavailable

# FastAPI's own body reading, not JSONBodyRoute's: Centrifugo sends the client's subscribe
# `data` in the body as it is, and a value strict JSON refuses (an unpaired surrogate) was a 422
# before the budgets were asked, so a flood of them was never refused (a review).
router = APIRouter(prefix="/centrifugo", include_in_schema=False)


class SubscribeRequest(BaseModel):
    """The fields of Centrifugo's subscribe proxy request this decision needs."""

    model_config = ConfigDict(extra="ignore")

    user: str = ""
    channel: str = ""


async def get_gate(request: Request) -> SubscribeGate:
    gate: SubscribeGate = request.app.state.subscribe_gate
    return gate


@router.post("/subscribe")
async def subscribe(
    body: SubscribeRequest,
    services: ServicesDep,
    gate: Annotated[SubscribeGate, Depends(get_gate)],
    x_forwarded_for: Annotated[str | None, Header()] = None,
) -> Reply:
    """Allowed: `{"result": {}}`; refused: `{"error": {"code", "message", "temporary"}}`."""

    async def known(channel: str) -> bool:
        try:
            return await services.relay.snapshot(channel) is not None
        except StreamsUnavailable:  # counted as a fresh channel rather than refused outright
            return False

    return await gate.decide(body.user, body.channel, client_address(x_forwarded_for), known)
