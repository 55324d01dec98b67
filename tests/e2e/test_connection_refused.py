"""The chat page when Centrifugo refuses its connection (an origin that is not allowed, as after
changing the page's port or host without allowing it): the page says so instead of spinning."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.async_api import Browser, expect

from tests.processes import free_port
from tests.stack import Edge, Stack, nginx_in_front


@pytest.fixture(scope="module")
def unlisted_edge(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    """nginx on a port whose origin is not in Centrifugo's allowed origins."""
    out = tmp_path_factory.mktemp("nginx-unlisted")
    with nginx_in_front(stack, stack.backend_url, free_port(), out) as front:
        yield front


async def test_a_refused_connection_is_explained(browser: Browser, unlisted_edge: Edge) -> None:
    context = await browser.new_context(base_url=unlisted_edge.url)
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    warnings: list[str] = []
    page.on("console", lambda m: warnings.append(m.text) if m.type == "warning" else None)
    await page.goto("/")

    # The reader is told what it means for them; the operator's setting goes to the console.
    status = page.locator("#status")
    await expect(status).to_be_visible()
    await expect(status).to_contain_text("Cannot connect to the server for live answers")
    await expect(status).not_to_contain_text("CENTRIFUGO")
    assert any(
        unlisted_edge.url in text and "CENTRIFUGO_CLIENT_ALLOWED_ORIGINS" in text
        for text in warnings
    ), warnings
    await context.close()
    # Chromium reports each refused WebSocket handshake itself; nothing else may fail.
    assert [text for text in errors if "WebSocket" not in text] == []
    assert errors, "the handshake was expected to be refused"
