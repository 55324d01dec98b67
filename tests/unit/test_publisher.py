"""The publisher against a mocked Centrifugo API: what it sends, and every way it can fail."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
import respx

from backend.publisher import CentrifugoPublisher, PublishError

API = "http://centrifugo.test/api"


@pytest.fixture
async def publisher() -> AsyncIterator[CentrifugoPublisher]:
    async with httpx.AsyncClient(timeout=1) as client:
        yield CentrifugoPublisher(client, API, "the-api-key", attempts=3)


@respx.mock
async def test_publish_sends_channel_data_key_and_api_key(publisher: CentrifugoPublisher) -> None:
    route = respx.post(f"{API}/publish").respond(200, json={"result": {"offset": 1, "epoch": "e"}})
    data = {"text": "hi", "done": False}
    await publisher.publish("stream:abcdefgh#u1", data, idempotency_key="k1")
    request = route.calls.last.request
    assert request.headers["X-API-Key"] == "the-api-key"
    assert json.loads(request.content) == {
        "channel": "stream:abcdefgh#u1",
        "data": {"text": "hi", "done": False},
        "idempotency_key": "k1",
    }


@respx.mock
async def test_http_error_status_is_a_publish_error(publisher: CentrifugoPublisher) -> None:
    route = respx.post(f"{API}/publish").respond(401, text="Unauthorized")
    with pytest.raises(PublishError, match="HTTP 401") as caught:
        await publisher.publish("stream:abcdefgh#u1", {"text": "x"}, idempotency_key="k")
    assert caught.value.channel == "stream:abcdefgh#u1"
    assert route.call_count == 1  # a wrong key does not get better by retrying


@respx.mock
async def test_error_in_the_body_is_a_publish_error(publisher: CentrifugoPublisher) -> None:
    respx.post(f"{API}/publish").respond(
        200, json={"error": {"code": 102, "message": "unknown channel"}}
    )
    with pytest.raises(PublishError, match="102: unknown channel"):
        await publisher.publish("nope:abcdefgh", {"text": "x"}, idempotency_key="k")


@respx.mock
async def test_body_that_is_not_json_is_a_publish_error(publisher: CentrifugoPublisher) -> None:
    respx.post(f"{API}/publish").respond(200, text="<html>proxy</html>")
    with pytest.raises(PublishError, match="not JSON"):
        await publisher.publish("stream:abcdefgh#u1", {"text": "x"})


@respx.mock
async def test_timeout_is_retried_then_a_publish_error(publisher: CentrifugoPublisher) -> None:
    route = respx.post(f"{API}/publish").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(PublishError, match="timed out"):
        await publisher.publish("stream:abcdefgh#u1", {"text": "x"}, idempotency_key="k")
    assert route.call_count == 3


@respx.mock
async def test_retry_after_a_5xx_reuses_the_idempotency_key(
    publisher: CentrifugoPublisher,
) -> None:
    route = respx.post(f"{API}/publish").mock(
        side_effect=[httpx.Response(502), httpx.Response(200, json={"result": {}})]
    )
    await publisher.publish("stream:abcdefgh#u1", {"text": "x"}, idempotency_key="k7")
    keys = [json.loads(call.request.content)["idempotency_key"] for call in route.calls]
    assert keys == ["k7", "k7"]


@respx.mock
async def test_without_idempotency_key_nothing_is_retried(publisher: CentrifugoPublisher) -> None:
    route = respx.post(f"{API}/publish").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(PublishError, match="cannot reach Centrifugo"):
        await publisher.publish("stream:abcdefgh#u1", {"text": "x"})
    assert route.call_count == 1


@respx.mock
async def test_info_and_history(publisher: CentrifugoPublisher) -> None:
    respx.post(f"{API}/info").respond(200, json={"result": {"nodes": [{"name": "n"}]}})
    respx.post(f"{API}/history").respond(
        200, json={"result": {"publications": [{"data": {"text": "a"}}], "offset": 1}}
    )
    assert (await publisher.info())["nodes"] == [{"name": "n"}]
    assert await publisher.history("stream:abcdefgh#u1") == [{"data": {"text": "a"}}]
