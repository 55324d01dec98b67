"""The `Streams` registry for one process: running streams in a dictionary, finished ones'
snapshots in a bounded cache that forgets them with the channel's history. (Several backend
processes need one shared registry, e.g. on Redis, behind the same port.)"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from cachetools import TTLCache

from backend.core.ports import (
    ChannelUsed,
    Orphan,
    Recording,
    StopRequest,
    StreamBusy,
    TooManyStreams,
)
from backend.core.types import Done, Snapshot

# Centrifugo keeps a channel's history 120 s (centrifugo/config.json): a snapshot as long.
FINISHED_TTL_SECONDS = 120.0
FINISHED_MAX = 10_000


@dataclass
class _Running:
    lease: str
    stop: StopRequest
    owner: str
    # The answer so far, in pieces: joined when someone asks (a join per chunk would copy the
    # whole answer again for every chunk).
    text: list[str] = field(default_factory=list)
    thinking: list[str] = field(default_factory=list)
    seq: int = 0

    def snapshot(self, done: Done | None = None) -> Snapshot:
        return Snapshot("".join(self.text), "".join(self.thinking), self.seq, done)


class LocalStreams:
    """The registry of one process, in memory. It remembers finished channels `finished_ttl`
    (a new answer there is refused), but only since it started: a process restarted within
    that time would take a channel used just before again. `used_before` (Centrifugo's history
    of the channel, backend/app.py) is asked too during the first `check_for` seconds of its
    life (default: `finished_ttl`), for channels it does not know."""

    def __init__(
        self,
        *,
        finished_ttl: float = FINISHED_TTL_SECONDS,
        finished_max: int = FINISHED_MAX,
        used_before: Callable[[str], Awaitable[bool]] | None = None,
        check_for: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._running: dict[str, _Running] = {}
        self._owned: Counter[str] = Counter()  # running streams per owner
        self._finished: TTLCache[str, Snapshot] = TTLCache(finished_max, finished_ttl)
        self._used_before = used_before
        self._clock = clock
        self._memory_complete_at = clock() + (finished_ttl if check_for is None else check_for)

    def __len__(self) -> int:
        return len(self._running)

    def __contains__(self, channel: object) -> bool:
        return channel in self._running

    async def claim(
        self, channel: str, stop: StopRequest, *, owner: str = "", max_per_owner: int = 0
    ) -> str:
        # Asked first: what follows does not wait, so no other claim can come in between.
        if (
            self._used_before is not None
            and self._clock() < self._memory_complete_at
            and channel not in self._running
            and channel not in self._finished
            and await self._used_before(channel)
        ):
            raise ChannelUsed(channel)
        if channel in self._running:
            raise StreamBusy(channel)
        if channel in self._finished:
            raise ChannelUsed(channel)
        if max_per_owner and self._owned[owner] >= max_per_owner:
            raise TooManyStreams(max_per_owner)
        lease = uuid.uuid4().hex
        self._running[channel] = _Running(lease, stop, owner)
        self._owned[owner] += 1
        return lease

    async def record(self, chunks: Sequence[Recording]) -> list[bool]:
        for channel, lease, chunk in chunks:
            running = self._running.get(channel)
            if running is not None and running.lease == lease:
                (running.thinking if chunk.phase == "thinking" else running.text).append(chunk.text)
                running.seq = chunk.seq
        return [True] * len(chunks)

    async def release(self, channel: str, lease: str, done: Done) -> bool:
        running = self._running.get(channel)
        if running is None or running.lease != lease:
            return False
        del self._running[channel]
        self._owned[running.owner] -= 1
        if not self._owned[running.owner]:
            del self._owned[running.owner]
        self._finished[channel] = running.snapshot(Done(done.reason, done.error))
        return True

    async def stop(self, channel: str, done: Done) -> bool:
        running = self._running.get(channel)
        if running is None:
            return False
        running.stop(done)
        return True

    async def snapshot(self, channel: str) -> Snapshot | None:
        running = self._running.get(channel)
        if running is not None:
            return running.snapshot()
        return self._finished.get(channel)

    async def reap_expired(self, done: Done, *, limit: int = 1000) -> list[Orphan]:
        """None: every stream here belongs to this very process."""
        return []
