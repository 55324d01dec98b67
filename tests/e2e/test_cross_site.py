"""Another site's page cannot act on the chat's session: the cookie is SameSite=Lax, and what
the backend would still do for a cross-site form (start a new session, whose cookie the browser
keeps after a top-level POST) is refused by where the browser says the request comes from."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Page

from tests.processes import free_port
from tests.stack import Edge


@pytest.fixture
def attacker(edge: Edge) -> Iterator[str]:
    """A page on another site (the other name of the loopback address) that posts a form to
    the chat's `/api/token` as soon as it loads."""
    form = (
        f'<!doctype html><form id="f" method="POST" action="{edge.url}/api/token"></form>'
        "<script>document.getElementById('f').submit()</script>"
    ).encode()

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(form)))
            self.end_headers()
            self.wfile.write(form)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", free_port()), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    other_host = "localhost" if urlsplit(edge.url).hostname == "127.0.0.1" else "127.0.0.1"
    try:
        yield f"http://{other_host}:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()


async def _user(page: Page) -> str:
    user: str = await page.evaluate(
        "async () => (await (await fetch('/api/token', {method: 'POST'})).json()).user"
    )
    return user


async def test_another_site_s_form_cannot_replace_the_session(
    page: Page, edge: Edge, attacker: str
) -> None:
    before = await _user(page)
    other = await page.context.new_page()
    async with other.expect_response(f"{edge.url}/api/token") as posted:
        await other.goto(attacker)
    refused = await posted.value
    assert refused.status == 403
    assert "another site" in (await refused.json())["detail"]
    assert "set-cookie" not in await refused.all_headers()
    await other.close()

    assert await _user(page) == before  # the session the chat page had is still the browser's
