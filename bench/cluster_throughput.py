"""What the cluster (`make run-cluster`: Redis, 2 Centrifugo nodes, 2 backends) carries, and
what each process spends: N answers at once, users spread over both backends and both nodes
(100 channels a connection), every answer checked exact; CPU seconds of each process from the
kernel's accounting (/proc/<pid>/stat) over the run. Loopback only, bounded in count and time.

    .venv/bin/python -m bench.cluster_throughput --streams 1000 --token-delay-ms 20 40
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path

import redis

from backend.llm.simulated import answer_for, tokenize
from bench.relay_throughput import CHANNELS_PER_CONNECTION, ORIGIN, PROMPTS, subscribed_jobs
from tests.clients import ChatSession, answer_of
from tests.cluster import Cluster, running_cluster

MAX_STREAMS = 4000
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def redis_used_mb(url: str) -> float:
    with redis.Redis.from_url(url) as client:
        info = client.info("memory")
    return float(info["used_memory"]) / 1024 / 1024


def processes(cluster: Cluster, redis_pid: int) -> dict[str, int]:
    named = {"redis": redis_pid}
    for n, server in enumerate(cluster.centrifugo, 1):
        assert server.process is not None
        named[f"centrifugo-{n}"] = server.process.pid
    for n, server in enumerate(cluster.backends, 1):
        assert server.process is not None
        named[f"backend-{n}"] = server.process.pid
    return named


async def run(cluster: Cluster, count: int) -> tuple[float, list[float], int, int]:
    async with AsyncExitStack() as stack:
        users = math.ceil(count / CHANNELS_PER_CONNECTION)
        sessions = []
        for i in range(users):
            backend, node = cluster.stacks[i % 2], cluster.stacks[(i // 2) % 2]
            sessions.append(
                await stack.enter_async_context(
                    ChatSession.open(backend.backend_url, node.websocket_url, ORIGIN)
                )
            )
        jobs = await subscribed_jobs(sessions, count)
        started = time.perf_counter()
        replies = await asyncio.gather(*(s.execute(ch, p) for s, ch, p, _ in jobs))
        assert all(r.status_code == 202 for r in replies), {r.status_code for r in replies}
        await asyncio.gather(*(asyncio.wait_for(c.done.wait(), 120) for *_, c in jobs))
        seconds = time.perf_counter() - started
        durations = [c.finished_at - started for *_, c in jobs]
        exact = sum(answer_of(c.publications) == answer_for(p) for _, _, p, c in jobs)
        publications = sum(len(c.publications) for *_, c in jobs)
    return seconds, durations, exact, publications


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--token-delay-ms", type=int, nargs=2, default=(20, 40))
    parser.add_argument("--window-ms", type=int, default=30)
    args = parser.parse_args()
    if not 1 <= args.streams <= MAX_STREAMS:
        sys.exit(f"--streams must be 1..{MAX_STREAMS}")
    settings = {
        "SIM_TOKEN_DELAY_MIN_MS": str(args.token_delay_ms[0]),
        "SIM_TOKEN_DELAY_MAX_MS": str(args.token_delay_ms[1]),
        "COALESCE_WINDOW_MS": str(args.window_ms),
        "MAX_STREAMS_PER_USER": str(CHANNELS_PER_CONNECTION),
        # ... every connection from one address (loopback).
        "MAX_STREAMS_PER_ADDRESS": str(MAX_STREAMS),
        "MAX_STREAM_SECONDS": "300",
    }
    tokens_per_answer = statistics.mean(len(tokenize(answer_for(p))) for p in PROMPTS)
    with (
        tempfile.TemporaryDirectory() as workdir,
        running_cluster(Path(workdir), **settings) as cluster,
    ):
        pids = processes(cluster, cluster.redis_pid)
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        rss_before = {name: rss_mb(pid) for name, pid in pids.items()}
        redis_before = redis_used_mb(cluster.redis_url)
        seconds, durations, exact, publications = asyncio.run(run(cluster, args.streams))
        spent = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
        grown = {name: rss_mb(pid) - rss_before[name] for name, pid in pids.items()}
        redis_grown = redis_used_mb(cluster.redis_url) - redis_before
    tokens = tokens_per_answer * args.streams
    print(
        f"{args.streams} streams, {args.token_delay_ms[0]}-{args.token_delay_ms[1]} ms/token, "
        f"window {args.window_ms} ms: {exact}/{args.streams} exact, {seconds:.1f} s wall, "
        f"answer p50 {statistics.median(durations):.2f} s / p99 "
        f"{statistics.quantiles(durations, n=100)[98]:.2f} s"
    )
    print(
        f"  {tokens / seconds:,.0f} tokens/s, {publications / seconds:,.0f} publications/s "
        f"({publications / args.streams:.1f} per answer)"
    )
    for name, cpu in spent.items():
        print(
            f"  {name:>13}: {cpu:6.2f} CPU s, {cpu / tokens * 1000:.4f} CPU s per 1,000 tokens, "
            f"RSS {grown[name]:+.1f} MB"
        )
    per_answer = redis_grown * 1024 / args.streams
    print(f"  Redis data: {redis_grown:+.1f} MB after the run ({per_answer:.1f} KB per answer)")
    total = sum(spent.values())
    print(f"  {'all':>13}: {total:6.2f} CPU s, {total / tokens * 1000:.4f} CPU s per 1,000 tokens")


if __name__ == "__main__":
    main()
