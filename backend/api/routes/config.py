"""`GET /api/config`: the limits a client must respect, so that the page copies none of them."""

from __future__ import annotations

from fastapi import APIRouter

from backend.api.deps import SettingsDep
from backend.api.schemas import ClientConfig

router = APIRouter()


@router.get("/config")
async def client_config(settings: SettingsDep) -> ClientConfig:
    return ClientConfig(
        max_text_chars=settings.max_text_chars,
        max_history_turns=settings.max_history_turns,
        max_history_chars=settings.max_history_chars,
    )
