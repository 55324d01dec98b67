"""Who may call what: a session (from `POST /api/token`) for every route that acts for a user,
sessions that expire unless renewed, a cap on the answers one user streams at once, and the
interactive API docs only in development."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from backend.api.session import NO_SESSION, SESSION_COOKIE
from backend.core.types import Token
from tests.unit.apps import SESSION_SECRET, Api, running_app
from tests.unit.fakes import ScriptedModel

pytestmark = pytest.mark.unit

# The shortest sessions the settings allow: twice the shortest connection token.
SHORT_SESSIONS = {"SESSION_MAX_AGE_SECONDS": 120, "TOKEN_TTL_SECONDS": 60}
NEEDS_SESSION = [
    ("POST", "/api/execute", {"text": "hi", "channel": "stream:abcdefgh#u_0123456789abcdef"}),
    ("POST", "/api/cancel", {"channel": "stream:abcdefgh#u_0123456789abcdef"}),
    ("POST", "/api/chat", {"prompt": "hi"}),
    ("POST", "/api/chat/sync", {"prompt": "hi"}),
    ("GET", "/api/streams/abcdefgh", None),
]


@pytest.fixture
async def endless() -> AsyncIterator[Api]:
    async with running_app(
        ScriptedModel([Token("tick ")], endless=True, delay=0.01), MAX_STREAMS_PER_USER=2
    ) as api:
        yield api


@pytest.mark.parametrize(("method", "path", "body"), NEEDS_SESSION)
async def test_without_a_session_every_user_route_is_401_and_nothing_starts(
    endless: Api, method: str, path: str, body: dict[str, str] | None
) -> None:
    endless.client.cookies.clear()
    response = await endless.client.request(method, path, json=body)
    assert response.status_code == 401
    assert response.json() == {"detail": NO_SESSION}
    assert len(endless.streams) == 0
    assert endless.model.questions == []


@pytest.mark.parametrize(("method", "path", "body"), NEEDS_SESSION)
async def test_a_forged_session_is_no_session(
    endless: Api, method: str, path: str, body: dict[str, str] | None
) -> None:
    endless.client.cookies.set(SESSION_COOKIE, "InVfMDEyMzQ1Njc4OWFiY2RlZiI.forged.sig")
    response = await endless.client.request(method, path, json=body)
    assert response.status_code == 401


async def test_an_expired_session_is_401_and_post_token_starts_a_new_one() -> None:
    async with running_app(ScriptedModel(), **SHORT_SESSIONS) as api:
        user = await api.user()
        api.client.cookies.set(SESSION_COOKIE, _signed_at(user, seconds_ago=110))
        assert (await api.client.get("/api/streams/abcdefgh")).status_code == 404  # valid

        # What the browser may still send after more than two minutes unused.
        api.client.cookies.set(SESSION_COOKIE, _signed_at(user, seconds_ago=121))
        response = await api.client.get("/api/streams/abcdefgh")
        assert response.status_code == 401
        assert await api.user() != user  # an expired session is not brought back


@pytest.mark.parametrize("user", ["u_0123456789abcdef\n", "u_x\n", "u_x y", ""])
async def test_a_signed_session_with_a_malformed_user_is_no_session(user: str) -> None:
    """Signed with the real secret (so only hardening): the user must be whole, a trailing
    newline included (it got through `$`, and into the connection token's `sub`)."""
    async with running_app(ScriptedModel()) as api:
        api.client.cookies.set(SESSION_COOKIE, _signed_at(user, seconds_ago=0))
        assert (await api.client.get("/api/streams/abcdefgh")).status_code == 401
        assert (await api.client.post("/api/token")).json()["user"] != user


async def test_post_token_renews_the_session(api_client: httpx.AsyncClient) -> None:
    first = await api_client.post("/api/token")
    again = await api_client.post("/api/token")
    assert again.json()["user"] == first.json()["user"]
    assert "max-age=604800" in again.headers["set-cookie"].lower()


@pytest.mark.parametrize(("method", "path", "body"), NEEDS_SESSION)
async def test_a_session_in_use_is_renewed_by_any_route_past_half_its_age(
    method: str, path: str, body: dict[str, str] | None
) -> None:
    """A client that only executes (a server-side integration holding one cookie per user)
    kept its user for SESSION_MAX_AGE_SECONDS after its one `POST /api/token` however busy,
    then got 401 and, from /api/token, another user. Any route renews a session past half its
    age (not every request: a Set-Cookie each time would be wasted)."""
    async with running_app(ScriptedModel(), **SHORT_SESSIONS) as api:
        user = await api.user()
        if body and "channel" in body:
            body = {**body, "channel": f"stream:abcdefgh#{user}"}
        api.client.cookies.set(SESSION_COOKIE, _signed_at(user, seconds_ago=10))
        young = await api.client.request(method, path, json=body)
        assert young.status_code != 401
        assert "set-cookie" not in young.headers

        api.client.cookies.set(SESSION_COOKIE, _signed_at(user, seconds_ago=70))
        old = await api.client.request(method, path, json=body)
        assert old.status_code != 401
        renewed = old.cookies[SESSION_COOKIE]
        assert "max-age=120" in old.headers["set-cookie"].lower()
        assert "httponly" in old.headers["set-cookie"].lower()
        assert old.headers["cache-control"] == "private, no-store"  # no shared cache keeps it

    async with running_app(ScriptedModel(), **SHORT_SESSIONS) as api:
        api.client.cookies.set(SESSION_COOKIE, renewed)
        assert (await api.client.post("/api/token")).json()["user"] == user
        _, signed_at = URLSafeTimedSerializer(SESSION_SECRET, salt="relaychat-session").loads(
            renewed, return_timestamp=True
        )
        assert abs(signed_at.timestamp() - time.time()) < 5  # signed now, not 70 s ago


@pytest.fixture
async def api_client() -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(ScriptedModel()) as api:
        yield api.client


def _signed_at(user: str, seconds_ago: float) -> str:
    """A session cookie for `user` as the backend signed it `seconds_ago`."""

    class Past(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time() - seconds_ago)

    serializer = URLSafeTimedSerializer(SESSION_SECRET, salt="relaychat-session", signer=Past)
    return serializer.dumps(user)


async def test_a_user_streams_at_most_max_streams_per_user_at_once(endless: Api) -> None:
    user = await endless.user()
    for stream_id in ("aaaaaaaa", "bbbbbbbb"):
        body = {"text": "hi", "channel": f"stream:{stream_id}#{user}"}
        assert (await endless.client.post("/api/execute", json=body)).status_code == 202

    third = f"stream:cccccccc#{user}"
    response = await endless.client.post("/api/execute", json={"text": "hi", "channel": third})

    assert response.status_code == 429
    assert response.headers["retry-after"] == "5"
    assert "2 answers streaming" in response.json()["detail"]
    assert third not in endless.streams
    # Direct answers have their own two slots, and the cap is per user: another user may start.
    endless.client.cookies.clear()
    other = await endless.user()
    body = {"text": "hi", "channel": f"stream:dddddddd#{other}"}
    assert (await endless.client.post("/api/execute", json=body)).status_code == 202


async def test_a_finished_stream_frees_its_slot(endless: Api) -> None:
    user = await endless.user()
    channels = [f"stream:{c * 8}#{user}" for c in "ab"]
    for channel in channels:
        await endless.client.post("/api/execute", json={"text": "hi", "channel": channel})
    await endless.client.post("/api/cancel", json={"channel": channels[0]})
    await endless.publisher.wait_for_done(channels[0])

    body = {"text": "hi", "channel": f"stream:cccccccc#{user}"}
    assert (await endless.client.post("/api/execute", json=body)).status_code == 202


async def test_direct_answers_are_capped_per_user_and_free_their_slot() -> None:
    model = ScriptedModel([Token("a ")] * 20, delay=0.02)  # each answer takes ~0.4 s
    async with running_app(model, MAX_STREAMS_PER_USER=2) as api:
        both = [
            asyncio.create_task(api.client.post(path, json={"prompt": "hi"}))
            for path in ("/api/chat", "/api/chat/sync")
        ]
        await model.wait_until_asked(2)  # both are being answered

        refused = await api.client.post("/api/chat/sync", json={"prompt": "hi"})

        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "5"
        assert [(await task).status_code for task in both] == [200, 200]
        # Both answers are over: their slots are free again.
        assert (await api.client.post("/api/chat/sync", json={"prompt": "hi"})).status_code == 200


@pytest.mark.parametrize(("environment", "status"), [("development", 200), ("production", 404)])
async def test_the_api_docs_only_in_development(environment: str, status: int) -> None:
    async with running_app(ScriptedModel(), ENVIRONMENT=environment) as api:
        assert (await api.client.get("/api/docs")).status_code == status
        assert (await api.client.get("/api/openapi.json")).status_code == status


async def test_a_secure_session_cookie_is_a_host_cookie_and_a_tossed_one_is_not_read() -> None:
    """An outside-in probe: a page on a sibling subdomain (or another port) could set the chat's
    session cookie for a browser without one, and the chat then ran as the user it chose. Sent
    over HTTPS only (SESSION_COOKIE_SECURE), it is a `__Host-` cookie, which browsers take only
    from a secure page of the very host, without a Domain; one under the plain name is not
    read."""
    async with running_app(ScriptedModel(), SESSION_COOKIE_SECURE=True) as api:
        api.client.cookies.clear()
        started = await api.client.post("/api/token")
        cookie = started.headers["set-cookie"]
        name, _, rest = cookie.partition("=")
        assert name == "__Host-relaychat_session"
        attributes = {part.strip().split("=")[0].lower() for part in rest.split(";")[1:]}
        assert {"secure", "path", "httponly"} <= attributes
        assert "domain" not in attributes
        assert "; Path=/" in cookie
        value = rest.split(";")[0]
        user = started.json()["user"]

        def with_cookie(cookie_name: str) -> dict[str, str]:
            return {"Cookie": f"{cookie_name}={value}"}

        again = await api.client.post("/api/token", headers=with_cookie(name))
        assert again.json()["user"] == user
        tossed = await api.client.post("/api/token", headers=with_cookie(SESSION_COOKIE))
        assert tossed.json()["user"] != user  # a new session, not the one offered
        refused = await api.client.get("/api/streams/abcdefgh", headers=with_cookie(SESSION_COOKIE))
        assert refused.status_code == 401
