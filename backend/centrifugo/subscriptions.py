"""Centrifugo's subscribe proxy decision: who may subscribe to which `stream:` channel.

Every subscribe to a channel of the `stream` namespace costs Centrifugo the channel's history
meta for `history_meta_ttl` (300 s), whether or not an answer ever runs there (a probe made
~7,000 fresh channels a second from one connection: +210 MB in 30 s). So Centrifugo asks the
backend (`channel.proxy.subscribe`), and a subscription is allowed when the channel is the
caller's own and either known to the streams registry (its answer runs or ran lately: a reload,
a resume) or within the caller's budget of fresh channels, per user and per client address
(token buckets far above what a page needs: one fresh channel a prompt).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cachetools import TTLCache

from backend.centrifugo.channels import STREAM_NAMESPACE, channel_user

# Centrifugo's own code for a subscription without permission (what it answered for another
# user's channel before the proxy): the same to clients as ever.
PERMISSION_DENIED = 103
# A proxy's own error code (Centrifugo leaves 400-1999 to applications).
TOO_MANY_NEW_CHANNELS = 429
# A client that goes on past its refusals is disconnected (4000-4499: the SDKs reconnect, through
# nginx's limit on new WebSockets), so that subscribes refused at a connection's full speed
# (~770 a second from one probe connection) do not turn into as many calls to the backend.
TOO_MANY_REFUSED = 4429
# The most users and addresses whose buckets are kept; the least recently refilled go first.
MAX_BUCKETS = 100_000

Reply = dict[str, Any]
ALLOW: Reply = {"result": {}}


def disconnect(code: int, reason: str) -> Reply:
    """A subscribe proxy reply that closes the client's connection."""
    return {"disconnect": {"code": code, "reason": reason}}


def refusal(code: int, message: str, *, temporary: bool = False) -> Reply:
    """A subscribe proxy error reply: the client's subscribe fails with this code and message.
    A temporary one makes the SDKs (centrifuge-js, centrifuge-python) subscribe again after a
    backoff of 0.5 s and more, instead of giving up."""
    return {"error": {"code": code, "message": message, "temporary": temporary}}


@dataclass(frozen=True)
class Budget:
    """A token bucket's size: `burst` subscriptions at once, refilled at `per_second`."""

    burst: int
    per_second: float


class Buckets:
    """One token bucket per key (a user, an address), kept while it is not full: a bucket that
    would have refilled completely is forgotten, which is the same as a full one."""

    def __init__(self, budget: Budget, clock: Callable[[], float] = time.monotonic) -> None:
        self._budget = budget
        self._clock = clock
        refill = budget.burst / budget.per_second if budget.per_second > 0 else float("inf")
        ttl = min(refill, 365 * 24 * 3600.0)
        self._levels: TTLCache[str, tuple[float, float]] = TTLCache(MAX_BUCKETS, ttl, timer=clock)

    def available(self, key: str) -> bool:
        return self._level(key) >= 1

    def take(self, key: str) -> None:
        self._levels[key] = (self._level(key) - 1, self._clock())

    def _level(self, key: str) -> float:
        found = self._levels.get(key)
        if found is None:
            return float(self._budget.burst)
        level, at = found
        refilled = level + (self._clock() - at) * self._budget.per_second
        return min(float(self._budget.burst), refilled)


class SubscribeGate:
    """Decides each subscribe Centrifugo forwards (docs/architecture.md, "Subscribing")."""

    def __init__(
        self,
        *,
        per_user: Budget,
        per_address: Budget,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._users = Buckets(per_user, clock)
        self._addresses = Buckets(per_address, clock)
        # Refusals have budgets of the same sizes: an honest page, retried by its SDK after a
        # backoff of 0.5 s and more for each of its few answers, never spends them.
        self._refused_users = Buckets(per_user, clock)
        self._refused_addresses = Buckets(per_address, clock)

    async def decide(
        self, user: str, channel: str, address: str, known: Callable[[str], Awaitable[bool]]
    ) -> Reply:
        """`address`: the client's, as nginx forwarded it (an IPv6 one by its /64: see
        backend/api/address.py); empty when unknown (a client that reached Centrifugo
        directly), then only the user's budget counts. `known`: whether the
        streams registry has an answer running or lately finished on a channel."""
        if not _owns(user, channel):
            return refusal(PERMISSION_DENIED, "permission denied")
        if await known(channel):
            return ALLOW
        if _take(self._users, user, self._addresses, address):
            return ALLOW
        if _take(self._refused_users, user, self._refused_addresses, address):
            return refusal(
                TOO_MANY_NEW_CHANNELS,
                "too many new channels subscribed; subscribe to a channel once its answer "
                "has started, or slow down",
                temporary=True,
            )
        return disconnect(TOO_MANY_REFUSED, "too many subscribes refused")


def _take(users: Buckets, user: str, addresses: Buckets, address: str) -> bool:
    """One from the user's bucket and the address's (when known), if both have one."""
    if not users.available(user) or (address and not addresses.available(address)):
        return False
    users.take(user)
    if address:
        addresses.take(address)
    return True


def _owns(user: str, channel: str) -> bool:
    """The channel is `stream:<anything>#<user>` for exactly this user (what Centrifugo's
    user-limited channels checked before the proxy took over, a list of users aside)."""
    return (
        bool(user)
        and channel.startswith(f"{STREAM_NAMESPACE}:")
        and "#" in channel
        and channel_user(channel) == user
    )
