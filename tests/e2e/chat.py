"""Helpers of the chat page's browser tests: sending prompts, reading what the page shows,
axe-core's verdict on it, and standing in for the model by publishing an answer of the test's
own into the page's channel."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from playwright.async_api import Locator, Page, Request, Route

from tests.processes import ROOT
from tests.stack import Edge

FINISHED = ".turn.assistant[aria-busy=false]"
ANSWER = ".turn.assistant .answer"
AXE = ROOT / "frontend" / "node_modules" / "axe-core" / "axe.min.js"


async def send(page: Page, text: str) -> None:
    await page.get_by_label("Your message", exact=True).fill(text)
    await page.get_by_label("Your message", exact=True).press("Enter")


def last_answer(page: Page) -> Locator:
    return page.locator(".turn.assistant").last


def folded(text: str | None) -> str:
    return " ".join((text or "").split())


def record_executes(page: Page) -> list[dict[str, Any]]:
    """The bodies of the page's `POST /api/execute` requests, as they are sent."""
    bodies: list[dict[str, Any]] = []

    def record(request: Request) -> None:
        if request.url.endswith("/api/execute") and request.method == "POST":
            bodies.append(request.post_data_json or {})

    page.on("request", record)
    return bodies


def stream_id(channel: str) -> str:
    return channel.removeprefix("stream:").split("#", 1)[0]


class StandInModel:
    """Answers the page's prompts itself: `POST /api/execute` is accepted (202) without reaching
    the backend, and the test publishes chunks and the `done` into the page's channel through
    Centrifugo's server API, when it chooses, as the backend would."""

    def __init__(self, edge: Edge) -> None:
        self.api = f"{edge.stack.centrifugo_url}/api/publish"
        self.headers = {"X-API-Key": edge.stack.api_key}
        self.channels: asyncio.Queue[str] = asyncio.Queue()
        self.seq: dict[str, int] = {}

    async def install(self, page: Page) -> None:
        await page.route("**/api/execute", self._accept)

    async def _accept(self, route: Route) -> None:
        channel = json.loads(route.request.post_data or "{}")["channel"]
        await route.fulfill(status=202, json={"channel": channel})
        await self.channels.put(channel)

    async def next_channel(self) -> str:
        return await asyncio.wait_for(self.channels.get(), 10)

    async def _publish(self, channel: str, data: dict[str, Any]) -> None:
        async with httpx.AsyncClient() as client:
            response = await client.post(
                self.api, json={"channel": channel, "data": data}, headers=self.headers
            )
            response.raise_for_status()
            assert "error" not in response.json(), response.text

    async def chunk(self, channel: str, text: str) -> None:
        self.seq[channel] = self.seq.get(channel, 0) + 1
        await self._publish(channel, {"text": text, "done": False, "seq": self.seq[channel]})

    async def done(self, channel: str, reason: str = "complete") -> None:
        data: dict[str, Any] = {"text": "", "done": True, "reason": reason}
        if channel in self.seq:
            data["seq"] = self.seq[channel]
        await self._publish(channel, data)

    async def answer(self, channel: str, *chunks: str) -> None:
        for text in chunks:
            await self.chunk(channel, text)
        await self.done(channel)


def axe_source() -> str:
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: `make frontend` (npm ci) installs it", pytrace=False)
    return AXE.read_text()


async def violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's violations on the page as it is now. Evaluated through the DevTools protocol,
    which the page's Content-Security-Policy does not block (a script tag would be)."""
    if not await page.evaluate("typeof window.axe === 'object'"):
        await page.evaluate(axe_source())
    found: list[dict[str, Any]] = await page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
            .map(v => ({id: v.id, impact: v.impact, help: v.help,
                        nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ') + ': '
                                                             + n.failureSummary)}))"""
    )
    return found
