"""relaychat's streaming paths against a direct-SSE baseline, workload by workload (issue 13).

Paths, each on fresh processes on free ports (tests/stack.py), the simulated model at a fixed
D ms a token, every answer the same 150 tokens (prompt "explain" with its thinking phase):

- relay: Centrifugo and the backend; centrifuge-python subscribers (100 channels a connection,
  one user each) subscribe, then all answers start at once through `POST /api/execute` (raw
  sockets, like the SSE requests); at the backend's default coalescing window (30 ms), at 60 ms
  and at window 0;
- `/api/chat`: the backend's own SSE route (at its default window, 30 ms);
- direct SSE: bench/direct_sse.py, a bare FastAPI `StreamingResponse` of the same tokens.

SSE clients are plain asyncio sockets (one connection a stream, chunked HTTP/1.1 parsed by hand,
so the load generator costs little). Per workload: delivered tokens/s; time to first token from
the request (the execute, or the SSE POST) to the first token at the client; token lag (token i
is due at first-token time + i*D; lag = arrival - due); execute latency (relay: of the
workload's own executes, all sent at once, and from 1,000 streams of 20 more sent one at a time
while every stream runs, on new connections and 20 on a kept-alive one, each cancelled at once,
from a process of its own: bench/execute_probe.py); server CPU s per
1,000 tokens per process (/proc/<pid>/stat, over the answers only); publications (or SSE events)
per answer; backend RSS per running stream (peak during the run minus idle, over streams);
Centrifugo RSS per finished answer (after minus before, over answers). Every answer is checked
exact against backend.llm.simulated (thinking and answer text, one `done`, reason complete).
Workloads of up to 100 streams run three rounds on the same servers, figures over all three.

Loopback only, bounded in count and time (each workload has a timeout). Figures, not pass/fail.

    .venv/bin/python -m bench.workloads            # all workloads and the ramp (~8 min)
    .venv/bin/python -m bench.workloads --quick    # 1 stream and 100 streams, short ramp
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from centrifuge import PublicationContext, SubscribedContext, SubscriptionEventHandler

from backend.api.session import SESSION_COOKIE
from backend.llm.simulated import THINKING, answer_for, tokenize
from bench.cluster_throughput import cpu_seconds, rss_mb
from tests.clients import ChatSession
from tests.processes import ROOT, Server, centrifugo_binary, clean_environment, free_port
from tests.stack import ORIGIN, backend_server, centrifugo_server, stack_for

PROMPT = "explain"
ANSWER = answer_for(PROMPT)
TOKENS = tokenize(THINKING) + tokenize(ANSWER)
# Where each token ends in the text as it arrives (thinking first, then the answer).
TOKEN_ENDS = [sum(len(t) for t in TOKENS[: i + 1]) for i in range(len(TOKENS))]
CHANNELS_PER_CONNECTION = 100  # under Centrifugo's default client.channel_limit of 128
MAX_STREAMS = 4000
LAG_LIMIT_MS = 100.0
# Up to this many streams a workload runs ROUNDS times on the same servers and the figures are
# over all rounds: one round of 100 streams is ~0.6 CPU s, whose share of backend and
# Centrifugo moved +-20% from run to run.
SMALL = 100
ROUNDS = 3
# From this many streams, the relay's execute latency is also measured while they run: up to
# PROBES executes on new connections and as many on a kept-alive one, one at a time (each
# cancelled at once), PROBE_GAP apart, from a process of its own, for as long as PROBE_SHARE of
# the workload's streams run at once.
PROBE_FROM = 1000
PROBES = 20
PROBE_GAP = 0.025
PROBE_SHARE = 0.9
HOST = "127.0.0.1"


@dataclass(frozen=True)
class Path_:
    name: str
    kind: str  # "relay", "chat" (the backend's /api/chat) or "direct" (bench/direct_sse.py)
    window_ms: float = 30.0


PATHS = (
    Path_("relay, 30 ms window", "relay", 30.0),
    Path_("relay, window 0", "relay", 0.0),
    # The trade-off in the same run: fewer, larger publications for a little more token lag.
    Path_("relay, 60 ms window", "relay", 60.0),
    Path_("/api/chat SSE", "chat", 30.0),
    Path_("direct SSE", "direct"),
)
DIRECT = PATHS[-1]


@dataclass
class Stream:
    """One answer as its client saw it."""

    sent: float = 0.0  # the execute (relay) or the SSE request started
    replied: float = 0.0  # the execute's reply (relay)
    arrivals: list[tuple[float, int]] = field(default_factory=list)  # (when, chars so far)
    thinking: str = ""
    text: str = ""
    publications: int = 0  # publications (relay, the done included) or SSE data events
    dones: int = 0
    after_done: int = 0  # anything that arrived after the end
    complete: bool = False
    error: str = ""
    chars: int = 0

    def add(self, now: float, text: str, phase: str) -> None:
        if self.dones:
            self.after_done += 1
        if phase == "thinking":
            self.thinking += text
        else:
            self.text += text
        self.chars += len(text)
        self.arrivals.append((now, self.chars))

    def end(self, complete: bool) -> None:
        self.dones += 1
        self.complete = complete

    @property
    def exact(self) -> bool:
        return (
            not self.error
            and self.thinking == THINKING
            and self.text == ANSWER
            and self.dones == 1
            and self.complete
            and not self.after_done
        )

    def token_times(self) -> list[float]:
        """When each token had arrived whole (as many as did)."""
        times: list[float] = []
        j = 0
        for end in TOKEN_ENDS:
            while j < len(self.arrivals) and self.arrivals[j][1] < end:
                j += 1
            if j == len(self.arrivals):
                break
            times.append(self.arrivals[j][0])
        return times


class Subscriber(SubscriptionEventHandler):  # type: ignore[misc]  # centrifuge-python: untyped
    """A relay stream's subscription: notes when each publication arrived."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.subscribed = asyncio.Event()
        self.finished = asyncio.Event()

    async def on_subscribed(self, ctx: SubscribedContext) -> None:
        self.subscribed.set()

    async def on_publication(self, ctx: PublicationContext) -> None:
        data = ctx.pub.data
        self.stream.publications += 1
        if data.get("done"):
            self.stream.end(data.get("reason") == "complete")
            self.finished.set()
        else:
            self.stream.add(time.perf_counter(), data["text"], data.get("phase", "answer"))


