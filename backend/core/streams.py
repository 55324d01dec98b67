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
    TooManyFromAddress,
    TooManyStreams,
)
from backend.core.types import Done, Snapshot

# Centrifugo keeps a channel's history 120 s (centrifugo/config.json): a snapshot as long.
FINISHED_TTL_SECONDS = 120.0
# The finished snapshots' memory, bounded by their size rather than their number: 10,000 of
# them were dropped within 25 s at 400 answers a second (2,000 streams of 5 s; an outside-in
# probe), their channels free again and their snapshots gone well before the 2 minutes. 64 MiB
# holds 2 minutes of ~300 answers a second of 1.5 KB (a 150-token answer), or ~50 a second of
# 10 KB; past it the oldest go first, and the history is asked about channels for 2 minutes.
FINISHED_MAX_BYTES = 64 * 1024 * 1024
# What a finished snapshot holds besides its text: the Snapshot and its Done, the key, the
# cache's entries (measured with tracemalloc: ~350 bytes, net of the running entry it replaces).
SNAPSHOT_OVERHEAD_BYTES = 512


def _size(snapshot: Snapshot) -> int:
    return len(snapshot.text) + len(snapshot.thinking) + SNAPSHOT_OVERHEAD_BYTES


class _FinishedSnapshots(TTLCache[str, Snapshot]):
    """A TTL cache bounded by size that says when it drops one before its time."""

    def __init__(self, max_bytes: int, ttl: float, dropped: Callable[[], None]) -> None:
        super().__init__(max_bytes, ttl, getsizeof=_size)
        self._dropped = dropped

    def popitem(self) -> tuple[str, Snapshot]:
        item = super().popitem()
        self._dropped()
        return item


@dataclass
class _Running:
    lease: str
    stop: StopRequest
    owner: str
    address: str
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
        finished_max_bytes: int = FINISHED_MAX_BYTES,
        used_before: Callable[[str], Awaitable[bool]] | None = None,
        check_for: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._running: dict[str, _Running] = {}
        self._owned: Counter[str] = Counter()  # running streams per owner
        self._addressed: Counter[str] = Counter()  # running streams per client address
        self._finished = _FinishedSnapshots(finished_max_bytes, finished_ttl, self._forgot_early)
        self._finished_ttl = finished_ttl
        self._used_before = used_before
        self._clock = clock
        self._memory_complete_at = clock() + (finished_ttl if check_for is None else check_for)

    def _forgot_early(self) -> None:
        """A finished channel was dropped before its time (memory): the history is asked about
        channels this registry does not know until the last such one would have expired."""
        self._memory_complete_at = max(self._memory_complete_at, self._clock() + self._finished_ttl)

    def __len__(self) -> int:
        return len(self._running)

    def __contains__(self, channel: object) -> bool:
        return channel in self._running

    async def claim(
        self,
        channel: str,
        stop: StopRequest,
        *,
        owner: str = "",
        max_per_owner: int = 0,
        address: str = "",
        max_per_address: int = 0,
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
        if address and max_per_address and self._addressed[address] >= max_per_address:
            raise TooManyFromAddress(max_per_address)
        lease = uuid.uuid4().hex
        self._running[channel] = _Running(lease, stop, owner, address)
        self._owned[owner] += 1
        if address:
            self._addressed[address] += 1
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
        if running.address:
            self._addressed[running.address] -= 1
            if not self._addressed[running.address]:
                del self._addressed[running.address]
        snapshot = running.snapshot(Done(done.reason, done.error))
        try:
            self._finished[channel] = snapshot
        except ValueError:  # larger than the whole budget: not kept, and the channel asked about
            self._forgot_early()
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
