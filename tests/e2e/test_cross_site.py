"""Another site's page cannot act on the chat's session: the cookie is SameSite=Lax, and what
the backend would still do for a cross-site form (start a new session, whose cookie the browser
keeps after a top-level POST) is refused by where the browser says the request comes from: in
`Sec-Fetch-Site` (HTTPS and localhost), or in `Origin` (plain HTTP elsewhere)."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, Page

from tests.browser import CHROMIUM, CHROMIUM_ARGS
from tests.processes import free_port
from tests.stack import Edge


@contextmanager
def posting_page(target: str, host: str) -> Iterator[str]:
    """A page served on `host` (another site) that posts a form to `target` as soon as it
    loads; yields its address."""
    form = (
        f'<!doctype html><form id="f" method="POST" action="{target}"></form>'
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
    try:
        yield f"http://{host}:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def attacker(edge: Edge) -> Iterator[str]:
    """A page on another site (the other name of the loopback address) that posts a form to
    the chat's `/api/token` as soon as it loads."""
    other_host = "localhost" if urlsplit(edge.url).hostname == "127.0.0.1" else "127.0.0.1"
    with posting_page(f"{edge.url}/api/token", other_host) as address:
        yield address


# Names that resolve to loopback in the browser below only: plain HTTP to a name that is not
# localhost, where browsers send no Sec-Fetch-* headers (a deployment with NGINX_HOST=0.0.0.0).
CHAT_HOST = "chat.test"
EVIL_HOST = "evil.test"


@pytest.fixture
async def named_browser(browser: Browser) -> AsyncIterator[Browser]:
    rules = f"--host-resolver-rules=MAP {CHAT_HOST} 127.0.0.1, MAP {EVIL_HOST} 127.0.0.1"
    named = await browser.browser_type.launch(
        executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, rules]
    )
    yield named
    await named.close()


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


async def test_over_plain_http_another_site_s_form_is_refused_by_its_origin(
    named_browser: Browser, edge: Edge
) -> None:
    """An outside-in probe: over plain HTTP to a name other than localhost the browser sends no
    Sec-Fetch-Site, and another site's form replaced the session. Its Origin says where it
    comes from; the chat page's own requests (Origin: the chat's) still pass."""
    chat = f"http://{CHAT_HOST}:{urlsplit(edge.url).port}"
    page = await (await named_browser.new_context()).new_page()
    await page.goto(f"{chat}/api/health")
    before = await _user(page)
    with posting_page(f"{chat}/api/token", EVIL_HOST) as attacker_page:
        async with (
            page.expect_request(f"{chat}/api/token") as sent,
            page.expect_response(f"{chat}/api/token") as posted,
        ):
            await page.goto(attacker_page)
    forged = await (await sent.value).all_headers()
    assert "sec-fetch-site" not in forged  # the case at hand: only the Origin tells
    assert urlsplit(forged["origin"]).hostname == EVIL_HOST
    refused = await posted.value
    assert refused.status == 403
    assert "another site" in (await refused.json())["detail"]
    assert "set-cookie" not in await refused.all_headers()

    await page.goto(f"{chat}/api/health")
    assert await _user(page) == before  # the page's own POST passes, and the session is kept
    await page.context.close()
