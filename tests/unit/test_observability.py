"""What an operator sees: Prometheus metrics that move with the streams, a request id on every
response and log line, one log line per stream start and end, and no secret in any log."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import httpx
import pytest
import respx

from backend.centrifugo.publisher import CentrifugoPublisher
from backend.core.ports import ModelError
from backend.core.types import Chunk, Done, Token
from backend.logs import REDACTED, Redact, log_config
from tests.unit.apps import Api, running_app, settings
from tests.unit.fakes import ScriptedModel


@contextmanager
def logged(**overrides: object) -> Iterator[io.StringIO]:
    """The process's logging as `log_config` sets it up with these settings, into the returned
    buffer, until the block ends."""
    config = log_config(settings(**overrides))
    out = io.StringIO()
    config["handlers"]["main"]["stream"] = out
    logging.config.dictConfig(config)
    try:
        yield out
    finally:
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})


pytestmark = pytest.mark.unit

API = "http://centrifugo.test/api"


def sample(metrics: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus' text format (0 when absent)."""
    label_text = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    pattern = re.escape(name + (f"{{{label_text}}}" if labels else "")) + r" ([0-9.e+-]+)\n"
    found = re.search(pattern, metrics)
    return float(found.group(1)) if found else 0.0


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    tokens = [Token("Hello "), Token("there "), Token("friend")]
    async with running_app(ScriptedModel(tokens, delay=0.001)) as api:
        yield api


async def test_metrics_move_with_a_stream(api: Api) -> None:
    channel = f"stream:abcdefgh#{await api.user()}"
    before = (await api.client.get("/metrics")).text
    assert sample(before, "relaychat_streams_started_total") == 0

    await api.client.post("/api/execute", json={"text": "hi", "channel": channel})
    await api.publisher.wait_for_done(channel)
    await api.client.get("/api/streams/abcdefgh")  # the stream has been released
    after = (await api.client.get("/metrics")).text

    assert sample(after, "relaychat_streams_started_total") == 1
    assert sample(after, "relaychat_streams_ended_total", reason="complete") == 1
    assert sample(after, "relaychat_streams_running") == 0
    assert sample(after, "relaychat_tokens_relayed_total") == 3
    assert sample(after, "relaychat_chunks_relayed_total") == 3  # no coalescing window here
    assert sample(after, "relaychat_time_to_first_token_seconds_count") == 1
    assert sample(after, "relaychat_stream_duration_seconds_count") == 1
    requests = sample(
        after, "http_requests_total", handler="/api/execute", method="POST", status="2xx"
    )
    assert requests == 1


async def test_requests_are_counted_by_route_template_method_and_status(api: Api) -> None:
    for _ in range(2):
        assert (await api.client.get("/api/streams/0123456789abcdef")).status_code == 404
    assert (await api.client.get("/api/no/such/route")).status_code == 404
    await api.client.get("/metrics")
    metrics = (await api.client.get("/metrics")).text
    template = {"handler": "/api/streams/{stream_id}", "method": "GET"}
    assert sample(metrics, "http_requests_total", **template, status="4xx") == 2
    assert sample(metrics, "http_request_duration_seconds_count", **template) == 2
    assert sample(metrics, "http_requests_total", handler="none", method="GET", status="4xx") == 1
    assert "/metrics" not in re.findall(r'handler="([^"]*)"', metrics)
    assert sample(metrics, "http_requests_total", handler="/api/token", method="POST", status="2xx")


async def test_a_request_refused_before_routing_is_counted_under_its_route(api: Api) -> None:
    # The declared body is over the limit: refused before any route ran.
    response = await api.client.post(
        "/api/token", content=b"x" * 10, headers={"Content-Length": "100000000"}
    )
    assert response.status_code == 413
    metrics = (await api.client.get("/metrics")).text
    assert sample(metrics, "http_requests_total", handler="/api/token", method="POST", status="4xx")


