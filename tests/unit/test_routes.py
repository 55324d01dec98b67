"""The routes with the publisher and model replaced: every status code the contract names."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import jwt
import pytest
from fastapi import FastAPI

from backend.config import Settings
from backend.identity import SESSION_COOKIE
from backend.main import create_app
from backend.models.base import Token
from backend.relay import Relay
from tests.unit.fakes import RecordingPublisher, ScriptedModel

TOKEN_SECRET = "t" * 40


def settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "ENVIRONMENT": "production",
        "CENTRIFUGO_HTTP_API_KEY": "k" * 40,
        "CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY": TOKEN_SECRET,
        "SESSION_SECRET": "s" * 40,
        "MAX_TEXT_CHARS": 100,
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


@dataclass
class Api:
    client: httpx.AsyncClient
    app: FastAPI
    publisher: RecordingPublisher
    model: ScriptedModel

    async def user(self) -> str:
        response = await self.client.post("/api/token")
        user: str = response.json()["user"]
        return user

    @property
    def relay(self) -> Relay:
        relay: Relay = self.app.state.relay
        return relay


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    app = create_app(settings())
    publisher = RecordingPublisher()
    model = ScriptedModel([Token("Hello "), Token("there")], delay=0.2)
    async with app.router.lifespan_context(app):
        app.state.publisher = publisher
        app.state.model = model
        app.state.relay = Relay(model, publisher, coalesce_window=0, max_stream_seconds=5)
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield Api(client, app, publisher, model)
            await app.state.relay.shutdown(1)


async def test_token_is_a_jwt_for_the_session_user(api: Api) -> None:
    response = await api.client.post("/api/token")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"token", "user", "expires_in"}
    claims = jwt.decode(body["token"], TOKEN_SECRET, algorithms=["HS256"])
    assert claims["sub"] == body["user"]
    assert claims["exp"] - time.time() == pytest.approx(body["expires_in"], abs=5)
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=lax" in cookie


async def test_the_session_cookie_keeps_the_user(api: Api) -> None:
    assert await api.user() == await api.user()


async def test_a_forged_session_cookie_gets_a_new_user(api: Api) -> None:
    user = await api.user()
    api.client.cookies.set(SESSION_COOKIE, "InVfZm9yZ2VkIg.invalidsignature")
    assert await api.user() != user


async def test_execute_answers_202_before_the_answer_is_generated(api: Api) -> None:
    channel = f"stream:abcdefgh#{await api.user()}"
    started = time.monotonic()
    response = await api.client.post("/api/execute", json={"text": "hello", "channel": channel})
    assert response.status_code == 202
    assert response.json() == {"channel": channel}
    assert time.monotonic() - started < 0.2  # the model takes 0.4 s
    assert api.relay.is_running(channel)
    for _ in range(100):
        if not api.relay.is_running(channel):
            break
        await asyncio.sleep(0.02)
    assert [d["text"] for d in api.publisher.on(channel)] == ["Hello ", "there", ""]


async def test_someone_elses_channel_is_403_and_nothing_is_published(api: Api) -> None:
    await api.user()
    response = await api.client.post(
        "/api/execute", json={"text": "hello", "channel": "stream:abcdefgh#u_someoneelse"}
    )
    assert response.status_code == 403
    assert "another user" in response.json()["detail"]
    await asyncio.sleep(0.05)
    assert api.publisher.published == []


async def test_a_running_channel_is_409(api: Api) -> None:
    channel = f"stream:abcdefgh#{await api.user()}"
    first = await api.client.post("/api/execute", json={"text": "hello", "channel": channel})
    second = await api.client.post("/api/execute", json={"text": "again", "channel": channel})
    assert (first.status_code, second.status_code) == (202, 409)
    assert "already streaming" in second.json()["detail"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"text": "hi", "channel": "stream:short#{user}"}, "channel: must look like"),
        ({"text": "hi", "channel": "other:abcdefgh#{user}"}, "channel: must look like"),
        ({"text": "hi", "channel": "stream:abcdefgh"}, "channel: must look like"),
        ({"text": "hi", "channel": "stream:abc/defgh#{user}"}, "channel: must look like"),
        ({"text": "", "channel": "stream:abcdefgh#{user}"}, "text:"),
        ({"text": " \n\t", "channel": "stream:abcdefgh#{user}"}, "text: is blank"),
        ({"text": "x" * 101, "channel": "stream:abcdefgh#{user}"}, "the limit is 100"),
        ({"channel": "stream:abcdefgh#{user}"}, "text: Field required"),
        ({"text": 5, "channel": "stream:abcdefgh#{user}"}, "text:"),
    ],
)
async def test_bad_execute_bodies_are_422_with_a_message(
    api: Api, body: dict[str, object], message: str
) -> None:
    user = await api.user()
    body = {k: v.format(user=user) if isinstance(v, str) else v for k, v in body.items()}
    response = await api.client.post("/api/execute", json=body)
    assert response.status_code == 422
    assert message in response.json()["detail"]
    assert api.publisher.published == []


async def test_invalid_json_is_422_with_a_message(api: Api) -> None:
    response = await api.client.post(
        "/api/execute", content=b'{"text": "hi",', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json() == {"detail": "the request body is not valid JSON"}


async def test_the_largest_allowed_prompt_and_history_fit_in_the_body_limit(api: Api) -> None:
    channel = f"stream:abcdefgh#{await api.user()}"
    turn = {"role": "user", "content": "\u00e9\n" * 800}  # 1,600 characters; 32,000 in all
    body = {"text": "\u00e9" * 100, "channel": channel, "history": [turn] * 20}
    response = await api.client.post("/api/execute", json=body)
    assert response.status_code == 202, response.text


async def test_oversized_body_is_413_with_a_message(api: Api) -> None:
    response = await api.client.post(
        "/api/execute",
        content=b'{"text": "' + b"x" * 2_000_000 + b'"}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]


async def test_health_is_exactly_ok(api: Api) -> None:
    response = await api.client.get("/api/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_follows_centrifugo(api: Api) -> None:
    assert (await api.client.get("/api/ready")).status_code == 200
    api.publisher.ready = False
    response = await api.client.get("/api/ready")
    assert response.status_code == 503
    assert "Centrifugo is not ready" in response.json()["detail"]


async def test_oversized_body_without_a_length_is_413_too(api: Api) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"text": "'
        for _ in range(200):
            yield b"x" * 10_000
        yield b'"}'

    response = await api.client.post(
        "/api/execute", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]


async def test_config_gives_the_limits_the_backend_applies(api: Api) -> None:
    response = await api.client.get("/api/config")

    assert response.status_code == 200
    assert response.json() == {
        "max_text_chars": 100,
        "max_history_turns": 20,
        "max_history_chars": 32000,
    }
