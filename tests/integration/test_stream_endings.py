"""How a stream ends when it cannot complete: the time limit, and the server stopping."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import time

import httpx
from httpx_sse import EventSource

from backend.__main__ import SAME_SIGNAL_SECONDS
from backend.api.routes.chat import STOPPING
from backend.core.relay import SHUTDOWN
from backend.llm.simulated import answer_for
from tests.clients import ChatSession, Collector, answer_of
from tests.processes import Server
from tests.stack import ORIGIN, Stack, another_backend, another_backend_server

SLOW = {"SIM_TOKEN_DELAY_MIN_MS": "40", "SIM_TOKEN_DELAY_MAX_MS": "40"}


async def test_a_stream_over_the_time_limit_ends_with_done_timeout(
    stack: Stack, server_api: httpx.AsyncClient
) -> None:
    with another_backend(stack, MAX_STREAM_SECONDS="0.5", **SLOW) as url:
        async with ChatSession.open(url, stack.websocket_url, ORIGIN) as chat:
            publications = await chat.ask("code")  # ~150 tokens x 40 ms: far over 0.5 s
    assert publications[-1]["reason"] == "timeout"
    assert "0.5 s" in publications[-1]["error"]
    assert [p["done"] for p in publications].count(True) == 1
    assert len(publications) > 2


async def test_stopping_the_server_ends_running_streams_first(stack: Stack) -> None:
    """SIGTERM with relay streams and an SSE client mid-answer (each answer ~6 s): the relay
    streams get `done` reason `error` and the SSE client an error event and `[DONE]` at once,
    rather than after the SSE answer completes (uvicorn waits for open connections)."""
    with contextlib.ExitStack() as backend:
        url = backend.enter_context(another_backend(stack, **SLOW))
        async with (
            ChatSession.open(url, stack.websocket_url, ORIGIN) as chat,
            chat.http.stream("POST", "/api/chat", json={"prompt": "code"}) as sse,
        ):
            collectors = await _mid_answers(chat, 3)
            events = EventSource(sse).aiter_sse()
            assert json.loads((await anext(events)).data)["token"]

            backend.close()  # SIGTERM to the backend, as Ctrl-C or `docker stop` would send

            rest = [event.data async for event in events]
            for collector in collectors:
                publications = await collector.wait_for_done()
                assert publications[-1] == {
                    "text": "",
                    "done": True,
                    "reason": "error",
                    "error": SHUTDOWN.error,
                    "seq": len(publications) - 1,
                }
                assert len(publications) > 1
    assert rest[-2:] == [json.dumps({"error": STOPPING}), "[DONE]"]


async def test_a_restart_lets_the_running_answers_finish_whole(stack: Stack) -> None:
    """SIGTERM (a restart, a deploy) with relay streams and an SSE client mid-answer: each
    answer was ended with "the server is stopping". Now they run to their end, whole and in
    order (SHUTDOWN_DRAIN_SECONDS), a new prompt meanwhile is refused (503: nothing started),
    and the process then exits by itself."""
    with another_backend_server(stack, SHUTDOWN_DRAIN_SECONDS="60", **SLOW) as server:
        url = server.ready_url.removesuffix("/api/health")
        async with (
            ChatSession.open(url, stack.websocket_url, ORIGIN) as chat,
            chat.http.stream("POST", "/api/chat", json={"prompt": "code"}) as sse,
        ):
            collectors = await _mid_answers(chat, 3)
            events = EventSource(sse).aiter_sse()
            first = json.loads((await anext(events)).data)["token"]

            server.signal(signal.SIGTERM)
            await _until_stopping(chat.http)
            refused = await chat.execute(chat.new_channel(), "hello")

            rest = [event.data async for event in events]
            answers = [await collector.wait_for_done() for collector in collectors]
        exited = await asyncio.to_thread(_exit_code, server, 30)

    assert refused.status_code == 503, refused.text
    assert refused.json()["detail"].startswith("the server is stopping")
    for publications in answers:
        assert answer_of(publications) == answer_for("code")
        assert publications[-1] == {
            "text": "",
            "done": True,
            "reason": "complete",
            "seq": len(publications) - 1,
        }
    assert rest[-1] == "[DONE]"
    assert first + "".join(json.loads(data)["token"] for data in rest[:-1]) == answer_for("code")
    assert exited is not None  # by itself, once they had finished


async def test_a_second_signal_ends_the_running_answers_at_once(stack: Stack) -> None:
    """While a stopping backend lets its answers finish, a second SIGTERM (a second Ctrl-C)
    ends them with "the server is stopping", as before."""
    with another_backend_server(stack, SHUTDOWN_DRAIN_SECONDS="60", **SLOW) as server:
        url = server.ready_url.removesuffix("/api/health")
        async with ChatSession.open(url, stack.websocket_url, ORIGIN) as chat:
            (collector,) = await _mid_answers(chat, 1)
            server.signal(signal.SIGTERM)
            signalled = time.monotonic()
            await _until_stopping(chat.http)
            # A second request, not a copy of the first passed on (the same within 0.1 s).
            await asyncio.sleep(max(0.0, 2 * SAME_SIGNAL_SECONDS - time.monotonic() + signalled))
            server.signal(signal.SIGTERM)
            publications = await collector.wait_for_done()

    assert publications[-1] == {
        "text": "",
        "done": True,
        "reason": "error",
        "error": SHUTDOWN.error,
        "seq": len(publications) - 1,
    }
    assert answer_of(publications) != answer_for("code")  # ~6 s of answer; the drain is 60


async def _until_stopping(http: httpx.AsyncClient) -> None:
    """Until the backend says it is stopping (it has heard the signal)."""
    async with asyncio.timeout(10):
        while (await http.get("/api/ready")).status_code != 503:  # noqa: ASYNC110  # asked
            await asyncio.sleep(0.02)


def _exit_code(server: Server, seconds: float) -> int | None:
    assert server.process is not None
    try:
        return server.process.wait(seconds)
    except subprocess.TimeoutExpired:
        return None


async def _mid_answers(chat: ChatSession, count: int) -> list[Collector]:
    """`count` answers to "code" asked, each once its first token has come."""
    collectors = [await _asked(chat, "code") for _ in range(count)]
    for collector in collectors:
        await asyncio.wait_for(collector.first.wait(), 10)
    return collectors


async def _asked(chat: ChatSession, text: str) -> Collector:
    channel = chat.new_channel()
    sub, collector = await chat.subscribe(channel)
    await sub.ready(10)
    assert (await chat.execute(channel, text)).status_code == 202
    return collector


async def test_a_restarted_backend_refuses_a_channel_used_just_before_it_started(
    stack: Stack,
) -> None:
    """Regression (outside-in probe): the backend remembers used channels in memory; restarted
    within a channel's history time, it took the channel again (202), its history then held two
    answers. Now it asks Centrifugo's history during its first minutes: 409, as the protocol
    says, and a new channel still gets its answer."""
    with another_backend(stack) as first:
        async with ChatSession.open(first, stack.websocket_url, ORIGIN) as chat:
            channel = chat.new_channel()
            sub, collector = await chat.subscribe(channel)
            await sub.ready(10)
            assert (await chat.execute(channel, "hello")).status_code == 202
            await collector.wait_for_done()
            cookies = dict(chat.http.cookies)
            user = chat.user

    with another_backend(stack) as second:  # a new process: its memory of channels is empty
        async with httpx.AsyncClient(base_url=second, cookies=cookies, timeout=10) as http:
            again = await http.post("/api/execute", json={"text": "hello", "channel": channel})
            fresh = f"stream:{'f' * 16}#{user}"
            new = await http.post("/api/execute", json={"text": "hello", "channel": fresh})
            await http.post("/api/cancel", json={"channel": fresh})

    assert again.status_code == 409, again.text
    assert "new channel id" in again.json()["detail"]
    assert new.status_code == 202, new.text