async def test_a_router_included_twice_is_counted_under_each_prefix() -> None:
    from fastapi import APIRouter, FastAPI
    from prometheus_client import CollectorRegistry, generate_latest

    from backend.metrics import RequestMetrics

    items = APIRouter()

    @items.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    app = FastAPI()
    app.include_router(items, prefix="/v1")
    app.include_router(items, prefix="/v2")
    registry = CollectorRegistry()
    metered = RequestMetrics(app, registry)
    transport = httpx.ASGITransport(metered)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for path in ("/v1/items/1", "/v2/items/2", "/v1/items/3"):
            assert (await client.get(path)).status_code == 200
    metrics = generate_latest(registry).decode()
    labels = {"method": "GET", "status": "2xx"}
    assert sample(metrics, "http_requests_total", handler="/v1/items/{item_id}", **labels) == 2
    assert sample(metrics, "http_requests_total", handler="/v2/items/{item_id}", **labels) == 1


async def test_a_request_that_fails_inside_the_app_is_counted_as_5xx() -> None:
    from prometheus_client import CollectorRegistry, generate_latest
    from starlette.applications import Starlette
    from starlette.routing import Route

    from backend.metrics import RequestMetrics

    async def broken(request: object) -> None:
        raise RuntimeError("a bug")

    registry = CollectorRegistry()
    app = RequestMetrics(Starlette(routes=[Route("/x/{n}", broken)]), registry)
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/x/1")).status_code == 500
    metrics = generate_latest(registry).decode()
    assert sample(metrics, "http_requests_total", handler="/x/{n}", method="GET", status="5xx") == 1


async def test_model_errors_are_counted_by_kind_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = ScriptedModel(
        [Token("a")], fail_after=0, failure=ModelError("the model server said 503", kind="status")
    )
    async with running_app(model) as api:
        response = await api.client.post("/api/chat/sync", json={"prompt": "hi"})
        metrics = (await api.client.get("/metrics")).text
    assert response.status_code == 502
    assert sample(metrics, "relaychat_model_errors_total", kind="status") == 1
    assert "the model failed (status): the model server said 503" in caplog.text


async def test_the_metrics_path_is_outside_api_and_not_in_the_schema(api: Api) -> None:
    response = await api.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "/metrics" not in api.app.openapi()["paths"]


async def test_the_metrics_say_how_the_process_itself_does(api: Api) -> None:
    """A soak probe: an operator (or a soak) saw no memory, file descriptors or garbage
    collection of the backend in its metrics, the registry being the app's own."""
    text = (await api.client.get("/metrics")).text
    names = {line.split(" ")[0].split("{")[0] for line in text.splitlines() if line[:1] != "#"}
    assert {
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_cpu_seconds_total",
        "python_gc_collections_total",
        "python_info",
    } <= names


async def test_every_response_carries_a_request_id(api: Api) -> None:
    response = await api.client.get("/api/health")
    assert uuid.UUID(response.headers["x-request-id"])
    given = str(uuid.uuid4())
    echoed = await api.client.get("/api/health", headers={"X-Request-ID": given})
    assert echoed.headers["x-request-id"] == given
    # Anything but a UUID is replaced, so a client cannot write into the logs.
    forged = await api.client.get("/api/health", headers={"X-Request-ID": "evil\nline"})
    assert forged.headers["x-request-id"] != "evil\nline"


async def test_one_log_line_per_stream_start_and_end(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="relaychat.streams")
    user = await api.user()
    channel = f"stream:abcdefgh#{user}"
    await api.client.post("/api/execute", json={"text": "hi", "channel": channel})
    await api.publisher.wait_for_done(channel)
    await api.client.get("/api/streams/abcdefgh")

    lines = [r for r in caplog.records if r.name == "relaychat.streams"]
    assert [r.getMessage().split(" id=")[0] for r in lines] == ["stream started", "stream ended"]
    ended = lines[1]
    assert f"id=abcdefgh user={user} reason=complete" in ended.getMessage()
    assert "tokens=3 chunks=3 first_token_ms=" in ended.getMessage()
    assert ended.__dict__["stream_id"] == "abcdefgh"
    assert ended.__dict__["tokens"] == 3


def test_secrets_and_credentials_never_reach_a_log_line() -> None:
    record = logging.LogRecord(
        "x",
        logging.ERROR,
        __file__,
        1,
        "call failed: %s (headers: Authorization: Bearer sk-live-123456, X-API-Key: %s)",
        ("key sk-live-123456 refused", "centrifugo-key-0123456789"),
        None,
    )
    Redact(["sk-live-123456", "centrifugo-key-0123456789", "short"]).filter(record)
    message = record.getMessage()
    assert "sk-live-123456" not in message
    assert "centrifugo-key-0123456789" not in message
    assert message.count(REDACTED) == 3


