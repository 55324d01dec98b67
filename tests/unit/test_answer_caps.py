"""The caps on running answers beyond the per-user one: sessions are free, so one client address
could mint users and start answers (each a paid model call) until the process gave way. One
address runs at most MAX_STREAMS_PER_ADDRESS answers (429), one process at most
MAX_RUNNING_STREAMS (503); a refused prompt starts nothing, and every ending gives its places
back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

from backend.core.relay import SHUTDOWN
from backend.core.streams import LocalStreams
from backend.core.types import Done, Token
from tests.unit.apps import Api, running_app, settings
from tests.unit.fakes import ScriptedModel

pytestmark = pytest.mark.unit

OFFICE = "203.0.113.7"
ELSEWHERE = "198.51.100.9"


@asynccontextmanager
async def client_at(api: Api, address: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app whose requests come from `address` (the peer uvicorn names, behind
    nginx the X-Forwarded-For address nginx sets)."""
    transport = httpx.ASGITransport(api.app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def new_user(client: httpx.AsyncClient) -> str:
    """A fresh session on `client`, as anyone can mint one."""
    client.cookies.clear()
    user: str = (await client.post("/api/token")).json()["user"]
    return user


async def execute_as_new_user(client: httpx.AsyncClient, stream_id: str) -> httpx.Response:
    user = await new_user(client)
    body = {"text": "hi", "channel": f"stream:{stream_id}#{user}"}
    return await client.post("/api/execute", json=body)


def endless() -> ScriptedModel:
    return ScriptedModel([Token("tick ")], endless=True, delay=0.01)


async def test_one_address_runs_at_most_max_streams_per_address_whatever_its_sessions() -> None:
    async with (
        running_app(endless(), MAX_STREAMS_PER_ADDRESS=3) as api,
        client_at(api, OFFICE) as office,
        client_at(api, ELSEWHERE) as elsewhere,
    ):
        for stream_id in ("aaaaaaaa", "bbbbbbbb", "cccccccc"):
            assert (await execute_as_new_user(office, stream_id)).status_code == 202

        user = await new_user(office)  # a fresh session: the per-user cap does not hold it
        refused = await office.post(
            "/api/execute", json={"text": "hi", "channel": f"stream:dddddddd#{user}"}
        )

        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "5"
        assert refused.headers["content-type"] == "application/json"
        assert refused.json() == {
            "detail": "3 answers are already streaming from your network address, as many as "
            "one address may (people behind one office network share it); wait for one to "
            "finish, then send again"
        }
        # Nothing started: not claimed, not asked of the model, nothing published.
        assert f"stream:dddddddd#{user}" not in api.streams
        await api.model.wait_until_asked(3)
        assert len(api.model.questions) == 3
        assert api.publisher.on(f"stream:dddddddd#{user}") == []
        # Another address is not held up by this one.
        assert (await execute_as_new_user(elsewhere, "eeeeeeee")).status_code == 202


async def test_an_ipv6_client_counts_by_its_64() -> None:
    """One subscriber has a whole /64 to take addresses from (as nginx's rates count it)."""
    async with (
        running_app(endless(), MAX_STREAMS_PER_ADDRESS=1) as api,
        client_at(api, "2001:db8:1:2::1") as first,
        client_at(api, "2001:db8:1:2:ffff::2") as same_64,
        client_at(api, "2001:db8:1:3::1") as other_64,
    ):
        assert (await execute_as_new_user(first, "aaaaaaaa")).status_code == 202
        assert (await execute_as_new_user(same_64, "bbbbbbbb")).status_code == 429
        assert (await execute_as_new_user(other_64, "cccccccc")).status_code == 202


def slow(**options: object) -> ScriptedModel:
    """An answer that lasts a few tenths of a second: long enough for a request or two (a few
    milliseconds in-process) to find it running."""
    return ScriptedModel([Token("a "), Token("b ")], delay=0.3, **options)  # type: ignore[arg-type]


# Each ending: the model, the settings that bring it about, and the `done` reason it gives.
ENDINGS: dict[str, tuple[Callable[[], ScriptedModel], dict[str, object], str]] = {
    "complete": (slow, {}, "complete"),
    "error": (lambda: slow(fail_after=1), {}, "error"),
    "deadline": (endless, {"MAX_STREAM_SECONDS": 0.5}, "timeout"),
    "size limit": (lambda: slow(endless=True), {"MAX_ANSWER_CHARS": 3}, "error"),
    "cancelled": (endless, {}, "cancelled"),
}


# Each cap at one place, and how a prompt past it is refused.
CAPS = {
    "address": ({"MAX_STREAMS_PER_ADDRESS": 1}, 429),
    "process": ({"MAX_RUNNING_STREAMS": 1}, 503),
}


@pytest.mark.parametrize("cap", CAPS)
@pytest.mark.parametrize("ending", ENDINGS)
async def test_every_ending_gives_its_place_back(ending: str, cap: str) -> None:
    model, limits, reason = ENDINGS[ending]
    one_place, refusal = CAPS[cap]
    async with (
        running_app(model(), **one_place, **limits) as api,
        client_at(api, OFFICE) as office,
        client_at(api, OFFICE) as colleague,
    ):
        user = await new_user(office)
        channel = f"stream:aaaaaaaa#{user}"
        assert (
            await office.post("/api/execute", json={"text": "hi", "channel": channel})
        ).status_code == 202
        # While it runs, the address (the process) has no place for another user's.
        assert (await execute_as_new_user(colleague, "cccccccc")).status_code == refusal
        if ending == "cancelled":
            await api.model.wait_until_asked(1)
            assert (await office.post("/api/cancel", json={"channel": channel})).status_code == 202

        items = await api.publisher.wait_for_done(channel)

        done = items[-1]
        assert isinstance(done, Done)
        assert done.reason == reason
        assert (await execute_as_new_user(office, "bbbbbbbb")).status_code == 202


async def test_the_owner_process_shutting_down_gives_the_address_s_place_back() -> None:
    """The registry counts an address's answers across the processes that share it: one whose
    process stops (its streams end with `done`) no longer counts."""
    shared = LocalStreams()
    async with (
        running_app(endless(), shared, MAX_STREAMS_PER_ADDRESS=1) as first,
        client_at(first, OFFICE) as office,
    ):
        user = await new_user(office)
        channel = f"stream:aaaaaaaa#{user}"
        assert (
            await office.post("/api/execute", json={"text": "hi", "channel": channel})
        ).status_code == 202
        await first.model.wait_until_asked(1)
        assert (await execute_as_new_user(office, "cccccccc")).status_code == 429
    stopped = (await first.publisher.wait_for_done(channel))[-1]
    assert isinstance(stopped, Done)
    assert stopped.error == SHUTDOWN.error

    async with (
        running_app(endless(), shared, MAX_STREAMS_PER_ADDRESS=1) as second,
        client_at(second, OFFICE) as office,
    ):
        assert (await execute_as_new_user(office, "bbbbbbbb")).status_code == 202


async def test_one_process_runs_at_most_max_running_streams_then_503() -> None:
    async with (
        running_app(endless(), MAX_RUNNING_STREAMS=2) as api,
        client_at(api, OFFICE) as office,
        client_at(api, ELSEWHERE) as elsewhere,
    ):
        first = await execute_as_new_user(office, "aaaaaaaa")
        assert first.status_code == 202
        channel = first.json()["channel"]
        assert (await execute_as_new_user(elsewhere, "bbbbbbbb")).status_code == 202

        user = await new_user(elsewhere)
        third = f"stream:cccccccc#{user}"
        refused = await elsewhere.post("/api/execute", json={"text": "hi", "channel": third})

        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "5"
        assert refused.json() == {
            "detail": "the server is busy: it is running as many answers as it can right now; "
            "nothing was started, try again shortly"
        }
        assert third not in api.streams
        assert api.publisher.on(third) == []
        # Direct answers share the process's places.
        direct = await elsewhere.post("/api/chat/sync", json={"prompt": "hi"})
        assert direct.status_code == 503
        assert direct.headers["retry-after"] == "5"
        await api.model.wait_until_asked(2)
        assert len(api.model.questions) == 2

        assert (await office.post("/api/cancel", json={"channel": channel})).status_code == 202
        await api.publisher.wait_for_done(channel)
        assert (
            await elsewhere.post("/api/execute", json={"text": "hi", "channel": third})
        ).status_code == 202


async def test_direct_answers_are_capped_per_address_and_free_their_place() -> None:
    model = ScriptedModel([Token("a ")] * 20, delay=0.02)  # each answer takes ~0.4 s
    async with (
        running_app(model, MAX_STREAMS_PER_ADDRESS=1) as api,
        client_at(api, OFFICE) as office,
        client_at(api, ELSEWHERE) as elsewhere,
    ):
        await new_user(office)
        running = asyncio.create_task(office.post("/api/chat/sync", json={"prompt": "hi"}))
        await model.wait_until_asked(1)

        await new_user(office)  # another user, the same address
        refused = await office.post("/api/chat", json={"prompt": "hi"})

        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "5"
        assert "from your network address" in refused.json()["detail"]
        await new_user(elsewhere)
        assert (await elsewhere.post("/api/chat/sync", json={"prompt": "hi"})).status_code == 200
        assert (await running).status_code == 200
        assert (await office.post("/api/chat/sync", json={"prompt": "hi"})).status_code == 200


@pytest.mark.parametrize("name", ["MAX_STREAMS_PER_ADDRESS", "MAX_RUNNING_STREAMS"])
def test_the_caps_are_at_least_one(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        settings(**{name: 0})


def test_the_caps_defaults() -> None:
    defaults = settings()
    assert defaults.max_streams_per_address == 64
    assert defaults.max_running_streams == 5000
