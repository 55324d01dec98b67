"""The backend's shutdown around the answers it runs (docs/architecture.md, "Shutdown"): the
process's places closed and waited for, a `done` still on its way waited for, the lifespan's
second call, and the signals that start and hurry it. The routes' side (refusals, whole
answers) is in test_chat_routes.py."""

from __future__ import annotations

import asyncio
import logging
import signal

import pytest
import uvicorn

from backend.__main__ import SAME_SIGNAL_SECONDS, Server
from backend.app import begin_shutdown
from backend.core.capacity import Capacity
from backend.core.ports import ServerBusy, ServerStopping
from backend.core.types import Chunk, Done, Token
from tests.unit.apps import running_app
from tests.unit.fakes import HeldModel, RecordingPublisher, ScriptedModel


async def test_a_closed_capacity_takes_nothing_and_says_when_the_last_place_is_back() -> None:
    capacity = Capacity(2)
    capacity.take()
    capacity.take()
    with pytest.raises(ServerBusy):
        capacity.take()
    capacity.close()
    with pytest.raises(ServerStopping):
        capacity.take()
    assert (capacity.closed, capacity.running) == (True, 2)
    drained = asyncio.ensure_future(capacity.drained())
    capacity.give_back()
    await asyncio.sleep(0)
    assert not drained.done()  # one still runs
    capacity.give_back()
    await asyncio.wait_for(drained, 1)
    await asyncio.wait_for(capacity.drained(), 1)  # at once once idle


async def test_drained_waits_for_the_close_too() -> None:
    """Idle but still open: more may start; `drained` returns once closed."""
    capacity = Capacity(1)
    drained = asyncio.ensure_future(capacity.drained())
    await asyncio.sleep(0)
    assert not drained.done()
    capacity.close()
    await asyncio.wait_for(drained, 1)


class HeldDonePublisher(RecordingPublisher):
    """Holds each `done` until `release` is set (a slow or retrying Centrifugo)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.holding = asyncio.Event()

    async def publish(
        self,
        channel: str,
        item: Chunk | Done,
        *,
        idempotency_key: str | None = None,
        stream: str = "",
    ) -> None:
        if isinstance(item, Done):
            self.holding.set()
            await self.release.wait()
        await super().publish(channel, item, idempotency_key=idempotency_key, stream=stream)


async def test_the_done_of_an_answer_that_finished_meanwhile_is_waited_for() -> None:
    """Review: an answer gives its place back before its `done` goes out, and leaves the
    relay's running streams then. The shutdown took the last place back for "all finished" and
    waited for no `done`: the publisher closed under it, and the page got the whole answer
    without its ending. Now the grace covers it too."""
    model = HeldModel([Token("Hello "), Token("you")])
    publisher = HeldDonePublisher()
    async with running_app(model, None, publisher, SHUTDOWN_DRAIN_SECONDS=60) as api:
        channel = f"stream:abcdefgh#{await api.user()}"
        await api.client.post("/api/execute", json={"text": "hi", "channel": channel})
        await publisher.wait_for_first(channel)
        shutdown = asyncio.create_task(begin_shutdown(api.app))
        model.release.set()  # the answer finishes; its `done` is held
        await asyncio.wait_for(publisher.holding.wait(), 5)
        for _ in range(50):  # turns of the loop: without the wait it has returned by now
            await asyncio.sleep(0)
        assert not shutdown.done()
        publisher.release.set()
        await asyncio.wait_for(shutdown, 5)
        assert api.publisher.on(channel)[-1] == Done("complete", seq=2)


async def test_the_lifespan_s_second_call_gives_no_more_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Review: the lifespan's call after the server's gave the answers still running the whole
    SHUTDOWN_DRAIN_SECONDS again: twice the time a platform allows for the stop."""
    caplog.set_level(logging.WARNING, logger="backend.app")
    async with running_app(ScriptedModel(), SHUTDOWN_DRAIN_SECONDS=0.05) as api:
        capacity = api.app.state.services.capacity
        capacity.take()  # an answer that does not finish in time
        await begin_shutdown(api.app)  # the server's call
        await begin_shutdown(api.app)  # the lifespan's
        capacity.give_back()
    giving = [r for r in caplog.records if "to finish (SHUTDOWN_DRAIN_SECONDS)" in r.getMessage()]
    assert len(giving) == 1


async def test_a_second_signal_hurries_a_copy_of_the_first_does_not_a_third_is_uvicorn_s() -> None:
    now = [100.0]
    async with running_app(ScriptedModel()) as api:
        server = Server(uvicorn.Config(api.app), api.app, clock=lambda: now[0])
        hurry = api.app.state.services.hurry

        server.handle_exit(signal.SIGINT, None)  # Ctrl-C: the server stops
        assert server.should_exit
        now[0] += SAME_SIGNAL_SECONDS / 2
        server.handle_exit(signal.SIGINT, None)  # the same one passed on again: nothing more
        await asyncio.sleep(0)
        assert not hurry.is_set()
        now[0] += SAME_SIGNAL_SECONDS * 2
        server.handle_exit(signal.SIGINT, None)  # a person's second Ctrl-C
        await asyncio.sleep(0)
        assert hurry.is_set()
        assert not server.force_exit  # the answers still get their `done`
        now[0] += SAME_SIGNAL_SECONDS * 2
        server.handle_exit(signal.SIGINT, None)  # a third: uvicorn's, no wait for connections
        assert server.force_exit
