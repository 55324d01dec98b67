"""Owns every call to Centrifugo's server HTTP API: payloads, batching, retries and errors.

Publications from all streams share one queue. A single sender posts whatever is queued as one
`/api/batch` call (sequential, so each channel keeps its order) and waits for the reply before
the next: when it is idle a publication goes out alone at once; under load one HTTP request
carries hundreds. Thousands of concurrent streams then cost a few requests a second, not one
request per chunk.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import httpx

from backend.centrifugo.publications import publication
from backend.core.ports import PublishError
from backend.core.types import Chunk, Done

logger = logging.getLogger(__name__)

# A retry after a lost reply must not publish twice: Centrifugo drops a publish whose
# idempotency key it has seen in the last 5 minutes.
_RETRY_BACKOFF_SECONDS = (0.05, 0.2, 0.5, 1.0)
MAX_BATCH = 500


@dataclass
class _Pending:
    payload: dict[str, Any]
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def __post_init__(self) -> None:
        # A caller that stopped waiting never reads the outcome: mark it read, or asyncio
        # would log "exception was never retrieved" for each failed publication.
        self.done.add_done_callback(lambda f: f.cancelled() or f.exception())

    @property
    def channel(self) -> str:
        channel: str = self.payload["channel"]
        return channel

    def fail(self, error: PublishError) -> None:
        if not self.done.done():
            self.done.set_exception(error)

    def succeed(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


class CentrifugoPublisher:
    """The `Publisher` port on Centrifugo's server API, over one shared `httpx.AsyncClient`."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        api_url: str,
        api_key: str,
        *,
        attempts: int = 3,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._client = client
        self._api_url = api_url.rstrip("/")
        self._headers = {"X-API-Key": api_key}
        self._attempts = attempts
        self._max_batch = max_batch
        self._queue: list[_Pending] = []
        self._wakeup = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._closed = False

    async def publish(
        self, channel: str, item: Chunk | Done, *, idempotency_key: str | None = None
    ) -> None:
        """Publish `item` to `channel`; raise `PublishError` when Centrifugo did not take it.

        Transport failures and 5xx replies are retried (with the same idempotency key, so a
        publication that did land is not repeated); API errors and 4xx are final.
        """
        if self._closed:
            raise PublishError(channel, "the publisher is closed")
        payload: dict[str, Any] = {"channel": channel, "data": publication(item)}
        if idempotency_key is not None:
            payload["idempotency_key"] = idempotency_key
        pending = _Pending(payload)
        self._queue.append(pending)
        self._wakeup.set()
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_forever(), name="centrifugo publisher")
        # Shielded: a caller that stops waiting (a cancelled stream) must not cancel the future
        # the sender will resolve; the publication itself is already on its way.
        await asyncio.shield(pending.done)

    async def aclose(self) -> None:
        """Stop the sender for good; publications still queued, and any later, fail."""
        self._closed = True
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.wait([self._sender])
        for pending in self._queue:
            pending.fail(PublishError(pending.channel, "the publisher is closed"))
        self._queue.clear()

    async def ready(self) -> None:
        """Asks Centrifugo for its node info: proves the server is up and the API key right."""
        await self._call("info", {}, "")

    async def _send_forever(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                try:
                    await self._send(batch)
                except Exception as exc:  # never leave a publisher waiting forever
                    logger.exception("publishing a batch failed")
                    for pending in batch:
                        pending.fail(PublishError(pending.channel, f"unexpected error: {exc}"))

    async def _send(self, batch: list[_Pending]) -> None:
        # A batch is retried whole only when every publication in it is idempotent.
        retry_safe = all("idempotency_key" in p.payload for p in batch)
        commands = [{"publish": p.payload} for p in batch]
        where = batch[0].channel if len(batch) == 1 else ""
        for attempt in range(self._attempts):
            try:
                result = await self._call("batch", {"commands": commands}, where, raw=True)
                break
            except PublishError as exc:
                if not exc.retryable or not retry_safe or attempt + 1 == self._attempts:
                    for pending in batch:
                        pending.fail(PublishError(pending.channel, exc.message))
                    return
                delay = _RETRY_BACKOFF_SECONDS[min(attempt, len(_RETRY_BACKOFF_SECONDS) - 1)]
                logger.warning("retrying %d publication(s) in %.2fs: %s", len(batch), delay, exc)
                await asyncio.sleep(delay)
        replies = result.get("replies")
        if not isinstance(replies, list) or len(replies) != len(batch):
            for pending in batch:
                pending.fail(PublishError(pending.channel, "Centrifugo's batch reply is malformed"))
            return
        for pending, reply in zip(batch, replies, strict=True):
            error = reply.get("error") if isinstance(reply, dict) else "malformed reply"
            if error:
                pending.fail(PublishError(pending.channel, _describe(error)))
            else:
                pending.succeed()

    async def _call(
        self, method: str, payload: dict[str, Any], channel: str, *, raw: bool = False
    ) -> dict[str, Any]:
        """POST to the server API; the `result` object (or, with `raw`, the whole body)."""
        try:
            response = await self._client.post(
                f"{self._api_url}/{method}", json=payload, headers=self._headers
            )
        except httpx.TimeoutException as exc:
            raise PublishError(channel, f"{method} timed out", retryable=True) from exc
        except httpx.TransportError as exc:
            message = f"cannot reach Centrifugo ({exc.__class__.__name__})"
            raise PublishError(channel, message, retryable=True) from exc
        if response.status_code >= 500:
            message = f"Centrifugo answered HTTP {response.status_code}"
            raise PublishError(channel, message, retryable=True)
        if response.status_code != 200:
            raise PublishError(channel, f"Centrifugo answered HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError as exc:
            raise PublishError(channel, "Centrifugo answered with a body that is not JSON") from exc
        if not isinstance(body, dict):
            raise PublishError(channel, "Centrifugo answered with an unexpected body")
        if body.get("error"):
            raise PublishError(channel, _describe(body["error"]))
        if raw:
            return body
        result: dict[str, Any] = body.get("result") or {}
        return result


def _describe(error: object) -> str:
    detail = error if isinstance(error, dict) else {"message": error}
    return f"Centrifugo error {detail.get('code')}: {detail.get('message')}"
