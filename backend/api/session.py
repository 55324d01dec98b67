"""Who is calling: an anonymous session in a signed, HttpOnly cookie that `POST /api/token`
starts (or renews); every other route that acts for a user requires it.

The cookie holds the user id and when it was signed; a session unused for
`SESSION_MAX_AGE_SECONDS` is over (the page calls `POST /api/token` when it loads and whenever
its connection token needs renewing, which renews the session too). A deployment with its own
auth replaces the two dependencies in backend/api/deps.py and nothing else.
"""

from __future__ import annotations

import functools
import re
import secrets

from fastapi import HTTPException, Request, Response, status
from itsdangerous import BadSignature, URLSafeTimedSerializer

from backend.centrifugo.channels import USER_PATTERN
from backend.config import Settings

SESSION_COOKIE = "relaychat_session"
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


def new_user_id() -> str:
    return "u_" + secrets.token_hex(8)


def read_session(request: Request, settings: Settings) -> str | None:
    """The user of a valid, unexpired session cookie; None without one."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    try:
        user = _serializer(settings).loads(cookie, max_age=settings.session_max_age_seconds)
    except BadSignature:  # forged, signed with another secret, or expired
        return None
    return user if isinstance(user, str) and _VALID_USER.fullmatch(user) else None


def session_user(request: Request, settings: Settings) -> str:
    """The session's user, or 401 with a message that says how to get a session."""
    user = read_session(request, settings)
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, NO_SESSION)
    return user


def start_session(request: Request, response: Response, settings: Settings) -> str:
    """The session's user, its cookie renewed; a new anonymous user without a valid one."""
    user = read_session(request, settings) or new_user_id()
    response.set_cookie(
        SESSION_COOKIE,
        _serializer(settings).dumps(user),
        max_age=settings.session_max_age_seconds,
        httponly=True,
        samesite="lax",
        secure=settings.session_cookie_secure,
        path="/",
    )
    return user
