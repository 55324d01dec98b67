"""How many concurrent answers the relay carries, and what coalescing saves.

Starts a real Centrifugo and the real backend (simulated model, 2-6 ms a token by default), starts
N streams at once through `POST /api/execute`, and waits through Centrifugo's server API until
every channel holds its `done`. Runs once per coalescing window and prints the figures and the
ratios. Loopback only, bounded in count and time.

    .venv/bin/python -m bench.relay_throughput --streams 500 --windows 0 30
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import time
from dataclasses import dataclass

import httpx

from backend.models.simulated import answer_for, tokenize
from tests.processes import ROOT, centrifugo_binary, clean_environment, free_port, running

PROMPTS = ["hello", "explain", "streaming", "code"]
MAX_STREAMS = 5000


@dataclass
class Result:
    window_ms: float
    streams: int
    seconds: float
    publications: list[int]
    durations: list[float]
    exact: int


async def post(client: httpx.AsyncClient, path: str, body: dict[str, object]) -> httpx.Response:
    """POST, once more if the server had closed the kept-alive connection just before."""
    try:
        return await client.post(path, json=body)
    except (httpx.ReadError, httpx.RemoteProtocolError):
        return await client.post(path, json=body)


async def run_streams(
    backend: str, api: str, api_key: str, count: int
) -> tuple[float, list[int], list[float], int]:
    limits = httpx.Limits(max_connections=100)
    # A new connection per request to the backend: under this load its event loop runs late,
    # and a kept-alive connection can be closed by uvicorn's keep-alive timer just as it is reused.
    fresh = httpx.Limits(max_connections=100, max_keepalive_connections=0)
    async with (
        httpx.AsyncClient(base_url=backend, limits=fresh, timeout=60) as http,
        httpx.AsyncClient(
            base_url=api, headers={"X-API-Key": api_key}, limits=limits, timeout=30
        ) as server,
    ):
        user = (await http.post("/api/token")).json()["user"]
        jobs = [
            (f"stream:bench{i:06d}{secrets.token_hex(4)}#{user}", PROMPTS[i % 4])
            for i in range(count)
        ]
        started = time.perf_counter()
        sent: dict[str, float] = {}

        async def execute(channel: str, prompt: str) -> None:
            sent[channel] = time.perf_counter()
            response = await post(http, "/api/execute", {"text": prompt, "channel": channel})
            if response.status_code != 409:  # 409: a retry of one that did start
                response.raise_for_status()

        await asyncio.gather(*(execute(c, p) for c, p in jobs))
        finished: dict[str, tuple[float, list[dict[str, object]]]] = {}
        deadline = time.perf_counter() + 300
        while len(finished) < count and time.perf_counter() < deadline:
            pending = [c for c, _ in jobs if c not in finished]

            async def check(channel: str) -> None:
                # The last publication only: cheap enough not to load the machine under test.
                last = {"channel": channel, "limit": 1, "reverse": True}
                reply = (await post(server, "/history", last)).json()
                latest = reply["result"].get("publications", [])
                if latest and latest[0]["data"].get("done"):
                    at = time.perf_counter()
                    whole = {"channel": channel, "limit": -1}
                    reply = (await post(server, "/history", whole)).json()
                    finished[channel] = (at, [p["data"] for p in reply["result"]["publications"]])

            await asyncio.gather(*(check(c) for c in pending[:200]))
            await asyncio.sleep(0.1)
        seconds = time.perf_counter() - started
        publications, durations, exact = [], [], 0
        for channel, prompt in jobs:
            if channel not in finished:
                continue
            at, data = finished[channel]
            publications.append(len(data))
            durations.append(at - sent[channel])
            text = "".join(str(d["text"]) for d in data if not d["done"])
            exact += text == answer_for(prompt) and data[-1]["reason"] == "complete"
        return seconds, publications, durations, exact


def measure(window_ms: float, count: int, delay_ms: tuple[float, float]) -> Result:
    binary = centrifugo_binary()
    key, secret = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    c_port, b_port = free_port(), free_port()
    shared = {
        "CENTRIFUGO_HTTP_API_KEY": key,
        "CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY": secret,
        "CENTRIFUGO_HTTP_SERVER_PORT": str(c_port),
    }
    backend_env = clean_environment(
        {
            **shared,
            "SESSION_SECRET": secrets.token_urlsafe(32),
            "BACKEND_PORT": str(b_port),
            "SIM_TOKEN_DELAY_MIN_MS": str(delay_ms[0]),
            "SIM_TOKEN_DELAY_MAX_MS": str(delay_ms[1]),
            "COALESCE_WINDOW_MS": str(window_ms),
            "MAX_STREAM_SECONDS": "300",
        }
    )
    c_url, b_url = f"http://127.0.0.1:{c_port}", f"http://127.0.0.1:{b_port}"
    config = str(ROOT / "centrifugo" / "config.json")
    with (
        running(
            "centrifugo", [binary, "--config", config], clean_environment(shared), f"{c_url}/health"
        ),
        running("backend", [sys.executable, "-m", "backend"], backend_env, f"{b_url}/api/health"),
    ):
        seconds, publications, durations, exact = asyncio.run(
            run_streams(b_url, f"{c_url}/api", key, count)
        )
    return Result(window_ms, count, seconds, publications, durations, exact)


def report(results: list[Result]) -> None:
    tokens = statistics.mean(len(tokenize(answer_for(p))) + 1 for p in PROMPTS)
    print(
        f"{'window':>8} {'streams':>8} {'exact':>6} {'wall s':>7} {'streams/s':>10} "
        f"{'pubs/stream':>12} {'p50 s':>6} {'p95 s':>6}"
    )
    for r in results:
        durations = sorted(r.durations)
        p95 = durations[int(len(durations) * 0.95) - 1] if durations else float("nan")
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
