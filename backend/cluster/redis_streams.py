"""The `Streams` registry on Redis, shared by every backend process (REDIS_URL): one running
stream per channel across all of them, a per-user cap that holds across them, snapshots any of
them can serve, a stop that reaches the process running the stream (Redis pub/sub), and leases,
so that a stream whose process died is ended by a survivor (`reap_expired`).

Keys (all under `relaychat:`): `run:<channel>` a hash (lease, owner, seq) while it runs, with
`text:<channel>` and `thinking:<channel>` (APPENDed strings); `leases`, a sorted set of running
channels by lease expiry (ms); `owner:<user>`, the channels a user runs; `done:<channel>`, the
finished snapshot as JSON, kept as long as the channel's history (600 s). Each change is one Lua
script, so it is atomic. One Redis (or a primary with replicas); Redis Cluster would need the
keys of a script in one slot (docs/scaling.md)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from backend.core.ports import (
    ChannelUsed,
    StopRequest,
    StreamBusy,
    StreamsUnavailable,
    TooManyStreams,
)
from backend.core.types import Chunk, Done, Snapshot

logger = logging.getLogger(__name__)

PREFIX = "relaychat:"
STOP_CHANNEL = PREFIX + "stop"
LEASES = PREFIX + "leases"
FINISHED_TTL_SECONDS = 600
# A running stream's process renews its lease every LEASE_SECONDS / 3; a lease not renewed
# for LEASE_SECONDS means the process is gone.
LEASE_SECONDS = 5.0

_CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 'busy' end
if redis.call('EXISTS', KEYS[2]) == 1 then return 'used' end
local max = tonumber(ARGV[4])
if max > 0 and redis.call('SCARD', KEYS[4]) >= max then return 'too_many' end
redis.call('HSET', KEYS[1], 'lease', ARGV[2], 'owner', ARGV[3], 'seq', 0)
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1])
redis.call('SADD', KEYS[4], ARGV[1])
return 'ok'
"""

_RECORD = """
if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'seq', ARGV[2])
if ARGV[3] == 'thinking' then
  redis.call('APPEND', KEYS[3], ARGV[4])
else
  redis.call('APPEND', KEYS[2], ARGV[4])
end
return 1
"""

# Ends one stream: its snapshot is kept finished, everything running about it goes. Used by
# `release` (the owner, with its lease) and by `reap` (anyone, for an expired lease).
_FINISH = """
local function finish(channel, done_json, ttl)
  local run = 'relaychat:run:' .. channel
  local owner = redis.call('HGET', run, 'owner')
  local seq = tonumber(redis.call('HGET', run, 'seq') or '0')
  local text = redis.call('GET', 'relaychat:text:' .. channel) or ''
  local thinking = redis.call('GET', 'relaychat:thinking:' .. channel) or ''
  local snapshot = {text = text, thinking = thinking, seq = seq, done = cjson.decode(done_json)}
  redis.call('SET', 'relaychat:done:' .. channel, cjson.encode(snapshot), 'EX', ttl)
  redis.call('DEL', run, 'relaychat:text:' .. channel, 'relaychat:thinking:' .. channel)
  redis.call('ZREM', 'relaychat:leases', channel)
  if owner then redis.call('SREM', 'relaychat:owner:' .. owner, channel) end
  return seq
end
"""

_RELEASE = (
    _FINISH
    + """
if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[1] then return -1 end
return finish(ARGV[2], ARGV[3], ARGV[4])
"""
)

_REAP = (
    _FINISH
    + """
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[4])
local out = {}
for _, channel in ipairs(expired) do
  table.insert(out, channel)
  table.insert(out, finish(channel, ARGV[3], ARGV[2]))
end
return out
"""
)

# Renews the leases of the channels given; returns those that have none any more (another
# process reaped them, e.g. after this one could not reach Redis for a whole lease).
_RENEW = """
local lost = {}
for i = 2, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i])
  else
    table.insert(lost, ARGV[i])
  end
end
return lost
"""
# How a stream ends here when another process has already ended it in the registry (and
# published its `done`): it stops, and its release then finds the lease gone (no second done).
LOST = Done("error", "the server answering this stopped; please send the prompt again")


def _run(channel: str) -> str:
    return f"{PREFIX}run:{channel}"


def _done_json(done: Done) -> str:
    return json.dumps({"reason": done.reason, "error": done.error})


@dataclass
class _Local:
    lease: str
    owner: str
    stop: StopRequest


