"""The `Streams` registry on Redis, shared by every backend process (REDIS_URL): one running
stream per channel across all of them, per-user and per-client-address caps that hold across
them, snapshots any of them can serve, a stop that reaches the process running the stream (Redis
pub/sub), and leases, so that a stream whose process died is ended by a survivor
(`reap_expired`).

Keys (all under `relaychat:`): `run:<channel>` a hash (lease, owner, address, seq; last,
partial after Redis lost it; stop, stop_told once a stop was asked of it) while it runs, with
`text:<channel>` and `thinking:<channel>` (APPENDed strings); `leases`, a sorted set of running
channels by lease expiry (ms); `owner:<user>`, the channels a user runs;
`addr:<address>`, the channels started from one client address (whoever records a stream's end,
its owner or a survivor that reaps it, takes it out of both); `done:<channel>`, the finished
snapshot as JSON, kept as long as the channel's history (120 s); `since`, the Redis
server's run id and when (Redis ms) the processes first saw it. A Redis that restarted (without
its data, or with an older copy of it) or failed over has another run id, and one that lost its
data has no `since`: for `RECOVERY_LEASES` leases after a process first notices (each checks at
every renewal round), streams Redis does not know may still be running, their owners not having
registered them again yet. Then a channel Redis does not know is "recovering" (503), not "none"
(404), and a stop is also left in `stop:<channel>`, for the owner's next renewal to apply should
its stop listener not be back yet. Each change is one Lua script, so it is atomic. One Redis (or
a primary with replicas); Redis Cluster would need the keys of a script in one slot
(docs/scaling.md)."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import AuthenticationError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.maint_notifications import MaintNotificationsConfig

from backend.core.endings import ORPHANED
from backend.core.ports import (
    ChannelUsed,
    Orphan,
    Recording,
    StopRequest,
    StreamBusy,
    StreamsRecovering,
    StreamsUnavailable,
    TooManyFromAddress,
    TooManyStreams,
)
from backend.core.types import Done, Snapshot

logger = logging.getLogger(__name__)
# How Redis being unreachable or slow shows: logged as one line; anything else (a script's
# error too) with its traceback.
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, StreamsUnavailable, OSError)


def _why(exc: BaseException) -> str:
    return str(exc) or exc.__class__.__name__


PREFIX = "relaychat:"
STOP_CHANNEL = PREFIX + "stop"
LEASES = PREFIX + "leases"
FINISHED_TTL_SECONDS = 120
# A running stream's process renews its lease every LEASE_SECONDS / 3; a lease not renewed
# for LEASE_SECONDS means the process is gone.
LEASE_SECONDS = 5.0
# A finished snapshot's `done` error when part of the stream's record was lost (see `_FINISH`).
PARTIAL_ERROR = (
    "part of this answer was lost while the streams registry restarted or could not be reached; "
    "it cannot be shown whole"
)
# After Redis restarted or lost its data, how many leases' time streams it does not know may
# still be running: an owner renews every third of a lease, but a renewal can wait for a pooled
# connection and time out once.
RECOVERY_LEASES = 2

# Lease times come from Redis's own clock (TIME), never from the processes': their clocks may
# differ by seconds, which would let one reap another's live stream.
_NOW_MS = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

# Whether streams may be running that Redis does not know (see the module's docstring), for
# `window_ms` after a process first sees this Redis server (its run id) without `since` or with
# another server's. A brand-new Redis counts too: nothing can tell it from one that lost its
# data, and nothing runs there yet anyway.
_RECOVERING = """
local function recovering(window_ms)
  local now = now_ms()
  local since = redis.call('GET', 'relaychat:since') or ''
  local seen_id, seen_at = string.match(since, '^(%x+) (%d+)$')
  -- INFO may be refused (an ACL, a renamed command): then only a lost `since` is noticed (the
  -- id seen is kept, so that processes that may and may not ask do not take turns resetting it).
  local ok, info = pcall(redis.call, 'INFO', 'server')
  local id = ok and string.match(info, 'run_id:(%x+)') or seen_id or '0'
  if seen_id ~= id then
    redis.call('SET', 'relaychat:since', id .. ' ' .. now)
    return true
  end
  return now - tonumber(seen_at) < window_ms
