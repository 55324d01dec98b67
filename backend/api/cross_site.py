"""Refuses requests that change something when a browser says another site's page sent them.

The session cookie is `SameSite=Lax`, so another site's form cannot act as the user; but it can
still POST `/api/token` in a top-level navigation, and the browser keeps the new session that
answer sets: the user's running answers are then another user's, out of reach. Browsers tell
where a request comes from in `Sec-Fetch-Site`, to HTTPS and localhost addresses only (so a
deployment over plain HTTP elsewhere is not covered: serve it over HTTPS); a request without it
(not from a browser, an old one, or plain HTTP) is let through, the cookie's SameSite still
guarding what acts for a user."""

from __future__ import annotations

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CROSS_SITE_REFUSED = (
    "requests from another site's page are refused: use the chat page, or send no "
    "Sec-Fetch-Site header (from a server)"
)


class CrossSiteRefusal:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
            for name, value in scope["headers"]:
                if name == b"sec-fetch-site":
                    if value == b"cross-site":
                        response = JSONResponse({"detail": CROSS_SITE_REFUSED}, status_code=403)
                        await response(scope, receive, send)
                        return
                    break
        await self.app(scope, receive, send)