class RedisStreams:
    def __init__(self, redis: Redis, *, lease_seconds: float = LEASE_SECONDS) -> None:
        self._redis = redis
        self._lease_seconds = lease_seconds
        self._local: dict[str, _Local] = {}
        self._claim = redis.register_script(_CLAIM)
        self._record = redis.register_script(_RECORD)
        self._release = redis.register_script(_RELEASE)
        self._reap = redis.register_script(_REAP)
        self._renew = redis.register_script(_RENEW)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Listen for stop requests and keep this process's leases alive."""
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(STOP_CHANNEL)
        self._tasks = [
            asyncio.create_task(self._listen(pubsub), name="redis stop listener"),
            asyncio.create_task(self._renew_forever(), name="redis lease renewal"),
        ]

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _expiry_ms(self) -> int:
        return int((time.time() + self._lease_seconds) * 1000)

    async def claim(
        self, channel: str, stop: StopRequest, *, owner: str = "", max_per_owner: int = 0
    ) -> str:
        lease = uuid.uuid4().hex
        keys = [_run(channel), f"{PREFIX}done:{channel}", LEASES, f"{PREFIX}owner:{owner}"]
        args: list[str | int] = [channel, lease, owner, max_per_owner, self._expiry_ms()]
        try:
            result = await self._claim(keys=keys, args=args)
        except RedisError as exc:
            raise StreamsUnavailable(str(exc)) from exc
        if result == "busy":
            raise StreamBusy(channel)
        if result == "used":
            raise ChannelUsed(channel)
        if result == "too_many":
            raise TooManyStreams(max_per_owner)
        self._local[channel] = _Local(lease, owner, stop)
        return lease

    async def record(self, channel: str, lease: str, chunk: Chunk) -> None:
        keys = [_run(channel), f"{PREFIX}text:{channel}", f"{PREFIX}thinking:{channel}"]
        await self._record(keys=keys, args=[lease, chunk.seq, chunk.phase, chunk.text])

    async def release(self, channel: str, lease: str, done: Done) -> bool:
        local = self._local.get(channel)
        if local is not None and local.lease == lease:
            del self._local[channel]
        args: list[str | int] = [lease, channel, _done_json(done), FINISHED_TTL_SECONDS]
        return int(await self._release(keys=[_run(channel)], args=args)) >= 0

    async def stop(self, channel: str, done: Done) -> bool:
        local = self._local.get(channel)
        if local is not None:  # running here: no need to go through Redis
            local.stop(done)
            return True
        message = {"channel": channel, "reason": done.reason, "error": done.error}
        try:
            if not await self._redis.exists(_run(channel)):
                return False
            await self._redis.publish(STOP_CHANNEL, json.dumps(message))
        except RedisError as exc:
            raise StreamsUnavailable(str(exc)) from exc
        return True

    async def snapshot(self, channel: str) -> Snapshot | None:
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hget(_run(channel), "seq")
                pipe.get(f"{PREFIX}text:{channel}")
                pipe.get(f"{PREFIX}thinking:{channel}")
                pipe.get(f"{PREFIX}done:{channel}")
                seq, text, thinking, finished = await pipe.execute()
        except RedisError as exc:
            raise StreamsUnavailable(str(exc)) from exc
        if seq is not None:
            return Snapshot(text or "", thinking or "", int(seq))
        if finished is None:
            return None
        data = json.loads(finished)
        done = Done(data["done"]["reason"], data["done"].get("error") or None)
        # cjson writes an empty string as "" and a number as a float or int: normalise.
        return Snapshot(data["text"] or "", data["thinking"] or "", int(data["seq"]), done)

    async def reap_expired(self, done: Done, *, limit: int = 100) -> list[tuple[str, int]]:
        """End the streams whose lease ran out (their process is gone): each is released with
        `done`; returns them with the `seq` of their last recorded chunk, for the caller to
        publish their `done`."""
        now_ms = int(time.time() * 1000)
        args: list[str | int] = [now_ms, FINISHED_TTL_SECONDS, _done_json(done), limit]
        flat: list[Any] = await self._reap(keys=[LEASES], args=args)
        return [(str(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2)]

    async def _listen(self, pubsub: PubSub) -> None:
        try:
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    self._stop_requested(message["data"])
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
        while True:
            await asyncio.sleep(self._lease_seconds / 3)
            channels = list(self._local)
            if not channels:
                continue
            try:
                lost = await self._renew(keys=[LEASES], args=[self._expiry_ms(), *channels])
            except Exception:  # Redis briefly unreachable: try again at the next round
                logger.warning("could not renew %d lease(s)", len(channels), exc_info=True)
                continue
            for channel in lost:
                local = self._local.get(channel)
                if local is not None:  # not released meanwhile
                    logger.warning("stream %s was ended by another process; stopping", channel)
                    local.stop(LOST)


def connect(url: str, *, max_connections: int = 64) -> Redis:
    """A client for `url` whose calls wait for a free connection (at most `max_connections`)
    rather than fail when hundreds of streams record at once."""
    pool = BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=5, decode_responses=True
    )
    return Redis.from_pool(pool)  # closing the client closes the pool
