"""Dependencies the routes declare: the settings, the caller's identity and the app's services,
all set up by `create_app` (see backend/app.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Response

from backend.api.session import session_user, start_session
from backend.api.slots import DirectSlots
from backend.config import Settings
from backend.core.answer import Answerer
from backend.core.capacity import Capacity
from backend.core.ports import Publisher
from backend.core.relay import Relay


@dataclass(frozen=True)
class Services:
    """What the routes work with, built once when the app starts. At shutdown `capacity` is
    closed first (no answer starts); `stopping` is set once the running answers had their time
    to finish: direct streams end then, rather than hold the shutdown up."""

    answerer: Answerer
    relay: Relay
    publisher: Publisher
    stopping: asyncio.Event
    direct: DirectSlots
    capacity: Capacity
    # Set by a second signal while the answers are given time to finish: end them now.
    hurry: asyncio.Event


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


# The dependencies are `async def` although they never wait: FastAPI runs a plain `def`
# dependency in a worker thread, a hop per dependency per request (measured: ~4% of the
# backend's CPU in a burst of executes, issue 13).
SettingsDep = Annotated[Settings, Depends(get_settings)]
ServicesDep = Annotated[Services, Depends(get_services)]


async def current_user(request: Request, settings: SettingsDep) -> str:
    """The identity check of every route that acts for a user (401 without a session). With
    your own auth, override this and `session_start`."""
    return session_user(request, settings)


async def session_start(request: Request, response: Response, settings: SettingsDep) -> str:
    """`POST /api/token`'s identity: the session's user (its cookie renewed), or a new one."""
    return start_session(request, response, settings)


CurrentUser = Annotated[str, Depends(current_user)]
SessionStart = Annotated[str, Depends(session_start)]