end
"""

_SNAPSHOT = (
    _NOW_MS
    + _RECOVERING
    + """
local seq = redis.call('HGET', KEYS[1], 'seq')
if seq then
  return {'run', seq, redis.call('GET', KEYS[2]) or '', redis.call('GET', KEYS[3]) or ''}
end
local finished = redis.call('GET', KEYS[4])
if finished then return {'done', finished} end
if recovering(tonumber(ARGV[1])) then return {'recovering'} end
return {'none'}
"""
)

# 'none' for a stream that ended; 'recovering' (the stop, ARGV[2], is then also left for the
# owner's next renewal, for the recovery window: its stop listener may not be back yet); else
# 'running' or 'none'. A running stream keeps the stop's `done` (ARGV[3]) with its run: its
# owner's next renewal tells it once more (its stop listener may have been reconnecting when the
# request was published), and if its process never acts on it (hung, then gone) the reaper ends
# the stream as asked rather than as orphaned.
_STOP = (
    _NOW_MS
    + _RECOVERING
    + """
if redis.call('EXISTS', KEYS[3]) == 1 then return 'none' end
local running = redis.call('EXISTS', KEYS[1]) == 1
if running then redis.call('HSET', KEYS[1], 'stop', ARGV[3]) end
if recovering(tonumber(ARGV[1])) then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[1])
  return 'recovering'
end
if running then return 'running' end
return 'none'
"""
)

_CLAIM = (
    _NOW_MS
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 'busy' end
if redis.call('EXISTS', KEYS[2]) == 1 then return 'used' end
-- The streams in an owner's or an address's set that still run for it, once the set looks
-- full: a member whose run is gone (or is another owner's or address's stream on that channel
-- since) was left by a process that ended it without taking it out (an older version's finish,
-- during a rolling upgrade, knows no address sets), and would hold that place for good.
-- Dropped, then counted again.
local function running_in(set, max, field, value)
  local count = redis.call('SCARD', set)
  if count < max then return count end
  for _, channel in ipairs(redis.call('SMEMBERS', set)) do
    if redis.call('HGET', 'relaychat:run:' .. channel, field) ~= value then
      redis.call('SREM', set, channel)
      count = count - 1
    end
  end
  return count
end
local max = tonumber(ARGV[4])
if max > 0 and running_in(KEYS[4], max, 'owner', ARGV[3]) >= max then return 'too_many' end
local address, max_address = ARGV[6], tonumber(ARGV[7])
if address ~= '' and max_address > 0
    and running_in(KEYS[6], max_address, 'address', address) >= max_address then
  return 'too_many_from_address'
end
redis.call('HSET', KEYS[1], 'lease', ARGV[2], 'owner', ARGV[3], 'seq', 0, 'address', address)
redis.call('ZADD', KEYS[3], now_ms() + tonumber(ARGV[5]), ARGV[1])
redis.call('SADD', KEYS[4], ARGV[1])
if address ~= '' then redis.call('SADD', KEYS[6], ARGV[1]) end
redis.call('DEL', KEYS[5])  -- a stop left for an earlier stream here is not this one's
return 'ok'
"""
)

# 1: recorded, or nothing to record into (the registry lost the stream: Redis restarted without
# its data); 0: another process ended the stream (its finished snapshot exists): stop it. A
# stream whose record has a hole (`partial`: taken back after such a loss, or a chunk that is not
# the one after the last recorded: one was never recorded, Redis being unreachable then, or its
# data came back from an older copy) keeps only its last seq, for its `done`: its snapshot
# stays empty at seq 0, as text with a hole in it and `seq` n would be taken by readers for
# chunks 1..n (protocol), and its finished snapshot says part of it was lost (`_FINISH`).
_RECORD = """
if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[1] then
  if redis.call('EXISTS', KEYS[4]) == 1 then return 0 end
  return 1
end
if redis.call('HGET', KEYS[1], 'partial') then
  redis.call('HSET', KEYS[1], 'last', ARGV[2])
  return 1
end
if tonumber(ARGV[2]) ~= tonumber(redis.call('HGET', KEYS[1], 'seq') or '0') + 1 then
  redis.call('HSET', KEYS[1], 'partial', 1, 'seq', 0, 'last', ARGV[2])
  redis.call('DEL', KEYS[2], KEYS[3])
  return 1
end
redis.call('HSET', KEYS[1], 'seq', ARGV[2])
if ARGV[3] == 'thinking' then
  redis.call('APPEND', KEYS[3], ARGV[4])
else
  redis.call('APPEND', KEYS[2], ARGV[4])
end
return 1
"""

