"""`/api/chat` (SSE) and `/api/chat/sync` with the model replaced; history and limits on every
prompt endpoint."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import pytest

from backend.api.routes.chat import STOPPING
from backend.app import begin_shutdown, hurry_shutdown
from backend.core.ports import ModelError
from backend.core.relay import SHUTDOWN
from backend.core.types import Chunk, Done, Question, Token, Turn
from tests.unit.apps import Api, running_app
from tests.unit.fakes import HeldModel, ScriptedModel

TOKENS = [Token("Let me ", "thinking"), Token("think. ", "thinking"), Token("Hello "), Token("you")]
LIMITS = {"MAX_TEXT_CHARS": 100, "MAX_HISTORY_TURNS": 3, "MAX_HISTORY_CHARS": 50}


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async with running_app(ScriptedModel(TOKENS), **LIMITS) as api:
        yield api


def with_model(model: ScriptedModel, **settings: object) -> Any:
    return running_app(model, **{**LIMITS, **settings})


def events(body: str) -> list[Any]:
    """Parse an SSE body strictly: every line is empty or `data: `."""
    parsed: list[Any] = []
    for line in body.split("\n"):
        assert line == "" or line.startswith("data: "), f"not SSE: {line!r}"
        if line:
            payload = line.removeprefix("data: ")
            parsed.append(payload if payload == "[DONE]" else json.loads(payload))
    return parsed


async def test_chat_streams_tokens_then_done(api: Api) -> None:
    response = await api.client.post("/api/chat", json={"prompt": "hi", "thinking": True})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "private, no-store"
    assert response.headers["x-accel-buffering"] == "no"
    assert response.text.endswith("data: [DONE]\n\n")
    assert events(response.text) == [
        {"token": "Let me ", "phase": "thinking"},
        {"token": "think. ", "phase": "thinking"},
        {"token": "Hello "},
        {"token": "you"},
        "[DONE]",
    ]


async def test_chat_failure_is_an_error_event_before_done() -> None:
    failure = ModelError("the model server is rate limiting (HTTP 429)")
    async with with_model(ScriptedModel(TOKENS, fail_after=3, failure=failure)) as api:
        response = await api.client.post("/api/chat", json={"prompt": "hi"})
    assert response.status_code == 200
    assert events(response.text)[-2:] == [
        {"error": "the model server is rate limiting (HTTP 429)"},
        "[DONE]",
    ]


async def test_sync_gives_the_whole_answer_without_thinking(api: Api) -> None:
    response = await api.client.post("/api/chat/sync", json={"prompt": "hi", "thinking": True})
    assert response.status_code == 200
    assert response.json() == {"response": "Hello you"}


async def test_sync_failure_is_502_with_the_message() -> None:
    model = ScriptedModel(TOKENS, fail_after=1, failure=ModelError("upstream broke"))
    async with with_model(model) as api:
        response = await api.client.post("/api/chat/sync", json={"prompt": "hi"})
    assert response.status_code == 502
    assert response.json() == {"detail": "upstream broke"}


@pytest.mark.parametrize("window_ms", [0, 3_600_000])
async def test_an_answer_past_its_size_limit_is_cut_there_on_sse_and_502_on_sync(
    window_ms: int,
) -> None:
    cut = "the answer was cut off at its size limit of 10 characters"
    model = ScriptedModel([Token("abc"), Token("d", "thinking")], endless=True)
    async with with_model(model, MAX_ANSWER_CHARS=10, COALESCE_WINDOW_MS=window_ms) as api:
        sse = await api.client.post("/api/chat", json={"prompt": "hi", "thinking": True})
        sync = await api.client.post("/api/chat/sync", json={"prompt": "hi"})
    *chunks, error, end = events(sse.text)
    assert (error, end) == ({"error": cut}, "[DONE]")
    thinking = "".join(chunk["token"] for chunk in chunks if chunk.get("phase") == "thinking")
    answer = "".join(chunk["token"] for chunk in chunks if "phase" not in chunk)
    assert (answer, thinking) == ("abcabcab", "dd")
    assert (sync.status_code, sync.json()) == (502, {"detail": cut})


HISTORY = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]


async def test_history_reaches_the_model_in_order(api: Api) -> None:
    await api.client.post("/api/chat/sync", json={"prompt": "and now?", "history": HISTORY})
    channel = f"stream:abcdefgh#{await api.user()}"
    body = {"text": "again?", "channel": channel, "history": HISTORY}
    assert (await api.client.post("/api/execute", json=body)).status_code == 202
    await api.publisher.wait_for_done(channel)
    turns = (Turn("user", "Hi"), Turn("assistant", "Hello!"))
    assert [(q.prompt, q.thinking, q.history) for q in api.model.questions] == [
        ("and now?", False, turns),
        ("again?", False, turns),
    ]


BAD_BODIES = [
    ({"prompt": " "}, "prompt: is blank"),
    ({"prompt": "x" * 101}, "the limit is 100"),
    (
        {"prompt": "hi", "history": [{"role": "user", "content": "a"}] * 4},
        "4 turns; the limit is 3",
    ),
    ({"prompt": "hi", "history": [{"role": "user", "content": "a" * 51}]}, "the limit is 50"),
    ({"prompt": "hi", "history": [{"role": "system", "content": "a"}]}, "history.0.role"),
    ({"prompt": "hi", "history": "nope"}, "history:"),
    ({}, "prompt: Field required"),
]


@pytest.mark.parametrize("path", ["/api/chat", "/api/chat/sync", "/api/execute"])
@pytest.mark.parametrize(("body", "message"), BAD_BODIES)
async def test_every_prompt_endpoint_applies_the_same_limits(
    api: Api, path: str, body: dict[str, Any], message: str
) -> None:
    if path == "/api/execute":
        body = {"channel": f"stream:abcdefgh#{await api.user()}", **body}
        if "prompt" in body:
            body["text"] = body.pop("prompt")
        message = message.replace("prompt:", "text:")
    response = await api.client.post(path, json=body)
    assert response.status_code == 422
    assert message in response.json()["detail"]
    assert api.model.questions == []


async def test_client_going_away_stops_the_model() -> None:
    """Raw ASGI, as uvicorn drives it: the client disconnects after the first event."""
    async with with_model(ScriptedModel(TOKENS, endless=True, delay=0.01)) as api:
        await _leave_after_the_first_event(api)


class SlowToCloseModel(ScriptedModel):
    """Takes a few turns of the loop to let go when cancelled between tokens, as a real model
    client does while it closes its HTTP response."""

    async def stream(self, question: Question) -> AsyncIterator[Token]:
        try:
            async for token in super().stream(question):
                yield token
        except asyncio.CancelledError:
            for _ in range(3):
                await asyncio.sleep(0)  # anyio cancels again meanwhile, every turn
            raise


async def test_client_going_away_mid_token_wait_is_quiet(caplog: pytest.LogCaptureFixture) -> None:
    """A client that leaves while the model is between tokens: the wait for the next token is
    cancelled and settled before the model's stream is closed (no 'asynchronous generator is
    already running', no error logged: a closed tab is not a server error)."""
    async with with_model(SlowToCloseModel(TOKENS, endless=True, delay=0.05)) as api:
        await _leave_after_the_first_event(api)

    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_sync_client_going_away_stops_the_model_and_frees_its_place(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An outside-in probe: an abandoned /api/chat/sync went on to the end of the answer, for
    nobody, holding one of the user's places (its retries got 429 meanwhile)."""
    model = SlowToCloseModel(TOKENS, endless=True, delay=0.01)
    async with with_model(model, MAX_STREAMS_PER_USER=1) as api:
        client = _LeavingClient()
        handling = asyncio.ensure_future(client.ask(api, "/api/chat/sync"))
        await asyncio.wait_for(model.started.wait(), 5)
        busy = await api.client.post("/api/chat/sync", json={"prompt": "hi"})
        assert busy.status_code == 429  # the one place is taken
        client.left.set()  # the client closes its connection
        await asyncio.wait_for(handling, 5)
        await asyncio.wait_for(model.closed.wait(), 1)

        assert client.sent[0]["status"] == 499  # to nobody (nginx's code for a client gone)
        model.endless = False
        again = await api.client.post("/api/chat/sync", json={"prompt": "hi"})
        assert again.status_code == 200, again.text
        assert again.json() == {"response": "Hello you"}
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def _session_cookie(api: Api) -> bytes:
    """The session the test client started, as a raw Cookie header."""
    return "; ".join(f"{name}={value}" for name, value in api.client.cookies.items()).encode()


class _LeavingClient:
    """A client as uvicorn presents it to the app (raw ASGI): it sends `{"prompt": "hi"}`, keeps
    what the app sends, and closes its connection once `left` is set (by the test, or by
    itself after the first event with `leave_after_first_event`)."""

    def __init__(self, *, leave_after_first_event: bool = False) -> None:
        self.left = asyncio.Event()
        self.sent: list[MutableMapping[str, Any]] = []
        self._leave_after_first_event = leave_after_first_event
        self._requests = [{"type": "http.request", "body": b'{"prompt": "hi"}', "more_body": False}]

    async def ask(self, api: Api, path: str) -> None:
        await api.app(_scope(api, path), self._receive, self._send)

    async def _receive(self) -> dict[str, Any]:
        if self._requests:
            return self._requests.pop()
        await self.left.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: MutableMapping[str, Any]) -> None:
        self.sent.append(message)
        if self._leave_after_first_event and _is_event(message):
            self.left.set()


