"""How many concurrent answers the relay carries, and what coalescing saves.

Starts a real Centrifugo and the real backend (simulated model, 2-6 ms a token by default),
subscribes to N channels over Centrifugo WebSockets (centrifuge-python, 100 channels a
connection, as N users), starts the N answers at once through `POST /api/execute`, and times each
answer from its execute to its `done` arriving at the subscriber. Runs once per coalescing window
and prints the figures and the ratios. Loopback only, bounded in count and time.

    .venv/bin/python -m bench.relay_throughput --streams 500 --windows 0 30
"""

from __future__ import annotations

import argparse
import asyncio
import math
import secrets
import statistics
import sys
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass

from centrifuge import PublicationContext

from backend.llm.simulated import answer_for, tokenize
from tests.clients import ChatSession, Collector, answer_of
from tests.processes import ROOT, centrifugo_command, clean_environment, free_port, running

PROMPTS = ["hello", "explain", "streaming", "code"]
MAX_STREAMS = 5000
CHANNELS_PER_CONNECTION = 100  # under Centrifugo's default client.channel_limit of 128
ORIGIN = "http://localhost:9000"


class TimedCollector(Collector):
    """Notes when the `done` arrived."""

    finished_at = 0.0

    async def on_publication(self, ctx: PublicationContext) -> None:
        await super().on_publication(ctx)
        if self.done.is_set() and not self.finished_at:
            self.finished_at = time.perf_counter()


@dataclass
class Result:
    window_ms: float
    streams: int
    seconds: float
    publications: list[int]
    durations: list[float]
    exact: int


Job = tuple[ChatSession, str, str, TimedCollector]


async def subscribed_jobs(sessions: list[ChatSession], count: int) -> list[Job]:
    """`count` answers to ask, spread over `sessions`, each with its channel subscribed: the
    session, the channel, the prompt and the collector of what arrives."""
    jobs: list[Job] = []
    for i in range(count):
        session = sessions[i % len(sessions)]
        channel = session.new_channel()
        collector = TimedCollector()
        sub = session.client.new_subscription(channel, events=collector)
        await sub.subscribe()
        jobs.append((session, channel, PROMPTS[i % len(PROMPTS)], collector))
    await asyncio.gather(*(c.subscribed.wait() for *_, c in jobs))
    return jobs


async def run_streams(backend: str, websocket: str, count: int) -> Result:
    async with AsyncExitStack() as stack:
        users = math.ceil(count / CHANNELS_PER_CONNECTION)
        sessions = [
            await stack.enter_async_context(ChatSession.open(backend, websocket, ORIGIN))
            for _ in range(users)
        ]
        jobs = await subscribed_jobs(sessions, count)

        started: dict[str, float] = {}

        async def execute(session: ChatSession, channel: str, prompt: str) -> None:
            started[channel] = time.perf_counter()
            response = await session.execute(channel, prompt)
            response.raise_for_status()

        begin = time.perf_counter()
        await asyncio.gather(*(execute(s, ch, p) for s, ch, p, _ in jobs))
        await asyncio.wait_for(asyncio.gather(*(c.done.wait() for *_, c in jobs)), 600)
        seconds = time.perf_counter() - begin
    return Result(
        window_ms=0,
        streams=count,
        seconds=seconds,
        publications=[len(c.publications) for *_, c in jobs],
        durations=[c.finished_at - started[ch] for _, ch, _, c in jobs],
        exact=sum(
            answer_of(c.publications) == answer_for(p)
            and c.publications[-1]["reason"] == "complete"
            for _, _, p, c in jobs
        ),
    )


