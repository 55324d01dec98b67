"""Refuses requests that change something when a browser says another site's page sent them.

The session cookie is `SameSite=Lax`, so another site's form cannot act as the user; but it can
still POST `/api/token` in a top-level navigation, and the browser keeps the new session that
answer sets: the user's running answers are then another user's, out of reach. Browsers tell
where a request comes from in `Sec-Fetch-Site`, to HTTPS and localhost addresses only; over
plain HTTP elsewhere they send none, and the request's `Origin` decides instead: refused unless
it names the host the request was sent to (`Host`, or `X-Forwarded-Host` from a proxy in front
that rewrites it), whatever the port, as `Sec-Fetch-Site` counts a site, or is one of the
page's origins Centrifugo is told to allow, written out (CENTRIFUGO_CLIENT_ALLOWED_ORIGINS:
behind a proxy that rewrites `Host` and says nothing of it, the page's own origin, which its
WebSocket needs there anyway; its globs are not taken). `null` never passes. An outside-in
probe: a form on another site replaced the session of a page served over plain HTTP. A request
with neither header (not from a browser) is let through, the cookie's SameSite still guarding
what acts for a user."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CROSS_SITE_REFUSED = (
    "requests from another site's page are refused: use the chat page, or send no "
    "Sec-Fetch-Site or Origin header (from a server)"
)


def _hostname(authority: str) -> str | None:
    """`chat.example.:9000` -> `chat.example` (nginx passes a Host without its final dot);
    `[::1]:9000` -> `::1`; None when unreadable."""
    try:
        return (urlsplit(f"//{authority.strip()}").hostname or "").rstrip(".") or None
    except ValueError:  # a malformed IPv6 literal
        return None


def _from_another_site(headers: list[tuple[bytes, bytes]], allowed: frozenset[str]) -> bool:
    fetch_sites: list[bytes] = []
    origin: bytes | None = None
    hosts: list[bytes] = []
    for name, value in headers:
        if name == b"sec-fetch-site":
            fetch_sites.append(value.strip().lower())
        elif name == b"origin":
            origin = value
        elif name in (b"host", b"x-forwarded-host"):
            hosts.append(value)
    if fetch_sites:
        return b"cross-site" in fetch_sites
    if origin is None:
        return False
    sent_from = origin.decode("latin-1").strip().lower()
    # None for `null` (an opaque origin: a sandboxed frame, a data: page, a redirect across
    # sites) and for one that cannot be read.
    sender = _hostname(sent_from.partition("://")[2])
    if sender is None:
        return True
    named = {_hostname(host) for value in hosts for host in value.decode("latin-1").split(",")}
    return sender not in named and sent_from.rstrip("/") not in allowed


def allowed_origins(setting: str) -> frozenset[str]:
    """The exact origins of CENTRIFUGO_CLIENT_ALLOWED_ORIGINS (space-separated, as Centrifugo
    takes it from its environment). Its globs are Centrifugo's alone: `*` (allow all), or
    `http://*`, would let every other site's form through here too (a review)."""
    return frozenset(origin.lower().rstrip("/") for origin in setting.split() if "*" not in origin)


class CrossSiteRefusal:
    def __init__(self, app: ASGIApp, allowed: Iterable[str] = ()) -> None:
        self.app = app
        self.allowed = frozenset(allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] not in SAFE_METHODS
            and _from_another_site(scope["headers"], self.allowed)
        ):
            response = JSONResponse({"detail": CROSS_SITE_REFUSED}, status_code=403)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
