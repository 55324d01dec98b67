"""Who is calling: an anonymous session in a signed, HttpOnly cookie that `POST /api/token`
starts (or renews); every other route that acts for a user requires it.

The cookie holds the user id and when it was signed; a session unused for
`SESSION_MAX_AGE_SECONDS` is over. `POST /api/token` renews it (the page calls it when it loads
and whenever its connection token needs renewing), and so does every route that acts for a user
(`current_user`) once the session is past half its age (`SessionRenewal`): a client that only
executes keeps its user as long as it keeps using it. A deployment with its own auth replaces
the two dependencies in backend/api/deps.py and nothing else.
"""

from __future__ import annotations

import functools
import re
import secrets
import time

from fastapi import HTTPException, Request, Response, status
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.centrifugo.channels import USER_PATTERN
from backend.config import Settings

SESSION_COOKIE = "relaychat_session"
# Its name where it is sent over HTTPS only (SESSION_COOKIE_SECURE): browsers take a `__Host-`
# cookie only from a secure page of the very host, never with a Domain, so a sibling subdomain
# (or a plain-HTTP page) cannot set one of its own for the chat and have the page run as the
# user it chose (an outside-in probe: session fixation by a cookie set from a sibling).
SECURE_SESSION_COOKIE = "__Host-" + SESSION_COOKIE
NO_SESSION = (
    "no session: call POST /api/token first and send its cookie back "
    "(the session may have expired or been signed with another secret)"
)
_VALID_USER = re.compile(USER_PATTERN)


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return _serializer_for(settings.session_secret.get_secret_value())


@functools.lru_cache(maxsize=4)
def _serializer_for(secret: str) -> URLSafeTimedSerializer:
    # Built once per secret: building one (key derivation set-up) was ~2% of the backend's CPU
    # in a burst of executes (issue 13).
    return URLSafeTimedSerializer(secret, salt="relaychat-session")


def session_cookie(settings: Settings) -> str:
    """The session cookie's name under these settings."""
    return SECURE_SESSION_COOKIE if settings.session_cookie_secure else SESSION_COOKIE


def new_user_id() -> str:
    return "u_" + secrets.token_hex(8)


def read_session(request: Request, settings: Settings) -> tuple[str, float] | None:
    """The user of a valid, unexpired session cookie and the session's age in seconds; None
    without one."""
    cookie = request.cookies.get(session_cookie(settings))
    if not cookie:
        return None
    try:
        user, signed_at = _serializer(settings).loads(
            cookie, max_age=settings.session_max_age_seconds, return_timestamp=True
        )
    except BadSignature:  # forged, signed with another secret, or expired
        return None
    if not (isinstance(user, str) and _VALID_USER.fullmatch(user)):
        return None
    return user, time.time() - signed_at.timestamp()


def session_user(request: Request, settings: Settings) -> str:
    """The session's user, or 401 with a message that says how to get a session. A session
    past half its age is renewed on the way out (`SessionRenewal`)."""
    session = read_session(request, settings)
    if session is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, NO_SESSION)
    user, age = session
    if age > settings.session_max_age_seconds / 2:
        renewal = Response()
        _set_cookie(renewal, user, settings)
        request.state.renewed_session = renewal.headers["set-cookie"].encode("latin-1")
    return user


def start_session(request: Request, response: Response, settings: Settings) -> str:
    """The session's user, its cookie renewed; a new anonymous user without a valid one."""
    session = read_session(request, settings)
    user = new_user_id() if session is None else session[0]
    _set_cookie(response, user, settings)
    return user


def _set_cookie(response: Response, user: str, settings: Settings) -> None:
    response.set_cookie(
        session_cookie(settings),
        _serializer(settings).dumps(user),
        max_age=settings.session_max_age_seconds,
        httponly=True,
        samesite="lax",
        secure=settings.session_cookie_secure,
        path="/",
    )


class SessionRenewal:
    """Adds the renewed session cookie that `session_user` left in the request's state to the
    response, whatever the route returns (a streamed response too), and marks that response
    `Cache-Control: private, no-store`: a shared cache in front must not hand one user's cookie
    to another. Every other response that does not say otherwise is marked so too: they act for
    a user (a snapshot is one user's answer; a security probe found it cacheable)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_renewed(message: Message) -> None:
            if message["type"] == "http.response.start":
                cookie = scope.get("state", {}).get("renewed_session")
                if cookie is not None:
                    headers = [
                        (name, value)
                        for name, value in message.get("headers", ())
                        if name.lower() != b"cache-control"
                    ]
                    headers += [(b"set-cookie", cookie), (b"cache-control", b"private, no-store")]
                    message = {**message, "headers": headers}
                elif not any(
                    name.lower() == b"cache-control" for name, _ in message.get("headers", ())
                ):
                    headers = [
                        *message.get("headers", ()),
                        (b"cache-control", b"private, no-store"),
                    ]
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_renewed)
