"""The `Streams` registry for one process: a dictionary. (Several backend processes need one
shared registry, e.g. on Redis, behind the same port.)"""

from __future__ import annotations

import uuid

from backend.core.ports import StopRequest, StreamBusy
from backend.core.types import Done


class LocalStreams:
    def __init__(self) -> None:
        self._running: dict[str, tuple[str, StopRequest]] = {}

    def __len__(self) -> int:
        return len(self._running)

    def __contains__(self, channel: object) -> bool:
        return channel in self._running

    async def claim(self, channel: str, stop: StopRequest) -> str:
        if channel in self._running:
            raise StreamBusy(channel)
        lease = uuid.uuid4().hex
        self._running[channel] = (lease, stop)
        return lease

    async def release(self, channel: str, lease: str) -> None:
        held = self._running.get(channel)
        if held is not None and held[0] == lease:
            del self._running[channel]

    async def stop(self, channel: str, done: Done) -> bool:
        held = self._running.get(channel)
        if held is None:
            return False
        held[1](done)
        return True
