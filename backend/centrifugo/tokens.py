"""Centrifugo connection tokens: HS256 JWTs whose `sub` is the user."""

from __future__ import annotations

import time

import jwt


def connection_token(user: str, secret: str, ttl_seconds: int, *, now: float | None = None) -> str:
    issued = int(time.time() if now is None else now)
    claims = {"sub": user, "iat": issued, "exp": issued + ttl_seconds}
    return jwt.encode(claims, secret, algorithm="HS256")
