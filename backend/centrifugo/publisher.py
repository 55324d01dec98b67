"""Owns every call to Centrifugo's server HTTP API: payloads, batching, retries and errors.

Publications from all streams share one queue. A single sender posts whatever is queued as one
`/api/batch` call (sequential, so each channel keeps its order) and waits for the reply before
the next: when it is idle a publication goes out alone at once; under load one HTTP request
carries hundreds. Thousands of concurrent streams then cost a few requests a second, not one
request per chunk.

Failures stay with their publication: each is encoded before it joins a batch (a payload that
cannot be encoded fails alone, at once), and a batch refused as a whole is split until the
culprit is found. While Centrifugo is unreachable or answers 5xx, the sender retries with capped
backoff for up to `outage_seconds` (the same versions on v6, idempotency keys on v5.4, so nothing
lands twice); a `done`
is retried until it lands or the publisher closes. (Timelines: docs/architecture.md.)
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import time
from collections.abc import Sequence
from typing import Any, Protocol

import httpx
import orjson

from backend.centrifugo.publications import publication
from backend.centrifugo.transport import RESEND_IF_STALE
from backend.core.ports import Publication, PublishError
from backend.core.types import Chunk, Done

logger = logging.getLogger(__name__)

_BACKOFF_SECONDS = (0.05, 0.1, 0.2, 0.5, 1.0)  # then 1 s between tries
# Each publication of a stream carries a version (Centrifugo v6: a publication whose version is
# not above the channel's last one is dropped, atomically in its engine, memory or Redis): a
# chunk's is its seq, a `done`'s is above any seq. So nothing lands after a `done` (a process
# paused between recording a chunk and publishing it, whose stream a survivor ended meanwhile:
# a cluster probe saw every stream of the paused process get one), and a chunk retried after
# its idempotency record expired lands once. v5.4 ignores the field.
DONE_VERSION = 10**15  # exact in Redis's Lua numbers (doubles), above any seq
# Where every node takes versions, a chunk needs no idempotency key as well: a chunk resent
# lands once all the same, and Centrifugo keeps no idempotency result for it (5 minutes, per
# publication) nor spends ~5 us of its ~18 us a publication on it (measured: /api/batch of 500,
# memory engine). A `done` keeps its key: two processes may send one each.
_VERSIONED_FROM = 6
MAX_BATCH = 500
# A batch refused for one of these reasons is split to find the publication it is about; an
# auth failure (401, 403) is everyone's and is not.
_SPLIT_STATUSES = frozenset({400, 413, 422})
# `ready()` trusts a call that succeeded this recently instead of asking again.
_FRESH_SECONDS = 1.0


class _Refused(PublishError):
    """Centrifugo answered with an HTTP status that retrying will not change."""

    def __init__(self, channel: str, status: int) -> None:
        super().__init__(channel, f"Centrifugo answered HTTP {status}")
        self.status = status


def _dumps(value: object) -> bytes:
    return orjson.dumps(value)


class _Outcomes:
    """The outcomes of one `publish_many`: one future for all of them, not one each."""

    __slots__ = ("all_settled", "errors", "left")

    def __init__(self, count: int) -> None:
        self.errors: list[PublishError | None] = [None] * count
        self.left = count
        self.all_settled: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def settle(self, index: int, error: PublishError | None) -> None:
        self.errors[index] = error
        self.left -= 1
        if self.left == 0 and not self.all_settled.done():
            self.all_settled.set_result(None)


class _Pending:
    """One publication on its way: item `index` of `outcomes`, settled once."""

    __slots__ = ("channel", "command", "index", "keyed", "must_land", "outcomes", "settled")

    def __init__(
        self,
        channel: str,
        command: bytes,
        keyed: bool,
        must_land: bool,
        outcomes: _Outcomes,
        index: int,
    ) -> None:
        self.channel = channel
        self.command = command  # `{"publish": {...}}`, encoded once, before it joins a batch
        self.keyed = keyed  # an idempotency key or (v6) a version: safe to send again
        self.must_land = must_land  # a `done`: retried until it lands, however long it takes
        self.outcomes = outcomes
        self.index = index
        self.settled = False

    def fail(self, error: PublishError) -> None:
        if not self.settled:
            self.settled = True
            self.outcomes.settle(self.index, PublishError(self.channel, error.message))

    def succeed(self) -> None:
        if not self.settled:
            self.settled = True
            self.outcomes.settle(self.index, None)


class PublishEvents(Protocol):
    """What the publisher reports, for metrics."""

    def batch_answered(self, size: int, seconds: float) -> None: ...

    def batch_retried(self) -> None: ...

    def published(self, ok: int, failed: int) -> None: ...


class _NoEvents:
    def batch_answered(self, size: int, seconds: float) -> None:
        pass

    def batch_retried(self) -> None:
        pass

    def published(self, ok: int, failed: int) -> None:
        pass


class CentrifugoPublisher:
    """The `Publisher` port on Centrifugo's server API, over one shared `httpx.AsyncClient`."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        api_url: str | Sequence[str],
        api_key: str,
        *,
        outage_seconds: float = 30.0,
        max_batch: int = MAX_BATCH,
        events: PublishEvents | None = None,
    ) -> None:
        self._client = client
        self._events: PublishEvents = events or _NoEvents()
        # Several: the nodes of one cluster (any of them publishes to every subscriber), the
        # first used until a call to it fails for a reason of its own (unreachable, too slow,
        # 5xx), then the next: one node that hangs or dies no longer holds up every stream of
        # the backends that publish through it (a cluster probe: 15 s of silence).
        urls = [api_url] if isinstance(api_url, str) else list(api_url)
        if not urls:
            raise ValueError("no Centrifugo API URL")
        self._api_urls = [url.rstrip("/") for url in urls]
        self._api_url = self._api_urls[0]
        self._headers = {"X-API-Key": api_key, "Content-Type": "application/json"}
        self._outage_seconds = outage_seconds
        self._max_batch = max_batch
        self._queue: list[_Pending] = []
        self._wakeup = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._closed = False
        self._last_ok = self._failed_at = -math.inf  # never
        self._unreachable: PublishError | None = None
        self._asking: asyncio.Task[dict[str, Any]] | None = None
        self._in_flight: list[_Pending] = []  # the batch being sent
        self._requeued = False  # a `done` went back to the queue after an outage
        self._outage_since: float | None = None  # when the outage the log told of began
        # Whether every node takes publication versions (`_VERSIONED_FROM`), from its info;
        # None: not known (not asked yet, or Centrifugo was out of reach since: maybe another
        # process, maybe another version), and chunks keep their keys.
        self._versioned: bool | None = None

    async def publish(
        self,
        channel: str,
        item: Chunk | Done,
        *,
        idempotency_key: str | None = None,
        stream: str = "",
    ) -> None:
        """Publish `item` to `channel`; raise `PublishError` when Centrifugo did not take it."""
        (error,) = await self.publish_many([(channel, item, idempotency_key, stream)])
        if error is not None:
            raise error

    async def publish_many(self, items: Sequence[Publication]) -> list[PublishError | None]:
        """Queue every item at once (one batch when the sender is free), then wait for all."""
        if self._closed:
            return [PublishError(channel, "the publisher is closed") for channel, *_ in items]
        if not items:
            return []
        outcomes = _Outcomes(len(items))
        queue = self._queue
        versioned = self._versioned is True
        for index, (channel, item, key, stream) in enumerate(items):
            payload: dict[str, Any] = {"channel": channel, "data": publication(item)}
            # Versions are compared within one stream only (its lease as their epoch): the next
            # stream on the channel (reused after its 2 minutes) starts again from 1. Without
            # it, a `done` still in the channel's meta (kept 300 s) dropped the whole next
            # answer (a review). No stream, no version: an empty epoch matches every one.
            version = (DONE_VERSION if isinstance(item, Done) else item.seq) if stream else 0
            if version:
                payload["version"] = version
                payload["version_epoch"] = stream
            # A chunk's version does what its key would (where every node takes versions).
            by_version = versioned and version and isinstance(item, Chunk)
            if key is not None and not by_version:
                payload["idempotency_key"] = key
            try:
                command = _dumps({"publish": payload})
            except (TypeError, ValueError) as exc:
                error = PublishError(channel, f"the publication cannot be encoded ({exc})")
                outcomes.settle(index, error)
                continue
            queue.append(
                _Pending(
                    channel,
                    command,
                    key is not None or bool(by_version),
                    isinstance(item, Done),
                    outcomes,
                    index,
                )
            )
        self._wakeup.set()
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(
                self._send_forever(), name="centrifugo publisher", context=contextvars.Context()
            )
        # Shielded: a caller that stops waiting (a cancelled stream) must not cancel what the
        # sender will settle; the publications are on their way regardless.
        await asyncio.shield(outcomes.all_settled)
        return outcomes.errors

    async def aclose(self) -> None:
        """Stop the sender for good; publications still queued, and any later, fail."""
        self._closed = True
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.wait([self._sender])
        # The batch that was on its way too: its callers (the relay's one flusher among them)
        # would otherwise wait for good.
        for pending in self._in_flight + self._queue:
            pending.fail(PublishError(pending.channel, "the publisher is closed"))
        self._in_flight = []
        self._queue.clear()

    async def has_history(self, channel: str) -> bool:
        """Whether Centrifugo still keeps publications of `channel` (an answer ran there within
        the history's lifetime, 120 s). Read-only: safe to send twice."""
        body = orjson.dumps({"channel": channel, "limit": 1})
        reply = await self._call("history", body, channel)
        result = reply.get("result")
        return isinstance(result, dict) and bool(result.get("publications"))

    async def ready(self, *, known: bool = False) -> None:
        """Return when Centrifugo takes publications, else raise `PublishError`. A call that
        just succeeded or failed answers for it; otherwise Centrifugo is asked for its node info
        (which also proves the API key right). With `known`, a last call that succeeded answers
        however old it is, and the question is asked in the background: a burst of prompts after
        a quiet spell waited for it (all 100 first tokens of a burst 45 ms late)."""
        now = time.monotonic()
        if now - self._last_ok < _FRESH_SECONDS:
            if self._versioned is None and (self._asking is None or self._asking.done()):
                # Busy, so never stale: the versions are asked about in the background.
                self._asking = asyncio.create_task(self._info(), name="versions")
                self._asking.add_done_callback(lambda t: t.cancelled() or t.exception())
            return
        if (
            self._unreachable is not None
            and now - self._failed_at < _FRESH_SECONDS
            and len(self._api_urls) == 1  # else the next node is asked
        ):
            raise self._unreachable
        # One question at a time, however many ask.
        if self._asking is None or self._asking.done():
            self._asking = asyncio.create_task(self._info(), name="ready")
            self._asking.add_done_callback(lambda t: t.cancelled() or t.exception())
        if known and self._unreachable is None and self._last_ok > -math.inf:
            return
        await asyncio.shield(self._asking)

    async def _info(self) -> dict[str, Any]:
        """Centrifugo's node info (from the next node while one cannot answer); it says whether
        every node takes publication versions."""
        for tries_left in range(len(self._api_urls) - 1, -1, -1):
            try:
                reply = await self._call("info", b"{}", "")
            except PublishError as exc:
                if not exc.retryable or not tries_left:
                    raise
                continue
            self._versioned = _all_versioned(reply)
            return reply
        raise AssertionError("unreachable")

    async def _send_forever(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                batch = self._in_flight = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                try:
                    await self._send(batch)
                except Exception as exc:  # never leave a publisher waiting forever
                    logger.exception("publishing a batch failed")
                    for pending in batch:
                        pending.fail(PublishError(pending.channel, f"unexpected error: {exc}"))
                self._in_flight = []
                if self._requeued:
                    # A `done` that outlasted an outage is back in the queue: not at once again
                    # (with PUBLISH_OUTAGE_SECONDS=0 that was a busy loop).
                    self._requeued = False
                    await asyncio.sleep(_BACKOFF_SECONDS[-1])

    async def _send(self, batch: list[_Pending]) -> None:
        """Send `batch`, riding out an outage; a refusal of the whole batch is narrowed down."""
        try:
            replies = await self._call_until_up(batch)
        except PublishError as exc:
            if len(batch) > 1 and exc.retryable is False and _splittable(exc):
                middle = len(batch) // 2
                await self._send(batch[:middle])
                await self._send(batch[middle:])
                return
            self._fail_or_requeue(batch, exc)
            return
        failed = requeued = 0
        for pending, reply in zip(batch, replies, strict=True):
            error = reply.get("error") if isinstance(reply, dict) else "malformed reply"
            if not error:
                pending.succeed()
            elif pending.must_land and pending.keyed and _is_internal(error) and not self._closed:
                self._queue.append(pending)  # a `done` outlasting the outage: later, again
                self._requeued = True
                requeued += 1
            else:
                failed += 1
                pending.fail(PublishError(pending.channel, _describe(error)))
        self._events.published(len(batch) - failed - requeued, failed)

    async def _call_until_up(self, batch: list[_Pending]) -> list[Any]:
        """The batch's replies. Transport errors, 5xx and publications Centrifugo could not
        take for a reason of its own (error 100 in a reply: its engine, e.g. Redis restarting)
        are an outage: when every publication has an idempotency key, the whole batch is sent
        again with capped backoff for up to `outage_seconds` (the same keys: what did land is
        not published twice; the whole batch, in order: a failed publication is not overtaken
        by its channel's next)."""
        body = b'{"commands":[' + b",".join(p.command for p in batch) + b"]}"
        where = batch[0].channel if len(batch) == 1 else ""
        retry_safe = all(pending.keyed for pending in batch)
        started, attempt = time.monotonic(), 0
        while True:
            try:
                called = time.monotonic()
                result = await self._call("batch", body, where, resend=retry_safe)
                self._events.batch_answered(len(batch), time.monotonic() - called)
            except PublishError as exc:
                if not exc.retryable or not retry_safe or self._out_of_time(started):
                    self._gave_up(exc.retryable and retry_safe, len(batch))
                    raise
                problem = exc.message
            else:
                replies = result.get("replies")
                if not isinstance(replies, list) or len(replies) != len(batch):
                    raise PublishError(where, "Centrifugo's batch reply is malformed")
                internal = _internal_error(replies)
                if internal is None:
                    self._outage_over()
                    return replies
                if not retry_safe or self._out_of_time(started):
                    self._gave_up(retry_safe, len(batch))
                    return replies
                problem = _describe(internal)
            if self._outage_since is None:  # said once an outage, however many batches wait
                self._outage_since = started
                logger.warning(
                    "Centrifugo unavailable, retrying for up to %g s: %s",
                    self._outage_seconds,
                    problem,
                )
            delay = _BACKOFF_SECONDS[min(attempt, len(_BACKOFF_SECONDS) - 1)]
            attempt += 1
            self._events.batch_retried()
            await asyncio.sleep(delay)

    def _outage_over(self) -> None:
        """A batch got through: an outage the log told of is over, and it says so."""
        if self._outage_since is not None:
            logger.info(
                "Centrifugo is taking publications again (after %.1f s)",
                time.monotonic() - self._outage_since,
            )
            self._outage_since = None

    def _gave_up(self, waited: bool, publications: int) -> None:
        """A batch given up on while Centrifugo is still unavailable (the outage goes on: its
        end is said when a batch gets through)."""
        if waited and self._outage_since is not None:
            logger.warning(
                "Centrifugo still unavailable after %.1f s: %d publication(s) given up on "
                "(a done among them is tried again)",
                time.monotonic() - self._outage_since,
                publications,
            )

    def _out_of_time(self, started: float) -> bool:
        return time.monotonic() - started >= self._outage_seconds

    def _fail_or_requeue(self, batch: list[_Pending], error: PublishError) -> None:
        """Fails the batch, but a `done` that could not get through an outage goes back to the
        queue: it is retried until it lands or the publisher closes."""
        failed = 0
        for pending in batch:
            if pending.must_land and error.retryable and pending.keyed and not self._closed:
                self._queue.append(pending)
                self._requeued = True
            else:
                failed += 1
                pending.fail(error)
        self._events.published(0, failed)

    async def _call(
        self, method: str, body: bytes, channel: str, *, resend: bool = True
    ) -> dict[str, Any]:
        """POST `body` to the server API; the whole reply body. Records whether Centrifugo is
        reachable, for `ready()`."""
        try:
            reply = await self._post(method, body, channel, resend)
        except PublishError as exc:
            if exc.retryable:
                self._unreachable = PublishError("", exc.message, retryable=True)
                self._failed_at = time.monotonic()
                self._versioned = None  # what answers next may be another Centrifugo
                self._next_node()
            raise
        self._unreachable = None
        self._last_ok = time.monotonic()
        return reply

    def _next_node(self) -> None:
        if len(self._api_urls) > 1:
            index = (self._api_urls.index(self._api_url) + 1) % len(self._api_urls)
            logger.warning(
                "Centrifugo at %s failed; publishing through %s",
                self._api_url,
                self._api_urls[index],
            )
            self._api_url = self._api_urls[index]

    async def _post(self, method: str, body: bytes, channel: str, resend: bool) -> dict[str, Any]:
        try:
            response = await self._client.post(
                f"{self._api_url}/{method}",
                content=body,
                headers=self._headers,
                # Safe to send twice (read-only, or every publication keyed): the transport may,
                # when a kept-alive connection turns out closed before any reply.
                extensions={RESEND_IF_STALE: resend},
            )
        except httpx.TimeoutException as exc:
            # Said to API clients too (a 503's reason): in words, not the call's name alone.
            message = f"Centrifugo did not answer in time (its {method} call)"
            raise PublishError(channel, message, retryable=True) from exc
        except httpx.TransportError as exc:
            message = f"cannot reach Centrifugo ({exc.__class__.__name__})"
            raise PublishError(channel, message, retryable=True) from exc
        if response.status_code >= 500:
            message = f"Centrifugo answered HTTP {response.status_code}"
            raise PublishError(channel, message, retryable=True)
        if response.status_code != 200:
            raise _Refused(channel, response.status_code)
        try:
            reply = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise PublishError(channel, "Centrifugo answered with a body that is not JSON") from exc
        if not isinstance(reply, dict):
            raise PublishError(channel, "Centrifugo answered with an unexpected body")
        if reply.get("error"):
            raise PublishError(channel, _describe(reply["error"]))
        return reply


# Centrifugo's "internal server error" in a reply: its own trouble (its engine unreachable),
# not the publication's; the other codes (bad channel, permissions, limits...) are final.
_INTERNAL_CODE = 100


def _all_versioned(info: dict[str, Any]) -> bool:
    """Whether every node in Centrifugo's info reply is a version that takes publication
    versions (a development build without a version, "0.0.0", is not taken for one)."""
    result = info.get("result")
    nodes = result.get("nodes") if isinstance(result, dict) else None
    if not isinstance(nodes, list) or not nodes:
        return False
    for node in nodes:
        version = node.get("version") if isinstance(node, dict) else None
        major = str(version or "").lstrip("v").partition(".")[0]
        if not major.isdigit() or int(major) < _VERSIONED_FROM:
            return False
    return True


def _is_internal(error: object) -> bool:
    return isinstance(error, dict) and error.get("code") == _INTERNAL_CODE


def _internal_error(replies: list[Any]) -> object | None:
    """The first reply's error that is Centrifugo's own trouble, if any."""
    for reply in replies:
        error = reply.get("error") if isinstance(reply, dict) else None
        if _is_internal(error):
            return error
    return None


def _splittable(error: PublishError) -> bool:
    return not isinstance(error, _Refused) or error.status in _SPLIT_STATUSES


def _describe(error: object) -> str:
    detail = error if isinstance(error, dict) else {"message": error}
    return f"Centrifugo error {detail.get('code')}: {detail.get('message')}"
