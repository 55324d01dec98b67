"""How many answers one backend process runs at once, relay and direct ones together
(`MAX_RUNNING_STREAMS`): past it a new one is refused (`ServerBusy`, a 503) rather than started.
Sessions are free, so the per-user cap alone let one client start answers until the process
(and the model account behind it) gave way. At shutdown it is closed: no answer starts
(`ServerStopping`), and the shutdown can wait for the running ones to finish (`drained`)."""

from __future__ import annotations

import asyncio

from backend.core.ports import ServerBusy, ServerStopping


class Capacity:
    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._running = 0
        self._closed = False
        self._idle: asyncio.Event | None = None  # made by the first `drained`, on its loop

    @property
    def running(self) -> int:
        return self._running

    @property
    def closed(self) -> bool:
        return self._closed

    def take(self) -> None:
        """A place for one more answer; `ServerBusy` when there is none, `ServerStopping` once
        closed. Taken without waiting, so that requests arriving together cannot all pass the
        check."""
        if self._closed:
            raise ServerStopping()
        if self._running >= self._limit:
            raise ServerBusy(self._limit)
        self._running += 1

    def give_back(self) -> None:
        self._running -= 1
        if not self._running and self._idle is not None:
            self._idle.set()

    def close(self) -> None:
        """No answer starts from now on (`take` raises `ServerStopping`); the running ones go
        on."""
        self._closed = True
        if not self._running and self._idle is not None:
            self._idle.set()

    async def drained(self) -> None:
        """Returns once closed and no answer runs (at once if none does): the last one has
        given its place back. Its `done` may still be on its way."""
        if self._idle is None:
            self._idle = asyncio.Event()
        while not (self._closed and not self._running):
            self._idle.clear()
            await self._idle.wait()
