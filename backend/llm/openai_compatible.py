"""A model behind any OpenAI-compatible Chat Completions server (OpenAI, Ollama, vLLM,
llama.cpp), streamed over the shared httpx client. Content deltas are the answer; reasoning
deltas (`reasoning_content` or `reasoning`) are the thinking phase.

The stream is decoded by httpx-sse, which splits lines only where the SSE specification does
(CR, LF, CRLF): text with U+2028, U+2029 or U+0085, which servers may send unescaped inside JSON
strings, stays whole, and a `data:` field spread over several lines is one event."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
from httpx_sse import EventSource, SSEError

from backend.core.ports import ModelError
from backend.core.types import Question, Token

logger = logging.getLogger(__name__)

_STATUS_MESSAGES = {
    401: "the model server refused the API key (HTTP 401)",
    403: "the model server refused access (HTTP 403)",
    404: "the model server does not know this model or path (HTTP 404)",
    429: "the model server is rate limiting or out of quota (HTTP 429); try again shortly",
}


class OpenAICompatibleModel:
    """The `Model` port on an OpenAI-compatible Chat Completions server (streaming)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        model: str,
        api_key: str = "",
        system_prompt: str = "",
        timeout_seconds: float = 60.0,
    ) -> None:
        self._client = client
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._model = model
        self._api_key = api_key
        self._system_prompt = system_prompt
        # Read timeout: the longest silence between two chunks before giving up.
        self._timeout = httpx.Timeout(timeout_seconds, connect=10.0)

    def request_body(self, question: Question) -> dict[str, Any]:
        messages = (
            [{"role": "system", "content": self._system_prompt}] if self._system_prompt else []
        )
        messages += [{"role": turn.role, "content": turn.content} for turn in question.history]
        messages.append({"role": "user", "content": question.prompt})
        return {"model": self._model, "messages": messages, "stream": True}

    async def stream(self, question: Question) -> AsyncIterator[Token]:
        headers = {"Accept": "text/event-stream"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        body = self.request_body(question)
        try:
            # Leaving this block, also when the consumer stops early, closes the upstream response.
            async with self._client.stream(
                "POST", self._url, json=body, headers=headers, timeout=self._timeout
            ) as response:
                if response.status_code != 200:
                    raise ModelError(await self._status_error(response), kind="status")
                async for token in self._tokens(response, question.thinking):
                    yield token
        except httpx.TimeoutException as exc:
            raise ModelError("the model server did not answer in time", kind="timeout") from exc
        except httpx.TransportError as exc:
            raise ModelError(
                f"the connection to the model server failed ({exc.__class__.__name__})",
                kind="unreachable",
            ) from exc

    async def _tokens(self, response: httpx.Response, thinking: bool) -> AsyncIterator[Token]:
        events = EventSource(response).aiter_sse()
        try:
            async for event in events:
                if not event.data:
                    continue  # an event with no data field carries nothing
                if event.data.strip() == "[DONE]":
                    return
                for token in self._parse(event.data):
                    if token.phase == "answer" or thinking:
                        yield token
        except SSEError as exc:
            raise ModelError(
                "the model server did not answer with an event stream", kind="protocol"
            ) from exc
        finally:
            await events.aclose()
        raise ModelError(
            "the model server ended the answer before it was complete", kind="protocol"
        )

    def _parse(self, payload: str) -> list[Token]:
        try:
            chunk = json.loads(payload)
        except ValueError as exc:
            raise ModelError("the model server sent a malformed chunk", kind="protocol") from exc
        if not isinstance(chunk, dict):
            raise ModelError("the model server sent a malformed chunk", kind="protocol")
        if chunk.get("error"):
            raise ModelError(
                f"the model server reported an error: {self._describe(chunk)}", kind="reported"
            )
        tokens: list[Token] = []
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if not isinstance(delta, dict):
                continue
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                tokens.append(Token(reasoning, "thinking"))
            content = delta.get("content")
            if isinstance(content, str) and content:
                tokens.append(Token(content))
        return tokens

    async def _status_error(self, response: httpx.Response) -> str:
        status = response.status_code
        message = _STATUS_MESSAGES.get(status) or (
            f"the model server failed (HTTP {status})"
            if status >= 500
            else f"the model server refused the request (HTTP {status})"
        )
        try:
            detail = self._describe(json.loads(await response.aread()))
        except (ValueError, httpx.HTTPError):
            detail = ""
        return f"{message}: {detail}" if detail else message

    def _describe(self, body: Any) -> str:
        """The provider's own error message, short, and never with the API key in it."""
        error = body.get("error") if isinstance(body, dict) else None
        message = error.get("message") if isinstance(error, dict) else error
        if not isinstance(message, str):
            return ""
        if self._api_key:
            message = message.replace(self._api_key, "***")
        return message[:200]
