"""`POST /api/token`: a Centrifugo connection token for the caller."""

from __future__ import annotations

from fastapi import APIRouter

from backend.api.deps import SessionStart, SettingsDep
from backend.api.errors import CROSS_SITE
from backend.api.schemas import TokenResponse
from backend.centrifugo.tokens import connection_token

router = APIRouter()


@router.post("/token", responses=CROSS_SITE)
async def issue_token(user: SessionStart, settings: SettingsDep) -> TokenResponse:
    """A connection token for the session's user; starts the session (a signed cookie) or
    renews it."""
    ttl = settings.connection_token_ttl_seconds
    token = connection_token(user, settings.centrifugo_token_secret.get_secret_value(), ttl)
    return TokenResponse(token=token, user=user, expires_in=ttl)
