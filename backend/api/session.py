"""Who is calling: an anonymous session in a signed, HttpOnly cookie, created on first use.

A deployment with its own auth replaces `current_user` (one dependency) and nothing else.
"""

from __future__ import annotations

import re
import secrets

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeSerializer

from backend.centrifugo.channels import USER_PATTERN
from backend.config import Settings

SESSION_COOKIE = "relaychat_session"
SESSION_MAX_AGE_SECONDS = 30 * 24 * 3600
_VALID_USER = re.compile(rf"^{USER_PATTERN}$")


def _serializer(settings: Settings) -> URLSafeSerializer:
    return URLSafeSerializer(settings.session_secret.get_secret_value(), salt="relaychat-session")


def new_user_id() -> str:
    return "u_" + secrets.token_hex(8)


def session_user(request: Request, response: Response, settings: Settings) -> str:
    """The user of this browser session; a new anonymous one if the cookie is missing or forged."""
    serializer = _serializer(settings)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        try:
            user = serializer.loads(cookie)
        except BadSignature:
            user = None
        if isinstance(user, str) and _VALID_USER.match(user):
            return user
    user = new_user_id()
    response.set_cookie(
        SESSION_COOKIE,
        serializer.dumps(user),
        max_age=SESSION_MAX_AGE_SECONDS,
        httponly=True,
        samesite="lax",
        secure=settings.session_cookie_secure,
        path="/",
    )
    return user