# Ends one stream: its snapshot is kept finished, everything running about it goes. Used by
# `release` (the owner, with its lease) and by `reap` (anyone, for an expired lease). The
# finished snapshot of a stream that lost part of its record (`partial`) cannot give the whole
# answer: its `done` says so (reason `error`), whatever the owner's was, so that a reader who
# needs the snapshot is not told the part it has is the complete answer.
_FINISH = (
    f"local PARTIAL = '{PARTIAL_ERROR}'\n"
    + """
local function finish(channel, done_json, ttl, published)
  local run = 'relaychat:run:' .. channel
  local owner = redis.call('HGET', run, 'owner')
  local address = redis.call('HGET', run, 'address')
  local seq = tonumber(redis.call('HGET', run, 'seq') or '0')
  local last = tonumber(redis.call('HGET', run, 'last') or seq)
  local text = redis.call('GET', 'relaychat:text:' .. channel) or ''
  local thinking = redis.call('GET', 'relaychat:thinking:' .. channel) or ''
  local done = cjson.decode(done_json)
  -- Lost, not all of it recorded, or fewer chunks recorded than the owner published (the last
  -- ones while Redis could not be reached: no later chunk told of the hole).
  if not owner or redis.call('HGET', run, 'partial') or (tonumber(published) or 0) > seq then
    done = {reason = 'error', error = PARTIAL}
    text, thinking, seq = '', '', 0
  end
  local snapshot = {text = text, thinking = thinking, seq = seq, done = done}
  redis.call('SET', 'relaychat:done:' .. channel, cjson.encode(snapshot), 'EX', ttl)
  redis.call('DEL', run, 'relaychat:text:' .. channel, 'relaychat:thinking:' .. channel)
  redis.call('ZREM', 'relaychat:leases', channel)
  if owner then redis.call('SREM', 'relaychat:owner:' .. owner, channel) end
  if address and address ~= '' then redis.call('SREM', 'relaychat:addr:' .. address, channel) end
  return last
end
"""
)

# -1: another process ended the stream (and published its done); -2: the registry lost it (a
# Redis restart): the owner still publishes its done, and the stream is ended here too (its
# lease, which a renewal may have taken again, must not be reaped later: a second done); else
# the last recorded seq.
_RELEASE = (
    _FINISH
    + """
if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[1] then
  if redis.call('EXISTS', 'relaychat:done:' .. ARGV[2]) == 1 then return -1 end
  if redis.call('EXISTS', KEYS[1]) == 0 then finish(ARGV[2], ARGV[3], ARGV[4], ARGV[5]) end
  return -2
end
return finish(ARGV[2], ARGV[3], ARGV[4], ARGV[5])
"""
)

# Ends the streams whose lease ran out (ARGV: unused, the finished TTL, the done, the most to
# end, the lease in ms). Not after a quiet spell: when no process has renewed for half a lease
# (`relaychat:renewed`, which every renewal round sets), Redis itself was stalled (paused,
# swapping), not one owner, and the leases ran out because nobody could renew them; a reap sent
# before such a pause runs after it, where the processes' own guard cannot stop it (a cluster
# probe: every running answer of both backends ended). Then nothing is reaped for a lease's time,
# so that the owners renew first.
_REAP = (
    _FINISH
    + _NOW_MS
    + """
local now = now_ms()
local lease_ms = tonumber(ARGV[5])
local renewed = tonumber(redis.call('GET', 'relaychat:renewed') or '')
if renewed and now - renewed > lease_ms / 2 then
  redis.call('SET', 'relaychat:reap_after', now + lease_ms, 'PX', lease_ms * 2)
end
if now < tonumber(redis.call('GET', 'relaychat:reap_after') or '0') then return {} end
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[4])
local out = {}
for _, channel in ipairs(expired) do
  local run = 'relaychat:run:' .. channel
  local lease = redis.call('HGET', run, 'lease') or ''
  local stopped = redis.call('HGET', run, 'stop') or ''  -- a stop its process never acted on
  local done = ARGV[3]
  if stopped ~= '' then done = stopped end
  table.insert(out, channel)
  table.insert(out, finish(channel, done, ARGV[2], 0))
  table.insert(out, lease)
  table.insert(out, done)
end
return out
"""
)

