"""The OpenAI-compatible model against replayed Chat Completions streams (respx)."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest
import respx

from backend.core.ports import ModelError
from backend.core.types import Question, Token, Turn
from backend.llm.openai_compatible import OpenAICompatibleModel

BASE = "http://llm.test/v1"
URL = f"{BASE}/chat/completions"
KEY = "sk-test-0123456789abcdef"
EVENT_STREAM = {"content-type": "text/event-stream"}


def chunk(**delta: Any) -> str:
    body = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta}],
    }
    return f"data: {json.dumps(body)}\n\n"


def sse(*events: str) -> bytes:
    return "".join(events).encode()


STREAM = sse(
    chunk(role="assistant"),  # role only
    ": keep-alive\n\n",
    chunk(reasoning_content="Let me "),
    chunk(reasoning="think."),  # the other spelling, as Ollama and vLLM send it
    chunk(content=""),  # empty
    chunk(content="Hello"),
    chunk(content=", world"),
    chunk(),  # empty delta
    'data: {"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}\n\n',
    "data: [DONE]\n\n",
)


@pytest.fixture
async def model() -> AsyncIterator[OpenAICompatibleModel]:
    async with httpx.AsyncClient() as client:
        yield OpenAICompatibleModel(
            client,
            base_url=BASE,
            model="test-model",
            api_key=KEY,
            system_prompt="Be brief.",
            timeout_seconds=0.5,
        )


async def collect(model: OpenAICompatibleModel, **kwargs: Any) -> list[Token]:
    return [token async for token in model.stream(Question("What now?", **kwargs))]


@respx.mock
async def test_content_is_the_answer_and_reasoning_the_thinking(
    model: OpenAICompatibleModel,
) -> None:
    respx.post(URL).respond(200, headers=EVENT_STREAM, content=STREAM)
    tokens = await collect(model, thinking=True)
    assert tokens == [
        Token("Let me ", "thinking"),
        Token("think.", "thinking"),
        Token("Hello"),
        Token(", world"),
    ]


@respx.mock
async def test_reasoning_is_left_out_unless_thinking_is_asked_for(
    model: OpenAICompatibleModel,
) -> None:
    respx.post(URL).respond(200, headers=EVENT_STREAM, content=STREAM)
    assert [t.text for t in await collect(model)] == ["Hello", ", world"]


@respx.mock
async def test_request_carries_model_system_prompt_history_and_stream(
    model: OpenAICompatibleModel,
) -> None:
    route = respx.post(URL).respond(200, headers=EVENT_STREAM, content=STREAM)
    history = (Turn("user", "Hi"), Turn("assistant", "Hello!"))
    await collect(model, history=history)
    request = route.calls.last.request
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert json.loads(request.content) == {
        "model": "test-model",
        "stream": True,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "What now?"},
        ],
    }


@respx.mock
async def test_no_key_no_authorization_header() -> None:
    route = respx.post(URL).respond(200, headers=EVENT_STREAM, content=STREAM)
    async with httpx.AsyncClient() as client:
        local = OpenAICompatibleModel(client, base_url=BASE, model="llama3")
        assert [t.text async for t in local.stream(Question("hi"))] == ["Hello", ", world"]
    assert "authorization" not in route.calls.last.request.headers
    assert json.loads(route.calls.last.request.content)["messages"][0]["role"] == "user"


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (401, {"error": {"message": f"Incorrect API key provided: {KEY}"}}, "refused the API key"),
        (429, {"error": {"message": "Rate limit reached"}}, "rate limiting"),
        (500, {"error": "boom"}, "failed (HTTP 500)"),
        (503, "<html>down</html>", "failed (HTTP 503)"),
        (404, {"error": {"message": "model 'x' not found"}}, "model 'x' not found"),
    ],
)
@respx.mock
async def test_http_errors_are_readable_and_never_show_the_key(
    model: OpenAICompatibleModel,
    caplog: pytest.LogCaptureFixture,
    status: int,
    body: Any,
    message: str,
) -> None:
    kwargs = {"json": body} if isinstance(body, dict) else {"text": body}
    respx.post(URL).respond(status, **kwargs)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ModelError, match=re.escape(message)) as caught:
        await collect(model)
    assert KEY not in str(caught.value)
    assert KEY not in caplog.text


@respx.mock
async def test_timeout_is_readable(model: OpenAICompatibleModel) -> None:
    respx.post(URL).mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(ModelError, match="did not answer in time"):
        await collect(model)


@respx.mock
async def test_malformed_chunk_is_readable(model: OpenAICompatibleModel) -> None:
    respx.post(URL).respond(
        200, headers=EVENT_STREAM, content=sse(chunk(content="Hi"), "data: {not json\n\n")
    )
    with pytest.raises(ModelError, match="malformed chunk"):
        await collect(model)


@respx.mock
async def test_error_inside_the_stream_is_readable(model: OpenAICompatibleModel) -> None:
    body = sse(chunk(content="Hi"), 'data: {"error": {"message": "overloaded"}}\n\n')
    respx.post(URL).respond(200, headers=EVENT_STREAM, content=body)
    with pytest.raises(ModelError, match="reported an error: overloaded"):
        await collect(model)


class Dropping(httpx.AsyncByteStream):
    """Sends some chunks, then the connection breaks; remembers whether it was closed."""

    def __init__(self, parts: list[bytes], *, fail: bool = True) -> None:
        self.parts = parts
        self.fail = fail
        self.closed = False
        self.sent = 0  # parts handed out

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self.parts:
            self.sent += 1
            yield part
        if self.fail:
            raise httpx.RemoteProtocolError("peer closed connection without sending complete body")

    async def aclose(self) -> None:
        self.closed = True


@respx.mock
async def test_a_connection_that_breaks_after_the_finish_reason_is_a_whole_answer(
    model: OpenAICompatibleModel,
) -> None:
    """An outside-in probe: a reset instead of a close after `finish_reason: stop` ended a whole
    answer as an error; a close there was already whole."""
    finish = (
        'data: {"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}\n\n'
    )
    parts = [chunk(content="Hello").encode(), finish.encode()]
    respx.post(URL).mock(
        return_value=httpx.Response(200, headers=EVENT_STREAM, stream=Dropping(parts))
    )
    assert await collect(model) == [Token("Hello")]
    # Broken before any finish_reason: still a failure.
    respx.post(URL).mock(
        return_value=httpx.Response(200, headers=EVENT_STREAM, stream=Dropping(parts[:1]))
    )
    with pytest.raises(ModelError, match="the connection to the model server failed"):
        await collect(model)


@respx.mock
async def test_connection_dropping_mid_answer_is_readable(model: OpenAICompatibleModel) -> None:
    stream = Dropping([chunk(content="Hel").encode(), chunk(content="lo").encode()])
    respx.post(URL).mock(return_value=httpx.Response(200, headers=EVENT_STREAM, stream=stream))
    received: list[str] = []

    async def consume() -> None:
        async for token in model.stream(Question("hi")):
            received.append(token.text)

    with pytest.raises(ModelError, match="connection to the model server failed"):
        await consume()
    assert received == ["Hel", "lo"]


@respx.mock
async def test_stream_ending_without_done_is_readable(model: OpenAICompatibleModel) -> None:
    respx.post(URL).respond(200, headers=EVENT_STREAM, content=sse(chunk(content="Hel")))
    with pytest.raises(ModelError, match="ended the answer before it was complete"):
        await collect(model)


@respx.mock
async def test_stopping_early_closes_the_upstream_response(model: OpenAICompatibleModel) -> None:
    parts = [chunk(content=f"t{i} ").encode() for i in range(100)]
    stream = Dropping(parts, fail=False)
    respx.post(URL).mock(return_value=httpx.Response(200, headers=EVENT_STREAM, stream=stream))
    tokens = model.stream(Question("hi"))
    assert (await anext(tokens)).text == "t0 "
    await tokens.aclose()  # type: ignore[attr-defined]
    assert stream.closed


def raw(text: str) -> str:
    """A content chunk written as UTF-8 without escapes, as many servers write JSON."""
    body = {"id": "c1", "choices": [{"index": 0, "delta": {"content": text}}]}
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


@respx.mock
async def test_unicode_line_separators_inside_a_chunk_stay_in_the_answer(
    model: OpenAICompatibleModel,
) -> None:
    """Regression: the stream was read with aiter_lines(), which splits like str.splitlines(),
    so U+2028, U+2029 or U+0085 inside a JSON string failed the whole answer as malformed."""
    texts = ["one\u2028two", " three\u2029four", " five\u0085six", " \u00e9\U0001f600"]
    body = sse(*(raw(text) for text in texts), "data: [DONE]\n\n")
    respx.post(URL).respond(200, headers=EVENT_STREAM, content=body)

    assert [token.text for token in await collect(model)] == texts


@respx.mock
async def test_a_data_field_over_several_lines_is_one_event(model: OpenAICompatibleModel) -> None:
    event = (
        'data: {"id": "c1",\r\n'
        'data: "choices": [{"index": 0, "delta": {"content": "joined"}}]}\r\n\r\n'
    )
    respx.post(URL).respond(200, headers=EVENT_STREAM, content=sse(event, "data: [DONE]\r\n\r\n"))

    assert [token.text for token in await collect(model)] == ["joined"]


@respx.mock
async def test_an_answer_that_is_not_an_event_stream_is_readable(
    model: OpenAICompatibleModel,
) -> None:
    respx.post(URL).respond(200, json={"choices": [{"message": {"content": "whole"}}]})

    with pytest.raises(ModelError, match="did not answer with an event stream"):
        await collect(model)


# Found by an outside-in probe of the model path (a misbehaving fake server).


def finish(reason: str) -> str:
    body = {"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}
    return f"data: {json.dumps(body)}\n\n"


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("length", "the answer was cut off: the model reached its length limit"),
        ("content_filter", "the model server's content filter stopped the answer"),
        ("error", "the model server ended the answer with an error"),
    ],
)
@respx.mock
async def test_an_answer_the_server_cut_off_says_so_after_its_text(
    model: OpenAICompatibleModel, reason: str, message: str
) -> None:
    body = sse(chunk(content="Part"), finish(reason), "data: [DONE]\n\n")
    respx.post(URL).respond(200, headers=EVENT_STREAM, content=body)
    received: list[str] = []

    async def consume() -> None:
        async for token in model.stream(Question("hi")):
            received.append(token.text)

    with pytest.raises(ModelError, match=re.escape(message)) as caught:
        await consume()
    assert received == ["Part"]
    assert caught.value.kind == "cut_off"


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ([finish("stop")], "the model answered with no text"),
        (
            [chunk(tool_calls=[{"index": 0, "function": {"name": "f"}}]), finish("tool_calls")],
            "no text (it asked to call a tool, which this chat does not offer)",
        ),
        ([chunk(reasoning_content="hmm"), finish("stop")], "the model answered with no text"),
    ],
)
@respx.mock
async def test_an_answer_without_text_is_an_error_not_an_empty_answer(
    model: OpenAICompatibleModel, events: list[str], message: str
) -> None:
    respx.post(URL).respond(200, headers=EVENT_STREAM, content=sse(*events, "data: [DONE]\n\n"))
    with pytest.raises(ModelError, match=re.escape(message)):
        await collect(model, thinking=True)


@pytest.mark.parametrize("payload", ['{"choices": 5}', '{"choices": "x"}', "[1, 2]"])
@respx.mock
async def test_chunks_of_the_wrong_shape_are_malformed_and_shown(
    model: OpenAICompatibleModel, payload: str
) -> None:
    respx.post(URL).respond(200, headers=EVENT_STREAM, content=sse(f"data: {payload}\n\n"))
    with pytest.raises(ModelError, match=re.escape(f"malformed chunk: {payload!r}")):
        await collect(model)


@respx.mock
async def test_an_event_that_never_ends_is_refused_before_it_fills_the_memory(
    model: OpenAICompatibleModel,
) -> None:
    parts = [b'data: {"choices": [{"delta": {"content": "'] + [b"x" * 65536] * 64  # 4 MiB
    stream = Dropping(parts, fail=False)
    respx.post(URL).mock(return_value=httpx.Response(200, headers=EVENT_STREAM, stream=stream))
    with pytest.raises(ModelError, match="sent an event of over 2097152 characters"):
        await collect(model)
    assert stream.closed


@respx.mock
async def test_a_large_event_under_the_limit_arrives_whole(model: OpenAICompatibleModel) -> None:
    text = "y" * 1_000_000
    respx.post(URL).respond(
        200, headers=EVENT_STREAM, content=sse(raw(text), raw("!"), "data: [DONE]\n\n")
    )
    assert [token.text for token in await collect(model)] == [text, "!"]


@respx.mock
async def test_an_event_stream_is_read_as_utf8_whatever_charset_it_names(
    model: OpenAICompatibleModel,
) -> None:
    headers = {"content-type": "text/event-stream; charset=iso-8859-1"}
    body = sse(raw("h\u00e9llo \u65e5\u672c"), "data: [DONE]\n\n")
    respx.post(URL).respond(200, headers=headers, content=body)
    assert [token.text for token in await collect(model)] == ["h\u00e9llo \u65e5\u672c"]


@respx.mock
async def test_only_the_head_of_a_huge_error_body_is_read(model: OpenAICompatibleModel) -> None:
    body = json.dumps({"error": {"message": "boom"}}).encode() + b" " * 3_000_000  # JSON still
    stream = Dropping([body[i : i + 65536] for i in range(0, len(body), 65536)], fail=False)
    respx.post(URL).mock(return_value=httpx.Response(500, stream=stream))
    with pytest.raises(ModelError, match=re.escape("failed (HTTP 500): boom")):
        await collect(model)
    assert stream.sent == 1  # of 46
    assert stream.closed


@pytest.mark.parametrize(
    ("status", "headers", "body", "message"),
    [
        (429, {"retry-after": "20"}, {}, "(HTTP 429); try again in 20 s"),
        (429, {}, {}, "(HTTP 429); try again shortly"),
        (307, {"location": "https://llm.example/v1/chat/completions"}, {}, "(HTTP 307)"),
        (
            400,
            {},
            {"error": {"code": "context_length_exceeded"}},
            "(HTTP 400): context_length_exceeded",
        ),
        (400, {}, {"error": {"message": "too long", "code": "ctx"}}, "(HTTP 400): too long (ctx)"),
    ],
)
@respx.mock
async def test_status_errors_say_what_the_server_said(
    model: OpenAICompatibleModel,
    status: int,
    headers: dict[str, str],
    body: dict[str, Any],
    message: str,
) -> None:
    respx.post(URL).respond(status, headers=headers, json=body)
    with pytest.raises(ModelError, match=re.escape(message)):
        await collect(model)


@respx.mock
async def test_a_lone_surrogate_in_the_server_s_message_is_replaced(
    model: OpenAICompatibleModel,
) -> None:
    """An outside-in probe: it reached every route as a string no encoder takes."""
    respx.post(URL).respond(401, content=b'{"error": {"message": "bad key \\ud800"}}')
    with pytest.raises(ModelError) as failed:
        await collect(model)
    assert str(failed.value).endswith("bad key \ufffd")
    assert str(failed.value).encode()  # carriable


@respx.mock
async def test_a_body_that_cannot_be_decoded_is_readable(model: OpenAICompatibleModel) -> None:
    headers = {**EVENT_STREAM, "content-encoding": "gzip"}
    stream = Dropping([b"not gzip at all"], fail=False)
    respx.post(URL).mock(return_value=httpx.Response(200, headers=headers, stream=stream))
    with pytest.raises(ModelError, match="could not be decoded"):
        await collect(model)


@respx.mock
async def test_a_failed_connection_is_logged_with_where_and_why(
    model: OpenAICompatibleModel, caplog: pytest.LogCaptureFixture
) -> None:
    from backend.core.answer import Answerer

    respx.post(URL).mock(side_effect=httpx.ConnectError("[Errno 111] Connection refused"))
    caplog.set_level(logging.WARNING)
    with pytest.raises(ModelError) as caught:
        await collect(model)
    assert str(caught.value) == "the connection to the model server failed (ConnectError)"
    Answerer(model, window=0, max_seconds=1).failure(caught.value)
    assert f"{URL}: ConnectError('[Errno 111] Connection refused')" in caplog.text


@respx.mock
async def test_megabytes_of_small_events_in_one_compressed_read_arrive_whole(
    model: OpenAICompatibleModel,
) -> None:
    """Found in review: the event limit counted whole reads, and one gzip read of a buffering
    gateway decodes to megabytes of small, valid events."""
    texts = [f"token {i:06d} " * 4 for i in range(30_000)]  # ~3.4 MB of events
    body = gzip.compress(sse(*(raw(text) for text in texts), "data: [DONE]\n\n"))
    headers = {**EVENT_STREAM, "content-encoding": "gzip"}
    stream = Dropping([body], fail=False)
    respx.post(URL).mock(return_value=httpx.Response(200, headers=headers, stream=stream))
    assert [token.text for token in await collect(model)] == texts


@respx.mock
async def test_a_retry_after_that_is_no_number_is_shortly(model: OpenAICompatibleModel) -> None:
    # Header bytes are read as Latin-1: b"\xb2" is "²", which str.isdigit() takes for a digit.
    respx.post(URL).respond(429, headers=[(b"retry-after", b"\xb2")], json={})
    with pytest.raises(ModelError, match=re.escape("(HTTP 429); try again shortly")):
        await collect(model)


@respx.mock
async def test_credentials_in_the_base_url_stay_out_of_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from backend.core.answer import Answerer

    base = "https://user:hunter2-password@gw.test/v1"
    respx.post(f"{base}/chat/completions").mock(side_effect=httpx.ConnectError("refused"))
    caplog.set_level(logging.WARNING)
    async with httpx.AsyncClient() as client:
        model = OpenAICompatibleModel(client, base_url=base, model="m")
        with pytest.raises(ModelError) as caught:
            await collect(model)
        Answerer(model, window=0, max_seconds=1).failure(caught.value)
    assert "https://gw.test/v1/chat/completions: ConnectError('refused')" in caplog.text
    assert "hunter2" not in caplog.text


@respx.mock
async def test_a_leading_byte_order_mark_is_dropped(model: OpenAICompatibleModel) -> None:
    body = b"\xef\xbb\xbf" + sse(raw("first"), "data: [DONE]\n\n")
    respx.post(URL).respond(200, headers=EVENT_STREAM, content=body)
    assert [token.text for token in await collect(model)] == ["first"]


@respx.mock
async def test_the_stream_is_asked_for_uncompressed(model: OpenAICompatibleModel) -> None:
    """Review: a compressed read decodes to tens of megabytes before the event limit sees it."""
    route = respx.post(URL).respond(200, headers=EVENT_STREAM, content=STREAM)
    await collect(model)
    assert route.calls.last.request.headers["accept-encoding"] == "identity"


@respx.mock
async def test_a_malformed_chunk_is_quoted_without_the_api_key(
    model: OpenAICompatibleModel,
) -> None:
    """Model-edge probe: a chunk quoting the key (an HTML error page echoing the request) was
    shown to users, key and all."""
    body = sse(raw("ok"), f"data: <html>Bad gateway {KEY}</html>\n\n")
    respx.post(URL).respond(200, headers=EVENT_STREAM, content=body)
    with pytest.raises(ModelError, match="malformed chunk") as failed:
        await collect(model)
    assert KEY not in str(failed.value)
    assert "Bad gateway ***" in str(failed.value)


@respx.mock
async def test_the_key_is_masked_as_a_server_may_quote_it_back_too() -> None:
    """An outside-in probe (from the code): only the key as configured was masked; one quoted
    back URL-encoded, or escaped in a JSON string, reached the user as it was."""
    key = 'sk-a/b+c "d" e\\f'
    encoded = [
        quote(key, safe=""),
        quote_plus(key),
        quote(key, safe="").lower(),  # %2f
        json.dumps(key)[1:-1],
        json.dumps(key)[1:-1].replace("/", "\\/"),
    ]
    body = sse(raw("ok"), f"data: <html>{' '.join(encoded)}</html>\n\n")
    respx.post(URL).respond(200, headers=EVENT_STREAM, content=body)
    async with httpx.AsyncClient() as client:
        model = OpenAICompatibleModel(client, base_url=BASE, model="m", api_key=key)
        with pytest.raises(ModelError, match="malformed chunk") as failed:
            await collect(model)
    for form in encoded:
        assert form not in str(failed.value)
    assert "<html>*** *** *** *** ***</html>" in str(failed.value)


@respx.mock
async def test_where_a_redirect_points_is_for_the_log_not_for_the_user(
    model: OpenAICompatibleModel,
) -> None:
    """An outside-in probe: the address a model server redirected to (an internal one, maybe)
    and the advice on OPENAI_BASE_URL reached every user; they are for the operator."""
    where = "http://10.0.0.7:8080/v1/chat/completions"
    respx.post(URL).respond(307, headers={"location": where})
    with pytest.raises(ModelError) as failed:
        await collect(model)
    assert str(failed.value) == "the model server redirected the request (HTTP 307)"
    assert failed.value.detail == f"redirected to {where}: set OPENAI_BASE_URL to where it points"


@pytest.mark.parametrize("trailer", ["", "data: [DONE]"], ids=["no DONE", "DONE cut short"])
@respx.mock
async def test_an_answer_the_server_finished_is_whole_without_done(
    model: OpenAICompatibleModel, trailer: str
) -> None:
    """Model-edge probe: llama.cpp before Sept 2024, and ik_llama.cpp without --send-done, end
    with finish_reason "stop" and close the stream, never sending `data: [DONE]` (or send it
    without the blank line that ends an event): every answer was reported as failed."""
    body = sse(raw("Hello"), raw(" there"), finish("stop"), trailer)
    respx.post(URL).respond(200, headers=EVENT_STREAM, content=body)
    assert [t.text for t in await collect(model)] == ["Hello", " there"]


@respx.mock
async def test_an_answer_cut_off_is_said_so_without_done_too(model: OpenAICompatibleModel) -> None:
    body = sse(raw("Hel"), finish("length"))
    respx.post(URL).respond(200, headers=EVENT_STREAM, content=body)
    with pytest.raises(ModelError, match="length limit"):
        await collect(model)


@pytest.mark.parametrize(
    ("status", "body", "said"),
    [
        (400, {"object": "error", "message": "maximum context length is 4096"}, "4096"),
        (500, {"detail": "worker crashed"}, "worker crashed"),
        (500, {"message": "overloaded"}, "overloaded"),
    ],
)
@respx.mock
async def test_the_provider_s_message_is_read_where_servers_put_it(
    model: OpenAICompatibleModel, status: int, body: dict[str, Any], said: str
) -> None:
    """Model-edge probe: only OpenAI's `error.message` was read; older vLLM's and FastAPI's
    messages were dropped."""
    respx.post(URL).respond(status, json=body)
    with pytest.raises(ModelError, match=said):
        await collect(model)


@respx.mock
async def test_an_error_in_the_stream_says_its_message_or_that_it_had_none(
    model: OpenAICompatibleModel,
) -> None:
    respx.post(URL).respond(
        200,
        headers=EVENT_STREAM,
        content=sse(raw("a"), 'event: error\ndata: {"message": "GPU fell over"}\n\n'),
    )
    with pytest.raises(ModelError, match="reported an error: GPU fell over"):
        await collect(model)
    respx.post(URL).respond(200, headers=EVENT_STREAM, content=sse('data: {"error": [1, 2]}\n\n'))
    with pytest.raises(ModelError, match=r"reported an error \(without saying which\)$"):
        await collect(model)


@respx.mock
async def test_a_refusal_and_content_parts_are_the_answer(model: OpenAICompatibleModel) -> None:
    """Model-edge probe: a `refusal` delta and content given as a list of parts both ended as
    "the model answered with no text"; Mistral's thinking parts were dropped."""
    events = [
        chunk(content=[{"type": "thinking", "thinking": [{"type": "text", "text": "Hmm."}]}]),
        chunk(content=[{"type": "text", "text": "Part one, "}, {"type": "image_url"}]),
        chunk(content=[{"type": "text", "text": "part two."}]),
        chunk(refusal=" I can't help with the rest."),
    ]
    respx.post(URL).respond(200, headers=EVENT_STREAM, content=sse(*events, "data: [DONE]\n\n"))
    assert await collect(model, thinking=True) == [
        Token("Hmm.", "thinking"),
        Token("Part one, "),
        Token("part two."),
        Token(" I can't help with the rest."),
    ]


