"""A model behind any OpenAI-compatible Chat Completions server (OpenAI, Ollama, vLLM,
llama.cpp), streamed over the shared httpx client. Content deltas are the answer; reasoning
deltas (`reasoning_content` or `reasoning`) are the thinking phase.

The stream is decoded by httpx-sse, which splits lines only where the SSE specification does
(CR, LF, CRLF): text with U+2028, U+2029 or U+0085, which servers may send unescaped inside JSON
strings, stays whole, and a `data:` field spread over several lines is one event. The body is
read as UTF-8 whatever charset its header names (an event stream is always UTF-8), and an event
may be at most MAX_EVENT_CHARS long."""

from __future__ import annotations

import asyncio
import codecs
import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any, cast
from urllib.parse import quote, quote_plus

import httpx
from httpx_sse import EventSource, SSEError

from backend.core.ports import ModelError
from backend.core.types import Question, Token

logger = logging.getLogger(__name__)

_STATUS_MESSAGES = {
    401: "the model server refused the API key (HTTP 401)",
    403: "the model server refused access (HTTP 403)",
    404: "the model server does not know this model or path (HTTP 404)",
}
# The most one event may hold (a line that does not end, or data lines without the blank line
# that ends the event): a server sending more is broken, and reading on would fill the memory.
MAX_EVENT_CHARS = 2 * 1024 * 1024
# The event loop is given to the other streams after this many events in a row.
FAIR_EVENTS = 64
# The most of an error response's body read for the provider's message.
MAX_ERROR_BODY_BYTES = 64 * 1024
# Finish reasons that mean the answer is not whole, and what to tell the reader.
_CUT_OFF = {
    "length": "the answer was cut off: the model reached its length limit",
    "content_filter": "the model server's content filter stopped the answer",
    "error": "the model server ended the answer with an error",
}