def measure(window_ms: float, count: int, delay_ms: tuple[float, float]) -> Result:
    key, secret = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    c_port, b_port = free_port(), free_port()
    shared = {
        "CENTRIFUGO_HTTP_API_KEY": key,
        "CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY": secret,
        "CENTRIFUGO_HTTP_SERVER_PORT": str(c_port),
    }
    centrifugo_env = clean_environment(
        {
            **shared,
            "CENTRIFUGO_CLIENT_ALLOWED_ORIGINS": ORIGIN,
            # Its backend decides each subscribe (backend/centrifugo/subscriptions.py).
            "CENTRIFUGO_CHANNEL_PROXY_SUBSCRIBE_ENDPOINT": (
                f"http://127.0.0.1:{b_port}/centrifugo/subscribe"
            ),
        }
    )
    backend_env = clean_environment(
        {
            **shared,
            "SESSION_SECRET": secrets.token_urlsafe(32),
            "BACKEND_PORT": str(b_port),
            "SIM_TOKEN_DELAY_MIN_MS": str(delay_ms[0]),
            "SIM_TOKEN_DELAY_MAX_MS": str(delay_ms[1]),
            "COALESCE_WINDOW_MS": str(window_ms),
            "MAX_STREAM_SECONDS": "300",
            # Each connection here is one user with many answers at once.
            "MAX_STREAMS_PER_USER": str(CHANNELS_PER_CONNECTION),
            # ... every connection from one address (loopback).
            "MAX_STREAMS_PER_ADDRESS": str(MAX_STREAMS),
            # ... each subscribed before its execute: more fresh channels than a page's budget.
            "SUBSCRIBE_BURST_PER_USER": str(CHANNELS_PER_CONNECTION),
            # The steady state: no history lookup per execute in the process's first minutes.
            "REUSED_CHANNEL_CHECK_SECONDS": "0",
        }
    )
    c_url, b_url = f"http://127.0.0.1:{c_port}", f"http://127.0.0.1:{b_port}"
    centrifugo = centrifugo_command(ROOT / ".cache" / "centrifugo")
    backend = [sys.executable, "-m", "backend"]
    with (
        running("centrifugo", centrifugo, centrifugo_env, f"{c_url}/health"),
        running("backend", backend, backend_env, f"{b_url}/api/health"),
    ):
        websocket = f"ws://127.0.0.1:{c_port}/connection/websocket"
        result = asyncio.run(run_streams(b_url, websocket, count))
    result.window_ms = window_ms
    return result


def report(results: list[Result]) -> None:
    tokens = statistics.mean(len(tokenize(answer_for(p))) + 1 for p in PROMPTS)
    print(
        f"{'window':>8} {'streams':>8} {'exact':>6} {'wall s':>7} {'streams/s':>10} "
        f"{'pubs/stream':>12} {'p50 s':>6} {'p95 s':>6}"
    )
    for r in results:
        durations = sorted(r.durations)
        p95 = durations[max(int(len(durations) * 0.95) - 1, 0)]
        print(
            f"{r.window_ms:>6g}ms {r.streams:>8} {r.exact:>6} {r.seconds:>7.2f} "
            f"{r.streams / r.seconds:>10.1f} {statistics.mean(r.publications):>12.1f} "
            f"{statistics.median(durations):>6.2f} {p95:>6.2f}"
        )
    print(f"(an answer is {tokens:.0f} tokens and one done on average)")
    if len(results) > 1:
        base, other = results[0], results[-1]
        ratio = statistics.mean(base.publications) / statistics.mean(other.publications)
        windows = f"{base.window_ms:g} ms window / {other.window_ms:g} ms window"
        print(f"publications per stream: {windows} = {ratio:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--windows", type=float, nargs="+", default=[0.0, 30.0])
    parser.add_argument(
        "--token-delay-ms",
        type=float,
        nargs=2,
        default=[2.0, 6.0],
        metavar=("MIN", "MAX"),
        help="the simulated model's delay per token (2-6 ms: a fast model, 250 tokens/s)",
    )
    args = parser.parse_args()
    count = min(args.streams, MAX_STREAMS)
    delay = (args.token_delay_ms[0], args.token_delay_ms[1])
    print(f"{count} streams at once, {delay[0]:g}-{delay[1]:g} ms a token")
    report([measure(window, count, delay) for window in args.windows])


if __name__ == "__main__":
    main()