@respx.mock
async def test_an_event_stream_s_media_type_is_taken_in_any_case(
    model: OpenAICompatibleModel,
) -> None:
    headers = {"content-type": "Text/Event-Stream; charset=UTF-8"}
    respx.post(URL).respond(200, headers=headers, content=sse(raw("ok"), "data: [DONE]\n\n"))
    assert [t.text for t in await collect(model)] == ["ok"]


@respx.mock
async def test_a_flood_of_events_gives_the_loop_to_others(model: OpenAICompatibleModel) -> None:
    """Model-edge probe: a compressed read of 1.45 M tiny events (a gzip bomb) held the event
    loop for seconds, and every other user's stream with it."""
    body = gzip.compress(sse(*(raw("x") for _ in range(1_000)), "data: [DONE]\n\n"))
    headers = {**EVENT_STREAM, "content-encoding": "gzip"}
    respx.post(URL).respond(200, headers=headers, content=body)
    other_turns = 0
    done = False

    async def other_stream() -> None:
        nonlocal other_turns
        while not done:
            other_turns += 1
            await asyncio.sleep(0)

    other = asyncio.create_task(other_stream())
    await asyncio.sleep(0)
    turns_before = other_turns
    tokens = await collect(model)
    done = True
    await other
    assert len(tokens) == 1_000
    assert other_turns - turns_before >= 1_000 // 64  # it ran between the events


@respx.mock
async def test_an_empty_finish_reason_is_no_finish(model: OpenAICompatibleModel) -> None:
    """A server that sends `"finish_reason": ""` with every chunk has not finished: a stream it
    closes without `[DONE]` after one is cut short, not whole."""
    body = {"id": "c1", "choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": ""}]}
    respx.post(URL).respond(200, headers=EVENT_STREAM, content=sse(f"data: {json.dumps(body)}\n\n"))
    with pytest.raises(ModelError, match="ended the answer before it was complete"):
        await collect(model)
