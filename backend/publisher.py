"""Owns every call to Centrifugo's server HTTP API: payloads, retries and errors."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

import httpx

logger = logging.getLogger(__name__)

# A retry after a lost reply must not publish twice: Centrifugo drops a publish whose
# idempotency key it has seen in the last 5 minutes.
_RETRY_BACKOFF_SECONDS = (0.05, 0.2, 0.5, 1.0)


class PublishError(Exception):
    """Centrifugo did not take a command (transport, HTTP status or API error)."""

    def __init__(self, channel: str, message: str, *, retryable: bool = False) -> None:
        where = f" on {channel!r}" if channel else ""
        super().__init__(f"Centrifugo call{where} failed: {message}")
        self.channel = channel
        self.message = message
        self.retryable = retryable


class Publisher(Protocol):
    """What the relay and the routes need from Centrifugo; tests swap in a recorder."""

    async def publish(
        self, channel: str, data: dict[str, Any], *, idempotency_key: str | None = None
    ) -> None: ...

    async def info(self) -> dict[str, Any]: ...


class CentrifugoPublisher:
    """Publishes to Centrifugo over one shared `httpx.AsyncClient`."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        api_url: str,
        api_key: str,
        *,
        attempts: int = 3,
    ) -> None:
        self._client = client
        self._api_url = api_url.rstrip("/")
        self._headers = {"X-API-Key": api_key}
        self._attempts = attempts

    async def publish(
        self, channel: str, data: dict[str, Any], *, idempotency_key: str | None = None
    ) -> None:
        """Publish `data` to `channel`; raise `PublishError` when Centrifugo did not take it.

        Transport failures and 5xx replies are retried (with the same idempotency key, so a
        publication that did land is not repeated); API errors and 4xx are final.
        """
        payload: dict[str, Any] = {"channel": channel, "data": data}
        if idempotency_key is not None:
            payload["idempotency_key"] = idempotency_key
        for attempt in range(self._attempts):
            try:
                await self._call("publish", payload, channel)
                return
            except PublishError as exc:
                if not exc.retryable or idempotency_key is None or attempt + 1 == self._attempts:
                    raise
                delay = _RETRY_BACKOFF_SECONDS[min(attempt, len(_RETRY_BACKOFF_SECONDS) - 1)]
                logger.warning("retrying publish to %s in %.2fs: %s", channel, delay, exc)
                await asyncio.sleep(delay)

    async def history(self, channel: str, limit: int = -1) -> list[dict[str, Any]]:
        """The publications a channel keeps, oldest first."""
        result = await self._call("history", {"channel": channel, "limit": limit}, channel)
        publications: list[dict[str, Any]] = result.get("publications", [])
        return publications

    async def info(self) -> dict[str, Any]:
        """Centrifugo's node info; proves the server is up and the API key is right."""
        return await self._call("info", {}, "")

    async def _call(self, method: str, payload: dict[str, Any], channel: str) -> dict[str, Any]:
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
        error = body.get("error")
        if error:
            detail = error if isinstance(error, dict) else {"message": error}
            raise PublishError(
                channel, f"Centrifugo error {detail.get('code')}: {detail.get('message')}"
            )
        result: dict[str, Any] = body.get("result") or {}
        return result
