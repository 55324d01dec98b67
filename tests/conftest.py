"""Fixtures of the whole suite: the real servers, started once per session, and chat sessions.
The helpers behind them live in tests/stack.py and tests/clients.py."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.clients import ChatSession
from tests.stack import (
    HUMAN_SPEED,
    ORIGIN,
    Edge,
    Stack,
    another_backend,
    nginx_in_front,
    running_stack,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test is marked by its folder: `pytest -m unit`, `-m integration`, `-m e2e`."""
    for item in items:
        for marker in ("unit", "integration", "e2e"):
            if f"tests/{marker}/" in str(item.path):
                item.add_marker(marker)


def pytest_report_header() -> str:
    """Which Centrifugo the integration and browser tests run against."""
    binary = os.environ.get("CENTRIFUGO_BIN", "")
    if not binary:
        return "centrifugo: not set (CENTRIFUGO_BIN); scripts/centrifugo.sh finds or gets one"
    version = subprocess.run([binary, "version"], capture_output=True, text=True, check=False)
    return f"centrifugo: {binary}: {version.stdout.strip() or version.stderr.strip()}"


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("centrifugo")) as servers:
        yield servers


@pytest.fixture(scope="session")
def edge(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    """The chat page as `make run` serves it, with the simulated model at a human speed."""
    with (
        # Two answers at once per user, as a person could have (test_chat_page.py exceeds it).
        another_backend(
            stack, **HUMAN_SPEED, COALESCE_WINDOW_MS="30", MAX_STREAMS_PER_USER="2"
        ) as backend_url,
        nginx_in_front(
            stack, backend_url, stack.nginx_ports[0], tmp_path_factory.mktemp("nginx")
        ) as front,
    ):
        yield front


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
