"""Direct answers (`/api/chat`, `/api/chat/sync`) running in this process, capped like relay
streams: per user (`MAX_STREAMS_PER_USER`), per client address (`MAX_STREAMS_PER_ADDRESS`), and
together with the relay streams per process (`MAX_RUNNING_STREAMS`). A direct answer lives on
its client's connection to this one process, so it is counted here, not in a shared registry:
with N backend processes one address may have up to N times the cap of direct answers."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from backend.core.capacity import Capacity
from backend.core.ports import TooManyFromAddress, TooManyStreams


class DirectSlots:
    def __init__(
        self, limit: int, *, per_address: int = 0, capacity: Capacity | None = None
    ) -> None:
        self._limit = limit
        self._per_address = per_address
        self._capacity = capacity
        self._running: Counter[str] = Counter()
        self._addressed: Counter[str] = Counter()

    def take(self, user: str, address: str = "") -> Callable[[], None]:
        """A slot for one of `user`'s direct answers, asked from the client `address`; returns
        its release (safe to call more than once). Raises `TooManyStreams` when the user has no
        slot left, `TooManyFromAddress` when the address has none, `ServerBusy` when the
        process has none: then nothing is taken."""
        if self._running[user] >= self._limit:
            raise TooManyStreams(self._limit)
        if address and self._per_address and self._addressed[address] >= self._per_address:
            raise TooManyFromAddress(self._per_address)
        if self._capacity is not None:
            self._capacity.take()
        self._running[user] += 1
        if address:
            self._addressed[address] += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                _drop(self._running, user)
                if address:
                    _drop(self._addressed, address)
                if self._capacity is not None:
                    self._capacity.give_back()

        return release


def _drop(counts: Counter[str], key: str) -> None:
    counts[key] -= 1
    if not counts[key]:
        del counts[key]
