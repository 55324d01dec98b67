"""relaychat's Prometheus metrics, in a registry of the app's own, served at `GET /metrics` on
the backend's port: a path nginx never routes (only `/api/` reaches the backend through it), so
only what can reach the backend directly can scrape it (see docs/deployment.md).

`Metrics` is told about streams by the core (the `StreamEvents` port) and about publishing by
the Centrifugo publisher (its `PublishEvents`); requests by route and status come from
prometheus-fastapi-instrumentator on the same registry."""

from __future__ import annotations

from fastapi import FastAPI, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_fastapi_instrumentator import Instrumentator

from backend.core.types import Done, StreamStats

# Seconds: from a few ms (a cached model) to the default time limit (120 s).
_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_DURATION = (0.1, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)
_BATCH = (1, 2, 5, 10, 20, 50, 100, 200, 500)
_CALL = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class Metrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
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
        Instrumentator(registry=self.registry, excluded_handlers=["/metrics"]).instrument(app)
        registry = self.registry

        @app.get("/metrics", include_in_schema=False)
        def metrics() -> Response:
            return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