def test_json_log_lines_carry_the_request_id_and_stream_fields() -> None:
    with logged(LOG_FORMAT="json", OPENAI_API_KEY="sk-secret-abcdef") as out:
        logging.getLogger("relaychat.streams").info(
            "stream ended id=%s key=sk-secret-abcdef", "abcdefgh", extra={"tokens": 3}
        )
    line = json.loads(out.getvalue().strip())
    assert line["message"] == f"stream ended id=abcdefgh key={REDACTED}"
    assert line["tokens"] == 3
    assert line["request_id"] == "-"  # outside a request
    assert line["level"] == "INFO"


def test_json_log_lines_carry_no_terminal_colours() -> None:
    """Probe: uvicorn's lines carried `color_message`, the message with ANSI escapes."""
    with logged(LOG_FORMAT="json") as out:
        logging.getLogger("uvicorn.error").info(
            "Started server process [%d]",
            42,
            extra={"color_message": "Started server process [\x1b[36m%d\x1b[0m]"},
        )
    line = json.loads(out.getvalue().strip())
    assert line["message"] == "Started server process [42]"
    assert set(line) == {"time", "level", "logger", "request_id", "message"}


def test_health_probes_that_succeed_leave_no_access_line() -> None:
    """A compose review: two health checks every 5 s were ~35,000 access lines a day."""
    with logged() as out:
        access = logging.getLogger("uvicorn.access")
        for path, status in [
            ("/api/health", 200),
            ("/api/ready?x=1", 200),
            ("/api/ready", 503),
            ("/api/execute", 202),
            ("/api/health/x", 404),
        ]:
            access.info('%s - "%s %s HTTP/%s" %d', "10.0.0.1:5", "GET", path, "1.1", status)
    lines = out.getvalue().splitlines()
    assert [line.split('"')[1] for line in lines] == [
        "GET /api/ready HTTP/1.1",
        "GET /api/execute HTTP/1.1",
        "GET /api/health/x HTTP/1.1",
    ]


class RecordedEvents:
    def __init__(self) -> None:
        self.batches: list[int] = []
        self.retries = 0
        self.outcomes: list[tuple[int, int]] = []

    def batch_answered(self, size: int, seconds: float) -> None:
        self.batches.append(size)

    def batch_retried(self) -> None:
        self.retries += 1

    def published(self, ok: int, failed: int) -> None:
        self.outcomes.append((ok, failed))


@respx.mock
async def test_the_publisher_reports_batches_retries_and_outcomes() -> None:
    replies = [{"result": {}}, {"error": {"code": 102, "message": "unknown channel"}}]
    route = respx.post(f"{API}/batch")
    route.side_effect = [
        httpx.Response(503),
        httpx.Response(200, json={"replies": replies}),
    ]
    events = RecordedEvents()
    async with httpx.AsyncClient() as client:
        publisher = CentrifugoPublisher(client, API, "key", events=events)
        try:
            results = await _publish_two(publisher)
        finally:
            await publisher.aclose()
    assert results == [None, "failed"]
    assert events.retries == 1
    assert events.batches == [2]
    assert events.outcomes == [(1, 1)]


async def _publish_two(publisher: CentrifugoPublisher) -> list[str | None]:
    import asyncio

    async def one(channel: str, item: Chunk | Done, key: str) -> str | None:
        try:
            await publisher.publish(channel, item, idempotency_key=key)
        except Exception:
            return "failed"
        return None

    return list(
        await asyncio.gather(
            one("stream:aaaaaaaa#u_1", Chunk("a", seq=1), "k1"),
            one("stream:bbbbbbbb#u_1", Chunk("b", seq=1), "k2"),
        )
    )


def test_text_from_outside_cannot_forge_a_text_log_line() -> None:
    """Found by a model-server probe: an error message with a line break in it wrote a second,
    made-up line into the log."""
    with logged(LOG_FORMAT="text") as out:
        logging.getLogger("backend.core.answer").warning(
            "the model failed (reported): %s", "overloaded\n2026-11-30 ERROR FORGED LINE\r"
        )
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].endswith("overloaded\\n2026-11-30 ERROR FORGED LINE\\r")