def _request(port: int, path: str, body: bytes, cookie: str, accept: str) -> bytes:
    cookie_line = f"Cookie: {SESSION_COOKIE}={cookie}\r\n" if cookie else ""
    return (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        f"Content-Type: application/json\r\nAccept: {accept}\r\n"
        f"Content-Length: {len(body)}\r\n{cookie_line}Connection: close\r\n\r\n"
    ).encode() + body


@asynccontextmanager
async def execute_prober(
    port: int, session: ChatSession
) -> AsyncIterator[asyncio.subprocess.Process]:
    """bench/execute_probe.py for `session`'s user, waiting to be told to probe, with
    bench/floor_server.py beside it (the same requests to a server that does nothing); killed if
    still running at the end."""
    env = clean_environment({"PYTHONPATH": str(ROOT)})  # bench/ is not installed
    floor_port = free_port()
    floor = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.floor_server", "--port", str(floor_port), env=env
    )
    command = [sys.executable, "-m", "bench.execute_probe", "--port", str(port)]
    command += ["--cookie", session.http.cookies[SESSION_COOKIE]]
    command += ["--user", session.user, "--most", str(PROBES), "--gap", str(PROBE_GAP)]
    command += ["--floor-port", str(floor_port)]
    process = await asyncio.create_subprocess_exec(
        *command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    )
    try:
        await listening(floor_port)
        yield process
    finally:
        for each in (process, floor):
            if each.returncode is None:  # the floor server always; the probe if timed out
                each.kill()
                await each.wait()