# Renews the leases of the streams given (ARGV[1]: the lease in ms, ARGV[2] the recovery window in
# ms; then channel, lease, owner, client address for each; run every round, with no streams too, so
# that a restarted Redis is noticed at once); returns the channels another process ended meanwhile
# (their finished snapshot exists), e.g. after this one could not reach Redis for a whole lease, and
# the stop requests left for this process's streams while Redis was recovering or kept with their
# run (channel, request; each told once). A stream that is simply gone (Redis restarted without
# its data) is taken again, its lease, owner and address included (counted again against both
# caps: they hold again once every owner has renewed): a survivor that reaps it later must publish
# its `done` under the owner's key (backend/core/endings.py).
_RENEW = (
    _NOW_MS
    + _RECOVERING
    + """
local lost, stops = {}, {}
local expiry = now_ms() + tonumber(ARGV[1])
redis.call('SET', 'relaychat:renewed', now_ms())  -- the reapers' sign that Redis is not stalled
recovering(tonumber(ARGV[2]))  -- notices a restart (sets `since`) as soon as may be
for i = 3, #ARGV, 4 do
  local channel, lease, owner, address = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if redis.call('EXISTS', 'relaychat:done:' .. channel) == 1 then
    table.insert(lost, channel)
  else
    local run = 'relaychat:run:' .. channel
    if redis.call('EXISTS', run) == 0 then
      redis.call('HSET', run, 'lease', lease, 'owner', owner, 'seq', 0, 'partial', 1)
      redis.call('HSET', run, 'address', address)
      redis.call('SADD', 'relaychat:owner:' .. owner, channel)
      if address ~= '' then redis.call('SADD', 'relaychat:addr:' .. address, channel) end
    end
    redis.call('ZADD', KEYS[1], expiry, channel)
    local left = 'relaychat:stop:' .. channel
    local stop = redis.call('GET', left)
    if stop and redis.call('HGET', run, 'lease') == lease then
      redis.call('DEL', left)
      table.insert(stops, channel)
      table.insert(stops, stop)
    end
    -- A stop kept with the run (`_STOP`), told once: its owner missed it if its stop listener
    -- was reconnecting when it was published (the owner takes a stop told twice as one).
    local kept = redis.call('HGET', run, 'stop')
    local told = redis.call('HGET', run, 'stop_told')
    if kept and not told and redis.call('HGET', run, 'lease') == lease then
      redis.call('HSET', run, 'stop_told', 1)
      local asked = cjson.decode(kept)
      asked['channel'] = channel
      table.insert(stops, channel)
      table.insert(stops, cjson.encode(asked))
    end
  end
end
return {lost, stops}
"""
)


def _run(channel: str) -> str:
    return f"{PREFIX}run:{channel}"


def _done_json(done: Done) -> str:
    return json.dumps({"reason": done.reason, "error": done.error})


def _done_from(text: str | bytes) -> Done:
    data = json.loads(text)
    return Done(data["reason"], data.get("error") or None)


@dataclass
class _Local:
    lease: str
    owner: str
    address: str
    stop: StopRequest
    # Once Redis has it: only then is it renewed (a renewal re-creates a stream Redis lost, and
    # must not create one whose claim is still on its way: that claim would find it "busy").
    claimed: bool = False


@dataclass
class _Releasing:
    """A stream that ended here while Redis could not be reached: its `done` went out, and its
    record is finished at the next renewal that reaches Redis (its lease kept alive meanwhile),
    not reaped later as if this process had died."""

    lease: str
    owner: str
    address: str
    done: Done


# Streams that ended while Redis could not be reached, recorded at each renewal round once it
# is back: at most this many a round (one call each).
RELEASES_PER_ROUND = 100


