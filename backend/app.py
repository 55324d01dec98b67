"""Builds the FastAPI app: the one place where the core is wired to its edges.

`create_app(settings)` builds the real edges when the app starts (two httpx clients, Centrifugo's
and the model's; the model `LLM_PROVIDER` names, the Centrifugo publisher, the stream registry);
tests and other deployments pass their own `model`, `publisher` or `streams` instead. The layout
and the life of one stream are in docs/architecture.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import FastAPI

from backend.api.cross_site import CrossSiteRefusal, allowed_origins
from backend.api.deps import Services
from backend.api.errors import BodyLimits, install_error_handlers
from backend.api.limits import max_body_bytes
from backend.api.main import api_router
from backend.api.routes import centrifugo_proxy
from backend.api.session import SessionRenewal
from backend.api.slots import DirectSlots
from backend.centrifugo.publisher import CentrifugoPublisher
from backend.centrifugo.subscriptions import Budget, SubscribeGate
from backend.centrifugo.transport import ServerApiTransport
from backend.cluster.redis_streams import RedisStreams, connect
from backend.config import Settings, get_settings
from backend.core.answer import Answerer
from backend.core.capacity import Capacity
from backend.core.ports import Model, Publisher, PublishError, Streams, StreamsUnavailable
from backend.core.relay import Relay
from backend.core.streams import LocalStreams
from backend.llm.openai_compatible import OpenAICompatibleModel
from backend.llm.simulated import SimulatedModel
from backend.metrics import Metrics
from backend.stream_log import StreamLog

logger = logging.getLogger(__name__)


def build_model(settings: Settings, client: httpx.AsyncClient) -> Model:
    """The model `LLM_PROVIDER` names."""
    if settings.llm_provider == "openai":
        return OpenAICompatibleModel(
            client,
            base_url=settings.openai_base_url,
            model=settings.openai_model,
            api_key=settings.openai_api_key.get_secret_value(),
            system_prompt=settings.system_prompt,
            timeout_seconds=settings.openai_timeout_seconds,
        )
    return SimulatedModel(settings.sim_delay_min_ms, settings.sim_delay_max_ms)


def model_client(settings: Settings) -> httpx.AsyncClient:
    """One client for the model server: each answer from an OpenAI-compatible server holds one
    of its connections for as long as it lasts."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.publish_timeout_seconds),
        limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100),
    )


def centrifugo_client(settings: Settings) -> httpx.AsyncClient:
    """One client for Centrifugo's server API, for the whole process: its kept-alive connection
    is what keeps publishing cheap (a client per token would pay a TCP handshake per
    publication). The publisher sends one batch at a time, so one connection is enough; the
    lean transport (backend/centrifugo/transport.py) costs about half of httpx's own a call and
    writes each request without first yielding to the event loop."""
    return httpx.AsyncClient(
        transport=ServerApiTransport(),
        timeout=httpx.Timeout(settings.publish_timeout_seconds),
    )