async def listening(port: int, seconds: float = 10.0) -> None:
    """Until something accepts connections on `port`."""
    async with asyncio.timeout(seconds):
        while True:
            try:
                _, writer = await asyncio.open_connection(HOST, port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            return


async def raw_post(port: int, path: str, body: bytes, cookie: str) -> int:
    """POST `body` on a connection of its own, as cheaply for the load generator as the SSE
    clients' requests (httpx costs the client ~1 ms a request, which showed as the server's
    time to first token in a burst); the response's status."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(_request(port, path, body, cookie, "application/json"))
        head = await reader.readuntil(b"\r\n\r\n")
        return int(head.split(b" ", 2)[1])
    finally:
        writer.close()


async def sse_stream(port: int, path: str, body: bytes, cookie: str, stream: Stream) -> None:
    """POST `body` to `path` and read the Server-Sent Events until `[DONE]`."""
    stream.sent = time.perf_counter()
    try:
        reader, writer = await asyncio.open_connection(HOST, port)
    except OSError as exc:
        stream.error = f"connect: {exc}"
        return
    try:
        writer.write(_request(port, path, body, cookie, "text/event-stream"))
        head = await reader.readuntil(b"\r\n\r\n")
        status = head.split(b" ", 2)[1]
        if status != b"200":
            stream.error = f"HTTP {status.decode()}"
            return
        chunked = b"transfer-encoding: chunked" in head.lower()
        buffer = b""
        while not stream.dones:
            if chunked:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    break
                buffer += (await reader.readexactly(size + 2))[:-2]
            else:
                data = await reader.read(65536)
                if not data:
                    break
                buffer += data
            now = time.perf_counter()
            *events, buffer = buffer.split(b"\n\n")
            for event in events:
                if not event.startswith(b"data: "):
                    continue  # a keep-alive comment
                stream.publications += 1
                payload = event[6:]
                if payload == b"[DONE]":
                    stream.end(complete=not stream.error)
                    continue
                data_ = json.loads(payload)
                if "error" in data_:
                    stream.error = data_["error"]
                else:
                    stream.add(now, data_["token"], data_.get("phase", "answer"))
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        stream.error = f"{exc.__class__.__name__}: {exc}"
    finally:
        writer.close()


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(math.ceil(p / 100 * len(ordered)) - 1, 0)]


@dataclass
class Result:
    path: Path_
    streams: int  # at once, in each round
    delay_ms: float
    exact: int  # over all rounds
    timed_out: bool
    tokens: int
    seconds: float
    ttft: list[float]
    lags: list[float]
    execute: list[float]  # the workload's own executes, all sent at once
    publications: float
    cpu: dict[str, float]  # CPU s per process over the answers
    backend_rss_kb_per_stream: float
    centrifugo_rss_kb_per_answer: float
    client_cpu: float
    errors: list[str]
    rounds: int = 1
    # One more execute at a time while every stream runs, on a new connection and on a
    # kept-alive one (bench/execute_probe.py).
    execute_running: dict[str, list[float]] = field(default_factory=dict)
    running_while_probed: int = 0  # the fewest streams running while they were probed

    @property
    def answers(self) -> int:
        return self.streams * self.rounds

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else math.nan

    def cpu_per_1k(self, name: str | None = None) -> float:
        spent = sum(self.cpu.values()) if name is None else self.cpu.get(name, math.nan)
        return spent / self.tokens * 1000 if self.tokens else math.nan

    @property
    def lag_ok(self) -> bool:
        return (
            not self.timed_out
            and self.exact == self.answers
            and percentile(self.lags, 99) * 1000 <= LAG_LIMIT_MS
        )


@contextmanager
def servers_for(path: Path_, delay_ms: float) -> Iterator[tuple[dict[str, int], int, str, str]]:
    """Fresh servers for `path`; yields their pids by name, the HTTP port to stream from, and
    (relay and /api/chat) the backend's and Centrifugo's WebSocket URLs."""
    started: list[Server] = []
    try:
        with tempfile.TemporaryDirectory(prefix="relaychat-bench-") as workdir:
            if path.kind == "direct":
                port = free_port()
                command = [sys.executable, "-m", "bench.direct_sse", "--port", str(port)]
                command += ["--token-delay-ms", f"{delay_ms:g}"]
                env = clean_environment({"PYTHONPATH": str(ROOT)})  # bench/ is not installed
                server = Server("direct-sse", command, env, f"http://{HOST}:{port}/health")
                started.append(server)
                server.start()
                assert server.process is not None
                yield {"server": server.process.pid}, port, "", ""
                return
            backend_port = free_port()
            stack = stack_for(
                free_port(),
                backend_port,
                (free_port(), free_port()),
                SIM_TOKEN_DELAY_MIN_MS=f"{delay_ms:g}",
                SIM_TOKEN_DELAY_MAX_MS=f"{delay_ms:g}",
                COALESCE_WINDOW_MS=f"{path.window_ms:g}",
                # One connection (one user) carries many answers at once here.
                MAX_STREAMS_PER_USER=str(CHANNELS_PER_CONNECTION),
                # ... every connection from one address (loopback).
                MAX_STREAMS_PER_ADDRESS=str(MAX_STREAMS),
                MAX_STREAM_SECONDS="300",
                # The steady state: a new process's first 2 minutes also ask Centrifugo whether
                # each execute's channel was used before it started (one more API call each).
                REUSED_CHANNEL_CHECK_SECONDS="0",
            )
            for server in (centrifugo_server(stack, Path(workdir)), backend_server(stack)):
                started.append(server)
                server.start()
            pids = {}
            for server in started:
                assert server.process is not None
                pids[server.name] = server.process.pid
            yield pids, backend_port, stack.backend_url, stack.websocket_url
    finally:
        for server in reversed(started):
            server.close()


async def drive(
    path: Path_,
    count: int,
    delay_ms: float,
    pids: dict[str, int],
    port: int,
    backend_url: str,
    websocket_url: str,
    limit_seconds: float,
) -> Result:
    streams = [Stream() for _ in range(count)]
    execute_running: dict[str, list[float]] = {}
    fewest = [0]  # streams running while the executes were probed, at the fewest
    main = "server" if path.kind == "direct" else "backend"
    users = math.ceil(count / CHANNELS_PER_CONNECTION)
    async with AsyncExitStack() as stack:
        if path.kind == "relay":
            sessions = [
                await stack.enter_async_context(
                    ChatSession.open(backend_url, websocket_url, ORIGIN)
                )
                for _ in range(users)
            ]
            jobs: list[tuple[ChatSession, str, Subscriber]] = []
            for i, stream in enumerate(streams):
                session = sessions[i % users]
                channel = session.new_channel()
                subscriber = Subscriber(stream)
                sub = session.client.new_subscription(channel, events=subscriber)
                await sub.subscribe()
                jobs.append((session, channel, subscriber))
            async with asyncio.timeout(60):
                await asyncio.gather(*(s.subscribed.wait() for *_, s in jobs))
            prober = None
            if count >= PROBE_FROM:
                # Started now, outside the measured time (an interpreter and its imports take a
                # few tenths of a CPU second); it probes when told.
                session = await stack.enter_async_context(
                    ChatSession.open(backend_url, websocket_url, ORIGIN)
                )
                prober = await stack.enter_async_context(execute_prober(port, session))

            def running() -> int:
                return sum(s.arrivals != [] and not s.dones for s in streams)

            def all_began() -> bool:
                return all(s.arrivals or s.dones or s.error for s in streams)

            async def execute(session: ChatSession, channel: str, subscriber: Subscriber) -> None:
                stream = subscriber.stream
                body = json.dumps({"text": PROMPT, "channel": channel, "thinking": True})
                cookie = session.http.cookies[SESSION_COOKIE]
                stream.sent = time.perf_counter()
                try:
                    status = await raw_post(port, "/api/execute", body.encode(), cookie)
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    stream.error = f"execute: {exc.__class__.__name__}"
                    return
                stream.replied = time.perf_counter()
                if status != 202:
                    stream.error = f"execute: HTTP {status}"
                    return
                await subscriber.finished.wait()

            async def probe(process: asyncio.subprocess.Process) -> None:
                """What one more prompt waits for its 202 while the workload's streams run:
                measured by bench/execute_probe.py in a process of its own (this loop is busy
                with the subscribers, and its own delays would count as the server's), from when
                PROBE_SHARE of the streams run at once until fewer do. `fewest` is the fewest
                that ran while it was told to probe (its last probe may end after the count fell
                further: the answers of a slow machine's workload all end within a second or
                two, and that was counted as "0 running")."""
                assert process.stdin is not None
                assert process.stdout is not None
                output = asyncio.create_task(process.stdout.read())
                enough = math.ceil(PROBE_SHARE * count)
                try:
                    # Sampled: the count moves with every stream's first token and done.
                    while running() < enough and not all_began():  # noqa: ASYNC110
                        await asyncio.sleep(0.01)
                    if running() >= enough:
                        fewest[0] = running()
                        process.stdin.write(b"go\n")
                        while not output.done():
                            await asyncio.wait([output], timeout=0.01)
                            if process.stdin.is_closing():
                                continue  # the last probe's answer: not counted down further
                            fewest[0] = min(fewest[0], running())
                            if fewest[0] < enough:
                                process.stdin.close()  # stop probing
                    if not process.stdin.is_closing():
                        process.stdin.close()  # never started
                    out = await output
                    await process.wait()
                finally:
                    output.cancel()
                if process.returncode != 0:
                    raise RuntimeError(f"bench.execute_probe exited {process.returncode}")
                for how, latencies in json.loads(out).items():
                    execute_running.setdefault(how, []).extend(latencies)

            def run() -> Awaitable[object]:
                probes = [] if prober is None else [probe(prober)]
                return asyncio.gather(*(execute(*job) for job in jobs), *probes)

        else:
            cookies = [""] * users
            if path.kind == "chat":
                async with httpx.AsyncClient(base_url=backend_url, timeout=10) as http:
                    for u in range(users):
                        http.cookies.clear()  # else the same session (user) comes back
                        cookies[u] = (await http.post("/api/token")).cookies[SESSION_COOKIE]
            route = "/api/chat" if path.kind == "chat" else "/chat"
            body = json.dumps({"prompt": PROMPT, "thinking": True}).encode()

            def run() -> Awaitable[object]:
                return asyncio.gather(
                    *(
                        sse_stream(port, route, body, cookies[i % users], stream)
                        for i, stream in enumerate(streams)
                    )
                )

        await asyncio.sleep(0.3)  # let the servers settle after the setup
        idle_rss = {name: rss_mb(pid) for name, pid in pids.items()}
        peak = [idle_rss[main]]
        sampling = True

        async def sample() -> None:
            while sampling:
                peak[0] = max(peak[0], rss_mb(pids[main]))
                await asyncio.sleep(0.05)

        sampler = asyncio.create_task(sample())
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        client_before = cpu_seconds(os.getpid())
        begin = time.perf_counter()
        timed_out = False
        work = run()
        try:
            async with asyncio.timeout(limit_seconds):
                await work
        except TimeoutError:
            timed_out = True
        end = time.perf_counter()
        cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        client_cpu = cpu_seconds(os.getpid()) - client_before
        after_rss = {name: rss_mb(pid) for name, pid in pids.items()}
        sampling = False
        await sampler

    ttft: list[float] = []
    lags: list[float] = []
    tokens, last = 0, begin
    delay = delay_ms / 1000
    for stream in streams:
        times = stream.token_times()
        tokens += len(times)
        if not times:
            continue
        last = max(last, times[-1])
        ttft.append(times[0] - stream.sent)
        lags.extend(t - (times[0] + i * delay) for i, t in enumerate(times))
    exact = sum(s.exact for s in streams)
    finished = sum(s.dones > 0 for s in streams)
    return Result(
        path=path,
        streams=count,
        delay_ms=delay_ms,
        exact=exact,
        timed_out=timed_out,
        tokens=tokens,
        seconds=(end if timed_out else last) - begin,
        ttft=ttft,
        lags=lags,
        execute=[s.replied - s.sent for s in streams if s.replied],
        publications=sum(s.publications for s in streams) / count,
        cpu=cpu,
        backend_rss_kb_per_stream=(peak[0] - idle_rss[main]) * 1024 / count,
        centrifugo_rss_kb_per_answer=(
            (after_rss["centrifugo"] - idle_rss["centrifugo"]) * 1024 / finished
            if path.kind == "relay" and finished
            else math.nan
        ),
        client_cpu=client_cpu,
        errors=sorted({s.error for s in streams if s.error})[:3],
        execute_running=execute_running,
        running_while_probed=fewest[0],
    )


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        import uvloop  # optional, as for uvicorn
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def merged(rounds: list[Result]) -> Result:
    """One result over several rounds of the same workload: sums and all the samples."""
    first = rounds[0]
    answers = sum(r.streams for r in rounds)
    return Result(
        path=first.path,
        streams=first.streams,
        delay_ms=first.delay_ms,
        exact=sum(r.exact for r in rounds),
        timed_out=any(r.timed_out for r in rounds),
        tokens=sum(r.tokens for r in rounds),
        seconds=sum(r.seconds for r in rounds),
        ttft=[t for r in rounds for t in r.ttft],
        lags=[t for r in rounds for t in r.lags],
        execute=[t for r in rounds for t in r.execute],
        publications=sum(r.publications * r.streams for r in rounds) / answers,
        cpu={name: sum(r.cpu[name] for r in rounds) for name in first.cpu},
        backend_rss_kb_per_stream=sum(r.backend_rss_kb_per_stream for r in rounds) / len(rounds),
        centrifugo_rss_kb_per_answer=sum(r.centrifugo_rss_kb_per_answer for r in rounds)
        / len(rounds),
        client_cpu=sum(r.client_cpu for r in rounds),
        errors=sorted({e for r in rounds for e in r.errors})[:3],
        rounds=len(rounds),
        execute_running={
            how: [t for r in rounds for t in r.execute_running.get(how, [])]
            for how in {how for r in rounds for how in r.execute_running}
        },
        running_while_probed=min(r.running_while_probed for r in rounds),
    )


def measure(path: Path_, count: int, delay_ms: float) -> Result:
    timeout = 30 + 0.03 * count + len(TOKENS) * delay_ms / 1000
    rounds = ROUNDS if count <= SMALL else 1
    results: list[Result] = []
    with (
        servers_for(path, delay_ms) as (pids, port, backend_url, websocket_url),
        asyncio.Runner(loop_factory=loop_factory()) as runner,
    ):
        for _ in range(rounds):
            results.append(
                runner.run(
                    drive(path, count, delay_ms, pids, port, backend_url, websocket_url, timeout)
                )
            )
            if results[-1].timed_out:
                break
    result = merged(results)
    print(
        f"  {path.name:<20} {count:>5} streams D={delay_ms:g}: "
        f"{result.exact}/{result.answers} exact"
        f"{' TIMED OUT' if result.timed_out else ''}, {result.tokens_per_second:,.0f} tok/s, "
        f"TTFT p50 {ms(percentile(result.ttft, 50))} ms, "
        f"lag p99 {ms(percentile(result.lags, 99))} ms, "
        f"CPU {' '.join(f'{k} {v:.2f}' for k, v in result.cpu.items())} s, "
        f"client {result.client_cpu:.2f} s"
        + (f", errors: {'; '.join(result.errors)}" if result.errors else ""),
        flush=True,
    )
    return result


def ms(seconds: float) -> str:
    if math.isnan(seconds):
        return "-"
    value = seconds * 1000
    return f"{value:,.0f}" if abs(value) >= 10 else f"{value:.1f}"


def fig(value: float, digits: int = 1) -> str:
    return "-" if math.isnan(value) else f"{value:,.{digits}f}"


def sig(value: float) -> str:
    """Three significant figures (CPU seconds per 1,000 tokens span 0.01 to 2)."""
    if math.isnan(value):
        return "-"
    return f"{value:.3g}" if value >= 0.0005 else "0"


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.partition(":")[2].strip()
            break
    version = subprocess.run(
        [centrifugo_binary(), "version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    python = sys.version.split()[0]
    return f"{os.cpu_count()} CPUs (nproc), {model}; {version or 'Centrifugo ?'}; Python {python}"


def table(results: list[Result]) -> str:
    direct = {(r.streams, r.delay_ms): r for r in results if r.path == DIRECT}
    lines = [
        "| workload | path | exact | tokens/s | TTFT p50 / p99 ms | token lag p50 / p99 ms "
        "| execute p99 ms: all at once / one more while they run: new connection, kept alive "
        "| CPU s per 1k tokens: backend + Centrifugo = all | vs direct SSE: "
        "CPU, TTFT p50 | publications per answer | backend RSS KB per stream "
        "| Centrifugo RSS KB per answer |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        base = direct.get((r.streams, r.delay_ms))
        workload = f"{r.streams:,} stream{'s' if r.streams > 1 else ''}, D={r.delay_ms:g} ms"
        if r.path.kind == "direct":
            cpu = f"{sig(r.cpu_per_1k('server'))} (one process)"
        else:
            cpu = (
                f"{sig(r.cpu_per_1k('backend'))} + {sig(r.cpu_per_1k('centrifugo'))}"
                f" = {sig(r.cpu_per_1k())}"
            )
        if base is None or r.path.kind == "direct":
            versus = "-"
        else:
            cpu_ratio = r.cpu_per_1k() / base.cpu_per_1k()
            ttft_ratio = percentile(r.ttft, 50) / percentile(base.ttft, 50)
            versus = f"{cpu_ratio:.1f}x, {ttft_ratio:.1f}x"
        new, kept, floor_new, floor_kept = (
            percentile(r.execute_running.get(how, []), 99)
            for how in ("new", "kept_alive", "floor_new", "floor_kept_alive")
        )
        running = "-"
        if not math.isnan(new):
            running = (
                f"{ms(new)}, {ms(kept)} ({r.running_while_probed:,} running; a server doing "
                f"nothing: {ms(floor_new)}, {ms(floor_kept)})"
            )
        elif r.path.kind == "relay" and r.streams >= PROBE_FROM:
            running = f"- (never {PROBE_SHARE:.0%} running at once)"
        pubs = fig(r.publications) if r.path.kind == "relay" else f"({fig(r.publications)} events)"
        lines.append(
            f"| {workload} | {r.path.name} | {r.exact}/{r.answers}"
            f"{' (timed out)' if r.timed_out else ''} | {r.tokens_per_second:,.0f} "
            f"| {ms(percentile(r.ttft, 50))} / {ms(percentile(r.ttft, 99))} "
            f"| {ms(percentile(r.lags, 50))} / {ms(percentile(r.lags, 99))} "
            f"| {ms(percentile(r.execute, 99))} / {running} "
            f"| {cpu} | {versus} | {pubs} "
            f"| {fig(r.backend_rss_kb_per_stream)} | {fig(r.centrifugo_rss_kb_per_answer)} |"
        )
    return "\n".join(lines)


def ramp_table(ramps: dict[str, list[Result]], steps: list[int]) -> str:
    lines = [
        "| path | token lag p99 ms at "
        + " / ".join(f"{n:,}" for n in steps)
        + f" streams | most streams with lag p99 <= {LAG_LIMIT_MS:g} ms (all exact) |",
        "|---|---|---|",
    ]
    for name, results in ramps.items():
        by_count = {r.streams: r for r in results}
        cells = []
        for n in steps:
            r = by_count.get(n)
            if r is None:
                cells.append("(not run)")
            else:
                cells.append(ms(percentile(r.lags, 99)) + (" (timed out)" if r.timed_out else ""))
        passing = [r.streams for r in results if r.lag_ok]
        best = f"{max(passing):,}" if passing else f"< {steps[0]:,}"
        lines.append(f"| {name} | {' / '.join(cells)} | {best} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 and 100 streams, ramp 50-250")
    parser.add_argument(
        "--paths",
        nargs="+",
        choices=[p.kind + (f"-{p.window_ms:g}" if p.kind == "relay" else "") for p in PATHS],
        help="only these paths (direct is needed for the ratios)",
    )
    parser.add_argument("--ramp", type=int, nargs="*", help="ramp steps at D=20 (none: no ramp)")
    parser.add_argument(
        "--workload",
        nargs="+",
        metavar="STREAMS:D",
        help="only these workloads, e.g. 100:20 (streams : ms per token)",
    )
    args = parser.parse_args()
    paths = [
        p
        for p in PATHS
        if not args.paths
        or p.kind + (f"-{p.window_ms:g}" if p.kind == "relay" else "") in args.paths
    ]
    if args.quick:
        workloads = [(1, 20.0), (100, 0.0), (100, 20.0)]
        steps = [50, 100, 250]
    else:
        workloads = [(1, 20.0), (100, 0.0), (100, 20.0), (1000, 0.0), (1000, 20.0)]
        steps = [50, 100, 250, 500, 1000, 2000]
    if args.workload:
        workloads = [(int(n), float(d)) for n, d in (w.split(":") for w in args.workload)]
    if args.ramp is not None:
        steps = sorted(min(n, MAX_STREAMS) for n in args.ramp)
    started = time.monotonic()
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"{len(TOKENS)} tokens an answer; paths: {', '.join(p.name for p in paths)}", flush=True)
    done: dict[tuple[str, int, float], Result] = {}
    results: list[Result] = []
    for count, delay in workloads:
        print(f"{count} streams, D={delay:g} ms/token", flush=True)
        for path in paths:
            done[path.name, count, delay] = measure(path, count, delay)
            results.append(done[path.name, count, delay])
    ramps: dict[str, list[Result]] = {}
    extra: list[Result] = []  # ramp steps that are not workloads above
    if steps:
        print(f"ramp at D=20 ms/token: {steps}", flush=True)
    for path in paths if steps else []:
        ramps[path.name] = []
        for count in steps:
            result = done.get((path.name, count, 20.0))
            if result is None:
                result = done[path.name, count, 20.0] = measure(path, count, 20.0)
                extra.append(result)
            ramps[path.name].append(result)
            if result.timed_out:
                break  # bounded: no bigger step for a path that could not finish this one
    minutes = (time.monotonic() - started) / 60
    print()
    print(f"{when}, {machine()}; {minutes:.1f} min")
    print(f"Every answer {len(TOKENS)} tokens; D = the model's delay per token.")
    print()
    print(table(results))
    if ramps:
        print()
        print(f"Ramp at D=20 ms/token: most streams with token lag p99 <= {LAG_LIMIT_MS:g} ms")
        print()
        print(ramp_table(ramps, steps))
        print()
        print("The ramp's other steps:")
        print()
        print(table(sorted(extra, key=lambda r: r.streams)))


if __name__ == "__main__":
    main()