class RedisStreams:
    def __init__(self, redis: Redis, *, lease_seconds: float = LEASE_SECONDS) -> None:
        self._redis = redis
        self._lease_ms = int(lease_seconds * 1000)
        self._recovery_ms = int(RECOVERY_LEASES * lease_seconds * 1000)
        self._lease_seconds = lease_seconds
        self._local: dict[str, _Local] = {}
        self._releasing: dict[str, _Releasing] = {}
        self._claim = redis.register_script(_CLAIM)
        self._record = redis.register_script(_RECORD)
        self._release = redis.register_script(_RELEASE)
        self._reap = redis.register_script(_REAP)
        self._renew = redis.register_script(_RENEW)
        self._snapshot = redis.register_script(_SNAPSHOT)
        self._stop = redis.register_script(_STOP)
        self._tasks: list[asyncio.Task[None]] = []
        # Checked by those tasks' loops too: redis-py can turn a cancellation that lands
        # mid-command on a broken connection into a connection error, which the loops ride out
        # (seen: a renewal loop that went on forever after `aclose` cancelled it).
        self._closing = False
        # When this process last failed to reach Redis: until a lease has passed since, it
        # reaps nothing, so that after an outage the owners renew before anyone reaps.
        self._failed_at = -math.inf

    async def start(self) -> None:
        """Listen for stop requests and keep this process's leases alive."""
        listening = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._listen_forever(listening), name="redis stop listener"),
            asyncio.create_task(self._renew_forever(), name="redis lease renewal"),
        ]
        await asyncio.wait_for(listening.wait(), 10)

    async def aclose(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._releasing:  # one more try: the lease of what is left runs out, and is reaped
            await self._finish_released(set(), limit=None)
        if self._releasing:
            logger.warning(
                "%d stream(s) that ended while Redis could not be reached stay unrecorded; "
                "their leases run out and they are recorded as broken off",
                len(self._releasing),
            )

    def _unavailable(self, exc: RedisError) -> StreamsUnavailable:
        self._failed_at = time.monotonic()
        return StreamsUnavailable(str(exc))

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
        if channel in self._local:
            raise StreamBusy(channel)
        lease = uuid.uuid4().hex
        keys = [
            _run(channel),
            f"{PREFIX}done:{channel}",
            LEASES,
            f"{PREFIX}owner:{owner}",
            f"{PREFIX}stop:{channel}",
            f"{PREFIX}addr:{address}",
        ]
        args: list[str | int] = [channel, lease, owner, max_per_owner, self._lease_ms]
        args += [address, max_per_address]
        # Known here before the claim lands, so that a stop arriving right after finds it.
        self._local[channel] = _Local(lease, owner, address, stop)
        try:
            result = await self._claim(keys=keys, args=args)
        except RedisError as exc:
            self._local.pop(channel, None)
            raise self._unavailable(exc) from exc
        except BaseException:  # cancelled: the channel must not stay claimed here for good
            self._local.pop(channel, None)
            raise
        if result != "ok":
            self._local.pop(channel, None)
        if result == "busy":
            raise StreamBusy(channel)
        if result == "used":
            raise ChannelUsed(channel)
        if result == "too_many":
            raise TooManyStreams(max_per_owner)
        if result == "too_many_from_address":
            raise TooManyFromAddress(max_per_address)
        local = self._local.get(channel)
        if local is not None and local.lease == lease:  # not released meanwhile
            local.claimed = True
        return lease

    async def record(self, chunks: Sequence[Recording]) -> list[bool]:
        """One round trip for all of them (a pipeline of the record script)."""
        if not chunks:
            return []
        # `async with`: a pipeline whose execute failed (a reply that timed out) otherwise
        # keeps its connection until the garbage collector finds it.
        async with self._redis.pipeline(transaction=False) as pipe:
            for channel, lease, chunk in chunks:
                keys = [
                    _run(channel),
                    f"{PREFIX}text:{channel}",
                    f"{PREFIX}thinking:{channel}",
                    f"{PREFIX}done:{channel}",
                ]
                await self._record(
                    keys=keys, args=[lease, chunk.seq, chunk.phase, chunk.text], client=pipe
                )
            try:
                recorded = await pipe.execute()
            except RedisError as exc:
                raise self._unavailable(exc) from exc
        return [int(result) == 1 for result in recorded]

    async def release(self, channel: str, lease: str, done: Done) -> bool:
        local = self._local.get(channel)
        if local is not None and local.lease == lease:
            del self._local[channel]
        try:
            return await self._finish_run(channel, lease, done)
        except RedisError as exc:
            if local is not None and local.lease == lease:  # finished by a later renewal
                self._releasing[channel] = _Releasing(lease, local.owner, local.address, done)
            raise self._unavailable(exc) from exc

    async def _finish_run(self, channel: str, lease: str, done: Done) -> bool:
        args: list[str | int] = [lease, channel, _done_json(done), FINISHED_TTL_SECONDS, done.seq]
        result = int(await self._release(keys=[_run(channel)], args=args))
        return result != -1  # -1: another process ended it and published its done

    async def stop(self, channel: str, done: Done) -> bool:
        local = self._local.get(channel)
        if local is not None:  # running here: no need to go through Redis
            local.stop(done)
            return True
        request = json.dumps({"channel": channel, "reason": done.reason, "error": done.error})
        keys = [_run(channel), f"{PREFIX}stop:{channel}", f"{PREFIX}done:{channel}"]
        try:
            args: list[str | int] = [self._recovery_ms, request, _done_json(done)]
            found = await self._stop(keys=keys, args=args)
            if found == "none":
                return False
            listeners = await self._redis.publish(STOP_CHANNEL, request)
        except RedisError as exc:
            raise self._unavailable(exc) from exc
        # Recovering, the owner finds the request at its next renewal if it was not listening.
        if not listeners and found != "recovering":
            raise StreamsUnavailable("no backend process is listening for stop requests")
        return True

    async def snapshot(self, channel: str) -> Snapshot | None:
        keys = [
            _run(channel),
            f"{PREFIX}text:{channel}",
            f"{PREFIX}thinking:{channel}",
            f"{PREFIX}done:{channel}",
        ]
        try:
            found: list[str] = await self._snapshot(keys=keys, args=[self._recovery_ms])
        except RedisError as exc:
            raise self._unavailable(exc) from exc
        if found[0] == "run":
            return Snapshot(found[2], found[3], int(found[1]))
        if found[0] == "recovering":
            raise StreamsRecovering(f"Redis lost its data moments ago; {channel} may be running")
        if found[0] == "none":
            return None
        data = json.loads(found[1])
        done = Done(data["done"]["reason"], data["done"].get("error") or None)
        # cjson writes an empty string as "" and a number as a float or int: normalise.
        return Snapshot(data["text"] or "", data["thinking"] or "", int(data["seq"]), done)

    async def reap_expired(self, done: Done, *, limit: int = 1000) -> list[Orphan]:
        """End the streams whose lease ran out (their process is gone): each is released with
        `done`, or with the `done` of a stop asked of it that its process never acted on (a
        user's Stop to a hung process ends it `cancelled`, not orphaned); returns them with the
        `seq` of their last recorded chunk, their lease and that `done`, for the caller to
        publish it. Nothing while this process itself recently failed
        to reach Redis: the owners may not have renewed yet."""
        if time.monotonic() - self._failed_at < self._lease_seconds:
            return []
        args: list[str | int] = [0, FINISHED_TTL_SECONDS, _done_json(done), limit]
        args.append(self._lease_ms)
        try:
            flat: list[Any] = await self._reap(keys=[LEASES], args=args)
        except RedisError as exc:
            raise self._unavailable(exc) from exc
        return [
            Orphan(str(flat[i]), int(flat[i + 1]), str(flat[i + 2]), _done_from(flat[i + 3]))
            for i in range(0, len(flat), 4)
        ]

    async def _listen_forever(self, listening: asyncio.Event) -> None:
        """Stop requests from other processes; a lost connection is made again."""
        while not self._closing:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(STOP_CHANNEL)
                listening.set()
                while not self._closing:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._stop_requested(message["data"])
            except RedisError as exc:
                self._failed_at = time.monotonic()
                logger.warning("stop requests: lost Redis (%s); listening again", exc)
                await asyncio.sleep(0.5)
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _stop_requested(self, data: str) -> None:
        try:
            request = json.loads(data)
            local = self._local.get(request["channel"])
            if local is not None:
                local.stop(Done(request["reason"], request.get("error")))
        except (ValueError, KeyError, TypeError):
            logger.warning("ignored a malformed stop request: %r", data)

    async def _renew_forever(self) -> None:
        while not self._closing:
            await asyncio.sleep(self._lease_seconds / 3)
            streams = [
                (ch, run.lease, run.owner, run.address)
                for ch, run in self._local.items()
                if run.claimed
            ]
            streams += [
                (ch, run.lease, run.owner, run.address) for ch, run in self._releasing.items()
            ]
            # With none too: a Redis that restarted is noticed (`since`) as soon as may be.
            args: list[str | int] = [self._lease_ms, self._recovery_ms]
            for channel, lease, owner, address in streams:
                args += [channel, lease, owner, address]
            try:
                lost, stops = await self._renew(keys=[LEASES], args=args)
            except Exception as exc:  # Redis briefly unreachable: try again at the next round
                self._failed_at = time.monotonic()
                logger.warning(
                    "could not renew %d lease(s): %s",
                    len(streams),
                    _why(exc),
                    exc_info=not isinstance(exc, UNREACHABLE),
                )
                continue
            for channel in lost:
                still = self._local.get(channel)
                if still is not None:  # not released meanwhile
                    logger.warning("stream %s was ended by another process; stopping", channel)
                    still.stop(ORPHANED)  # its `done` goes out under the one key (Relay._run)
            for i in range(0, len(stops), 2):
                self._stop_requested(stops[i + 1])
            await self._finish_released(set(lost))

    async def _finish_released(
        self, lost: set[str], *, limit: int | None = RELEASES_PER_ROUND
    ) -> None:
        """Finishes the records of the streams that ended while Redis could not be reached: a
        few at a time, so that the renewal of the running streams' leases is not held up."""
        for channel in lost & self._releasing.keys():  # ended by another process meanwhile
            del self._releasing[channel]
        for channel, pending in list(self._releasing.items())[:limit]:
            try:
                await self._finish_run(channel, pending.lease, pending.done)
            except Exception as exc:  # Redis failing again: at the next round
                self._failed_at = time.monotonic()
                logger.warning(
                    "could not record the end of stream %s yet: %s",
                    channel,
                    _why(exc),
                    exc_info=not isinstance(exc, UNREACHABLE),
                )
                return
            if self._releasing.get(channel) is pending:
                del self._releasing[channel]


class RedisRefused(StreamsUnavailable):
    """Redis answered, and refused: a wrong password or database, which waiting does not
    change."""


async def wait_for_redis(url: str, seconds: float) -> None:
    """Until Redis at `url` answers a PING; `StreamsUnavailable` saying why if it has not within
    `seconds` (tried every half second: a Redis starting alongside gets that long), at once
    `RedisRefused` if it refuses."""
    client = connect(url, max_connections=1)
    deadline = time.monotonic() + seconds
    try:
        while True:
            try:
                await client.ping()
                return
            except (AuthenticationError, ResponseError) as exc:
                raise RedisRefused(_why(exc)) from exc
            except (RedisError, OSError) as exc:
                if time.monotonic() >= deadline:
                    raise StreamsUnavailable(_why(exc)) from exc
            await asyncio.sleep(0.5)
    finally:
        await client.aclose()


def connect(url: str, *, max_connections: int = 64) -> Redis:
    """A client for `url` whose calls wait for a free connection (at most `max_connections`)
    rather than fail when hundreds of streams record at once."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=5,
        decode_responses=True,
        # Off: they are for managed Redis services' maintenance, and while on, the pool does not
        # check that an idle connection is still open before handing it out, so the first call
        # on each after a Redis restart failed ("Connection closed by server").
        maint_notifications_config=MaintNotificationsConfig(enabled=False),
        # A Redis that hangs (stopped, or a network that drops packets) fails a call after 2 s
        # rather than hold every stream's next chunk up for the default's much longer.
        socket_timeout=2,
        socket_connect_timeout=2,
    )
    return Redis.from_pool(pool)  # closing the client closes the pool