class _Utf8Events:
    """What httpx-sse's EventSource reads of a response, its headers and its body as text: the
    body decoded as UTF-8, and cut off with a ModelError once one event runs past
    MAX_EVENT_CHARS (the reader calls `event_read` at each event)."""

    def __init__(self, response: httpx.Response) -> None:
        # Media types are case-insensitive; httpx-sse compares them as written.
        self.headers = response.headers.copy()
        if "content-type" in self.headers:
            self.headers["content-type"] = self.headers["content-type"].lower()
        self._response = response
        self._pending = 0  # characters read since the last event

    def event_read(self) -> None:
        self._pending = 0

    async def aiter_text(self) -> AsyncIterator[str]:
        # utf-8-sig: a leading byte order mark is dropped, as the SSE specification says.
        decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
        async for data in self._response.aiter_bytes():
            # Checked before the next piece, once the reader has taken the events of the last
            # one (a compressed read can hold megabytes of small events).
            if self._pending > MAX_EVENT_CHARS:
                raise ModelError(
                    f"the model server sent an event of over {MAX_EVENT_CHARS} characters",
                    kind="protocol",
                )
            text = decoder.decode(data)
            self._pending += len(text)
            if text:
                yield text
        if tail := decoder.decode(b"", final=True):
            yield tail


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
        # For the log: without the credentials or query a URL may carry.
        self._where = str(httpx.URL(self._url).copy_with(username=None, password=None, query=None))
        self._model = model
        self._api_key = api_key
        # The key as a server may quote it back: as it is, URL-encoded (either case of hex),
        # or escaped in JSON (`/` as `\/` too).
        encoded = {quote(api_key, safe=""), quote_plus(api_key)}
        in_json = json.dumps(api_key)[1:-1]
        forms = {api_key, in_json, in_json.replace("/", "\\/"), *encoded}
        forms |= {re.sub(r"%[0-9A-F]{2}", lambda m: m[0].lower(), form) for form in encoded}
        self._key_forms = sorted(forms, key=len, reverse=True) if api_key else []
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
        # Uncompressed: a compressed read can decode to tens of megabytes before the event
        # limit sees it, and an event stream gains little from it.
        headers = {"Accept": "text/event-stream", "Accept-Encoding": "identity"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        body = self.request_body(question)
        try:
            # Leaving this block, also when the consumer stops early, closes the upstream response.
            async with self._client.stream(
                "POST", self._url, json=body, headers=headers, timeout=self._timeout
            ) as response:
                if response.status_code != 200:
                    message, detail = await self._status_error(response)
                    raise ModelError(message, kind="status", detail=detail)
                async for token in self._tokens(response, question.thinking):
                    yield token
        except httpx.TimeoutException as exc:
            raise ModelError("the model server did not answer in time", kind="timeout") from exc
        except httpx.HTTPError as exc:
            raise self._request_failed(exc) from exc

    def _request_failed(self, exc: httpx.HTTPError) -> ModelError:
        """What a failed request means to the reader; the log gets where and why."""
        name = exc.__class__.__name__
        if isinstance(exc, httpx.TransportError):
            message, kind = f"the connection to the model server failed ({name})", "unreachable"
        elif isinstance(exc, httpx.DecodingError):
            message = "the model server's answer could not be decoded (its Content-Encoding)"
            kind = "protocol"
        else:
            message, kind = f"the request to the model server failed ({name})", "unreachable"
        return ModelError(message, kind=kind, detail=f"{self._where}: {exc!r}")

    async def _tokens(self, response: httpx.Response, thinking: bool) -> AsyncIterator[Token]:
        body = _Utf8Events(response)
        # Duck-typed: EventSource reads only `headers` and `aiter_text()`.
        events = EventSource(cast(httpx.Response, body)).aiter_sse()
        finish: str | None = None  # the last finish_reason the server gave
        answered = False
        read = 0
        try:
            async for event in events:
                body.event_read()
                read += 1
                if read % FAIR_EVENTS == 0:
                    # One compressed read can hold a hundred thousand events, none waiting on
                    # the network: the other streams get the loop now and then.
                    await asyncio.sleep(0)
                if event.event == "error":
                    raise ModelError(self._reported(_json_or_text(event.data)), kind="reported")
                if not event.data:
                    continue  # an event with no data field carries nothing
                if event.data.strip() == "[DONE]":
                    self._check_whole(finish, answered)
                    return
                tokens, finish = self._parse(event.data, finish)
                for token in tokens:
                    answered = answered or token.phase == "answer"
                    if token.phase == "answer" or thinking:
                        yield token
        except SSEError as exc:
            kind = response.headers.get("content-type") or "none"
            raise ModelError(
                "the model server did not answer with an event stream "
                f"(its Content-Type: {kind[:80]})",
                kind="protocol",
            ) from exc
        except httpx.TransportError:
            if finish is None:
                raise
            # It said the answer is over, then the connection broke (or went silent) instead of
            # closing: as whole as a close (it was an error: an outside-in probe).
        finally:
            await events.aclose()
        if finish is not None:
            # It said the answer is over and closed the stream, without `data: [DONE]` (older
            # llama.cpp, ik_llama.cpp without --send-done): as whole as with it.
            self._check_whole(finish, answered)
            return
        raise ModelError(
            "the model server ended the answer before it was complete", kind="protocol"
        )

    @staticmethod
    def _check_whole(finish: str | None, answered: bool) -> None:
        """An answer the server says is over, but that is not the whole answer: say so."""
        if finish in _CUT_OFF:
            raise ModelError(_CUT_OFF[finish], kind="cut_off")
        if not answered:
            tool = " (it asked to call a tool, which this chat does not offer)"
            raise ModelError(
                "the model answered with no text" + (tool if finish in _TOOL_CALLS else ""),
                kind="empty",
            )

    def _parse(self, payload: str, finish: str | None) -> tuple[list[Token], str | None]:
        """The tokens of one chunk, and the finish reason so far."""
        try:
            chunk = json.loads(payload)
        except ValueError as exc:
            raise ModelError(self._malformed(payload), kind="protocol") from exc
        if not isinstance(chunk, dict):
            raise ModelError(self._malformed(payload), kind="protocol")
        if chunk.get("error") or chunk.get("object") == "error":
            raise ModelError(self._reported(chunk), kind="reported")
        choices = chunk.get("choices") or []
        if not isinstance(choices, list):
            raise ModelError(self._malformed(payload), kind="protocol")
        tokens: list[Token] = []
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            if isinstance(choice.get("finish_reason"), str) and choice["finish_reason"]:
                finish = choice["finish_reason"]
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                continue
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                tokens.append(Token(reasoning, "thinking"))
            tokens.extend(_content_tokens(delta.get("content")))
            # A refusal is what the model answers instead (OpenAI's `refusal` delta): shown.
            refusal = delta.get("refusal")
            if isinstance(refusal, str) and refusal:
                tokens.append(Token(refusal))
        return tokens, finish

    def _reported(self, body: Any) -> str:
        detail = self._describe(body)
        if not detail:
            return "the model server reported an error (without saying which)"
        return f"the model server reported an error: {detail}"

    def _masked(self, text: str) -> str:
        for form in self._key_forms:
            text = text.replace(form, "***")
        return text

    def _malformed(self, payload: str) -> str:
        shown = self._masked(payload)[:80] + ("..." if len(payload) > 80 else "")
        return f"the model server sent a malformed chunk: {shown!r}"

    async def _status_error(self, response: httpx.Response) -> tuple[str, str]:
        """What to tell the person who asked, and what only the log says."""
        status = response.status_code
        for_the_log = ""
        if status == 429:
            wait = response.headers.get("retry-after", "")
            when = f"in {int(wait)} s" if wait.isascii() and wait.isdigit() else "shortly"
            message = (
                f"the model server is rate limiting or out of quota (HTTP 429); try again {when}"
            )
        elif 300 <= status < 400:
            # Where to is for the operator, not for whoever asked (an outside-in probe: the
            # address, an internal one maybe, and the advice on the settings reached every user).
            message = f"the model server redirected the request (HTTP {status})"
            where = self._masked(response.headers.get("location", ""))[:200]
            if where:
                for_the_log = f"redirected to {where}: set OPENAI_BASE_URL to where it points"
        else:
            message = _STATUS_MESSAGES.get(status) or (
                f"the model server failed (HTTP {status})"
                if status >= 500
                else f"the model server refused the request (HTTP {status})"
            )
        try:
            detail = self._describe(json.loads(await _head(response, MAX_ERROR_BODY_BYTES)))
        except (ValueError, httpx.HTTPError):
            detail = ""
        return (f"{message}: {detail}" if detail else message), for_the_log

    def _describe(self, body: Any) -> str:
        """The provider's own error message (and code), short, never with the API key in it."""
        error = body.get("error") if isinstance(body, dict) else None
        message = error.get("message") if isinstance(error, dict) else error
        code = error.get("code") if isinstance(error, dict) else None
        if (not isinstance(message, str) or not message) and isinstance(body, dict):
            # Elsewhere than OpenAI's `error.message`: vLLM's older `{"object": "error",
            # "message": ...}`, FastAPI's `{"detail": ...}`.
            message = body.get("message") or body.get("detail")
        if isinstance(body, str):  # an error event's plain text
            message = body
        if not isinstance(message, str) or not message:
            message = ""
        if isinstance(code, str | int) and not isinstance(code, bool) and str(code):
            message = f"{message} ({code})" if message else str(code)
        return self._masked(message)[:200]


_TOOL_CALLS = frozenset({"tool_calls", "function_call"})


def _content_tokens(content: Any) -> list[Token]:
    """A delta's content: a string, or a list of parts (`{"type": "text", "text": ...}`, and
    Mistral's `{"type": "thinking", "thinking": [parts]}`)."""
    if isinstance(content, str):
        return [Token(content)] if content else []
    tokens: list[Token] = []
    for part in content if isinstance(content, list) else []:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text":
            tokens.extend(Token(text) for text in _texts(part.get("text")))
        elif part.get("type") == "thinking":
            tokens.extend(Token(text, "thinking") for text in _texts(part.get("thinking")))
    return tokens


def _texts(value: Any) -> list[str]:
    """The text in a part's value: a string, or a list of `{"text": ...}` parts."""
    if isinstance(value, str):
        return [value] if value else []
    if not isinstance(value, list):
        return []
    found = [part.get("text") for part in value if isinstance(part, dict)]
    return [text for text in found if isinstance(text, str) and text]


def _json_or_text(data: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return data.strip()


async def _head(response: httpx.Response, limit: int) -> bytes:
    """At most the first `limit` bytes of the body (an error page may be huge)."""
    data = bytearray()
    async for part in response.aiter_bytes():
        data += part
        if len(data) >= limit:
            break
    return bytes(data[:limit])
