"""Dependencies the routes declare: the settings, the caller's identity and the app's services,
all set up by `create_app` (see backend/app.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Response

from backend.api.session import session_user
from backend.config import Settings
from backend.core.answer import Answerer
from backend.core.ports import Publisher
from backend.core.relay import Relay


@dataclass(frozen=True)
class Services:
    """What the routes work with, built once when the app starts. `stopping` is set when the
    server begins to shut down: direct streams end then, rather than hold the shutdown up."""

    answerer: Answerer
    relay: Relay
    publisher: Publisher
    stopping: asyncio.Event


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


SettingsDep = Annotated[Settings, Depends(get_settings)]
ServicesDep = Annotated[Services, Depends(get_services)]


def current_user(request: Request, response: Response, settings: SettingsDep) -> str:
    """The identity check: override this one dependency to plug in your own auth."""
    return session_user(request, response, settings)


CurrentUser = Annotated[str, Depends(current_user)]