def create_app(
    settings: Settings | None = None,
    *,
    model: Model | None = None,
    publisher: Publisher | None = None,
    streams: Streams | None = None,
) -> FastAPI:
    """The app. Edges not given are built (and closed) by its lifespan."""
    settings = settings or get_settings()
    metrics = Metrics()
    events = (metrics, StreamLog())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            the_model, the_publisher = await _edges(stack, settings, model, publisher, metrics)
            answerer = Answerer(
                the_model,
                window=settings.coalesce_window_ms / 1000,
                max_seconds=settings.max_stream_seconds,
                max_chars=settings.max_answer_chars,
                events=events,
            )
            registry = (
                streams if streams is not None else await _registry(stack, settings, the_publisher)
            )
            # This process's places for answers, relay and direct ones together.
            capacity = Capacity(settings.max_running_streams)
            relay = Relay(
                answerer,
                the_publisher,
                registry,
                window=settings.coalesce_window_ms / 1000,
                max_per_owner=settings.max_streams_per_user,
                max_per_address=settings.max_streams_per_address,
                capacity=capacity,
                events=events,
            )
            if not isinstance(registry, LocalStreams):
                # Shared registry: streams whose process died are ended by the survivors.
                stack.push_async_callback(_stop, asyncio.create_task(_end_orphans(relay)))
            # Asked once now, in the background: the first prompts then need not wait for it.
            warm_up = asyncio.create_task(_warm_up(the_publisher), name="publisher warm-up")
            stack.push_async_callback(_stop, warm_up)
            direct = DirectSlots(
                settings.max_streams_per_user,
                per_address=settings.max_streams_per_address,
                capacity=capacity,
            )
            services = Services(
                answerer, relay, the_publisher, asyncio.Event(), direct, capacity, asyncio.Event()
            )
            app.state.services = services
            yield
            # Before the publisher closes (the exit stack): the streams' `done` must go out.
            await begin_shutdown(app)

    # The interactive docs only in development: elsewhere they would show the API to anyone
    # (and the page's CSP blocks the docs' CDN assets anyway).
    development = settings.environment == "development"
    app = FastAPI(
        title="relaychat",
        lifespan=lifespan,
        openapi_url="/api/openapi.json" if development else None,
        docs_url="/api/docs" if development else None,
        redoc_url=None,
        # `/api/execute/` is a 404 like any unknown path, not a 307 to an address built from the
        # Host nginx passes (without its port): the client sent its prompt and cookie there.
        redirect_slashes=False,
    )
    app.state.settings = settings
    app.state.subscribe_gate = subscribe_gate(settings)
    max_body = max_body_bytes(
        settings.max_text_chars, settings.max_history_chars, settings.max_history_turns
    )
    app.add_middleware(BodyLimits, max_bytes=max_body)
    app.add_middleware(CrossSiteRefusal, allowed=allowed_origins(settings.allowed_origins))
    # Outside the two refusals above: their answers are marked `no-store` too.
    app.add_middleware(SessionRenewal)
    # Around everything but the request metrics (added last, by `metrics.install`): every log
    # line a request causes, and its response, carry the request's id.
    app.add_middleware(CorrelationIdMiddleware, header_name="X-Request-ID")
    install_error_handlers(app)
    app.include_router(api_router)
    # Outside /api/: Centrifugo's alone, never routed by nginx.
    app.include_router(centrifugo_proxy.router)
    metrics.install(app)
    return app


def subscribe_gate(settings: Settings) -> SubscribeGate:
    """The subscribe proxy's budgets of fresh channels (backend/centrifugo/subscriptions.py)."""
    return SubscribeGate(
        per_user=Budget(settings.subscribe_burst_per_user, settings.subscribe_rate_per_user),
        per_address=Budget(
            settings.subscribe_burst_per_address, settings.subscribe_rate_per_address
        ),
    )


ORPHAN_CHECK_SECONDS = 1.0


async def _registry(stack: AsyncExitStack, settings: Settings, publisher: Publisher) -> Streams:
    """The streams registry: in this process, or on Redis when REDIS_URL is set."""
    if not settings.redis_url:
        window = settings.reused_channel_check_seconds
        if window > 0 and isinstance(publisher, CentrifugoPublisher):
            # Its memory of used channels starts empty: until it reaches back a channel's
            # history time, Centrifugo is asked too (protocol: a channel that carried an answer
            # in the last 2 minutes is refused, 409, across a restart too).
            return LocalStreams(used_before=_in_history(publisher), check_for=window)
        return LocalStreams()
    redis = connect(settings.redis_url)
    stack.push_async_callback(redis.aclose)
    shared = RedisStreams(redis)
    await shared.start()
    stack.push_async_callback(shared.aclose)
    return shared


# How long an execute waits for the history lookup of a new process's first minutes: it is
# checked at best, and the execute answers at once otherwise (a probe: a hung Centrifugo held an
# execute the whole PUBLISH_TIMEOUT_SECONDS, 5 s, before its 202).
HISTORY_LOOKUP_SECONDS = 1.0


