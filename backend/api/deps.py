"""Dependencies the routes declare: settings, the caller's identity, the relay, the model and
the publisher."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Response

from backend.config import Settings, get_settings
from backend.identity import session_user
from backend.models.base import Model
from backend.publisher import Publisher
from backend.relay import Relay

SettingsDep = Annotated[Settings, Depends(get_settings)]


def current_user(request: Request, response: Response, settings: SettingsDep) -> str:
    """The identity check: override this one dependency to plug in your own auth."""
    return session_user(request, response, settings)


def get_relay(request: Request) -> Relay:
    relay: Relay = request.app.state.relay
    return relay


def get_model(request: Request) -> Model:
    model: Model = request.app.state.model
    return model


def get_publisher(request: Request) -> Publisher:
    publisher: Publisher = request.app.state.publisher
    return publisher


CurrentUser = Annotated[str, Depends(current_user)]
RelayDep = Annotated[Relay, Depends(get_relay)]
ModelDep = Annotated[Model, Depends(get_model)]
PublisherDep = Annotated[Publisher, Depends(get_publisher)]
