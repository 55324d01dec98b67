"""The publisher against a mocked Centrifugo API: what it sends, batching, and every way it
can fail."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import respx

from backend.centrifugo import publisher as publisher_module
from backend.centrifugo.publications import ChunkPublication, DonePublication, publication
from backend.centrifugo.publisher import CentrifugoPublisher
from backend.core.ports import Publication, PublishError
from backend.core.types import Chunk, Done

API = "http://centrifugo.test/api"
CHANNEL = "stream:abcdefgh#u1"


@pytest.fixture
async def publisher() -> AsyncIterator[CentrifugoPublisher]:
    async with httpx.AsyncClient(timeout=1) as client:
        publisher = CentrifugoPublisher(client, API, "the-api-key", outage_seconds=0.3)
        yield publisher
        await publisher.aclose()


def ok(count: int) -> dict[str, Any]:
    return {"replies": [{"publish": {"offset": i + 1, "epoch": "e"}} for i in range(count)]}


def replies_after(seconds: float) -> Any:
    """A Centrifugo that takes `seconds` to answer a batch, successfully."""

    async def reply(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(seconds)
        return httpx.Response(200, json=ok(len(json.loads(request.content)["commands"])))

    return reply


def commands(call: Any) -> list[dict[str, Any]]:
    body = json.loads(call.request.content)
    assert set(body) == {"commands"}  # sequential: `parallel` stays off, order is kept
    return [command["publish"] for command in body["commands"]]


@respx.mock
async def test_publish_sends_channel_data_key_and_api_key(publisher: CentrifugoPublisher) -> None:
    route = respx.post(f"{API}/batch").respond(200, json=ok(1))
    await publisher.publish(CHANNEL, Chunk("hi"), idempotency_key="k1")
    assert route.calls.last.request.headers["X-API-Key"] == "the-api-key"
    assert commands(route.calls.last) == [
        {"channel": CHANNEL, "data": {"text": "hi", "done": False}, "idempotency_key": "k1"}
    ]


@respx.mock
async def test_a_stream_s_publications_carry_versions_that_put_its_done_last(
    publisher: CentrifugoPublisher,
) -> None:
    """Centrifugo v6 drops a publication whose version is not above the channel's last one: a
    chunk's is its seq, a `done`'s above any seq (a cluster probe: a paused process published
    chunks after the survivor's `done`)."""
    route = respx.post(f"{API}/batch").respond(200, json=ok(4))
    await publisher.publish_many(
        [
            (CHANNEL, Chunk("a", seq=1), "k1", "lease-1"),
            (CHANNEL, Chunk("b", "thinking", seq=2), "k2", "lease-1"),
            (CHANNEL, Done("complete", seq=2), "done", "lease-1"),
            (CHANNEL, Chunk("c", seq=3), "k3", ""),  # no stream: no version
        ]
    )
    sent = commands(route.calls.last)
    versions = [(command.get("version"), command.get("version_epoch")) for command in sent]
    assert versions == [
        (1, "lease-1"),
        (2, "lease-1"),
        (publisher_module.DONE_VERSION, "lease-1"),
        (None, None),
    ]
    assert publisher_module.DONE_VERSION > 10**12  # above any seq an answer reaches
    assert float(publisher_module.DONE_VERSION) == publisher_module.DONE_VERSION  # Lua: doubles


@respx.mock
async def test_a_node_that_fails_is_left_for_the_next_and_ready_asks_that_one() -> None:
    """A cluster probe: each backend published through one node only, so one node that hung
    held up every stream of the backends that used it (15 s of silence for readers of the
    other node, first tokens 18 s late)."""
    first, second = "http://c1.test/api", "http://c2.test/api"
    down = respx.post(f"{first}/batch").mock(side_effect=httpx.ConnectError("refused"))
    up = respx.post(f"{second}/batch").respond(200, json=ok(1))
    respx.post(f"{first}/info").mock(side_effect=httpx.ConnectError("refused"))
    asked = respx.post(f"{second}/info").respond(200, json=info("6.9.1"))
    async with httpx.AsyncClient(timeout=1) as client:
        publisher = CentrifugoPublisher(client, [first, second], "key", outage_seconds=5)
        try:
            await publisher.ready()  # the first node is down: the second answers
            await publisher.publish(CHANNEL, Chunk("a", seq=1), idempotency_key="k1")
            await publisher.publish(CHANNEL, Chunk("b", seq=2), idempotency_key="k2")
        finally:
            await publisher.aclose()
    assert down.call_count == 0  # left after its info failed
    assert [command["data"]["text"] for call in up.calls for command in commands(call)] == [
        "a",
        "b",
    ]
    assert asked.call_count == 1


@respx.mock
async def test_a_batch_the_node_could_not_take_goes_through_the_next() -> None:
    first, second = "http://c1.test/api", "http://c2.test/api"
    down = respx.post(f"{first}/batch").mock(side_effect=httpx.ReadTimeout("too slow"))
    up = respx.post(f"{second}/batch").respond(200, json=ok(1))
    async with httpx.AsyncClient(timeout=1) as client:
        publisher = CentrifugoPublisher(client, [first, second], "key", outage_seconds=5)
        try:
            await publisher.publish(CHANNEL, Chunk("a", seq=1), idempotency_key="k1")
            await publisher.publish(CHANNEL, Chunk("b", seq=2), idempotency_key="k2")
        finally:
            await publisher.aclose()
    assert down.call_count == 1
    assert [commands(call)[0]["data"]["text"] for call in up.calls] == ["a", "b"]


def info(*versions: str) -> dict[str, Any]:
    return {"result": {"nodes": [{"name": f"n{i}", "version": v} for i, v in enumerate(versions)]}}


def keys(call: Any) -> list[str | None]:
    return [command.get("idempotency_key") for command in commands(call)]


STREAM: list[Publication] = [
    (CHANNEL, Chunk("a", seq=1), "k1", "lease-1"),
    (CHANNEL, Done("complete", seq=1), "done", "lease-1"),
]


@pytest.mark.parametrize(
    ("versions", "chunk_key"),
    [
        (("6.9.1",), None),  # the version does the key's work
        (("v6.9.1", "6.0.0"), None),
        (("6.9.1", "5.4.9"), "k1"),  # one node without versions: keys for all
        (("0.0.0",), "k1"),  # a development build: not known to take them
        ((), "k1"),
    ],
)
@respx.mock
async def test_chunks_drop_their_key_only_where_every_node_takes_versions(
    publisher: CentrifugoPublisher, versions: tuple[str, ...], chunk_key: str | None
) -> None:
    respx.post(f"{API}/info").respond(200, json=info(*versions))
    route = respx.post(f"{API}/batch").respond(200, json=ok(2))
    await publisher.ready()  # as the first execute asks
    await publisher.publish_many(STREAM)
    assert keys(route.calls.last) == [chunk_key, "done"]  # a `done` always keeps its key


class Asked:
    """A mocked `/info` of a v6 node that says when it has been answered."""

    def __init__(self) -> None:
        self.answered = asyncio.Event()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.answered.set()
        return httpx.Response(200, json=info("6.9.1"))

    async def in_the_background(self, publisher: CentrifugoPublisher) -> None:
        """`ready()` while publications go through (busy, so fresh) returns at once and asks for
        the versions in the background: until that has been answered and taken in."""
        self.answered.clear()
        await publisher.ready()
        await self.answered.wait()
        await asyncio.sleep(0)  # the asking task takes the answer in


@respx.mock
async def test_after_an_outage_keys_come_back_until_the_versions_are_known_again(
    publisher: CentrifugoPublisher,
) -> None:
    """What answers after an outage may be another Centrifugo, of another version."""
    asked = Asked()
    respx.post(f"{API}/info").mock(side_effect=asked)
    route = respx.post(f"{API}/batch").respond(200, json=ok(2))
    await publisher.publish_many(STREAM)
    assert keys(route.calls.last) == ["k1", "done"]  # not known yet: keys
    await asked.in_the_background(publisher)
    route.side_effect = [httpx.ConnectError("refused"), httpx.Response(200, json=ok(2))]
    await publisher.publish_many(STREAM)  # rides out the outage
    assert keys(route.calls.last) == [None, "done"]  # encoded before the outage
    route.side_effect = None
    await publisher.publish_many(STREAM)
    assert keys(route.calls.last) == ["k1", "done"]
    await asked.in_the_background(publisher)
    await publisher.publish_many(STREAM)
    assert keys(route.calls.last) == [None, "done"]


@respx.mock
async def test_concurrent_publications_share_requests_and_keep_each_channels_order(
    publisher: CentrifugoPublisher,
) -> None:
    route = respx.post(f"{API}/batch").mock(side_effect=replies_after(0.01))

    async def stream(n: int) -> None:
        for i in range(20):
            await publisher.publish(
                f"stream:chan{n:04d}#u1", Chunk(str(i)), idempotency_key=f"{n}:{i}"
            )

    await asyncio.gather(*(stream(n) for n in range(50)))
    sent = [command for call in route.calls for command in commands(call)]
    assert len(sent) == 1000
    assert route.call_count < 100  # not one request per publication
    for n in range(50):
        texts = [c["data"]["text"] for c in sent if c["channel"] == f"stream:chan{n:04d}#u1"]
        assert texts == [str(i) for i in range(20)]


@respx.mock
async def test_http_error_status_is_a_publish_error(publisher: CentrifugoPublisher) -> None:
    route = respx.post(f"{API}/batch").respond(401, text="Unauthorized")
    with pytest.raises(PublishError, match="HTTP 401") as caught:
        await publisher.publish(CHANNEL, Chunk("x"), idempotency_key="k")
    assert caught.value.channel == CHANNEL
    assert route.call_count == 1  # a wrong key does not get better by retrying


@respx.mock
async def test_error_in_the_body_is_a_publish_error(publisher: CentrifugoPublisher) -> None:
    respx.post(f"{API}/batch").respond(200, json={"error": {"code": 101, "message": "bad"}})
    with pytest.raises(PublishError, match="101: bad"):
        await publisher.publish(CHANNEL, Chunk("x"), idempotency_key="k")


@respx.mock
async def test_an_error_reply_fails_only_its_own_publication(
    publisher: CentrifugoPublisher,
) -> None:
    reply = {"replies": [{"error": {"code": 102, "message": "unknown channel"}}]}
    respx.post(f"{API}/batch").respond(200, json=reply)
    with pytest.raises(PublishError, match="102: unknown channel") as caught:
        await publisher.publish("nope:abcdefgh", Chunk("x"), idempotency_key="k")
    assert caught.value.channel == "nope:abcdefgh"


@respx.mock
async def test_body_that_is_not_json_is_a_publish_error(publisher: CentrifugoPublisher) -> None:
    respx.post(f"{API}/batch").respond(200, text="<html>proxy</html>")
    with pytest.raises(PublishError, match="not JSON"):
        await publisher.publish(CHANNEL, Chunk("x"))


@respx.mock
async def test_reply_of_the_wrong_length_is_a_publish_error(
    publisher: CentrifugoPublisher,
) -> None:
    respx.post(f"{API}/batch").respond(200, json={"replies": []})
    with pytest.raises(PublishError, match="malformed"):
        await publisher.publish(CHANNEL, Chunk("x"), idempotency_key="k")


@respx.mock
async def test_timeouts_are_retried_for_the_outage_window_then_a_publish_error(
    publisher: CentrifugoPublisher,
) -> None:
    route = respx.post(f"{API}/batch").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(PublishError, match=r"Centrifugo did not answer in time \(its batch call\)"):
        await publisher.publish(CHANNEL, Chunk("x"), idempotency_key="k")
    assert route.call_count > 2
    assert {commands(call)[0]["idempotency_key"] for call in route.calls} == {"k"}


def failing(times: int, then: Any) -> Any:
    """Centrifugo unreachable for the first `times` calls, then answering with `then`."""
    calls = 0

    async def reply(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls <= times:
            raise httpx.ConnectError("refused")
        response: httpx.Response = await then(request)
        return response

    return reply


@respx.mock
async def test_an_outage_shorter_than_the_window_is_ridden_out(
    publisher: CentrifugoPublisher, caplog: pytest.LogCaptureFixture
) -> None:
    route = respx.post(f"{API}/batch").mock(side_effect=failing(3, replies_after(0)))
    with caplog.at_level(logging.INFO, logger="backend.centrifugo.publisher"):
        await publisher.publish(CHANNEL, Chunk("x"), idempotency_key="k")
    assert route.call_count == 4
    # Its beginning and its end are logged once each (probe: the end was never said).
    assert caplog.text.count("Centrifugo unavailable, retrying") == 1
    assert caplog.text.count("Centrifugo is taking publications again") == 1


@respx.mock
async def test_a_done_is_retried_past_the_outage_window_until_it_lands(
    publisher: CentrifugoPublisher, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: after a Centrifugo restart the `done` was given up with the chunks, and the
    subscribers waited forever."""
    route = respx.post(f"{API}/batch").mock(side_effect=failing(8, replies_after(0)))
    with caplog.at_level(logging.INFO, logger="backend.centrifugo.publisher"):
        with pytest.raises(PublishError):  # a chunk gives up after the window (0.3 s here)
            await publisher.publish(CHANNEL, Chunk("x"), idempotency_key="k1")
        calls_for_the_chunk = route.call_count
        # Given up on while Centrifugo is still down: not "taking publications again" (review).
        assert "taking publications again" not in caplog.text
        assert caplog.text.count("still unavailable") == 1

        await publisher.publish(CHANNEL, Done("error", "gone"), idempotency_key="k2")

    assert route.call_count == 9
    assert calls_for_the_chunk < 8  # so the done did outlast a window of its own
    assert commands(route.calls.last)[0]["data"]["done"] is True
    # One outage, said once as it began and once as it ended, however many batches waited.
    assert caplog.text.count("Centrifugo unavailable, retrying") == 1
    assert caplog.text.count("Centrifugo is taking publications again") == 1


@respx.mock
async def test_ready_answers_from_recent_calls(publisher: CentrifugoPublisher) -> None:
    info = respx.post(f"{API}/info").respond(200, json={"result": {}})
    respx.post(f"{API}/batch").respond(200, json=ok(1))
    await publisher.publish(CHANNEL, Chunk("x"), idempotency_key="k")
    await publisher.ready()
    assert info.call_count == 0  # a publication just went through


@respx.mock
async def test_ready_fails_at_once_during_an_outage(publisher: CentrifugoPublisher) -> None:
    info = respx.post(f"{API}/info").respond(200, json={"result": {}})
    respx.post(f"{API}/batch").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(PublishError):
        await publisher.publish(CHANNEL, Chunk("x"), idempotency_key="k")
    with pytest.raises(PublishError, match="cannot reach Centrifugo"):
        await publisher.ready()
    assert info.call_count == 0


@respx.mock
async def test_a_publication_that_cannot_be_encoded_fails_alone(
    publisher: CentrifugoPublisher,
) -> None:
    """Regression: a lone surrogate made httpx fail the whole batch, and unrelated streams ended
    with "the answer could not be delivered"."""
    route = respx.post(f"{API}/batch").mock(side_effect=replies_after(0.01))

    async def good(n: int) -> None:
        for i in range(5):
            await publisher.publish(
                f"stream:good{n:04d}#u1", Chunk(str(i)), idempotency_key=f"{n}:{i}"
            )

    async def poisoned() -> None:
        with pytest.raises(PublishError, match="cannot be encoded"):
            await publisher.publish(CHANNEL, Chunk("half an emoji \ud83d"), idempotency_key="p")

    await asyncio.gather(*(good(n) for n in range(20)), poisoned())

    sent = [command for call in route.calls for command in commands(call)]
    assert len(sent) == 100
    assert CHANNEL not in {command["channel"] for command in sent}


@respx.mock
async def test_a_batch_refused_as_a_whole_is_split_until_only_the_culprit_fails(
    publisher: CentrifugoPublisher,
) -> None:
    async def reply(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.01)
        sent = json.loads(request.content)["commands"]
        if any(c["publish"]["channel"].startswith("stream:culprit") for c in sent):
            return httpx.Response(400, text="bad request")
        return httpx.Response(200, json=ok(len(sent)))

    respx.post(f"{API}/batch").mock(side_effect=reply)
    channels = [f"stream:chan{n:04d}#u1" for n in range(30)] + ["stream:culprit1#u1"]
    results = await asyncio.gather(
        *(publisher.publish(ch, Chunk("x"), idempotency_key=ch) for ch in channels),
        return_exceptions=True,
    )

    failed = [ch for ch, result in zip(channels, results, strict=True) if result is not None]
    assert failed == ["stream:culprit1#u1"]
    assert "HTTP 400" in str(results[-1])


@respx.mock
async def test_an_auth_failure_is_not_split(publisher: CentrifugoPublisher) -> None:
    route = respx.post(f"{API}/batch").respond(401, text="Unauthorized")
    results = await asyncio.gather(
        *(
            publisher.publish(f"stream:chan{n:04d}#u1", Chunk("x"), idempotency_key=str(n))
            for n in range(10)
        ),
        return_exceptions=True,
    )
    assert all(isinstance(result, PublishError) for result in results)
    assert route.call_count <= 2  # the first alone, then the other nine together


@respx.mock
async def test_retry_after_a_5xx_reuses_the_idempotency_key(
    publisher: CentrifugoPublisher,
) -> None:
    route = respx.post(f"{API}/batch").mock(
        side_effect=[httpx.Response(502), httpx.Response(200, json=ok(1))]
    )
    await publisher.publish(CHANNEL, Chunk("x"), idempotency_key="k7")
    keys = [commands(call)[0]["idempotency_key"] for call in route.calls]
    assert keys == ["k7", "k7"]


@respx.mock
async def test_without_idempotency_key_nothing_is_retried(publisher: CentrifugoPublisher) -> None:
    route = respx.post(f"{API}/batch").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(PublishError, match="cannot reach Centrifugo"):
        await publisher.publish(CHANNEL, Chunk("x"))
    assert route.call_count == 1


@respx.mock
async def test_a_caller_that_stops_waiting_does_not_stop_the_others(
    publisher: CentrifugoPublisher,
) -> None:
    in_flight = asyncio.Event()
    slow_reply = replies_after(0.05)

    async def reply(request: httpx.Request) -> httpx.Response:
        in_flight.set()
        response: httpx.Response = await slow_reply(request)
        return response

    respx.post(f"{API}/batch").mock(side_effect=reply)
    first = asyncio.create_task(publisher.publish(CHANNEL, Chunk("a"), idempotency_key="a"))
    await in_flight.wait()
    first.cancel()
    await publisher.publish(CHANNEL, Chunk("b"), idempotency_key="b")
    assert first.cancelled()


@respx.mock
async def test_ready_asks_for_the_node_info(publisher: CentrifugoPublisher) -> None:
    route = respx.post(f"{API}/info").respond(200, json={"result": {"nodes": [{"name": "n"}]}})
    await publisher.ready()
    assert route.calls.last.request.headers["X-API-Key"] == "the-api-key"


@respx.mock
async def test_ready_errors_are_publish_errors(publisher: CentrifugoPublisher) -> None:
    respx.post(f"{API}/info").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(PublishError, match="cannot reach Centrifugo"):
        await publisher.ready()


@respx.mock
async def test_chunks_and_the_done_become_the_contracts_publications(
    publisher: CentrifugoPublisher,
) -> None:
    route = respx.post(f"{API}/batch").respond(200, json=ok(1))
    items: list[Chunk | Done] = [
        Chunk("a", seq=1),
        Chunk("b", "thinking", seq=2),
        Done("complete", seq=2),
        Done("error", "boom"),
        Chunk("unnumbered"),
    ]
    for item in items:
        await publisher.publish(CHANNEL, item, idempotency_key="k")
    assert [commands(call)[0]["data"] for call in route.calls] == [
        {"text": "a", "done": False, "seq": 1},
        {"text": "b", "done": False, "phase": "thinking", "seq": 2},
        {"text": "", "done": True, "reason": "complete", "seq": 2},
        {"text": "", "done": True, "reason": "error", "error": "boom"},
        {"text": "unnumbered", "done": False},
    ]


@respx.mock
async def test_a_closed_publisher_stays_closed() -> None:
    """Regression: `publish()` after `aclose()` restarted the sender, which failed on the closed
    client and left a task pending at exit."""
    respx.post(f"{API}/batch").respond(200, json=ok(1))
    async with httpx.AsyncClient(timeout=1) as client:
        publisher = CentrifugoPublisher(client, API, "the-api-key")
        await publisher.publish(CHANNEL, Chunk("before"), idempotency_key="k1")
        await publisher.aclose()
        pending = {task for task in asyncio.all_tasks() if task is not asyncio.current_task()}

        with pytest.raises(PublishError, match="closed"):
            await publisher.publish(CHANNEL, Chunk("after"), idempotency_key="k2")

        assert {t for t in asyncio.all_tasks() if t is not asyncio.current_task()} == pending


@pytest.mark.parametrize(
    "item",
    [
        Chunk("Hello"),
        Chunk("hmm", "thinking", seq=3),
        Chunk("", seq=1),
        Done("complete", seq=7),
        Done("error", "the model failed", seq=0),
        Done("cancelled"),
    ],
)
def test_publications_are_what_the_documented_models_say(item: Chunk | Done) -> None:
    """`publication` builds its dicts by hand (it runs once per publication): they must be
    exactly the documented models' JSON."""
    data = publication(item)
    model = DonePublication if isinstance(item, Done) else ChunkPublication
    assert data == model.model_validate(data).model_dump(exclude_none=True)
    assert data["done"] is isinstance(item, Done)


@respx.mock
async def test_many_readiness_questions_at_once_ask_centrifugo_once(
    publisher: CentrifugoPublisher,
) -> None:
    """Regression: a burst of prompts after a quiet spell asked Centrifugo once per prompt."""
    info = respx.post(f"{API}/info").respond(200, json={"result": {}})

    await asyncio.gather(*(publisher.ready() for _ in range(20)))

    assert info.call_count == 1


@respx.mock
async def test_a_known_good_answer_does_not_wait_for_the_next_question(
    publisher: CentrifugoPublisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = asyncio.Event()

    async def answer(request: httpx.Request) -> httpx.Response:
        await slow.wait()
        return httpx.Response(200, json={"result": {}})

    info = respx.post(f"{API}/info").respond(200, json={"result": {}})
    await publisher.ready()  # known good from now on
    info.side_effect = answer
    later = time.monotonic() + 5  # the answer is stale
    monkeypatch.setattr(publisher_module, "time", SimpleNamespace(monotonic=lambda: later))

    await asyncio.wait_for(publisher.ready(known=True), 1)  # returns; asks in the background
    with pytest.raises(TimeoutError):  # whereas a fresh answer is waited for
        await asyncio.wait_for(publisher.ready(), 0.05)
    slow.set()
    await publisher.ready()
    assert info.call_count == 2  # the first, then one question for both


@respx.mock
async def test_closing_fails_the_batch_on_its_way_too(publisher: CentrifugoPublisher) -> None:
    """Regression: publications taken off the queue for a batch Centrifugo never answered
    were left waiting for good (and with them the relay's one flusher)."""
    never, taken = asyncio.Event(), asyncio.Event()

    async def stalled(request: httpx.Request) -> httpx.Response:
        taken.set()
        await never.wait()
        return httpx.Response(200, json=ok(1))

    respx.post(f"{API}/batch").mock(side_effect=stalled)
    publishing = asyncio.create_task(publisher.publish(CHANNEL, Chunk("x"), idempotency_key="k"))
    await asyncio.wait_for(taken.wait(), 5)  # the sender has taken the batch

    await publisher.aclose()

    with pytest.raises(PublishError, match="closed"):
        await asyncio.wait_for(publishing, 1)


@respx.mock
async def test_a_done_outlasting_a_zero_outage_is_not_retried_in_a_busy_loop() -> None:
    """Regression: with PUBLISH_OUTAGE_SECONDS=0 a `done` went back to the queue and was sent
    again at once, thousands of times a second."""
    route = respx.post(f"{API}/batch").mock(side_effect=httpx.ConnectError("refused"))
    async with httpx.AsyncClient(timeout=1) as client:
        publisher = CentrifugoPublisher(client, API, "the-api-key", outage_seconds=0)
        publishing = asyncio.create_task(
            publisher.publish(CHANNEL, Done("complete"), idempotency_key="done:x")
        )
        with pytest.raises(TimeoutError):  # a `done` is retried until it lands
            await asyncio.wait_for(asyncio.shield(publishing), 0.5)
        await publisher.aclose()
    assert route.call_count <= 3  # once, then once a second
    with pytest.raises(PublishError):
        await publishing


@respx.mock
@pytest.mark.parametrize(
    ("result", "used"),
    [
        ({"publications": [{"data": {"text": "a"}, "offset": 1}], "offset": 3, "epoch": "e"}, True),
        ({"publications": [], "offset": 3, "epoch": "e"}, False),  # kept its offset, not its text
        ({"offset": 0, "epoch": "e"}, False),
    ],
)
async def test_has_history_asks_for_one_publication_of_the_channel(
    publisher: CentrifugoPublisher, result: dict[str, Any], used: bool
) -> None:
    route = respx.post(f"{API}/history").respond(200, json={"result": result})

    assert await publisher.has_history(CHANNEL) is used
    assert json.loads(route.calls.last.request.content) == {"channel": CHANNEL, "limit": 1}


@respx.mock
async def test_has_history_errors_are_publish_errors(publisher: CentrifugoPublisher) -> None:
    respx.post(f"{API}/history").respond(200, json={"error": {"code": 102, "message": "ns"}})
    with pytest.raises(PublishError, match="102"):
        await publisher.has_history(CHANNEL)


def internal_error_for(times: int) -> Any:
    """Centrifugo answering the first `times` batches with error 100 for their last command
    (its engine unreachable, as while Redis restarts), then successfully."""
    calls = 0

    async def reply(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        count = len(json.loads(request.content)["commands"])
        replies = ok(count)["replies"]
        if calls <= times:
            replies[-1] = {"error": {"code": 100, "message": "internal server error"}}
        return httpx.Response(200, json={"replies": replies})

    return reply


@respx.mock
async def test_centrifugo_s_own_error_in_a_reply_is_an_outage_ridden_out_whole_batch(
    publisher: CentrifugoPublisher,
) -> None:
    """Regression (probe, Redis restarted under Centrifugo): error 100 in a batch reply failed
    its publication at once; a chunk ended its stream and the `done` was given up, so the
    subscribers never got one. Now the whole batch goes again, same keys, same order."""
    route = respx.post(f"{API}/batch").mock(side_effect=internal_error_for(2))

    await asyncio.gather(
        publisher.publish(CHANNEL, Chunk("a", seq=1), idempotency_key="k1"),
        publisher.publish(CHANNEL, Chunk("b", seq=2), idempotency_key="k2"),
    )

    assert route.call_count == 3
    sent = [[c["idempotency_key"] for c in commands(call)] for call in route.calls]
    assert sent == [["k1", "k2"]] * 3


@respx.mock
async def test_a_done_refused_by_centrifugo_s_own_error_is_retried_until_it_lands(
    publisher: CentrifugoPublisher,
) -> None:
    route = respx.post(f"{API}/batch").mock(side_effect=internal_error_for(12))
    with pytest.raises(PublishError, match="100"):  # a chunk gives up after the window
        await publisher.publish(CHANNEL, Chunk("x"), idempotency_key="k1")

    await publisher.publish(CHANNEL, Done("error", "gone"), idempotency_key="k2")

    assert route.call_count == 13
    assert commands(route.calls.last)[0]["data"]["done"] is True


@respx.mock
async def test_other_errors_in_a_reply_are_not_retried(publisher: CentrifugoPublisher) -> None:
    reply = {"replies": [{"error": {"code": 103, "message": "permission denied"}}]}
    route = respx.post(f"{API}/batch").respond(200, json=reply)
    with pytest.raises(PublishError, match="103"):
        await publisher.publish(CHANNEL, Done("complete"), idempotency_key="k")
    assert route.call_count == 1
