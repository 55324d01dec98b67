"""The answer reaches a real subscriber through a real Centrifugo: whole, in order, once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets

from backend.llm.simulated import THINKING, answer_for
from tests.clients import ChatSession, answer_of
from tests.stack import ORIGIN, Stack


@pytest.mark.parametrize("prompt", ["hello", "explain please", "code", "what is this"])
async def test_answer_arrives_exact_in_order_with_one_done_last(
    session: ChatSession, prompt: str
) -> None:
    publications = await session.ask(prompt)
    dones = [p for p in publications if p["done"]]
    # The done names the last chunk's seq; the chunks are numbered 1..n without gaps.
    assert dones == [{"text": "", "done": True, "reason": "complete", "seq": len(publications) - 1}]
    assert [p["seq"] for p in publications[:-1]] == list(range(1, len(publications)))
    assert publications[-1]["done"] is True
    assert answer_of(publications) == answer_for(prompt)
    assert len(publications) > 2  # streamed, not sent whole


async def test_offsets_are_consecutive(session: ChatSession) -> None:
    channel = session.new_channel()
    sub, collector = await session.subscribe(channel)
    await sub.ready(10)
    assert (await session.execute(channel, "streaming")).status_code == 202
    await collector.wait_for_done()
    assert collector.offsets == list(range(1, len(collector.offsets) + 1))


async def test_thinking_chunks_come_before_the_answer(session: ChatSession) -> None:
    publications = await session.ask("hello", thinking=True)
    phases = ["thinking" if "phase" in p else "answer" for p in publications if not p["done"]]
    first_answer = phases.index("answer")
    assert phases[:first_answer] == ["thinking"] * first_answer
    assert "thinking" not in phases[first_answer:]
    assert first_answer > 1
    thinking = "".join(p["text"] for p in publications if p.get("phase") == "thinking")
    assert thinking == THINKING
    assert answer_of(publications) == answer_for("hello")


async def test_a_late_subscriber_gets_the_whole_answer_from_history(
    session: ChatSession,
) -> None:
    channel = session.new_channel()
    assert (await session.execute(channel, "code")).status_code == 202
    await session.wait_for_done(channel)  # the stream is over before the late one subscribes

    _, collector = await session.subscribe(channel)
    received = await collector.wait_for_done()
    assert answer_of(received) == answer_for("code")
    assert [p for p in received if p["done"]] == [
        {"text": "", "done": True, "reason": "complete", "seq": len(received) - 1}
    ]


async def test_twenty_concurrent_streams_all_arrive_exact(stack: Stack) -> None:
    prompts = ["hello", "explain", "streaming", "code", "anything else"] * 4

    async def one(prompt: str) -> tuple[str, list[dict[str, Any]]]:
        async with ChatSession.open(
            stack.backend_url, stack.websocket_url, "http://localhost:9000"
        ) as chat:
            return prompt, await chat.ask(prompt, thinking=prompt == "hello")

    results = await asyncio.wait_for(asyncio.gather(*(one(p) for p in prompts)), 60)
    assert len(results) == 20
    for prompt, publications in results:
        assert answer_of(publications) == answer_for(prompt)
        assert [p["done"] for p in publications].count(True) == 1
        assert publications[-1]["done"] is True


async def test_ready_when_centrifugo_answers(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.backend_url) as http:
        response = await http.get("/api/ready")
    assert response.status_code == 200


async def test_a_raw_websocket_client_follows_a_channel_as_the_protocol_says(
    session: ChatSession, stack: Stack
) -> None:
    """docs/protocol.md, "Without an SDK": Centrifugo's JSON protocol over a bare WebSocket,
    frame by frame as written there (a probe had to work them out)."""
    token = (await session.http.post("/api/token")).json()["token"]
    channel = session.new_channel()
    async with websockets.connect(stack.websocket_url, origin=websockets.Origin(ORIGIN)) as ws:

        async def replies() -> AsyncIterator[dict[str, Any]]:
            """Each message of each frame (one JSON object a line); a ping answered."""
            while True:
                for line in str(await ws.recv()).splitlines():
                    message = json.loads(line)
                    if message == {}:
                        await ws.send("{}")  # a pong
                        continue
                    yield message

        messages = replies()
        await ws.send(json.dumps({"id": 1, "connect": {"token": token}}))
        connected = await anext(messages)
        assert connected["id"] == 1
        assert connected["connect"]["pong"] is True
        assert connected["connect"]["ping"] > 0
        subscribe = {"channel": channel, "recover": True, "offset": 0, "epoch": ""}
        await ws.send(json.dumps({"id": 2, "subscribe": subscribe}))
        subscribed = await anext(messages)
        assert subscribed["id"] == 2
        assert "error" not in subscribed
        assert (await session.execute(channel, "code")).status_code == 202
        publications: list[dict[str, Any]] = []
        async with asyncio.timeout(30):
            async for message in messages:
                push = message["push"]
                assert push["channel"] == channel
                publications.append(push["pub"]["data"])
                if push["pub"]["data"].get("done"):
                    break
    assert answer_of(publications) == answer_for("code")
    assert [p["seq"] for p in publications[:-1]] == list(range(1, len(publications)))
    # Subscribed after the answer ended, the same from offset 0: in the reply's publications.
    async with websockets.connect(stack.websocket_url, origin=websockets.Origin(ORIGIN)) as ws:
        await ws.send(json.dumps({"id": 1, "connect": {"token": token}}))
        await ws.send(json.dumps({"id": 2, "subscribe": subscribe}))
        late: dict[str, Any] = {}
        async with asyncio.timeout(10):
            while late.get("id") != 2:
                late = json.loads(str(await ws.recv()).splitlines()[-1])
    history = late["subscribe"]["publications"]
    assert [p["data"] for p in history] == publications
    assert [p["offset"] for p in history] == list(range(1, len(publications) + 1))