def _in_history(
    publisher: CentrifugoPublisher, within: float = HISTORY_LOOKUP_SECONDS
) -> Callable[[str], Awaitable[bool]]:
    async def in_history(channel: str) -> bool:
        try:
            async with asyncio.timeout(within):
                return await publisher.has_history(channel)
        except PublishError as exc:  # the prompt is not refused for it: checked at best
            logger.warning("could not look up %s's history: %s", channel, exc.message)
        except TimeoutError:
            logger.warning("could not look up %s's history within %g s", channel, within)
        return False

    return in_history


async def _end_orphans(relay: Relay) -> None:
    while True:
        await asyncio.sleep(ORPHAN_CHECK_SECONDS)
        try:
            await relay.end_orphans()
        except StreamsUnavailable as exc:  # the registry briefly unreachable: the next round
            logger.warning("could not check for orphaned streams: %s", exc)
        except Exception:
            logger.warning("could not check for orphaned streams", exc_info=True)


async def _warm_up(publisher: Publisher) -> None:
    try:
        await publisher.ready()
    except PublishError as exc:
        logger.warning("Centrifugo is not taking publications yet: %s", exc.message)


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def begin_shutdown(app: FastAPI) -> None:
    """Take no new answer (503), give the running ones up to SHUTDOWN_DRAIN_SECONDS to finish
    (less if `hurry_shutdown` is called meanwhile), then end the rest: relay streams with their
    `done` (waiting up to the grace period for them, and for those of the answers that had just
    finished, to be published), direct SSE streams with an error event. Meanwhile the process
    still serves everything else (a Stop, a snapshot). The server calls this as soon as it is
    asked to stop, before it stops taking connections (backend/__main__.py); the lifespan calls
    it again, which gives no more time to finish, and ends what started after the first call
    (an answer whose claim in the registry was under way)."""
    services: Services | None = getattr(app.state, "services", None)
    if services is None:
        return
    settings: Settings = app.state.settings
    if not services.stopping.is_set():
        await _drain(services, settings.shutdown_drain_seconds)
    services.stopping.set()
    await services.relay.shutdown(settings.shutdown_grace_seconds)


async def _drain(services: Services, seconds: float) -> None:
    """No new answer from now on; the running ones get up to `seconds` to finish (less if
    `hurry_shutdown` is called)."""
    services.capacity.close()
    running = services.capacity.running
    if not running or seconds <= 0 or services.hurry.is_set():
        return
    logger.warning(
        "stopping: giving %d running answer(s) up to %g s to finish (SHUTDOWN_DRAIN_SECONDS); "
        "no new ones are taken. Signal again to end them now",
        running,
        seconds,
    )
    drained = asyncio.ensure_future(services.capacity.drained())
    hurried = asyncio.ensure_future(services.hurry.wait())
    try:
        await asyncio.wait({drained, hurried}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        drained.cancel()
        hurried.cancel()
    if services.capacity.running:
        logger.warning("%d answer(s) had not finished; ending them", services.capacity.running)


def hurry_shutdown(app: FastAPI) -> None:
    """End the running answers now, rather than give them the rest of SHUTDOWN_DRAIN_SECONDS
    (a second Ctrl-C or SIGTERM). Safe to call from a signal handler."""
    services: Services | None = getattr(app.state, "services", None)
    if services is None:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # the app is not running: nothing waits on it
        services.hurry.set()
    else:
        loop.call_soon_threadsafe(services.hurry.set)


async def _edges(
    stack: AsyncExitStack,
    settings: Settings,
    model: Model | None,
    publisher: Publisher | None,
    metrics: Metrics,
) -> tuple[Model, Publisher]:
    """The model and publisher given, or the real ones on clients that `stack` closes."""
    if publisher is None:
        client = await stack.enter_async_context(centrifugo_client(settings))
        centrifugo = CentrifugoPublisher(
            client,
            settings.centrifugo_api_urls,
            settings.centrifugo_api_key.get_secret_value(),
            # An outage is never ridden out past the time a whole answer may take.
            outage_seconds=min(settings.publish_outage_seconds, settings.max_stream_seconds),
            events=metrics,
        )
        stack.push_async_callback(centrifugo.aclose)
        publisher = centrifugo
    if model is None:
        model = build_model(settings, await stack.enter_async_context(model_client(settings)))
    return model, publisher
