"""A real Centrifugo with the project's config and the real backend, each on a free port."""

from __future__ import annotations

import secrets
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest

from tests.integration.clients import ChatSession
from tests.processes import ROOT, centrifugo_binary, clean_environment, free_port, running

ORIGIN = "http://localhost:9000"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.path):
            item.add_marker(pytest.mark.integration)


@dataclass(frozen=True)
class Stack:
    backend_url: str
    centrifugo_url: str
    api_key: str
    token_secret: str
    backend_env: dict[str, str]

    @property
    def websocket_url(self) -> str:
        return self.centrifugo_url.replace("http://", "ws://") + "/connection/websocket"


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    binary = centrifugo_binary()
    api_key, token_secret = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    centrifugo_port, backend_port = free_port(), free_port()
    shared = {
        "CENTRIFUGO_HTTP_API_KEY": api_key,
        "CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY": token_secret,
        "CENTRIFUGO_HTTP_SERVER_PORT": str(centrifugo_port),
    }
    centrifugo_env = clean_environment({**shared, "CENTRIFUGO_CLIENT_ALLOWED_ORIGINS": ORIGIN})
    backend_env = clean_environment(
        {
            **shared,
            "ENVIRONMENT": "production",
            "SESSION_SECRET": secrets.token_urlsafe(32),
            "BACKEND_PORT": str(backend_port),
            # Small but non-zero: answers arrive as many publications, as in real use.
            "SIM_TOKEN_DELAY_MIN_MS": "1",
            "SIM_TOKEN_DELAY_MAX_MS": "3",
            "COALESCE_WINDOW_MS": "5",
            "PYTHONUNBUFFERED": "1",
        }
    )
    centrifugo_url = f"http://127.0.0.1:{centrifugo_port}"
    backend_url = f"http://127.0.0.1:{backend_port}"
    config = str(ROOT / "centrifugo" / "config.json")
    with (
        running(
            "centrifugo", [binary, "--config", config], centrifugo_env, f"{centrifugo_url}/health"
        ),
        running(
            "backend", [sys.executable, "-m", "backend"], backend_env, f"{backend_url}/api/health"
        ),
    ):
        yield Stack(backend_url, centrifugo_url, api_key, token_secret, backend_env)


@contextmanager
def another_backend(stack: Stack, **settings: str) -> Iterator[str]:
    """One more backend on the same Centrifugo, with some settings changed; yields its URL."""
    port = free_port()
    env = {**stack.backend_env, **settings, "BACKEND_PORT": str(port)}
    url = f"http://127.0.0.1:{port}"
    with running("backend-extra", [sys.executable, "-m", "backend"], env, f"{url}/api/health"):
        yield url


@pytest.fixture
async def session(stack: Stack) -> AsyncIterator[ChatSession]:
    async with ChatSession.open(stack.backend_url, stack.websocket_url, ORIGIN) as chat:
        yield chat


@pytest.fixture
async def other_session(stack: Stack) -> AsyncIterator[ChatSession]:
    async with ChatSession.open(stack.backend_url, stack.websocket_url, ORIGIN) as chat:
        yield chat


@pytest.fixture
async def server_api(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """Centrifugo's server API, for checks the tests make behind the backend's back."""
    async with httpx.AsyncClient(
        base_url=f"{stack.centrifugo_url}/api", headers={"X-API-Key": stack.api_key}
    ) as client:
        yield client