def _is_event(message: MutableMapping[str, Any]) -> bool:
    return message["type"] == "http.response.body" and bool(message.get("body"))


async def _leave_after_the_first_event(api: Api) -> None:
    client = _LeavingClient(leave_after_first_event=True)
    await asyncio.wait_for(client.ask(api, "/api/chat"), 5)
    await asyncio.wait_for(api.model.closed.wait(), 1)
    bodies = [message for message in client.sent if _is_event(message)]
    assert 1 <= len(bodies) < 50  # it stopped long before an endless model would


def _scope(api: Api, path: str) -> dict[str, Any]:
    """A POST to `path` with the test client's session, as uvicorn would pass it."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"content-type", b"application/json"),
            (b"host", b"test"),
            (b"cookie", _session_cookie(api)),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("test", 80),
        "state": {},
    }


async def test_line_separators_in_an_answer_reach_sse_clients_whole() -> None:
    """U+2028, U+2029 and U+0085 are sent escaped: a client that splits lines like
    str.splitlines() still sees one event per chunk, and the JSON means the same."""
    text = "a\u2028b\u2029c\x85d"
    async with with_model(ScriptedModel([Token(text)])) as api:
        response = await api.client.post("/api/chat", json={"prompt": "hi"})

    assert response.text.splitlines()[0] == 'data: {"token": "a\\u2028b\\u2029c\\u0085d"}'
    assert events(response.text) == [{"token": text}, "[DONE]"]


async def test_a_silent_model_gets_keep_alive_comments_and_the_answer_still_arrives() -> None:
    model = ScriptedModel([Token("late "), Token("answer")], delay=0.25)
    async with with_model(model, SSE_KEEPALIVE_SECONDS=0.05) as api:
        response = await api.client.post("/api/chat", json={"prompt": "hi"})

    lines = response.text.split("\n")
    assert lines.count(": keep-alive") >= 3  # ~0.25 s of silence before each token
    assert lines.index(": keep-alive") < lines.index('data: {"token": "late "}')
    data = "\n".join(line for line in lines if not line.startswith(":"))
    assert events(data) == [{"token": "late "}, {"token": "answer"}, "[DONE]"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/chat/sync", b'{"prompt": "half \\ud83d"}'),
        ("/api/chat", b'{"prompt": "hi", "history": [{"role": "user", "content": "\\udc00"}]}'),
        ("/api/execute", b'{"text": "x\\ud800", "channel": "stream:abcdefgh#USER"}'),
    ],
)
async def test_text_that_is_not_valid_unicode_is_422_everywhere(
    api: Api, path: str, body: bytes
) -> None:
    """Regression: a lone surrogate in `history` was accepted (202) and broke publishing."""
    body = body.replace(b"USER", (await api.user()).encode())
    response = await api.client.post(
        path, content=body, headers={"content-type": "application/json"}
    )

    assert response.status_code == 422
    assert "unpaired surrogate" in response.json()["detail"]
    assert api.model.questions == []


async def test_a_model_that_splits_an_emoji_gives_the_whole_emoji_on_every_route() -> None:
    model = ScriptedModel([Token("smile \ud83d"), Token("\ude00!")])
    async with with_model(model) as api:
        sync = await api.client.post("/api/chat/sync", json={"prompt": "hi"})
        sse = await api.client.post("/api/chat", json={"prompt": "hi"})
        channel = f"stream:abcdefgh#{await api.user()}"
        await api.client.post("/api/execute", json={"text": "hi", "channel": channel})
        published = await api.publisher.wait_for_done(channel)

    whole = "smile \U0001f600!"
    assert sync.json() == {"response": whole}
    assert "".join(e["token"] for e in events(sse.text)[:-1]) == whole
    assert "".join(item.text for item in published if isinstance(item, Chunk)) == whole


async def test_shutdown_ends_sse_streams_with_an_error_event_and_relay_streams_with_done() -> None:
    """Regression: on SIGTERM uvicorn first waited for open SSE clients (their whole answers)
    before the relay's streams were ended, so a platform that kills after a few seconds left
    subscribers without a `done`. The server now calls `begin_shutdown` first."""
    model = ScriptedModel([Token("tick ")], endless=True, delay=0.01)
    # Answers that never end: ended once the time they are given to finish is out.
    async with with_model(model, SHUTDOWN_DRAIN_SECONDS=0.2) as api:
        channel = f"stream:abcdefgh#{await api.user()}"
        await api.client.post("/api/execute", json={"text": "hi", "channel": channel})
        sse = asyncio.create_task(api.client.post("/api/chat", json={"prompt": "hi"}))
        # Review: a sync answer ran on to its end (up to MAX_STREAM_SECONDS) meanwhile.
        sync = asyncio.create_task(api.client.post("/api/chat/sync", json={"prompt": "hi"}))
        await api.publisher.wait_for_first(channel)
        await model.wait_until_asked(3)

        await begin_shutdown(api.app)

        response = await asyncio.wait_for(sse, 5)
        assert events(response.text)[-2:] == [{"error": STOPPING}, "[DONE]"]
        synced = await asyncio.wait_for(sync, 5)
        assert synced.status_code == 503
        assert synced.json() == {"detail": STOPPING}
        assert synced.headers["retry-after"] == "5"  # as a new prompt refused then is told
        ending = (await api.publisher.wait_for_done(channel))[-1]
        assert isinstance(ending, Done)
        assert (ending.reason, ending.error) == (SHUTDOWN.reason, SHUTDOWN.error)


async def test_shutdown_lets_the_running_answers_finish_and_takes_no_new_ones() -> None:
    """A restart (SIGTERM) ended every running answer with "the server is stopping": a deploy
    lost them all. The answers now get SHUTDOWN_DRAIN_SECONDS to finish, whole; meanwhile a new
    prompt is refused (503, nothing started), `/api/ready` says the process is stopping, and a
    Stop still stops."""
    model = HeldModel([Token("Hello "), Token("you "), Token("there")])
    async with with_model(model, SHUTDOWN_DRAIN_SECONDS=60) as api:
        user = await api.user()
        channel, stopped = f"stream:abcdefgh#{user}", f"stream:stopped1#{user}"
        for each in (channel, stopped):
            await api.client.post("/api/execute", json={"text": "hi", "channel": each})
        sse = asyncio.create_task(api.client.post("/api/chat", json={"prompt": "hi"}))
        sync = asyncio.create_task(api.client.post("/api/chat/sync", json={"prompt": "hi"}))
        await model.wait_until_asked(4)
        await api.publisher.wait_for_first(channel)

        shutdown = asyncio.create_task(begin_shutdown(api.app))
        await asyncio.sleep(0)  # its first step: no answer starts from here on
        assert api.app.state.services.capacity.closed
        new = f"stream:newone11#{user}"
        refused = await api.client.post("/api/execute", json={"text": "hi", "channel": new})
        refused_sse = await api.client.post("/api/chat", json={"prompt": "hi"})
        ready = await api.client.get("/api/ready")
        cancel = await api.client.post("/api/cancel", json={"channel": stopped})
        ending = (await api.publisher.wait_for_done(stopped))[-1]
        assert not shutdown.done()  # still waiting for the others
        model.release.set()
        await asyncio.wait_for(shutdown, 10)  # not the 60 s: they all finished

        answers = [await sse, await sync]
        published = await api.publisher.wait_for_done(channel)

    detail = "the server is stopping; nothing was started, please send the prompt again"
    for response in (refused, refused_sse):
        assert (response.status_code, response.json()) == (503, {"detail": detail})
        assert response.headers["retry-after"] == "5"
    assert api.publisher.on(new) == []
    assert (ready.status_code, ready.json()) == (
        503,
        {"detail": "the server is stopping and takes no new prompts"},
    )
    assert cancel.status_code == 202
    assert isinstance(ending, Done)
    assert ending.reason == "cancelled"
    whole = "Hello you there"
    assert events(answers[0].text) == [
        {"token": "Hello "},
        {"token": "you "},
        {"token": "there"},
        "[DONE]",
    ]
    assert answers[1].json() == {"response": whole}
    assert "".join(item.text for item in published if isinstance(item, Chunk)) == whole
    assert published[-1] == Done("complete", seq=len(published) - 1)


async def test_a_second_signal_ends_the_running_answers_at_once() -> None:
    """The wait for running answers to finish is cut short (a second Ctrl-C or SIGTERM): they
    end as before, with "the server is stopping"."""
    model = HeldModel([Token("Hello "), Token("you")])
    async with with_model(model, SHUTDOWN_DRAIN_SECONDS=60) as api:
        channel = f"stream:abcdefgh#{await api.user()}"
        await api.client.post("/api/execute", json={"text": "hi", "channel": channel})
        await api.publisher.wait_for_first(channel)
        shutdown = asyncio.create_task(begin_shutdown(api.app))
        await asyncio.sleep(0)  # it is waiting
        assert api.app.state.services.capacity.closed
        assert not shutdown.done()
        hurry_shutdown(api.app)
        await asyncio.wait_for(shutdown, 10)
        ending = (await api.publisher.wait_for_done(channel))[-1]

    assert isinstance(ending, Done)
    assert (ending.reason, ending.error) == (SHUTDOWN.reason, SHUTDOWN.error)


@pytest.mark.parametrize("failure", [RuntimeError("bug"), KeyError("x"), UnicodeError("bad")])
async def test_any_model_failure_is_502_on_sync_and_an_error_event_on_sse(
    failure: Exception,
) -> None:
    async with with_model(ScriptedModel(TOKENS, fail_after=2, failure=failure)) as api:
        sync = await api.client.post("/api/chat/sync", json={"prompt": "hi"})
        sse = await api.client.post("/api/chat", json={"prompt": "hi"})

    assert sync.status_code == 502
    assert sync.json() == {"detail": "the model failed while answering"}
    assert events(sse.text)[-2:] == [{"error": "the model failed while answering"}, "[DONE]"]


async def test_a_lone_surrogate_in_the_model_s_error_reaches_every_route_readably() -> None:
    """An outside-in probe: a model server's error message holding `\\ud800` was a 500 on sync,
    an SSE stream cut without its error event, and a relay `done` that could not be published;
    the backend then closed a kept-alive connection another user's request came on."""
    failure = ModelError("the key sk-\ud800 was refused", kind="status")
    async with with_model(ScriptedModel(TOKENS, fail_after=0, failure=failure)) as api:
        sync = await api.client.post("/api/chat/sync", json={"prompt": "hi"})
        sse = await api.client.post("/api/chat", json={"prompt": "hi"})
        channel = f"stream:abcdefgh#{await api.user()}"
        await api.client.post("/api/execute", json={"text": "hi", "channel": channel})
        ending = (await api.publisher.wait_for_done(channel))[-1]

    readable = "the key sk-\ufffd was refused"
    assert (sync.status_code, sync.json()) == (502, {"detail": readable})
    assert events(sse.text)[-2:] == [{"error": readable}, "[DONE]"]
    assert isinstance(ending, Done)
    assert (ending.reason, ending.error) == ("error", readable)
