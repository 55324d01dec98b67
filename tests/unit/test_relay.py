"""The relay: every stream ends in exactly one `done`, whatever happens on the way."""

from __future__ import annotations

import asyncio

import pytest

from backend.models.base import Token
from backend.relay import SHUTDOWN_MESSAGE, Relay, StreamBusy
from tests.unit.fakes import RecordingPublisher, ScriptedModel

CHANNEL = "stream:abcdefgh#u_1"


def make_relay(
    model: ScriptedModel, publisher: RecordingPublisher, *, max_seconds: float = 10
) -> Relay:
    return Relay(model, publisher, coalesce_window=0, max_stream_seconds=max_seconds)


async def finish(relay: Relay, channel: str = CHANNEL) -> None:
    for _ in range(500):
        if not relay.is_running(channel):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("stream did not finish")


async def test_complete_stream_is_chunks_then_one_done() -> None:
    publisher = RecordingPublisher()
    relay = make_relay(ScriptedModel([Token("a "), Token("b", "thinking"), Token("c")]), publisher)
    relay.start(CHANNEL, "hi")
    await finish(relay)
    assert publisher.on(CHANNEL) == [
        {"text": "a ", "done": False},
        {"text": "b", "done": False, "phase": "thinking"},
        {"text": "c", "done": False},
        {"text": "", "done": True, "reason": "complete"},
    ]
    keys = publisher.keys
    assert len(set(keys)) == len(keys) == 4


async def test_second_start_on_a_running_channel_is_refused() -> None:
    relay = make_relay(ScriptedModel(endless=True, delay=0.01), RecordingPublisher())
    relay.start(CHANNEL, "hi")
    with pytest.raises(StreamBusy):
        relay.start(CHANNEL, "again")
    relay.start("stream:otherchan#u_1", "hi")  # another channel is fine
    await relay.shutdown(1)


async def test_channel_is_free_again_after_done() -> None:
    publisher = RecordingPublisher()
    relay = make_relay(ScriptedModel(), publisher)
    relay.start(CHANNEL, "hi")
    await finish(relay)
    relay.start(CHANNEL, "again")
    await finish(relay)
    assert [d["reason"] for d in publisher.on(CHANNEL) if d["done"]] == ["complete", "complete"]


async def test_failed_publish_ends_the_stream_with_done_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    publisher = RecordingPublisher(fail_on={2})
    model = ScriptedModel([Token("a ")] * 5)
    relay = make_relay(model, publisher)
    relay.start(CHANNEL, "hi")
    await finish(relay)
    published = publisher.on(CHANNEL)
    assert published[0] == {"text": "a ", "done": False}
    assert published[-1]["done"] is True
    assert published[-1]["reason"] == "error"
    assert published[-1]["error"]
    assert len(published) == 2  # nothing after the failure but the done
    assert model.closed.is_set()
    assert CHANNEL in caplog.text


async def test_model_failure_ends_with_done_error() -> None:
    publisher = RecordingPublisher()
    relay = make_relay(ScriptedModel([Token("x ")] * 3, fail_after=2), publisher)
    relay.start(CHANNEL, "hi")
    await finish(relay)
    published = publisher.on(CHANNEL)
    assert [d["text"] for d in published[:-1]] == ["x ", "x "]
    assert published[-1] == {
        "text": "",
        "done": True,
        "reason": "error",
        "error": "the model failed while answering",
    }


async def test_max_duration_ends_with_done_timeout() -> None:
    publisher = RecordingPublisher()
    model = ScriptedModel(endless=True, delay=0.01)
    relay = make_relay(model, publisher, max_seconds=0.1)
    relay.start(CHANNEL, "hi")
    await finish(relay)
    done = publisher.on(CHANNEL)[-1]
    assert done["reason"] == "timeout"
    assert "0.1 s" in done["error"]
    assert model.closed.is_set()
    assert sum(1 for d in publisher.on(CHANNEL) if d["done"]) == 1


async def test_shutdown_ends_running_streams_with_done_error() -> None:
    publisher = RecordingPublisher()
    models = [ScriptedModel(endless=True, delay=0.01) for _ in range(3)]
    channels = [f"stream:chan000{i}#u_1" for i in range(3)]
    relay = Relay(models[0], publisher, coalesce_window=0.02, max_stream_seconds=10)
    for channel in channels:
        relay.start(channel, "hi")
    await asyncio.sleep(0.05)
    await relay.shutdown(2)
    assert relay.running == 0
    for channel in channels:
        done = publisher.on(channel)[-1]
        assert done == {"text": "", "done": True, "reason": "error", "error": SHUTDOWN_MESSAGE}


async def test_cancel_ends_with_done_cancelled() -> None:
    publisher = RecordingPublisher()
    relay = make_relay(ScriptedModel(endless=True, delay=0.01), publisher)
    relay.start(CHANNEL, "hi")
    await asyncio.sleep(0.03)
    assert relay.cancel(CHANNEL)
    await finish(relay)
    assert publisher.on(CHANNEL)[-1] == {"text": "", "done": True, "reason": "cancelled"}
    assert not relay.cancel(CHANNEL)
