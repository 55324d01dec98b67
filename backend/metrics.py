"""relaychat's Prometheus metrics, in a registry of the app's own, served at `GET /metrics` on
the backend's port: a path nginx never routes (only `/api/` reaches the backend through it), so
only what can reach the backend directly can scrape it (see docs/deployment.md).

`Metrics` is told about streams by the core (the `StreamEvents` port) and about publishing by
the Centrifugo publisher (its `PublishEvents`); requests by route and status come from
`RequestMetrics`, a middleware on the same registry."""

from __future__ import annotations

import re
import time
from typing import Any

from fastapi import FastAPI, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_fastapi_instrumentator.routing import get_route_name
from starlette.requests import Request
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.core.types import Done, StreamStats

# Seconds: from a few ms (a cached model) to the default time limit (120 s).
_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_DURATION = (0.1, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)
_BATCH = (1, 2, 5, 10, 20, 50, 100, 200, 500)
_CALL = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class Metrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        # The process itself (memory, open files, CPU; the interpreter's garbage collections),
        # as prometheus_client's default registry would have them.
        ProcessCollector(registry=registry)
        GCCollector(registry=registry)
        PlatformCollector(registry=registry)
        self.streams_started = Counter(
            "relaychat_streams_started", "Relayed streams started.", registry=registry
        )
        self.streams_running = Gauge(
            "relaychat_streams_running", "Relayed streams running now.", registry=registry
        )
        self.streams_ended = Counter(
            "relaychat_streams_ended",
            "Relayed streams ended, by the reason of their done.",
            ["reason"],
            registry=registry,
        )
        self.first_token = Histogram(
            "relaychat_time_to_first_token_seconds",
            "From execute to the first chunk taken by Centrifugo.",
            buckets=_LATENCY,
            registry=registry,
        )
        self.duration = Histogram(
            "relaychat_stream_duration_seconds",
            "From execute to the stream's end.",
            buckets=_DURATION,
            registry=registry,
        )
        self.tokens = Counter(
            "relaychat_tokens_relayed", "Model tokens relayed.", registry=registry
        )
        self.chunks = Counter(
            "relaychat_chunks_relayed", "Chunks (publications) relayed.", registry=registry
        )
        self.model_errors = Counter(
            "relaychat_model_errors", "Model failures, by kind.", ["kind"], registry=registry
        )
        self.publications = Counter(
            "relaychat_publications",
            "Publications Centrifugo answered, by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.batch_size = Histogram(
            "relaychat_publish_batch_size",
            "Publications per /api/batch call.",
            buckets=_BATCH,
            registry=registry,
        )
        self.publish_latency = Histogram(
            "relaychat_publish_batch_seconds",
            "Duration of one /api/batch call that was answered.",
            buckets=_CALL,
            registry=registry,
        )
        self.publish_retries = Counter(
            "relaychat_publish_retries",
            "/api/batch calls retried while Centrifugo was unreachable or failing.",
            registry=registry,
        )

    # The core's StreamEvents.
    def stream_started(self, channel: str) -> None:
        self.streams_started.inc()
        self.streams_running.inc()

    def stream_ended(self, channel: str, done: Done, stats: StreamStats) -> None:
        self.streams_running.dec()
        self.streams_ended.labels(done.reason).inc()
        self.duration.observe(stats.seconds)
        if stats.first_chunk_seconds is not None:
            self.first_token.observe(stats.first_chunk_seconds)
        self.tokens.inc(stats.tokens)
        self.chunks.inc(stats.chunks)

    def model_failed(self, kind: str, message: str) -> None:
        self.model_errors.labels(kind).inc()

    # The publisher's PublishEvents.
    def batch_answered(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.publish_latency.observe(seconds)

    def batch_retried(self) -> None:
        self.publish_retries.inc()

    def published(self, ok: int, failed: int) -> None:
        if ok:
            self.publications.labels("ok").inc(ok)
        if failed:
            self.publications.labels("failed").inc(failed)

    def install(self, app: FastAPI) -> None:
        """Request metrics by route and status, and `GET /metrics` (outside `/api/`)."""
        app.add_middleware(RequestMetrics, registry=self.registry)
        registry = self.registry

        @app.get("/metrics", include_in_schema=False)
        def metrics() -> Response:
            return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


class RequestMetrics:
    """`http_requests_total{handler,method,status}` (status as `2xx`, ...) and
    `http_request_duration_seconds{handler,method}`, the route's template as `handler` (`none`
    for a path no route matched), `/metrics` itself left out: the names and labels
    prometheus-fastapi-instrumentator gives them. It took ~100 us of each request (it matched
    every request against the route table again, and kept five metrics); here the route the
    router chose is looked up in a table of templates, resolved once per route (issue 13)."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.requests = Counter(
            "http_requests_total",
            "Requests, by route template, method and status class.",
            ["handler", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "From a request's arrival to its response's end (a stream's: to its end).",
            ["handler", "method"],
            buckets=_LATENCY,
            registry=registry,
        )
        # id(route) -> [(route, a full template, its pattern), ...]: routes are not hashable (the
        # route is kept so that its id is never another's), and a router included twice under
        # two prefixes gives the same route two templates.
        self._templates: dict[int, list[tuple[Any, str, re.Pattern[str]]]] = {}
        # (handler, method, status class) -> its counter and histogram: `labels()` each time
        # cost more than the rest of this middleware. Bounded: routes x methods x 5.
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def status_of(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, status_of)
        finally:
            handler = self._handler(scope, status)
            if handler != "/metrics":
                key = (handler, scope["method"], status // 100)
                series = self._series.get(key)
                if series is None:
                    series = self._series[key] = (
                        self.requests.labels(handler, key[1], f"{key[2]}xx"),
                        self.latency.labels(handler, key[1]),
                    )
                series[0].inc()
                series[1].observe(time.perf_counter() - started)

    def _handler(self, scope: Scope, status: int) -> str:
        route = scope.get("route")
        if route is None:
            # Refused before routing (e.g. a declared body too large): the slow way, rarely.
            if status == 404:
                return "none"
            return get_route_name(Request(scope), should_include_root_path=False) or "none"
        known = self._templates.setdefault(id(route), [])
        path = scope["path"]
        for _, template, pattern in known:
            if pattern.fullmatch(path):
                return template
        # The route's own path lacks its routers' prefixes: resolved the slow way, once.
        template = get_route_name(Request(scope), should_include_root_path=False) or "none"
        pattern = compile_path(template)[0] if template != "none" else re.compile(r".*")
        known.append((route, template, pattern))
        return template
