"""How many answers one backend process runs at once, relay and direct ones together
(`MAX_RUNNING_STREAMS`): past it a new one is refused (`ServerBusy`, a 503) rather than started.
Sessions are free, so the per-user cap alone let one client start answers until the process
(and the model account behind it) gave way."""

from __future__ import annotations

from backend.core.ports import ServerBusy


class Capacity:
    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._running = 0

    @property
    def running(self) -> int:
        return self._running

    def take(self) -> None:
        """A place for one more answer; `ServerBusy` when there is none. Taken without waiting,
        so that requests arriving together cannot all pass the check."""
        if self._running >= self._limit:
            raise ServerBusy(self._limit)
        self._running += 1

    def give_back(self) -> None:
        self._running -= 1
