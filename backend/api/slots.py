"""Direct answers (`/api/chat`, `/api/chat/sync`) running per user in this process, capped like
relay streams (`MAX_STREAMS_PER_USER`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from backend.core.ports import TooManyStreams


class DirectSlots:
    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._running: Counter[str] = Counter()

    def take(self, user: str) -> Callable[[], None]:
        """A slot for one of `user`'s direct answers; returns its release (safe to call more
        than once). Raises `TooManyStreams` when the user has no slot left."""
        if self._running[user] >= self._limit:
            raise TooManyStreams(self._limit)
        self._running[user] += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._running[user] -= 1
                if not self._running[user]:
                    del self._running[user]

        return release
